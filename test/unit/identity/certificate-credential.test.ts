import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { decodeJwt, decodeProtectedHeader, jwtVerify } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { CertificateCredentialOptions } from "../../../src/identity/credentials/certificate.js";
import { certificateCredential } from "../../../src/identity/credentials/certificate.js";
import { JWT_BEARER_ASSERTION_TYPE } from "../../../src/identity/credentials/client-credential.js";
import type { CredentialProblem } from "../../../src/identity/errors.js";
import { CredentialError } from "../../../src/identity/errors.js";
import type { CertificateAuthority, IssuedCertificate } from "../../../hack/token-service/pki.js";
import { createCa, createClientCertificate, toPfx } from "../../../hack/token-service/pki.js";
import { FakeClock } from "../../support/fake-clock.js";

const ENDPOINT = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token";
const CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e";
const DAY = 86_400_000;

let root: CertificateAuthority;
let intermediate: CertificateAuthority;
let leaf: IssuedCertificate;
let selfSigned: IssuedCertificate;
let other: IssuedCertificate;
let expired: IssuedCertificate;
let future: IssuedCertificate;
let weak: IssuedCertificate;

const clock = () => new FakeClock(Date.now());

beforeAll(async () => {
  root = await createCa({ commonName: "test root" });
  intermediate = await createCa({ commonName: "test intermediate", issuer: root });
  [leaf, selfSigned, other, expired, future, weak] = await Promise.all([
    createClientCertificate({ commonName: "payments.contoso.example", issuer: intermediate }),
    createClientCertificate({ commonName: "self-signed app" }),
    createClientCertificate({ commonName: "another app" }),
    createClientCertificate({
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter: new Date(Date.now() - DAY),
    }),
    createClientCertificate({
      notBefore: new Date(Date.now() + DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
    }),
    createClientCertificate({ keyBits: 1024 }),
  ]);
});

function problemOf(options: CertificateCredentialOptions, at = clock()): CredentialProblem | undefined {
  try {
    certificateCredential(options, at);
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialError);
    const message = (error as CredentialError).message;
    expect(message).not.toMatch(/-----BEGIN|MII[A-Za-z0-9+/]{16}/);
    return (error as CredentialError).problem;
  }
  return undefined;
}

function thumbprint(certPem: string): string {
  return createHash("sha256").update(new X509Certificate(certPem).raw).digest("base64url");
}

async function assertionOf(options: CertificateCredentialOptions, at = clock()) {
  const fields = await certificateCredential(options, at).formFields({
    tokenEndpoint: ENDPOINT,
    clientId: CLIENT_ID,
    now: at.now(),
  });
  expect(fields.client_assertion_type).toBe(JWT_BEARER_ASSERTION_TYPE);
  return fields.client_assertion!;
}

describe("certificateCredential: reading certificates and keys", () => {
  it("reads a certificate and key in either order", () => {
    const a = certificateCredential({ pem: `${selfSigned.certPem}\n${selfSigned.keyPem}` }, clock());
    const b = certificateCredential({ pem: `${selfSigned.keyPem}\n${selfSigned.certPem}` }, clock());
    expect(a.fingerprint).toBe(thumbprint(selfSigned.certPem));
    expect(b.fingerprint).toBe(a.fingerprint);
  });

  it("finds the leaf by its key wherever it sits in a chain", () => {
    const pem = [root.certPem, leaf.keyPem, intermediate.certPem, leaf.certPem].join("\n");
    const credential = certificateCredential({ pem }, clock());
    expect(credential.fingerprint).toBe(thumbprint(leaf.certPem));
    expect(credential.subject).toBe("CN=payments.contoso.example");
  });

  it("reads tls.crt and tls.key given separately", () => {
    const credential = certificateCredential(
      { certPem: selfSigned.certPem, keyPem: selfSigned.keyPem },
      clock(),
    );
    expect(credential.x5tS256).toBe(thumbprint(selfSigned.certPem));
    expect(credential.notAfter).toBe(Date.parse(new X509Certificate(selfSigned.certPem).validTo));
  });

  it("ignores OpenSSL bag attributes and other text between blocks", () => {
    const pem = `Bag Attributes\n    localKeyID: 01 02\nsubject=/CN=x\n${selfSigned.certPem}\nKey Attributes: <No Attributes>\n${selfSigned.keyPem}`;
    expect(problemOf({ pem })).toBeUndefined();
  });

  it("reads a PKCS#1 RSA PRIVATE KEY as well as PKCS#8", () => {
    const pkcs1 = createPrivateKey(selfSigned.keyPem).export({ type: "pkcs1", format: "pem" }).toString();
    expect(pkcs1).toContain("BEGIN RSA PRIVATE KEY");
    expect(problemOf({ certPem: selfSigned.certPem, keyPem: pkcs1 })).toBeUndefined();
  });

  it("decrypts an encrypted PEM key with its password", () => {
    const encrypted = createPrivateKey(selfSigned.keyPem)
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pem-pass" })
      .toString();
    expect(
      problemOf({ certPem: selfSigned.certPem, keyPem: encrypted, password: "pem-pass" }),
    ).toBeUndefined();
    expect(problemOf({ certPem: selfSigned.certPem, keyPem: encrypted, password: "nope" })).toBe(
      "WrongKeyPassword",
    );
    expect(problemOf({ certPem: selfSigned.certPem, keyPem: encrypted })).toBe("WrongKeyPassword");
  });

  it.each(["aes256", "3des"] as const)(
    "opens a %s PFX with a chain given the right password",
    (algorithm) => {
      const pfx = toPfx([leaf.certPem, intermediate.certPem, root.certPem], leaf.keyPem, "pfx-pass", {
        algorithm,
      });
      const credential = certificateCredential({ pfx, password: "pfx-pass" }, clock());
      expect(credential.fingerprint).toBe(thumbprint(leaf.certPem));
    },
  );

  it.each(["openssl3-default.pfx", "openssl-legacy.pfx"])("opens %s made by the openssl CLI", (file) => {
    const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
    const pfx = readFileSync(`${fixtures}${file}`);
    const at = new FakeClock(Date.parse("2030-01-01T00:00:00Z"));
    const credential = certificateCredential({ pfx, password: "fixture-password" }, at);
    expect(credential.fingerprint).toBe(thumbprint(readFileSync(`${fixtures}cert.pem`, "utf8")));
    expect(problemOf({ pfx, password: "wrong" }, at)).toBe("WrongPfxPassword");
  });
});

describe("certificateCredential: unusable credentials", () => {
  it("reports a wrong PFX password", () => {
    const pfx = toPfx([selfSigned.certPem], selfSigned.keyPem, "right");
    expect(problemOf({ pfx, password: "wrong" })).toBe("WrongPfxPassword");
    expect(problemOf({ pfx })).toBe("WrongPfxPassword");
  });

  it("reports a file that is not a PFX", () => {
    expect(problemOf({ pfx: Buffer.from(selfSigned.certPem), password: "x" })).toBe("MalformedPfx");
    expect(problemOf({ pfx: Buffer.alloc(0), password: "x" })).toBe("MalformedPfx");
  });

  it.each([
    ["text without PEM blocks", "not a certificate"],
    [
      "a certificate block with garbage inside",
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----",
    ],
  ])("reports %s as malformed PEM", (_what, pem) => {
    expect(problemOf({ pem })).toBe("MalformedPem");
  });

  it("reports a key block with garbage inside as malformed PEM", () => {
    const keyPem = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----";
    expect(problemOf({ certPem: selfSigned.certPem, keyPem })).toBe("MalformedPem");
  });

  it("reports a certificate without its key", () => {
    expect(problemOf({ pem: selfSigned.certPem })).toBe("MissingPrivateKey");
  });

  it("reports a key without a certificate, and nothing at all", () => {
    expect(problemOf({ pem: selfSigned.keyPem })).toBe("MissingCertificate");
    expect(problemOf({})).toBe("MissingCertificate");
  });

  it("reports a key that matches none of the certificates", () => {
    expect(problemOf({ certPem: selfSigned.certPem, keyPem: other.keyPem })).toBe("KeyCertificateMismatch");
  });

  it("refuses a non-RSA key", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
      type: "pkcs8",
      format: "pem",
    });
    expect(problemOf({ certPem: selfSigned.certPem, keyPem: ec.toString() })).toBe("UnsupportedKeyType");
  });

  it("refuses an RSA key under 2048 bits", () => {
    expect(problemOf({ certPem: weak.certPem, keyPem: weak.keyPem })).toBe("UnsupportedKeyType");
  });

  it("reports an expired and a not-yet-valid certificate", () => {
    expect(problemOf({ certPem: expired.certPem, keyPem: expired.keyPem })).toBe("CredentialExpired");
    expect(problemOf({ certPem: future.certPem, keyPem: future.keyPem })).toBe("CertificateNotYetValid");
  });

  it("refuses a PFX and PEM together rather than guess", () => {
    const pfx = toPfx([selfSigned.certPem], selfSigned.keyPem, "x");
    expect(problemOf({ pfx, password: "x", pem: selfSigned.certPem })).toBe("AmbiguousCertificateSource");
  });

  it("refuses to sign once the certificate has expired during its use", async () => {
    const at = clock();
    const credential = certificateCredential({ certPem: selfSigned.certPem, keyPem: selfSigned.keyPem }, at);
    at.set(credential.notAfter + 1000);
    await expect(
      credential.formFields({ tokenEndpoint: ENDPOINT, clientId: CLIENT_ID, now: at.now() }),
    ).rejects.toMatchObject({ problem: "CredentialExpired" });
  });
});

describe("certificateCredential: the client assertion", () => {
  it("has the header Entra looks the certificate up by, without x5c unless asked", async () => {
    const jwt = await assertionOf({ certPem: selfSigned.certPem, keyPem: selfSigned.keyPem });
    expect(decodeProtectedHeader(jwt)).toEqual({
      alg: "RS256",
      typ: "JWT",
      "x5t#S256": thumbprint(selfSigned.certPem),
    });
  });

  it("sends the chain, leaf first, in x5c when sendX5C is set", async () => {
    const pem = [root.certPem, intermediate.certPem, leaf.certPem, leaf.keyPem].join("\n");
    const header = decodeProtectedHeader(await assertionOf({ pem, sendX5C: true }));
    const der = (p: string) => new X509Certificate(p).raw.toString("base64");
    expect(header.x5c).toEqual([der(leaf.certPem), der(intermediate.certPem), der(root.certPem)]);
  });

  it("merges the registration's extra claims, never letting them replace a registered one", async () => {
    const at = clock();
    const extraClaims = { xms_cc: "cp1", aud: "https://elsewhere.example", exp: "9999999999", jti: "fixed" };
    const jwt = await assertionOf(
      { certPem: selfSigned.certPem, keyPem: selfSigned.keyPem, extraClaims },
      at,
    );
    const claims = decodeJwt(jwt);
    const now = Math.floor(at.now() / 1000);
    expect(claims).toMatchObject({
      xms_cc: "cp1",
      aud: ENDPOINT,
      iss: CLIENT_ID,
      sub: CLIENT_ID,
      exp: now + 600,
    });
    expect(claims.jti).not.toBe("fixed");
  });

  it("carries aud, iss, sub, jti, nbf, iat and a ten-minute exp", async () => {
    const at = clock();
    const jwt = await assertionOf({ certPem: selfSigned.certPem, keyPem: selfSigned.keyPem }, at);
    const claims = decodeJwt(jwt);
    const now = Math.floor(at.now() / 1000);
    expect(claims).toEqual({
      aud: ENDPOINT,
      iss: CLIENT_ID,
      sub: CLIENT_ID,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      nbf: now,
      iat: now,
      exp: now + 600,
    });
  });

  it("never allows an assertion to live longer than ten minutes", async () => {
    const jwt = await assertionOf({
      certPem: selfSigned.certPem,
      keyPem: selfSigned.keyPem,
      assertionLifetimeSeconds: 3600,
    });
    const { exp, iat } = decodeJwt(jwt);
    expect(exp! - iat!).toBe(600);
  });

  it("is signed by the certificate's key", async () => {
    const at = clock();
    const jwt = await assertionOf({ certPem: selfSigned.certPem, keyPem: selfSigned.keyPem }, at);
    const { payload } = await jwtVerify(jwt, new X509Certificate(selfSigned.certPem).publicKey, {
      audience: ENDPOINT,
      issuer: CLIENT_ID,
      currentDate: new Date(at.now()),
    });
    expect(payload.sub).toBe(CLIENT_ID);
  });

  it("can sign with PS256", async () => {
    const jwt = await assertionOf({
      certPem: selfSigned.certPem,
      keyPem: selfSigned.keyPem,
      algorithm: "PS256",
    });
    expect(decodeProtectedHeader(jwt).alg).toBe("PS256");
    await expect(jwtVerify(jwt, new X509Certificate(selfSigned.certPem).publicKey)).resolves.toBeDefined();
  });

  it("uses a fresh jti on every call", async () => {
    const at = clock();
    const credential = certificateCredential({ certPem: selfSigned.certPem, keyPem: selfSigned.keyPem }, at);
    const ctx = { tokenEndpoint: ENDPOINT, clientId: CLIENT_ID, now: at.now() };
    const jtis = new Set<unknown>();
    for (let i = 0; i < 50; i++)
      jtis.add(decodeJwt((await credential.formFields(ctx)).client_assertion!).jti);
    expect(jtis.size).toBe(50);
  });

  it("follows the injected clock, not the wall clock", async () => {
    const at = clock();
    at.advance(90_000);
    const { iat } = decodeJwt(
      await assertionOf({ certPem: selfSigned.certPem, keyPem: selfSigned.keyPem }, at),
    );
    expect(iat).toBe(Math.floor(at.now() / 1000));
  });
});
