/** What the token cache is given: how to call, how it is built, and what `hold` answers. */
import type { Clock } from "../clock.js";
import type { CallLimiter } from "../rate/token-bucket.js";
import type { BackoffPolicies } from "./backoff.js";
import type { TokenResponse } from "./token-response.js";

export const DEFAULT_EXPIRY_SKEW_MS = 30_000;
export const DEFAULT_IDLE_EVICT_AFTER_MS = 24 * 60 * 60_000;

/** Calls the token service for one key; throws the identity module's error classes. */
export type TokenFetch = () => Promise<TokenResponse>;

export interface AcquireOptions {
  /**
   * The force-refresh annotation: skip freshness (not backoff, Retry-After or the global limit). A
   * call it causes that produces a token is remembered as the key's `forcedAt`.
   */
  force?: boolean | undefined;
  /** The spec's refreshBefore, ms. */
  refreshBeforeMs?: number | undefined;
  /**
   * Who uses the key, e.g. the request's "namespace/name": the same as `hold(holder, keyId)` before
   * the acquire (a Set lookup when it already holds it). A holder moving to another key (spec
   * change) or `release(holder)` (request deleted) evicts a key nobody holds any more. Without
   * holders, keys leave only through `sweep`.
   */
  holder?: string | undefined;
}

export interface TokenCacheOptions {
  clock: Clock;
  /** The global limit on calls to the token service, usually a TokenBucket. */
  limiter: CallLimiter;
  /** [0, 1) source for jitter; Math.random by default, seeded in tests. */
  random?: (() => number) | undefined;
  /**
   * Allowance for clocks disagreeing (ours, Entra's, the consumers'): a token is not handed out in its
   * last `expirySkewMs`. Default 30 s.
   */
  expirySkewMs?: number | undefined;
  backoff?: Partial<BackoffPolicies> | undefined;
  /** `sweep()` evicts keys nobody acquired for this long. Default 24 h (longer than any refresh interval). */
  idleEvictAfterMs?: number | undefined;
}

/**
 * A key as `hold` answers it: the holder's acquires go straight to the key (`acquireHeld`), with no
 * lookup by id and no check of the holder, both done once by `hold`. `evicted` turns true when the
 * key leaves the cache (swept while idle, or released): the holder must `hold` again.
 */
export interface HeldKey {
  readonly keyId: string;
  readonly evicted: boolean;
}
