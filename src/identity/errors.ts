/**
 * Every way getting a token can fail, as a closed set of classes. Callers switch on the class (or
 * `kind`), never on message text. Messages and fields carry the AADSTS code and a readable reason
 * and never a credential, an assertion or a token.
 */
export type FailureKind = "Throttled" | "Transient" | "Permanent";

export interface TokenErrorDetails {
  /** CamelCase, actionable; becomes the Ready condition's reason (e.g. "InvalidClientSecret"). */
  reason: string;
  /** The AADSTS code without prefix, e.g. "7000215", when the token service sent one. */
  aadsts?: string | undefined;
  httpStatus?: number | undefined;
  cause?: unknown;
}

export abstract class TokenAcquisitionError extends Error {
  abstract readonly kind: FailureKind;
  readonly reason: string;
  readonly aadsts: string | undefined;
  readonly httpStatus: number | undefined;

  constructor(message: string, details: TokenErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.reason = details.reason;
    this.aadsts = details.aadsts;
    this.httpStatus = details.httpStatus;
  }
}

/** 429, 503 with Retry-After, or AADSTS50196: no call for this key before `retryAt`. */
export class ThrottledError extends TokenAcquisitionError {
  readonly kind = "Throttled" as const;
  /** Epoch ms named by Retry-After; undefined when the service named no time. */
  readonly retryAt: number | undefined;
  constructor(message: string, details: TokenErrorDetails & { retryAt?: number | undefined }) {
    super(message, details);
    this.retryAt = details.retryAt;
  }
}

/** Worth retrying soon with backoff: 5xx, timeouts, resets, malformed or oversized bodies. */
export class TransientError extends TokenAcquisitionError {
  readonly kind = "Transient" as const;
}

/** Will fail the same way until someone changes the spec or the credential. */
export class PermanentError extends TokenAcquisitionError {
  readonly kind = "Permanent" as const;
}

export type CredentialProblem =
  | "MissingCredentialKey"
  | "MalformedPem"
  | "MalformedPfx"
  | "WrongPfxPassword"
  | "WrongKeyPassword"
  | "AmbiguousCertificateSource"
  | "KeyCertificateMismatch"
  | "UnsupportedKeyType"
  /** A certificate past its notAfter, or a client secret past the expiresAt its registration declares. */
  | "CredentialExpired"
  | "CertificateNotYetValid"
  | "MissingPrivateKey"
  | "MissingCertificate"
  | "AssertionUnavailable"
  /** The referenced credential Secret does not exist in the registration's namespace. */
  | "CredentialSecretNotFound"
  /** The workload-identity ServiceAccount does not exist in the registration's namespace. */
  | "ServiceAccountNotFound"
  /** A service-account token was to be minted for an audience not in --allowed-token-audiences. */
  | "AudienceNotAllowed"
  /** The client assertion in the Secret is not a JWT with an `exp`. */
  | "MalformedAssertion"
  /** The client assertion in the Secret has expired; whoever keeps it fresh has stopped. */
  | "AssertionExpired";

/** A credential that is unusable before any call is made (found locally, not by the service). */
export class CredentialError extends PermanentError {
  readonly problem: CredentialProblem;
  /**
   * What is publicly known of a credential refused for its age (expiry, certificate thumbprint),
   * so that its registration still shows and exports when it expired.
   */
  readonly facts: CredentialFacts | undefined;
  constructor(problem: CredentialProblem, message: string, cause?: unknown, facts?: CredentialFacts) {
    super(message, { reason: problem, cause });
    this.problem = problem;
    this.facts = facts ?? (cause instanceof CredentialError ? cause.facts : undefined);
  }
}

export interface CredentialFacts {
  /** Epoch ms. */
  notAfter?: number | undefined;
  /** base64url SHA-256 of a certificate's DER. */
  x5tS256?: string | undefined;
}

export function isTokenAcquisitionError(e: unknown): e is TokenAcquisitionError {
  return e instanceof TokenAcquisitionError;
}
