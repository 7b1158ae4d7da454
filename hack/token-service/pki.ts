import { generateKeyPair as generateKeyPairCb, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import forge from "node-forge";

/**
 * A tiny PKI for the local token service and the tests: a CA for the service's TLS certificate,
 * client certificates (self-signed or issued by a CA, for chains), and PFX files. node-forge
 * builds the certificates because Node's crypto cannot; Node generates the keys because it is
 * two orders of magnitude faster.
 */
export interface IssuedCertificate {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  /** The issuers' certificates, nearest first; empty when self-signed. */
  chainPem: string[];
}

export type CertificateAuthority = IssuedCertificate;

export interface CertificateOptions {
  commonName?: string;
  notBefore?: Date;
  notAfter?: Date;
  keyBits?: number;
  /** Sign with this CA instead of self-signing. */
  issuer?: CertificateAuthority;
}

const generateKeyPair = promisify(generateKeyPairCb);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export async function createCa(options: CertificateOptions = {}): Promise<CertificateAuthority> {
  return issue(options, "apptoken local CA", () => [
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
    ...authorityKeyId(options.issuer),
  ]);
}

/** A TLS server certificate for 127.0.0.1, ::1 and localhost (or the given hosts). */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  options: { hosts?: string[]; notAfter?: Date } = {},
): Promise<IssuedCertificate> {
  const hosts = options.hosts ?? ["127.0.0.1", "::1", "localhost"];
  return issue(
    {
      issuer: ca,
      commonName: hosts[0] ?? "localhost",
      ...(options.notAfter ? { notAfter: options.notAfter } : {}),
    },
    "server",
    () => [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: hosts.map((host) =>
          /^[\d.]+$|:/.test(host) ? { type: 7, ip: host } : { type: 2, value: host },
        ),
      },
      { name: "subjectKeyIdentifier" },
      ...authorityKeyId(ca),
    ],
  );
}

/** An app's client certificate: self-signed unless `issuer` is given. */
export async function createClientCertificate(options: CertificateOptions = {}): Promise<IssuedCertificate> {
  return issue(options, "apptoken test client", () => [
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, critical: true },
    { name: "extKeyUsage", clientAuth: true },
    { name: "subjectKeyIdentifier" },
    ...authorityKeyId(options.issuer),
  ]);
}

/**
 * A PKCS#12 file holding the key and the certificates (leaf first). "3des" is what Windows and
 * older tools export; "aes256" is OpenSSL 3's default.
 */
export function toPfx(
  certsPem: string[],
  keyPem: string,
  password: string,
  options: { algorithm?: "3des" | "aes256"; friendlyName?: string } = {},
): Buffer {
  const key = forge.pki.privateKeyFromPem(keyPem);
  const certs = certsPem.map((pem) => forge.pki.certificateFromPem(pem));
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, certs, password, {
    algorithm: options.algorithm ?? "aes256",
    generateLocalKeyId: true,
    friendlyName: options.friendlyName ?? "apptoken",
  });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), "binary");
}

type ExtensionsFor = () => object[];

async function issue(
  options: CertificateOptions,
  defaultName: string,
  extensions: ExtensionsFor,
): Promise<IssuedCertificate> {
  const { publicKey, privateKey } = await generateKeyPair("rsa", {
    modulusLength: options.keyBits ?? 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const now = Date.now();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  // Positive (leading 0x01) and random, as RFC 5280 asks.
  cert.serialNumber = `01${randomBytes(9).toString("hex")}`;
  cert.validity.notBefore = options.notBefore ?? new Date(now - HOUR);
  cert.validity.notAfter = options.notAfter ?? new Date(now + 365 * DAY);
  const subject = [{ name: "commonName", value: options.commonName ?? defaultName }];
  cert.setSubject(subject);
  const issuer = options.issuer;
  cert.setIssuer(issuer ? forge.pki.certificateFromPem(issuer.certPem).subject.attributes : subject);
  // forge fills in the subjectKeyIdentifier from the public key set above.
  cert.setExtensions(extensions());
  const signingKey = forge.pki.privateKeyFromPem(issuer ? issuer.keyPem : privateKey);
  cert.sign(signingKey, forge.md.sha256.create());
  return {
    certPem: forge.pki.certificateToPem(cert),
    keyPem: privateKey,
    chainPem: issuer ? [issuer.certPem, ...issuer.chainPem] : [],
  };
}

function authorityKeyId(issuer: CertificateAuthority | undefined): object[] {
  if (issuer === undefined) return [];
  const keyIdentifier = forge.pki
    .certificateFromPem(issuer.certPem)
    .generateSubjectKeyIdentifier()
    .getBytes();
  return [{ name: "authorityKeyIdentifier", keyIdentifier }];
}
