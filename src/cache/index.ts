/** The token cache: what the controller and main.ts use. */
export { cacheKeyHash, cacheKeyId } from "./cache-key.js";
export type { CacheKeyParts } from "./cache-key.js";
export { TokenCache, DEFAULT_EXPIRY_SKEW_MS, DEFAULT_IDLE_EVICT_AFTER_MS } from "./token-cache.js";
export type { HeldKey } from "./token-cache.js";
export type {
  AcquireOptions,
  CacheStats,
  KeyInspection,
  PersistedToken,
  SeedEntry,
  SeedReport,
  TokenCacheOptions,
  TokenFetch,
} from "./token-cache.js";
export type { AcquireOutcome, AcquireResult, DeferReason, TokenSource } from "./acquire-result.js";
export type { FailureSummary, ThrottleState, ThrottleStatus } from "./key-state.js";
export { TokenBucket, unlimited } from "../rate/token-bucket.js";
export type { CallLimiter, TokenBucketOptions } from "../rate/token-bucket.js";
export { REFRESH_FLOOR_MS, latestRefreshAt, refreshSchedule } from "./refresh-schedule.js";
export type { RefreshBasis, RefreshPlan, RefreshScheduleInput } from "./refresh-schedule.js";
export {
  DEFAULT_BACKOFF_POLICIES,
  MIN_RETRY_DELAY_MS,
  PERMANENT_BACKOFF,
  TRANSIENT_BACKOFF,
  UNTIMED_THROTTLE_BACKOFF,
  backoffDelay,
  nextRetryAt,
} from "./backoff.js";
export type { BackoffPolicies, BackoffPolicy, FailureFacts } from "./backoff.js";
export type { CachedToken, TokenResponse } from "./token-response.js";
