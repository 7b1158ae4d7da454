import type { KeyObject, X509Certificate } from "node:crypto";
import { createHash } from "node:crypto";
import { CredentialError } from "../errors.js";
import { refuseExpired } from "./expiry.js";
import type { CertificateParts } from "./pem.js";

/** A usable signing identity: an RSA key, its certificate, and the rest of the chain in order. */
export interface CertificateMaterial {
  privateKey: KeyObject;
  leaf: X509Certificate;
  /** Issuers of the leaf, nearest first; certificates that link to nothing come last. */
  chain: X509Certificate[];
  /** base64url SHA-256 of the leaf's DER: the `x5t#S256` header Entra looks the certificate up by. */
  x5tS256: string;
  /** base64url SHA-1 of the leaf's DER: the legacy `x5t` header. */
  x5t: string;
  notBefore: number;
  notAfter: number;
}

const MIN_RSA_BITS = 2048;

/** Picks the leaf (the certificate whose public key matches the key) and checks it can sign now. */
export function selectCertificateMaterial(parts: CertificateParts, now: number): CertificateMaterial {
  if (parts.privateKeys.length === 0) {
    throw new CredentialError("MissingPrivateKey", "no private key found next to the certificate");
  }
  if (parts.privateKeys.length > 1) {
    throw new CredentialError("MalformedPem", `expected one private key, found ${parts.privateKeys.length}`);
  }
  const privateKey = parts.privateKeys[0]!;
  checkKeyType(privateKey);
  if (parts.certificates.length === 0) {
    throw new CredentialError("MissingCertificate", "no certificate found next to the private key");
  }

  const leaf = parts.certificates.find((cert) => cert.checkPrivateKey(privateKey));
  if (leaf === undefined) {
    throw new CredentialError(
      "KeyCertificateMismatch",
      `the private key matches none of the ${parts.certificates.length} certificate(s) given`,
    );
  }
  const material: CertificateMaterial = {
    privateKey,
    leaf,
    chain: orderChain(
      leaf,
      parts.certificates.filter((cert) => !cert.raw.equals(leaf.raw)),
    ),
    x5tS256: createHash("sha256").update(leaf.raw).digest("base64url"),
    x5t: createHash("sha1").update(leaf.raw).digest("base64url"),
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
  };
  checkValidity(material, now);
  return material;
}

export function checkValidity(material: CertificateMaterial, now: number): void {
  const subject = material.leaf.subject.replaceAll("\n", ", ");
  refuseExpired(material.notAfter, now, `certificate ${subject} (x5t#S256 ${material.x5tS256})`, {
    x5tS256: material.x5tS256,
  });
  if (now < material.notBefore) {
    throw new CredentialError(
      "CertificateNotYetValid",
      `certificate ${subject} (x5t#S256 ${material.x5tS256}) is not valid before ${new Date(material.notBefore).toISOString()}`,
    );
  }
}

function checkKeyType(key: KeyObject): void {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  // rsa-pss keys are refused too: they cannot make the RS256 signatures Entra expects by default.
  if (key.asymmetricKeyType !== "rsa" || bits < MIN_RSA_BITS) {
    const what =
      key.asymmetricKeyType === "rsa"
        ? `a ${bits}-bit RSA key`
        : `a ${key.asymmetricKeyType ?? "unknown"} key`;
    throw new CredentialError(
      "UnsupportedKeyType",
      `${what} was given; Entra ID needs RSA of at least ${MIN_RSA_BITS} bits`,
    );
  }
}

function orderChain(leaf: X509Certificate, others: X509Certificate[]): X509Certificate[] {
  const remaining = [...others];
  const chain: X509Certificate[] = [];
  let current = leaf;
  for (;;) {
    const index = remaining.findIndex((candidate) => current.checkIssued(candidate));
    if (index === -1) break;
    current = remaining.splice(index, 1)[0]!;
    chain.push(current);
  }
  return [...chain, ...remaining];
}
