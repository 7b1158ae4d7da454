import type { Clock } from "../clock.js";
import { ThrottledError, TransientError, isTokenAcquisitionError } from "../identity/errors.js";
import type { TokenAcquisitionError } from "../identity/errors.js";
import { decideAcquire, nextAttemptAt } from "./acquire-decision.js";
import type { AcquireStep } from "./acquire-decision.js";
import type { AcquireOutcome, AcquireResult, DeferReason } from "./acquire-result.js";
import { DEFAULT_BACKOFF_POLICIES, nextRetryAt } from "./backoff.js";
import type { BackoffPolicies } from "./backoff.js";
import { NO_THROTTLE, newKeyState, summarizeFailure } from "./key-state.js";
import type { KeyState, ThrottleStatus } from "./key-state.js";
import { latestRefreshAt, refreshSchedule } from "./refresh-schedule.js";
import type { CallLimiter } from "../rate/token-bucket.js";
import type { CachedToken, TokenResponse } from "./token-response.js";

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
   * Who uses the key, e.g. the request's "namespace/name". With holders the cache counts references:
   * a holder moving to another key (spec change) or `release(holder)` (request deleted) evicts a key
   * nobody holds any more. Without, keys leave only through `sweep`.
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

/** A token read back from a target Secret after a restart. */
export interface PersistedToken {
  accessToken: string;
  tokenType: string;
  issuedAt: number;
  expiresAt: number;
  refreshAt: number;
}

export interface SeedEntry {
  keyId: string;
  token: PersistedToken;
}

export interface SeedReport {
  /** Seeded and fresh: no call until refreshAt. */
  fresh: number;
  /** Seeded but already due (refreshAt passed, or within the 5-minute floor): served while usable, refreshed on first acquire. */
  due: number;
  /** Not seeded: expired, malformed, or older than the token the cache already holds. */
  skipped: number;
}

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

const NO_OPTIONS: AcquireOptions = Object.freeze({});

export const DEFAULT_EXPIRY_SKEW_MS = 30_000;
export const DEFAULT_IDLE_EVICT_AFTER_MS = 24 * 60 * 60_000;

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
  private readonly holders = new Map<string, KeyState>();
  private readonly clock: Clock;
  private readonly limiter: CallLimiter;
  private readonly random: () => number;
  private readonly skewMs: number;
  private readonly policies: BackoffPolicies;
  private readonly idleEvictAfterMs: number;
  private readonly totals = {
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
   * The hit path does one Map lookup (two with a holder), a few comparisons and no allocation: it
   * returns the same settled promise, built once per change of the key's state, to every hit.
   */
  acquire(keyId: string, fetch: TokenFetch, options: AcquireOptions = NO_OPTIONS): Promise<AcquireResult> {
    const now = this.clock.now();
    let key = this.keys.get(keyId);
    if (key === undefined) {
      key = newKeyState(keyId, now);
      this.keys.set(keyId, key);
    }
    key.lastUsedAt = now;
    if (options.holder !== undefined && options.holder !== key.linkedHolder) this.link(options.holder, key);
    if (options.refreshBeforeMs !== key.refreshBeforeMs)
      this.adoptRefreshBefore(key, options.refreshBeforeMs);

    const step = decideAcquire(key, now, options.force === true);
    if (step === "Serve") {
      key.hits++;
      this.totals.hits++;
      return key.hit ?? this.buildHit(key, now);
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
        return this.resultAfterCall(key, error === undefined ? "Shared" : "Failed", false, error);
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
        const flight = this.fly(key, fetch, options.refreshBeforeMs, options.force === true);
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
        return this.resultAfterCall(key, error === undefined ? "Fetched" : "Failed", !shared, error);
      }
    }
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
    if (key.released && key.refs === 0) this.evict(key);
    return error;
  }

  /** Stores a new token, or says why the answer cannot be used as one. */
  private recordToken(
    key: KeyState,
    response: TokenResponse,
    refreshBeforeMs: number | undefined,
  ): TokenAcquisitionError | undefined {
    const now = this.clock.now();
    const { accessToken, tokenType, issuedAt, expiresAt, refreshIn } = response;
    if (typeof accessToken !== "string" || accessToken === "" || typeof tokenType !== "string") {
      return new TransientError("the token service's answer has no access token", {
        reason: "UnusableTokenResponse",
      });
    }
    if (!Number.isFinite(issuedAt) || !Number.isFinite(expiresAt) || expiresAt - this.skewMs <= now) {
      return new TransientError("the token service's answer expires before it could be used", {
        reason: "UnusableTokenResponse",
      });
    }
    const draw = this.random();
    const plan = refreshSchedule({ issuedAt, expiresAt, refreshIn, refreshBeforeMs }, () => draw);
    key.token = { accessToken, tokenType, issuedAt, expiresAt, refreshAt: plan.refreshAt };
    key.fromSharedTier = response.source === "SharedCache";
    key.refreshAt = plan.refreshAt;
    key.usableUntil = expiresAt - this.skewMs;
    key.refreshIn = refreshIn;
    key.jitterDraw = draw;
    key.refreshBeforeMs = refreshBeforeMs;
    key.schedule = "Computed";
    key.consecutiveFailures = 0;
    key.streakKind = undefined;
    key.streak = 0;
    key.lastError = undefined;
    key.retryAt = Number.NEGATIVE_INFINITY;
    this.setThrottle(key, NO_THROTTLE);
    return undefined;
  }

  private recordFailure(key: KeyState, error: TokenAcquisitionError): void {
    const now = this.clock.now();
    this.totals.failedCalls++;
    key.consecutiveFailures++;
    if (key.streakKind === error.kind) key.streak++;
    else {
      key.streakKind = error.kind;
      key.streak = 1;
    }
    key.retryAt = nextRetryAt(
      {
        kind: error.kind,
        streak: key.streak,
        failedAt: now,
        retryAfterAt: error instanceof ThrottledError ? error.retryAt : undefined,
        usableUntil: now < key.usableUntil ? key.usableUntil : undefined,
      },
      this.random,
      this.policies,
    );
    key.lastError = error;
    this.setThrottle(key, {
      state: error.kind === "Throttled" ? "Throttled" : "Backoff",
      retryAt: key.retryAt,
      consecutiveFailures: key.consecutiveFailures,
      lastError: summarizeFailure(error),
    });
  }

  /** Changes a key's throttle status, keeping the gauges and the cached hit result in step. */
  private setThrottle(key: KeyState, throttle: ThrottleStatus): void {
    if (!key.evicted) {
      this.countThrottle(key.throttle, -1);
      this.countThrottle(throttle, +1);
    }
    key.throttle = throttle;
    key.hit = undefined;
  }

  private countThrottle(throttle: ThrottleStatus, delta: number): void {
    if (throttle.state === "Throttled") this.totals.throttledKeys += delta;
    else if (throttle.state === "Backoff") this.totals.backoffKeys += delta;
  }

  /** A changed refreshBefore moves the held token's refreshAt, keeping its jitter draw. */
  private adoptRefreshBefore(key: KeyState, refreshBeforeMs: number | undefined): void {
    key.refreshBeforeMs = refreshBeforeMs;
    const token = key.token;
    if (token === undefined || key.schedule === "Adopted") return;
    const draw = key.jitterDraw;
    const plan = refreshSchedule(
      { issuedAt: token.issuedAt, expiresAt: token.expiresAt, refreshIn: key.refreshIn, refreshBeforeMs },
      () => draw,
    );
    this.replaceRefreshAt(key, token, plan.refreshAt);
  }

  private replaceRefreshAt(key: KeyState, token: CachedToken, refreshAt: number): void {
    key.token = { ...token, refreshAt };
    key.refreshAt = refreshAt;
    key.hit = undefined;
  }

  private buildHit(key: KeyState, now: number): Promise<AcquireResult> {
    const result: AcquireResult = {
      outcome: "Hit",
      token: key.token,
      source: "Cache",
      called: false,
      refreshAt: key.refreshAt,
      nextAttemptAt: nextAttemptAt(key, now),
      throttle: key.throttle,
      deferredBy: undefined,
      error: key.lastError,
    };
    key.hit = Promise.resolve(result);
    return key.hit;
  }

  private resultAfterCall(
    key: KeyState,
    outcome: AcquireOutcome,
    called: boolean,
    error: TokenAcquisitionError | undefined,
  ): AcquireResult {
    const now = this.clock.now();
    const token = now < key.usableUntil ? key.token : undefined;
    return {
      outcome,
      token,
      source:
        token === undefined
          ? undefined
          : outcome !== "Fetched"
            ? "Cache"
            : key.fromSharedTier
              ? "SharedCache"
              : "IdentityProvider",
      called,
      refreshAt: token?.refreshAt,
      nextAttemptAt: nextAttemptAt(key, now),
      throttle: key.throttle,
      deferredBy: undefined,
      error: error ?? key.lastError,
    };
  }

  private deferred(key: KeyState, deferredBy: DeferReason, now: number): AcquireResult {
    this.totals.deferred++;
    const token = now < key.usableUntil ? key.token : undefined;
    return {
      outcome: "Deferred",
      token,
      source: token === undefined ? undefined : "Cache",
      called: false,
      refreshAt: token?.refreshAt,
      nextAttemptAt: nextAttemptAt(key, now),
      throttle: key.throttle,
      deferredBy,
      error: key.lastError,
    };
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
    key.retryAt = Number.NEGATIVE_INFINITY;
    key.consecutiveFailures = 0;
    key.streakKind = undefined;
    key.streak = 0;
    key.lastError = undefined;
    this.setThrottle(key, NO_THROTTLE);
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
    this.replaceRefreshAt(key, token, Math.min(token.refreshAt, this.clock.now()));
    key.schedule = "Adopted";
  }

  /**
   * The holder (request) is gone. Its key is evicted when no holder is left (after the call in
   * flight, if any, lands). Returns whether the holder was known.
   */
  release(holder: string): boolean {
    const key = this.holders.get(holder);
    if (key === undefined) return false;
    this.holders.delete(holder);
    this.unref(key, holder);
    return true;
  }

  /** Evicts keys nobody acquired for `idleMs` (default idleEvictAfterMs). O(keys); call it periodically. */
  sweep(idleMs: number = this.idleEvictAfterMs): number {
    const cutoff = this.clock.now() - idleMs;
    let evicted = 0;
    for (const key of this.keys.values()) {
      if (key.lastUsedAt < cutoff && key.inflight === undefined) {
        this.evict(key);
        evicted++;
      }
    }
    if (evicted > 0) {
      for (const [holder, key] of this.holders) if (key.evicted) this.holders.delete(holder);
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
    const now = this.clock.now();
    const report: SeedReport = { fresh: 0, due: 0, skipped: 0 };
    for (const { keyId, token } of entries) {
      const { accessToken, tokenType, issuedAt, expiresAt } = token;
      const usableUntil = expiresAt - this.skewMs;
      const existing = this.keys.get(keyId);
      if (
        typeof accessToken !== "string" ||
        accessToken === "" ||
        typeof tokenType !== "string" ||
        !Number.isFinite(expiresAt) ||
        now >= usableUntil ||
        (existing?.token !== undefined && existing.token.expiresAt >= expiresAt)
      ) {
        report.skipped++;
        continue;
      }
      const sane = Number.isFinite(issuedAt) && issuedAt < expiresAt;
      const start = sane ? issuedAt : Math.min(now, expiresAt);
      const latest = sane ? latestRefreshAt(issuedAt, expiresAt) : expiresAt - 5 * 60_000;
      let refreshAt = Number.isFinite(token.refreshAt)
        ? token.refreshAt
        : refreshSchedule({ issuedAt: start, expiresAt }, this.random).refreshAt;
      refreshAt = Math.min(refreshAt, latest);
      if (now >= refreshAt) {
        refreshAt = now;
        report.due++;
      } else report.fresh++;

      const key = existing ?? newKeyState(keyId, now);
      key.token = { accessToken, tokenType, issuedAt: start, expiresAt, refreshAt };
      key.refreshAt = refreshAt;
      key.usableUntil = usableUntil;
      key.refreshIn = undefined;
      key.fetchedAt = Number.NEGATIVE_INFINITY;
      key.schedule = "Adopted";
      key.lastUsedAt = now;
      // A slot reserved while the key had no token is not needed for this one; when it is next due
      // it takes a fresh slot rather than a stale one the limiter has long counted.
      key.slotAt = undefined;
      key.hit = undefined;
      if (existing === undefined) this.keys.set(keyId, key);
    }
    return report;
  }

  /** The key's state without counting an acquire; for status and tests. */
  inspect(keyId: string): KeyInspection | undefined {
    const key = this.keys.get(keyId);
    if (key === undefined) return undefined;
    return {
      token: key.token,
      usable: this.clock.now() < key.usableUntil,
      throttle: key.throttle,
      hits: key.hits,
      misses: key.misses,
      holders: key.refs,
      fetchedAt: Number.isFinite(key.fetchedAt) ? key.fetchedAt : undefined,
      forcedAt: Number.isFinite(key.forcedAt) ? key.forcedAt : undefined,
    };
  }

  stats(): CacheStats {
    const t = this.totals;
    return {
      keys: this.keys.size,
      holders: this.holders.size,
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

  private link(holder: string, key: KeyState): void {
    key.linkedHolder = holder;
    const previous = this.holders.get(holder);
    if (previous === key) return;
    this.holders.set(holder, key);
    key.refs++;
    key.released = false;
    if (previous !== undefined) this.unref(previous, holder);
  }

  private unref(key: KeyState, holder: string): void {
    if (key.linkedHolder === holder) key.linkedHolder = undefined;
    key.refs--;
    if (key.refs > 0) return;
    key.released = true;
    if (key.inflight === undefined) this.evict(key);
  }

  private evict(key: KeyState): void {
    if (key.evicted) return;
    key.evicted = true;
    if (this.keys.get(key.keyId) === key) this.keys.delete(key.keyId);
    this.countThrottle(key.throttle, -1);
    this.totals.evictions++;
  }
}

/**
 * Anything that is not one of the identity module's classes (a bug, an unexpected library error) is
 * treated as transient, so the key backs off instead of retrying on every reconcile. Only the error's
 * class name is surfaced: its message was not written with secrets in mind.
 */
function asTokenError(e: unknown): TokenAcquisitionError {
  if (isTokenAcquisitionError(e)) return e;
  const name = e instanceof Error ? e.name : typeof e;
  return new TransientError(`unexpected failure while requesting a token (${name})`, {
    reason: "UnexpectedError",
    cause: e,
  });
}
