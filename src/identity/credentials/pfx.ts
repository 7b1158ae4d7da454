import { X509Certificate, createPrivateKey } from "node:crypto";
// Node's crypto cannot open PKCS#12; node-forge is used for that and nothing else.
import forge from "node-forge";
import { CredentialError } from "../errors.js";
import type { CertificateParts } from "./pem.js";

// PKCS#12 bag types (RFC 7292 §4.2).
const KEY_BAG = "1.2.840.113549.1.12.10.1.1";
const SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2";
const CERT_BAG = "1.2.840.113549.1.12.10.1.3";

/** Reads every certificate and private key from a PFX/PKCS#12 file. */
export function partsFromPfx(pfx: Buffer, password: string | undefined): CertificateParts {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(pfx.toString("binary")));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password ?? "");
  } catch (cause) {
    const text = cause instanceof Error ? cause.message : "";
    if (/password/i.test(text)) {
      throw new CredentialError(
        "WrongPfxPassword",
        password === undefined ? "the PFX needs a password and none was given" : "the PFX password is wrong",
        cause,
      );
    }
    throw new CredentialError("MalformedPfx", `the PFX could not be read: ${text.slice(0, 120)}`, cause);
  }

  const parts: CertificateParts = { certificates: [], privateKeys: [] };
  try {
    for (const bag of bagsOf(p12, CERT_BAG)) {
      // certificateToAsn1 reuses the parsed TBSCertificate, so the DER (and thumbprint) round-trips.
      const asn1 = bag.cert ? forge.pki.certificateToAsn1(bag.cert) : bag.asn1;
      if (asn1 !== undefined) parts.certificates.push(new X509Certificate(derOf(asn1)));
    }
    for (const type of [SHROUDED_KEY_BAG, KEY_BAG]) {
      for (const bag of bagsOf(p12, type)) {
        // forge understands only RSA keys; for others it hands back the PrivateKeyInfo to decode.
        const asn1 = bag.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key)) : bag.asn1;
        if (asn1 !== undefined) {
          parts.privateKeys.push(createPrivateKey({ key: derOf(asn1), format: "der", type: "pkcs8" }));
        }
      }
    }
  } catch (cause) {
    throw new CredentialError(
      "MalformedPfx",
      "the PFX holds a certificate or key that cannot be read",
      cause,
    );
  }
  return parts;
}

function bagsOf(p12: forge.pkcs12.Pkcs12Pfx, bagType: string): forge.pkcs12.Bag[] {
  return p12.getBags({ bagType })[bagType] ?? [];
}

function derOf(asn1: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), "binary");
}
