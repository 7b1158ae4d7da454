import type { KeyObject } from "node:crypto";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { CredentialError } from "../errors.js";

export interface CertificateParts {
  certificates: X509Certificate[];
  privateKeys: KeyObject[];
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;
const KEY_LABELS = new Set(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]);

/**
 * Reads certificates and private keys from PEM text in any order, the way a kubernetes.io/tls
 * Secret or `openssl pkcs12 -nodes` output holds them (text between blocks, such as OpenSSL's
 * "Bag Attributes", is ignored). Does not decide which certificate is the leaf.
 */
export function partsFromPem(text: string, password?: string): CertificateParts {
  const parts: CertificateParts = { certificates: [], privateKeys: [] };
  let blocks = 0;
  for (const match of text.matchAll(BLOCK)) {
    blocks++;
    const [pem, label = ""] = match;
    if (label === "CERTIFICATE" || label === "X509 CERTIFICATE") {
      parts.certificates.push(parseCertificate(pem, blocks));
    } else if (KEY_LABELS.has(label)) {
      parts.privateKeys.push(parseKey(pem, label, password));
    }
    // Other blocks (CSRs, parameters) carry nothing we need.
  }
  if (blocks === 0)
    throw new CredentialError("MalformedPem", "no PEM blocks found (expected CERTIFICATE and PRIVATE KEY)");
  return parts;
}

function parseCertificate(pem: string, index: number): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (cause) {
    throw new CredentialError("MalformedPem", `PEM block ${index} is not a valid X.509 certificate`, cause);
  }
}

function parseKey(pem: string, label: string, password: string | undefined): KeyObject {
  const encrypted = label === "ENCRYPTED PRIVATE KEY" || pem.includes("Proc-Type: 4,ENCRYPTED");
  try {
    return createPrivateKey(
      encrypted ? { key: pem, format: "pem", passphrase: password ?? "" } : { key: pem, format: "pem" },
    );
  } catch (cause) {
    if (encrypted) {
      throw new CredentialError(
        "WrongKeyPassword",
        password === undefined
          ? "the private key is encrypted and no password was given"
          : "the private key could not be decrypted with the given password",
        cause,
      );
    }
    throw new CredentialError("MalformedPem", `the ${label} block is not a valid private key`, cause);
  }
}
