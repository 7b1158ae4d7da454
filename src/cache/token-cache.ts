/**
 * The token cache's state and the order of its steps. The work on one key (what an acquire does,
 * what it answers, storing a token, counting a failure) and the counters live in functions beside
 * it, each in its own module, so that each can be read and tested without the class.
 */
import type { Clock } from "../clock.js";
import { cacheKeyHash } from "./cache-key.js";
import type { TokenAcquisitionError } from "../identity/errors.js";
import { buildHit, deferredResult, resultAfterCall } from "./acquire-answer.js";
import { decideAcquire } from "./acquire-decision.js";
import type { AcquireStep } from "./acquire-decision.js";
import type { AcquireResult, DeferReason } from "./acquire-result.js";
import { DEFAULT_BACKOFF_POLICIES } from "./backoff.js";
import type { BackoffPolicies } from "./backoff.js";
import { cacheStats, countThrottle, inspectKey, newCacheTotals, setThrottle } from "./cache-stats.js";
import type { CacheStats, CacheTotals, KeyInspection } from "./cache-stats.js";
import { asTokenError, clearFailures, noteFailure } from "./call-failure.js";
import { KeyHolders } from "./key-holders.js";
import { NO_THROTTLE, newKeyState } from "./key-state.js";
import type { KeyState } from "./key-state.js";
import type { CallLimiter } from "../rate/token-bucket.js";
import { adoptRefreshBefore, replaceRefreshAt, seedKeys, storeToken } from "./token-entry.js";
import type { SeedEntry, SeedReport } from "./token-entry.js";
import {
  DEFAULT_EXPIRY_SKEW_MS,
  DEFAULT_IDLE_EVICT_AFTER_MS,
  type AcquireOptions,
  type HeldKey,
  type TokenCacheOptions,
  type TokenFetch,
} from "./token-cache-options.js";
import type { TokenResponse } from "./token-response.js";

export type { CacheStats, KeyInspection } from "./cache-stats.js";
export type { PersistedToken, SeedEntry, SeedReport } from "./token-entry.js";

export { DEFAULT_EXPIRY_SKEW_MS, DEFAULT_IDLE_EVICT_AFTER_MS } from "./token-cache-options.js";
export type { AcquireOptions, HeldKey, TokenCacheOptions, TokenFetch } from "./token-cache-options.js";

const NO_OPTIONS: AcquireOptions = Object.freeze({});
const NO_HOLDERS: ReadonlySet<string> = new Set();

/**
 * One token per cache key: O(1) lookup in a Map, single flight per key, per-key
 * backoff and throttling, the refresh schedule (docs/design.md#refresh) and the global call limit.
 *
 * The controller calls `acquire` on every reconcile and writes `result.token` to the Secret when it
 * differs from what is there, then requeues at `result.nextAttemptAt`. Nothing here sleeps or sets a
 * timer: "wait" is always an answer with a time in it.
 *
 * Counting: an acquire that calls is a miss; one that gets a token without calling — fresh from the
 * cache, or by joining another acquire's call for the same key (requests that share a key
 * share one call, "a cache hit") — is a hit. So misses = calls made, and an acquire that gets no new
 * token (deferred, or its joined call failed) is neither.
 */
export class TokenCache {
  private readonly keys = new Map<string, KeyState>();
  private readonly holders = new KeyHolders((key) => {
    // Nobody holds it any more: gone now, or once the call in flight lands.
    if (key.inflight === undefined) this.evict(key);
  });
  private readonly clock: Clock;
  private readonly limiter: CallLimiter;
  private readonly random: () => number;
  private readonly skewMs: number;
  private readonly policies: BackoffPolicies;
  private readonly idleEvictAfterMs: number;
  private readonly totals: CacheTotals = newCacheTotals();

  constructor(options: TokenCacheOptions) {
    this.clock = options.clock;
    this.limiter = options.limiter;
    this.random = options.random ?? Math.random;
    this.skewMs = options.expirySkewMs ?? DEFAULT_EXPIRY_SKEW_MS;
    this.policies = { ...DEFAULT_BACKOFF_POLICIES, ...options.backoff };
    this.idleEvictAfterMs = options.idleEvictAfterMs ?? DEFAULT_IDLE_EVICT_AFTER_MS;
  }

  /**
   * The token for `keyId` (a cacheKeyId), calling `fetch` only when the key is due (missing, at or
   * after refreshAt, or `force`) and allowed (no call in flight — then it joins that one —, past
   * backoff and Retry-After, a global slot available). Never rejects for token-service failures:
   * they come back as outcome "Failed", with the old token while it is usable.
   *
   * The hit path does one Map lookup (and a Set lookup with a holder), a few comparisons and no
   * allocation: it returns the same settled promise, built once per change of the key's state, to
   * every hit.
   */
  acquire(keyId: string, fetch: TokenFetch, options: AcquireOptions = NO_OPTIONS): Promise<AcquireResult> {
    const now = this.clock.now();
    const key = this.keyState(keyId, now);
    if (options.holder !== undefined) this.holders.link(options.holder, key);
    return this.acquireKey(key, now, fetch, options);
  }

  /**
   * `acquire` for a key that `hold(options.holder, …)` answered: the hit path then touches the key
   * and nothing else (no Map or Set lookup). A key evicted since is looked up and held again.
   */
  acquireHeld(
    held: HeldKey,
    fetch: TokenFetch,
    options: AcquireOptions & { holder: string },
  ): Promise<AcquireResult> {
    if (held.evicted) return this.acquire(held.keyId, fetch, options);
    // Every HeldKey is a KeyState of this cache: `hold` is the only source of them.
    return this.acquireKey(held as KeyState, this.clock.now(), fetch, options);
  }

  private acquireKey(
    key: KeyState,
    now: number,
    fetch: TokenFetch,
    options: AcquireOptions,
  ): Promise<AcquireResult> {
    key.lastUsedAt = now;
    if (options.refreshBeforeMs !== key.refreshBeforeMs) adoptRefreshBefore(key, options.refreshBeforeMs);

    const step = decideAcquire(key, now, options.force === true);
    if (step === "Serve") {
      key.hits++;
      this.totals.hits++;
      return key.hit ?? buildHit(key, now);
    }
    return this.acquireSlowly(key, step, fetch, options, now);
  }

  private async acquireSlowly(
    key: KeyState,
    step: Exclude<AcquireStep, "Serve">,
    fetch: TokenFetch,
    options: AcquireOptions,
    now: number,
  ): Promise<AcquireResult> {
    switch (step) {
      case "Join": {
        const error = await key.inflight;
        if (error === undefined) {
          key.hits++;
          this.totals.hits++;
          this.totals.sharedHits++;
        }
        const outcome = error === undefined ? "Shared" : "Failed";
        return resultAfterCall(key, outcome, false, error, this.clock.now());
      }
      case "WaitForRetry":
        return this.deferred(key, key.throttle.state === "Throttled" ? "Throttled" : "Backoff", now);
      case "WaitForSlot":
        return this.deferred(key, "RateLimited", now);
      case "Call": {
        if (key.slotAt === undefined) {
          const slot = this.limiter.reserve();
          // Against the clock as it is now, not as `acquire` read it: a free slot is "now" by the
          // limiter's clock, which may have passed a millisecond boundary since (a spurious
          // RateLimited deferral costs a Pending status write and a second reconcile).
          if (slot > this.clock.now()) {
            key.slotAt = slot;
            return this.deferred(key, "RateLimited", now);
          }
        }
        key.slotAt = undefined;
        key.misses++;
        this.totals.misses++;
        this.totals.inflight++;
        const flight = this.fly(
          key,
          this.source(key.keyId, fetch, options),
          options.refreshBeforeMs,
          options.force === true,
        );
        key.inflight = flight;
        const error = await flight;
        // The fleet tier answered from its shared store: a hit, not a call to the token service.
        const shared = error === undefined && key.fromSharedTier;
        if (shared) {
          this.limiter.giveBack?.();
          key.misses--;
          this.totals.misses--;
          key.hits++;
          this.totals.hits++;
        }
        const outcome = error === undefined ? "Fetched" : "Failed";
        return resultAfterCall(key, outcome, !shared, error, this.clock.now());
      }
    }
  }

  /**
   * Where a call for `keyId` gets its token: `fetch` (the token service). A subclass may put a tier
   * in front (the fleet's shared store); both `acquire` and `acquireHeld` come through here, and
   * only when the key does call.
   */
  protected source(_keyId: string, fetch: TokenFetch, _options: AcquireOptions): TokenFetch {
    return fetch;
  }

  /** Runs one call and records its outcome; every acquire of the key in the meantime awaits this. */
  private async fly(
    key: KeyState,
    fetch: TokenFetch,
    refreshBeforeMs: number | undefined,
    forced: boolean,
  ): Promise<TokenAcquisitionError | undefined> {
    // A token fetched by a call that started after someone asked for a new one answers that ask,
    // whenever the call lands: so the call's start, not its end, is what is remembered.
    const startedAt = this.clock.now();
    // Invoke fetch inside a promise chain so that even a synchronous throw lands after `inflight` is
    // set: the bookkeeping below always runs after the caller registered the flight.
    let error: TokenAcquisitionError | undefined;
    try {
      const response = await Promise.resolve().then(fetch);
      error = this.recordToken(key, response, refreshBeforeMs);
      if (error === undefined) {
        key.fetchedAt = startedAt;
        if (forced) key.forcedAt = startedAt;
      }
    } catch (e) {
      error = asTokenError(e);
    }
    if (error !== undefined) this.recordFailure(key, error);
    key.inflight = undefined;
    this.totals.inflight--;
    if (key.released && !key.holders?.size) this.evict(key);
    return error;
  }

  /** Stores a new token, or says why the answer cannot be used as one. */
  private recordToken(
    key: KeyState,
    response: TokenResponse,
    refreshBeforeMs: number | undefined,
  ): TokenAcquisitionError | undefined {
    const error = storeToken(key, response, refreshBeforeMs, this.clock.now(), this.skewMs, this.random);
    if (error === undefined) setThrottle(this.totals, key, NO_THROTTLE);
    return error;
  }

  private recordFailure(key: KeyState, error: TokenAcquisitionError): void {
    const now = this.clock.now();
    this.totals.failedCalls++;
    setThrottle(this.totals, key, noteFailure(key, error, now, this.random, this.policies));
  }

  private deferred(key: KeyState, deferredBy: DeferReason, now: number): AcquireResult {
    this.totals.deferred++;
    return deferredResult(key, deferredBy, now);
  }

  /**
   * Forget the key's backoff so the next acquire may call at once: for the controller when the spec
   * or the credential Secret changed, which may fix a permanent failure. The service's own Retry-After
   * still stands until it passes. Returns whether a backoff was cleared.
   */
  resetBackoff(keyId: string): boolean {
    const key = this.keys.get(keyId);
    if (key === undefined || key.throttle === NO_THROTTLE) return false;
    if (key.throttle.state === "Throttled" && this.clock.now() < key.retryAt) return false;
    clearFailures(key);
    setThrottle(this.totals, key, NO_THROTTLE);
    return true;
  }

  /**
   * Make the held token due now and reset backoff: the next acquire calls (subject to Retry-After and
   * the global limit). The old token is still handed out while usable, in case that call fails.
   */
  invalidate(keyId: string): void {
    const key = this.keys.get(keyId);
    if (key === undefined) return;
    this.resetBackoff(keyId);
    const token = key.token;
    if (token === undefined) return;
    replaceRefreshAt(key, token, Math.min(token.refreshAt, this.clock.now()));
    key.schedule = "Adopted";
  }

  /**
   * `holder` (a request) uses `keyId` from now on, and no longer the key it held before, which is
   * evicted if nobody else holds it. Answers the cache's own copy of the key id and its hash, so
   * that every holder of a key points at one string of each.
   */
  hold(holder: string, keyId: string): { keyId: string; keyHash: string; held: HeldKey } {
    const key = this.keyState(keyId, this.clock.now());
    this.holders.link(holder, key);
    key.keyHash ??= cacheKeyHash(key.keyId);
    return { keyId: key.keyId, keyHash: key.keyHash, held: key };
  }

  /** The holders of `keyId` (empty when nobody holds it). */
  holdersOf(keyId: string): ReadonlySet<string> {
    return this.keys.get(keyId)?.holders ?? NO_HOLDERS;
  }

  /**
   * The holder (request) is gone. Its key is evicted when no holder is left (after the call in
   * flight, if any, lands). Returns whether the holder was known.
   */
  release(holder: string): boolean {
    return this.holders.release(holder);
  }

  /**
   * Evicts keys nobody acquired for `idleMs` (default idleEvictAfterMs), and lets go of their holders
   * (an acquire naming one holds again). O(keys); call it periodically.
   */
  sweep(idleMs: number = this.idleEvictAfterMs): number {
    const cutoff = this.clock.now() - idleMs;
    let evicted = 0;
    for (const key of this.keys.values()) {
      if (key.lastUsedAt < cutoff && key.inflight === undefined) {
        this.holders.detach(key);
        this.evict(key);
        evicted++;
      }
    }
    return evicted;
  }

  /**
   * Hydrate from the target Secrets after a restart (the Secrets are the persistent
   * tier). A token is seeded fresh — no call until its persisted refreshAt — when it is before its
   * refresh time and outside the 5-minute floor; one already due is seeded too (served while usable,
   * replaced on the first acquire); an expired or malformed one, or one older than what the cache
   * already holds, is skipped.
   */
  seed(entries: Iterable<SeedEntry>): SeedReport {
    return seedKeys(this.keys, entries, this.clock.now(), this.skewMs, this.random);
  }

  /** The key's state without counting an acquire; for status and tests. */
  inspect(keyId: string): KeyInspection | undefined {
    const key = this.keys.get(keyId);
    if (key === undefined) return undefined;
    return inspectKey(key, this.clock.now());
  }

  stats(): CacheStats {
    return cacheStats(this.totals, this.keys.size, this.holders.size);
  }

  private keyState(keyId: string, now: number): KeyState {
    let key = this.keys.get(keyId);
    if (key === undefined) {
      key = newKeyState(keyId, now);
      this.keys.set(keyId, key);
    }
    return key;
  }

  private evict(key: KeyState): void {
    if (key.evicted) return;
    key.evicted = true;
    if (this.keys.get(key.keyId) === key) this.keys.delete(key.keyId);
    countThrottle(this.totals, key.throttle, -1);
    this.totals.evictions++;
  }
}
