/**
 * What the cache reports about itself: the totals behind `stats()` and one key's state for
 * `inspect()`. The totals are running counts, bumped where things happen (the hit path included),
 * and the throttled and backoff gauges are kept in step on every change of a key's throttle: a
 * scrape reads them as they are instead of walking 500 000 keys.
 */
import type { KeyState, ThrottleStatus } from "./key-state.js";
import type { CachedToken } from "./token-response.js";

export interface KeyInspection {
  readonly token: CachedToken | undefined;
  /** Whether `token` may still be handed out. */
  readonly usable: boolean;
  readonly throttle: ThrottleStatus;
  readonly hits: number;
  readonly misses: number;
  readonly holders: number;
  /** When the call that fetched `token` started; undefined for a token seeded from a Secret. */
  readonly fetchedAt: number | undefined;
  /** When the key's last forced call (one that produced a token) started; undefined if none. */
  readonly forcedAt: number | undefined;
}

export interface CacheStats {
  keys: number;
  holders: number;
  inflight: number;
  throttledKeys: number;
  backoffKeys: number;
  /** Acquires answered with a token without a call of their own (fresh cache hits plus shared calls). */
  hits: number;
  /** Of `hits`, those that joined another acquire's call. */
  sharedHits: number;
  /** Acquires that called the token service (one per call). */
  misses: number;
  /** Calls that failed. */
  failedCalls: number;
  /** Acquires that found a call due but not allowed (backoff, Retry-After, global limit). */
  deferred: number;
  evictions: number;
}

/** The running counts behind CacheStats; `keys` and `holders` are the sizes of the cache's Maps. */
export type CacheTotals = Omit<CacheStats, "keys" | "holders">;

export function newCacheTotals(): CacheTotals {
  return {
    hits: 0,
    sharedHits: 0,
    misses: 0,
    failedCalls: 0,
    deferred: 0,
    evictions: 0,
    inflight: 0,
    throttledKeys: 0,
    backoffKeys: 0,
  };
}

export function countThrottle(totals: CacheTotals, throttle: ThrottleStatus, delta: number): void {
  if (throttle.state === "Throttled") totals.throttledKeys += delta;
  else if (throttle.state === "Backoff") totals.backoffKeys += delta;
}

/** Changes a key's throttle status, keeping the gauges and the cached hit result in step. */
export function setThrottle(totals: CacheTotals, key: KeyState, throttle: ThrottleStatus): void {
  if (!key.evicted) {
    countThrottle(totals, key.throttle, -1);
    countThrottle(totals, throttle, +1);
  }
  key.throttle = throttle;
  key.hit = undefined;
}

export function cacheStats(t: CacheTotals, keys: number, holders: number): CacheStats {
  return {
    keys,
    holders,
    inflight: t.inflight,
    throttledKeys: t.throttledKeys,
    backoffKeys: t.backoffKeys,
    hits: t.hits,
    sharedHits: t.sharedHits,
    misses: t.misses,
    failedCalls: t.failedCalls,
    deferred: t.deferred,
    evictions: t.evictions,
  };
}

export function inspectKey(key: KeyState, now: number): KeyInspection {
  return {
    token: key.token,
    usable: now < key.usableUntil,
    throttle: key.throttle,
    hits: key.hits,
    misses: key.misses,
    holders: key.holders?.size ?? 0,
    fetchedAt: Number.isFinite(key.fetchedAt) ? key.fetchedAt : undefined,
    forcedAt: Number.isFinite(key.forcedAt) ? key.forcedAt : undefined,
  };
}
