import type { KeyObject } from "node:crypto";
import { X509Certificate, createHash } from "node:crypto";
import type { JWTPayload, JWTVerifyGetKey, ProtectedHeaderParameters } from "jose";
import { compactVerify, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from "jose";
import type { AppRegistration } from "./config.js";
import type { EntraFailure } from "./entra-errors.js";
import { entra } from "./entra-errors.js";

/**
 * Verifies client assertions as strictly as Entra ID does, and in one respect more strictly
 * (a jti is never accepted twice). Returns the failure to send, or undefined when the assertion
 * proves the app's identity.
 */
export interface AssertionCheck {
  app: AppRegistration;
  clientId: string;
  /** Every spelling of this token endpoint the assertion may name as `aud` (GUID and domains). */
  acceptedAudiences: ReadonlySet<string>;
  now: number;
  skewSeconds: number;
}

const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const MAX_LIFETIME_SECONDS = 600;

export type Decoded = { header: ProtectedHeaderParameters; payload: JWTPayload };

export function decodeAssertion(assertion: string): Decoded | undefined {
  try {
    return { header: decodeProtectedHeader(assertion), payload: decodeJwt(assertion) };
  } catch {
    return undefined;
  }
}

/** Remembers every jti until its assertion could no longer be accepted anyway. */
export class JtiRegistry {
  private readonly seen = new Map<string, number>();

  /** False when the jti was already used. */
  claim(clientId: string, jti: string, forgetAfter: number, now: number): boolean {
    if (this.seen.size > 1000) {
      for (const [key, until] of this.seen) if (until < now) this.seen.delete(key);
    }
    const key = `${clientId}\n${jti}`;
    if (this.seen.has(key)) return false;
    this.seen.set(key, forgetAfter);
    return true;
  }
}

export async function verifyCertificateAssertion(
  assertion: string,
  decoded: Decoded,
  check: AssertionCheck,
  jtis: JtiRegistry,
): Promise<EntraFailure | undefined> {
  const { header, payload } = decoded;
  if (header.alg === undefined || !ALGORITHMS.includes(header.alg))
    return entra.unsupportedAlgorithm(String(header.alg));
  if (payload.iss !== check.clientId || payload.sub !== check.clientId)
    return entra.assertionIssuerMismatch();

  const key = registeredKey(check.app, header) ?? subjectNameIssuerKey(check.app, header, check.now);
  if (key === undefined) {
    const thumbprint = String(header["x5t#S256"] ?? header.x5t ?? "(none)");
    return entra.certificateNotRegistered(thumbprint, check.clientId);
  }
  try {
    await compactVerify(assertion, key, { algorithms: ALGORITHMS });
  } catch {
    return entra.badSignature();
  }

  const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!audiences.some((aud) => aud !== undefined && check.acceptedAudiences.has(aud))) {
    return entra.assertionAudienceMismatch();
  }

  const nowSeconds = check.now / 1000;
  const { exp, nbf, iat } = payload;
  if (exp === undefined || nowSeconds > exp + check.skewSeconds)
    return entra.assertionTimeRange(check.now, nbf, exp);
  if (nbf !== undefined && nowSeconds < nbf - check.skewSeconds)
    return entra.assertionTimeRange(check.now, nbf, exp);
  // Entra documents ten minutes as the most an assertion may live; hold clients to it.
  if (exp - (nbf ?? iat ?? Math.floor(nowSeconds)) > MAX_LIFETIME_SECONDS + 1) {
    return entra.assertionTimeRange(check.now, nbf, exp);
  }

  if (typeof payload.jti !== "string" || payload.jti === "") return entra.assertionReplayed();
  if (!jtis.claim(check.clientId, payload.jti, (exp + check.skewSeconds) * 1000, check.now)) {
    return entra.assertionReplayed();
  }
  return undefined;
}

export interface FederatedCheck {
  app: AppRegistration;
  now: number;
  skewSeconds: number;
  keysFor: (issuer: string) => Promise<JWTVerifyGetKey | undefined>;
}

export async function verifyFederatedAssertion(
  assertion: string,
  decoded: Decoded,
  check: FederatedCheck,
): Promise<EntraFailure | undefined> {
  const issuer = String(decoded.payload.iss);
  const records = check.app.federated.filter((record) => record.issuer === issuer);
  if (records.length === 0) return entra.federatedIssuerMismatch(issuer);

  const keys = await check.keysFor(issuer).catch(() => undefined);
  if (keys === undefined) return entra.federatedKeysUnavailable(issuer);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(assertion, keys, {
      issuer,
      clockTolerance: check.skewSeconds,
      currentDate: new Date(check.now),
    }));
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) {
      return entra.assertionTimeRange(check.now, decoded.payload.nbf, decoded.payload.exp);
    }
    if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === "nbf") {
      return entra.assertionTimeRange(check.now, decoded.payload.nbf, decoded.payload.exp);
    }
    return entra.badSignature();
  }

  const audiences = Array.isArray(payload.aud) ? payload.aud : payload.aud === undefined ? [] : [payload.aud];
  const subject = payload.sub ?? "";
  const match = records.find((record) => record.subject === subject && audiences.includes(record.audience));
  return match === undefined ? entra.federatedNoMatch(issuer, subject, audiences.join(",")) : undefined;
}

interface RegisteredCertificate {
  x5tS256: string;
  x5t: string;
  publicKey: KeyObject;
}

const parsedCertificates = new Map<string, RegisteredCertificate | null>();

function registered(pem: string): RegisteredCertificate | undefined {
  let entry = parsedCertificates.get(pem);
  if (entry === undefined) {
    try {
      const cert = new X509Certificate(pem);
      entry = {
        x5tS256: createHash("sha256").update(cert.raw).digest("base64url"),
        x5t: createHash("sha1").update(cert.raw).digest("base64url"),
        publicKey: cert.publicKey,
      };
    } catch {
      entry = null;
    }
    parsedCertificates.set(pem, entry);
  }
  return entry ?? undefined;
}

function registeredKey(app: AppRegistration, header: ProtectedHeaderParameters): KeyObject | undefined {
  const s256 = header["x5t#S256"];
  const sha1 = header.x5t;
  for (const pem of app.certificates) {
    const cert = registered(pem);
    if (cert === undefined) continue;
    if (typeof s256 === "string" ? cert.x5tS256 === s256 : cert.x5t === sha1) return cert.publicKey;
  }
  return undefined;
}

/**
 * Subject name + issuer ("SNI") authentication: the app trusts a subject under a CA rather than
 * one certificate, so the client must send its chain in x5c.
 */
function subjectNameIssuerKey(
  app: AppRegistration,
  header: ProtectedHeaderParameters,
  now: number,
): KeyObject | undefined {
  if (!Array.isArray(header.x5c) || header.x5c.length === 0 || app.trustedSubjects.length === 0)
    return undefined;
  let chain: X509Certificate[];
  try {
    chain = header.x5c.map((der) => new X509Certificate(Buffer.from(der, "base64")));
  } catch {
    return undefined;
  }
  const leaf = chain[0]!;
  const s256 = header["x5t#S256"];
  if (typeof s256 === "string" && createHash("sha256").update(leaf.raw).digest("base64url") !== s256)
    return undefined;
  if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) return undefined;
  for (let i = 0; i + 1 < chain.length; i++) {
    const [child, parent] = [chain[i]!, chain[i + 1]!];
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) return undefined;
  }
  const top = chain[chain.length - 1]!;
  for (const trust of app.trustedSubjects) {
    if (trust.subject !== leaf.subject) continue;
    const ca = new X509Certificate(trust.caPem);
    if (top.raw.equals(ca.raw) || (top.checkIssued(ca) && top.verify(ca.publicKey))) return leaf.publicKey;
  }
  return undefined;
}
