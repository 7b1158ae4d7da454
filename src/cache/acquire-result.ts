import type { TokenAcquisitionError } from "../identity/errors.js";
import type { ThrottleStatus } from "./key-state.js";
import type { CachedToken } from "./token-response.js";

/**
 * status.tokenSource: whether the token came from this request's own call, from the cache, or from
 * the fleet's shared tier (a token another operator fetched, read instead of calling).
 */
export type TokenSource = "Cache" | "IdentityProvider" | "SharedCache";

export type AcquireOutcome =
  /** A fresh cached token; no call. */
  | "Hit"
  /** This acquire called the token service and got a new token. */
  | "Fetched"
  /** This acquire joined another acquire's call for the same key, which got a new token. */
  | "Shared"
  /** The call (this acquire's own, or the one it joined) failed; `token` is the old one if still usable. */
  | "Failed"
  /** A call was due but not allowed yet (see `deferredBy`); `token` is the old one if still usable. */
  | "Deferred";

export type DeferReason =
  /** The service said 429/503 with Retry-After, or AADSTS50196: wait for throttle.retryAt. */
  | "Throttled"
  /** Earlier transient or permanent failures: wait for throttle.retryAt. */
  | "Backoff"
  /** The global limit on calls: a slot is reserved for this key at nextAttemptAt. */
  | "RateLimited";

/** What TokenCache.acquire tells the controller. Shared between callers: do not mutate. */
export interface AcquireResult {
  readonly outcome: AcquireOutcome;
  /**
   * The token the target Secret should hold: the new one, or the old one while it is still usable.
   * undefined when the key holds no usable token (first call failed or deferred, or the old token
   * expired): `error` (if any) says why.
   */
  readonly token: CachedToken | undefined;
  /**
   * "IdentityProvider" only when this acquire's own call produced `token`; "SharedCache" when that
   * "call" was answered by the fleet tier without reaching the token service.
   */
  readonly source: TokenSource | undefined;
  /** Whether this acquire itself called the token service (counted as a miss). */
  readonly called: boolean;
  /** token.refreshAt, for status.refreshAt. */
  readonly refreshAt: number | undefined;
  /** When to reconcile this key again (epoch ms): RequeueAfter = nextAttemptAt − now. */
  readonly nextAttemptAt: number;
  /** status.throttle for this key. */
  readonly throttle: ThrottleStatus;
  /** Why no call was made, for outcome "Deferred". */
  readonly deferredBy: DeferReason | undefined;
  /**
   * The key's most recent failure while it is backing off or throttled (the class instance, for
   * `instanceof`; throttle.lastError is its status form); undefined once a call succeeds.
   */
  readonly error: TokenAcquisitionError | undefined;
}
