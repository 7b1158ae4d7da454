import { createHash } from "node:crypto";
import { decodeJwt } from "jose";
import { CredentialError } from "../errors.js";
import type { AssertionContext, ClientCredential } from "./client-credential.js";
import { JWT_BEARER_ASSERTION_TYPE } from "./client-credential.js";

/** A client assertion is refused this long before its `exp`, so that it is still valid on arrival. */
const EXPIRY_MARGIN_MS = 30_000;

// Versioned so that a future change of derivation cannot collide with old cache keys.
const FINGERPRINT_LABEL = "apptoken-operator/client-assertion/v1\u0000";

export interface ClientAssertionCredential extends ClientCredential {
  readonly kind: "clientAssertion";
  /** Epoch ms of the assertion's `exp`. */
  readonly notAfter: number;
}

/**
 * A signed JWT that another system keeps fresh in a Secret (a SPIFFE JWT-SVID, a CI provider's
 * OIDC token), presented as the client assertion unchanged. Its signature is for Entra ID to check;
 * here only its shape and `exp` are read, so that an expired one is refused locally with a reason
 * (AssertionExpired) instead of a round trip to AADSTS700024.
 *
 * The fingerprint is derived from the assertion's issuer and subject, not its bytes: the system
 * that refreshes it writes a new JWT every few minutes for the same identity, and that must not
 * make a new token cache key (a call per refresh of the assertion) while the app token is valid.
 */
export function clientAssertionCredential(jwt: string, now: number): ClientAssertionCredential {
  const assertion = jwt.trim();
  let claims: { exp?: unknown; iss?: unknown; sub?: unknown };
  try {
    claims = decodeJwt(assertion);
  } catch {
    throw new CredentialError("MalformedAssertion", "the client assertion is not a compact JWT");
  }
  if (typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) {
    throw new CredentialError("MalformedAssertion", "the client assertion has no numeric exp claim");
  }
  // Clamped to what a Date can hold, so that a far-off exp is not a RangeError anywhere later.
  const notAfter = Math.max(-MAX_DATE_MS, Math.min(MAX_DATE_MS, claims.exp * 1000));
  checkNotExpired(notAfter, now);
  const fingerprint = createHash("sha256")
    .update(FINGERPRINT_LABEL)
    .update(`${claimText(claims.iss)}\u0000${claimText(claims.sub)}`)
    .digest("hex")
    .slice(0, 32);
  return {
    kind: "clientAssertion",
    fingerprint,
    notAfter,
    formFields: (ctx: AssertionContext) => {
      try {
        checkNotExpired(notAfter, ctx.now);
      } catch (e) {
        return Promise.reject(e as Error);
      }
      return Promise.resolve({
        client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
        client_assertion: assertion,
      });
    },
  };
}

/** The largest epoch ms a Date holds. */
const MAX_DATE_MS = 8.64e15;

/** A claim as text for the fingerprint, whatever JSON it is (never a call into the claim's own members). */
function claimText(v: unknown): string {
  return typeof v === "string" ? v : (JSON.stringify(v) ?? "");
}

function checkNotExpired(notAfter: number, now: number): void {
  if (now + EXPIRY_MARGIN_MS < notAfter) return;
  throw new CredentialError(
    "AssertionExpired",
    `the client assertion expired at ${new Date(notAfter).toISOString()}; whatever writes it to the Secret has stopped refreshing it`,
    undefined,
    { notAfter },
  );
}
