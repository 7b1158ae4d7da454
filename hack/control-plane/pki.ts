/**
 * Certificates for the local control plane: a CA, the apiserver's serving certificate and the
 * admin client certificate (O=system:masters, as envtest's test user). Keys come from node:crypto
 * (fast, native); node-forge only builds and signs the X.509 structures, which Node cannot.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

function rsaKeyPem(): string {
  return generateKeyPairSync("rsa", { modulusLength: 2048 })
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();
}

function newCertificate(keyPem: string, subject: forge.pki.CertificateField[], days: number) {
  const key = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  // Positive serial: the top bit of the first byte must be clear for DER INTEGER.
  cert.serialNumber = "01" + randomBytes(15).toString("hex");
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now + days * 24 * 60 * 60 * 1000);
  cert.setSubject(subject);
  return cert;
}

export function createCa(commonName: string): KeyAndCert {
  const keyPem = rsaKeyPem();
  const cert = newCertificate(keyPem, [{ name: "commonName", value: commonName }], 3650);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

export interface LeafOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: "server" | "client";
}

export function issueCertificate(ca: KeyAndCert, opts: LeafOptions): KeyAndCert {
  const keyPem = rsaKeyPem();
  const subject: forge.pki.CertificateField[] = [{ name: "commonName", value: opts.commonName }];
  for (const o of opts.organizations ?? []) subject.push({ name: "organizationName", value: o });
  const cert = newCertificate(keyPem, subject, 365);
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: opts.usage === "server", clientAuth: opts.usage === "client" },
    ...(altNames.length ? [{ name: "subjectAltName", altNames }] : []),
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

/** The key pair the apiserver signs service-account tokens with (TokenRequest API). */
export function serviceAccountKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}
