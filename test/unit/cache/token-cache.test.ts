import { describe, expect, it, vi } from "vitest";
import { MIN_RETRY_DELAY_MS } from "../../../src/cache/backoff.js";
import { REFRESH_FLOOR_MS } from "../../../src/cache/refresh-schedule.js";
import { TokenBucket, unlimited } from "../../../src/rate/token-bucket.js";
import type { CallLimiter } from "../../../src/rate/token-bucket.js";
import { DEFAULT_EXPIRY_SKEW_MS, TokenCache } from "../../../src/cache/token-cache.js";
import { cacheKeyHash } from "../../../src/cache/cache-key.js";
import type { TokenCacheOptions, TokenFetch } from "../../../src/cache/token-cache.js";
import type { TokenResponse } from "../../../src/cache/token-response.js";
import { PermanentError, ThrottledError, TransientError } from "../../../src/identity/errors.js";
import { FakeClock } from "../../support/fake-clock.js";
import { HOUR, MINUTE, SECOND, deferred, seededRandom, tokenIssuedNow } from "./support.js";

const KEY =
  "login.microsoftonline.com|contoso.onmicrosoft.com|0a1b2c3d-0000-4000-8000-00000000abcd|https://graph.microsoft.com/.default|fp1";
const OTHER_KEY = KEY.replace("contoso", "fabrikam");

/** random = 0: no refresh jitter and the shortest backoff, so times below are exact. */
function setup(options: Partial<TokenCacheOptions> = {}) {
  const clock = new FakeClock();
  const cache = new TokenCache({ clock, limiter: unlimited, random: () => 0, ...options });
  const issue = (lifetimeMs = HOUR, refreshIn?: number): TokenFetch =>
    vi.fn(async () => tokenIssuedNow(clock, lifetimeMs, refreshIn));
  return { clock, cache, issue };
}

function failing(error: Error): TokenFetch {
  return vi.fn(async () => {
    throw error;
  });
}

const transient = () =>
  new TransientError("the token service answered 503", { reason: "ServiceUnavailable" });
const permanent = () =>
  new PermanentError("AADSTS7000215: Invalid client secret provided.", {
    reason: "InvalidClientSecret",
    aadsts: "7000215",
  });
const throttled = (retryAt: number | undefined) =>
  new ThrottledError("the token service answered 429", { reason: "Throttled", httpStatus: 429, retryAt });

describe("TokenCache: hits and misses", () => {
  it("calls the token service for a key it has never seen and says the token came from the identity provider", async () => {
    const { cache, issue, clock } = setup();
    const fetch = issue();
    const result = await cache.acquire(KEY, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(result).toMatchObject({ outcome: "Fetched", called: true, source: "IdentityProvider" });
    expect(result.token).toMatchObject({ tokenType: "Bearer", expiresAt: clock.now() + HOUR });
    expect(result.throttle).toEqual({
      state: "None",
      retryAt: undefined,
      consecutiveFailures: 0,
      lastError: undefined,
    });
  });

  it("serves a fresh token from the cache without a call until its refresh time, then refreshes", async () => {
    const { cache, issue, clock } = setup();
    const fetch = issue();
    const first = await cache.acquire(KEY, fetch);
    const refreshAt = clock.now() + 30 * MINUTE; // half-life, no jitter
    expect(first.refreshAt).toBe(refreshAt);
    expect(first.nextAttemptAt).toBe(refreshAt);

    clock.set(refreshAt - 1);
    const hit = await cache.acquire(KEY, fetch);
    expect(hit).toMatchObject({ outcome: "Hit", called: false, source: "Cache", nextAttemptAt: refreshAt });
    expect(hit.token).toBe(first.token);
    expect(fetch).toHaveBeenCalledTimes(1);

    clock.set(refreshAt);
    const refreshed = await cache.acquire(KEY, fetch);
    expect(refreshed.outcome).toBe("Fetched");
    expect(refreshed.token?.accessToken).not.toBe(first.token?.accessToken);
    expect(fetch).toHaveBeenCalledTimes(2);
  });

  it("hands every hit the same settled promise until the key changes (no allocation per hit)", async () => {
    const { cache, issue, clock } = setup();
    const fetch = issue();
    await cache.acquire(KEY, fetch);
    const a = cache.acquire(KEY, fetch);
    expect(cache.acquire(KEY, fetch)).toBe(a);
    cache.invalidate(KEY);
    clock.advance(1);
    await cache.acquire(KEY, fetch);
    const b = cache.acquire(KEY, fetch);
    expect(b).not.toBe(a);
    expect((await b).token).not.toBe((await a).token);
  });

  it("counts hits and misses per key and in total", async () => {
    const { cache, issue } = setup();
    const fetch = issue();
    await cache.acquire(KEY, fetch);
    await cache.acquire(KEY, fetch);
    await cache.acquire(KEY, fetch);
    await cache.acquire(OTHER_KEY, fetch);
    expect(cache.inspect(KEY)).toMatchObject({ hits: 2, misses: 1 });
    expect(cache.inspect(OTHER_KEY)).toMatchObject({ hits: 0, misses: 1 });
    expect(cache.stats()).toMatchObject({ keys: 2, hits: 2, misses: 2, failedCalls: 0 });
  });

  it("makes exactly one call for concurrent misses on one key, and every caller gets the token", async () => {
    const { cache } = setup();
    const clock = new FakeClock();
    const answer = deferred<TokenResponse>();
    const fetch = vi.fn(() => answer.promise);
    const pending = Array.from({ length: 10 }, () => cache.acquire(KEY, fetch));
    answer.resolve(tokenIssuedNow(clock));
    const results = await Promise.all(pending);

    expect(fetch).toHaveBeenCalledTimes(1);
    expect(results.filter((r) => r.outcome === "Fetched")).toHaveLength(1);
    expect(results.filter((r) => r.outcome === "Shared")).toHaveLength(9);
    expect(new Set(results.map((r) => r.token?.accessToken)).size).toBe(1);
    // Sharers count as hits (requests sharing a key share one call, "a cache hit").
    expect(results.filter((r) => r.called)).toHaveLength(1);
    expect(results.find((r) => r.outcome === "Shared")?.source).toBe("Cache");
    expect(cache.inspect(KEY)).toMatchObject({ hits: 9, misses: 1 });
    expect(cache.stats()).toMatchObject({ sharedHits: 9, inflight: 0 });
  });

  it("shares a failed call: every caller sees the failure and the key counts it once", async () => {
    const { cache } = setup();
    const answer = deferred<TokenResponse>();
    const fetch = vi.fn(() => answer.promise);
    const pending = Array.from({ length: 5 }, () => cache.acquire(KEY, fetch));
    answer.reject(transient());
    const results = await Promise.all(pending);

    expect(fetch).toHaveBeenCalledTimes(1);
    expect(results.map((r) => r.outcome)).toEqual(Array(5).fill("Failed"));
    expect(results.every((r) => r.token === undefined && r.error instanceof TransientError)).toBe(true);
    expect(cache.inspect(KEY)?.throttle.consecutiveFailures).toBe(1);
    expect(cache.inspect(KEY)).toMatchObject({ hits: 0, misses: 1 });
  });

  it("treats a fetch that throws synchronously as a failed call, not a call stuck in flight", async () => {
    const { cache, issue, clock } = setup();
    const explode: TokenFetch = () => {
      throw new TypeError("client_secret=hunter2 rejected");
    };
    const result = await cache.acquire(KEY, explode);
    expect(result.outcome).toBe("Failed");
    expect(result.error).toBeInstanceOf(TransientError);
    expect(result.throttle.lastError).toMatchObject({ kind: "Transient", reason: "UnexpectedError" });
    expect(result.throttle.lastError?.message).not.toContain("hunter2");

    clock.set(result.nextAttemptAt);
    expect((await cache.acquire(KEY, issue())).outcome).toBe("Fetched");
  });
});

describe("TokenCache: refresh", () => {
  it("honours refresh_in from the token service", async () => {
    const { cache, issue, clock } = setup();
    const result = await cache.acquire(KEY, issue(HOUR, 600));
    expect(result.refreshAt).toBe(clock.now() + 10 * MINUTE);
  });

  it("refreshes at half the lifetime when the service sends no refresh_in", async () => {
    const { cache, issue, clock } = setup();
    const result = await cache.acquire(KEY, issue(90 * MINUTE));
    expect(result.refreshAt).toBe(clock.now() + 45 * MINUTE);
  });

  it("refreshes refreshBefore before expiry, and moves refreshAt when refreshBefore changes", async () => {
    const { cache, issue, clock } = setup();
    const fetch = issue();
    const start = clock.now();
    const first = await cache.acquire(KEY, fetch, { refreshBeforeMs: 20 * MINUTE });
    expect(first.refreshAt).toBe(start + 40 * MINUTE);

    const moved = await cache.acquire(KEY, fetch, { refreshBeforeMs: 50 * MINUTE });
    expect(moved).toMatchObject({ outcome: "Hit", refreshAt: start + 10 * MINUTE });
    clock.set(start + 10 * MINUTE);
    expect((await cache.acquire(KEY, fetch, { refreshBeforeMs: 50 * MINUTE })).outcome).toBe("Fetched");
  });

  it("never refreshes later than 5 minutes before expiry", async () => {
    const { cache, issue, clock } = setup();
    const result = await cache.acquire(KEY, issue(HOUR, 3590));
    expect(result.refreshAt).toBe(clock.now() + HOUR - REFRESH_FLOOR_MS);
  });

  it("spreads refreshes of tokens issued together with its injected randomness", async () => {
    const clock = new FakeClock();
    const cache = new TokenCache({ clock, limiter: unlimited, random: seededRandom(3) });
    const times = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const r = await cache.acquire(`${KEY}${i}`, async () => tokenIssuedNow(clock));
      times.add(r.refreshAt ?? 0);
    }
    expect(times.size).toBeGreaterThan(95);
    for (const t of times) expect(t).toBeGreaterThanOrEqual(clock.now() + 27 * MINUTE);
  });

  it("keeps the old, still valid token when a refresh fails", async () => {
    const { cache, issue, clock } = setup();
    const old = await cache.acquire(KEY, issue());
    clock.set(old.refreshAt!);
    const result = await cache.acquire(KEY, failing(transient()));
    expect(result).toMatchObject({ outcome: "Failed", called: true, source: "Cache" });
    expect(result.token).toBe(old.token);
    expect(result.throttle).toMatchObject({
      state: "Backoff",
      consecutiveFailures: 1,
      lastError: { kind: "Transient", reason: "ServiceUnavailable", aadsts: undefined },
    });
    expect(result.nextAttemptAt).toBe(result.throttle.retryAt);
  });

  it("clears the throttle status once a refresh succeeds", async () => {
    const { cache, issue, clock } = setup();
    const failed = await cache.acquire(KEY, failing(transient()));
    clock.set(failed.nextAttemptAt);
    const ok = await cache.acquire(KEY, issue());
    expect(ok.outcome).toBe("Fetched");
    expect(ok.throttle.state).toBe("None");
    expect(ok.error).toBeUndefined();
    expect(cache.stats()).toMatchObject({ backoffKeys: 0, failedCalls: 1 });
  });

  it("never hands out a token in its last 30 seconds", async () => {
    const { cache, issue, clock } = setup();
    const first = await cache.acquire(KEY, issue());
    const usableUntil = first.token!.expiresAt - DEFAULT_EXPIRY_SKEW_MS;
    const down = failing(transient());

    clock.set(usableUntil - 1);
    const last = await cache.acquire(KEY, down);
    expect(last.token).toBe(first.token);
    clock.set(usableUntil);
    const gone = await cache.acquire(KEY, down);
    expect(gone.token).toBeUndefined();
    expect(gone.error).toBeInstanceOf(TransientError);
    expect(cache.inspect(KEY)?.usable).toBe(false);
  });

  it("rejects an answer that expires before it could be used, as a transient failure", async () => {
    const { cache, clock } = setup();
    const result = await cache.acquire(KEY, async () => tokenIssuedNow(clock, 10 * SECOND));
    expect(result).toMatchObject({ outcome: "Failed", token: undefined });
    expect(result.throttle.lastError?.reason).toBe("UnusableTokenResponse");
  });
});

describe("TokenCache: throttling and failures", () => {
  it("honours a 429 Retry-After to the millisecond: no call 1 ms before, a call at it", async () => {
    const { cache, issue, clock } = setup();
    const old = await cache.acquire(KEY, issue());
    clock.set(old.refreshAt!);
    const retryAt = clock.now() + 37_250;
    const throttledResult = await cache.acquire(KEY, failing(throttled(retryAt)));
    expect(throttledResult.throttle).toMatchObject({ state: "Throttled", retryAt });
    expect(throttledResult.nextAttemptAt).toBe(retryAt);

    const fetch = issue();
    clock.set(retryAt - 1);
    const early = await cache.acquire(KEY, fetch);
    expect(early).toMatchObject({ outcome: "Deferred", deferredBy: "Throttled", called: false });
    expect(early.token).toBe(old.token);
    expect(fetch).not.toHaveBeenCalled();

    clock.set(retryAt);
    expect((await cache.acquire(KEY, fetch)).outcome).toBe("Fetched");
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("gives callers the ThrottledError while throttled without a usable token", async () => {
    const { cache, issue, clock } = setup();
    const retryAt = clock.now() + MINUTE;
    const first = await cache.acquire(KEY, failing(throttled(retryAt)));
    expect(first).toMatchObject({ outcome: "Failed", token: undefined });
    expect(first.error).toBeInstanceOf(ThrottledError);

    clock.advance(SECOND);
    const fetch = issue();
    const again = await cache.acquire(KEY, fetch);
    expect(again).toMatchObject({ outcome: "Deferred", deferredBy: "Throttled", token: undefined });
    expect(again.error).toBeInstanceOf(ThrottledError);
    expect(fetch).not.toHaveBeenCalled();
  });

  it("treats AADSTS50196 (loop detected, no Retry-After) as throttling for about a minute", async () => {
    const { cache, clock } = setup();
    const loop = new ThrottledError(
      "AADSTS50196: The server terminated an operation because it encountered a loop.",
      {
        reason: "LoopDetected",
        aadsts: "50196",
        retryAt: undefined,
      },
    );
    const result = await cache.acquire(KEY, failing(loop));
    expect(result.throttle).toMatchObject({ state: "Throttled", lastError: { aadsts: "50196" } });
    expect(result.throttle.retryAt! - clock.now()).toBeGreaterThanOrEqual(30 * SECOND);
    expect(result.throttle.retryAt! - clock.now()).toBeLessThan(MINUTE);
  });

  it("wakes the controller when the held token stops being usable, before a later Retry-After", async () => {
    const { cache, issue, clock } = setup();
    const old = await cache.acquire(KEY, issue());
    clock.set(old.refreshAt!);
    await cache.acquire(KEY, failing(throttled(clock.now() + 2 * HOUR)));
    const result = await cache.acquire(KEY, issue());
    expect(result.nextAttemptAt).toBe(old.token!.expiresAt - DEFAULT_EXPIRY_SKEW_MS);
  });

  it("lets force-refresh bypass freshness but not throttling", async () => {
    const { cache, issue, clock } = setup();
    const fetch = issue();
    await cache.acquire(KEY, fetch);
    expect((await cache.acquire(KEY, fetch, { force: true })).outcome).toBe("Fetched");
    expect(fetch).toHaveBeenCalledTimes(2);

    const retryAt = clock.now() + MINUTE;
    await cache.acquire(KEY, failing(throttled(retryAt)), { force: true });
    const forced = await cache.acquire(KEY, fetch, { force: true });
    expect(forced).toMatchObject({ outcome: "Deferred", deferredBy: "Throttled" });
    expect(fetch).toHaveBeenCalledTimes(2);
    // Without force the still-fresh token is simply served.
    expect((await cache.acquire(KEY, fetch)).outcome).toBe("Hit");
  });

  it("remembers when the held token's call started, and when the key's last forced call that produced a token started", async () => {
    const { cache, issue, clock } = setup();
    const routineAt = clock.now();
    await cache.acquire(KEY, issue());
    expect(cache.inspect(KEY)).toMatchObject({ fetchedAt: routineAt, forcedAt: undefined });

    // The call's start, not its landing, is what counts: a value seen while it flies is not answered.
    clock.advance(MINUTE);
    const forcedAt = clock.now();
    const slow = deferred<TokenResponse>();
    const flying = cache.acquire(KEY, () => slow.promise, { force: true });
    clock.advance(5 * SECOND);
    slow.resolve(tokenIssuedNow(clock, HOUR));
    expect((await flying).outcome).toBe("Fetched");
    expect(cache.inspect(KEY)).toMatchObject({ fetchedAt: forcedAt, forcedAt });

    // A failed forced call leaves both as they were (its retry is backoff's business).
    clock.advance(MINUTE);
    await cache.acquire(KEY, failing(transient()), { force: true });
    expect(cache.inspect(KEY)).toMatchObject({ fetchedAt: forcedAt, forcedAt });

    // A routine refresh moves fetchedAt only.
    clock.advance(HOUR);
    const refreshedAt = clock.now();
    expect((await cache.acquire(KEY, issue())).outcome).toBe("Fetched");
    expect(cache.inspect(KEY)).toMatchObject({ fetchedAt: refreshedAt, forcedAt });

    // A token read back from a Secret has no known fetch time.
    cache.seed([
      { keyId: OTHER_KEY, token: { ...tokenIssuedNow(clock, HOUR), refreshAt: clock.now() + MINUTE } },
    ]);
    expect(cache.inspect(OTHER_KEY)).toMatchObject({ fetchedAt: undefined, forcedAt: undefined });
  });

  it("backs off transient failures with growing, jittered delays", async () => {
    const delaysFor = async (seed: number) => {
      const clock = new FakeClock();
      const cache = new TokenCache({ clock, limiter: unlimited, random: seededRandom(seed) });
      const delays: number[] = [];
      for (let i = 0; i < 7; i++) {
        const r = await cache.acquire(KEY, failing(transient()));
        expect(r.outcome).toBe("Failed");
        delays.push(r.throttle.retryAt! - clock.now());
        clock.set(r.nextAttemptAt);
      }
      return delays;
    };
    const a = await delaysFor(1);
    const b = await delaysFor(2);
    for (let i = 1; i < a.length; i++) expect(a[i]).toBeGreaterThanOrEqual(a[i - 1]!);
    expect(a[6]).toBeGreaterThan(a[0]! * 16);
    expect(a).not.toEqual(b);
  });

  it("caps transient retries so they still land before the held token expires", async () => {
    const { cache, issue, clock } = setup({ random: () => 0.999 });
    const old = await cache.acquire(KEY, issue());
    const usableUntil = old.token!.expiresAt - DEFAULT_EXPIRY_SKEW_MS;
    clock.set(old.refreshAt!);
    let attemptsBeforeExpiry = 0;
    while (clock.now() < usableUntil) {
      const r = await cache.acquire(KEY, failing(transient()));
      expect(r.outcome).toBe("Failed"); // every wake-up is a retry: no wasted reconcile, no endless wait
      expect(r.token).toBe(old.token);
      attemptsBeforeExpiry++;
      if (r.throttle.retryAt! - clock.now() > MIN_RETRY_DELAY_MS)
        expect(r.throttle.retryAt).toBeLessThan(usableUntil);
      clock.set(r.nextAttemptAt);
    }
    // Doubling alone would reach the 5-minute ceiling; the cap adds attempts close to expiry.
    expect(attemptsBeforeExpiry).toBeGreaterThan(12);
  });

  it("backs off slowly after a permanent failure and keeps the old token meanwhile", async () => {
    const { cache, issue, clock } = setup();
    const old = await cache.acquire(KEY, issue());
    clock.set(old.refreshAt!);
    const failed = await cache.acquire(KEY, failing(permanent()));
    expect(failed).toMatchObject({ outcome: "Failed", token: old.token });
    expect(failed.throttle).toMatchObject({
      state: "Backoff",
      lastError: { kind: "Permanent", reason: "InvalidClientSecret", aadsts: "7000215" },
    });
    const firstDelay = failed.throttle.retryAt! - clock.now();
    expect(firstDelay).toBeGreaterThanOrEqual(150 * SECOND);

    const fetch = issue();
    clock.advance(firstDelay - 1);
    expect((await cache.acquire(KEY, fetch)).deferredBy).toBe("Backoff");
    expect(fetch).not.toHaveBeenCalled();

    clock.advance(1);
    const second = await cache.acquire(KEY, failing(permanent()));
    expect(second.throttle.retryAt! - clock.now()).toBe(2 * firstDelay);
  });

  it("retries a permanent failure at once after resetBackoff (spec or credential changed)", async () => {
    const { cache, issue, clock } = setup();
    await cache.acquire(KEY, failing(permanent()));
    clock.advance(SECOND);
    expect(cache.resetBackoff(KEY)).toBe(true);
    const fetch = issue();
    const result = await cache.acquire(KEY, fetch);
    expect(result.outcome).toBe("Fetched");
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("does not lift the service's Retry-After on resetBackoff", async () => {
    const { cache, issue, clock } = setup();
    await cache.acquire(KEY, failing(throttled(clock.now() + MINUTE)));
    expect(cache.resetBackoff(KEY)).toBe(false);
    expect((await cache.acquire(KEY, issue())).deferredBy).toBe("Throttled");
  });

  it("makes a fresh token due on invalidate, and still serves it if the refresh fails", async () => {
    const { cache, issue } = setup();
    const old = await cache.acquire(KEY, issue());
    cache.invalidate(KEY);
    const fetch = failing(transient());
    const result = await cache.acquire(KEY, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(result).toMatchObject({ outcome: "Failed", source: "Cache" });
    expect(result.token?.accessToken).toBe(old.token?.accessToken);
  });

  it("keeps the throttled and backoff gauges in step", async () => {
    const { cache, clock } = setup();
    await cache.acquire(KEY, failing(throttled(clock.now() + MINUTE)));
    await cache.acquire(OTHER_KEY, failing(transient()));
    expect(cache.stats()).toMatchObject({ throttledKeys: 1, backoffKeys: 1, failedCalls: 2 });
    cache.resetBackoff(OTHER_KEY);
    expect(cache.stats()).toMatchObject({ throttledKeys: 1, backoffKeys: 0 });
  });
});

describe("TokenCache: the global limit on calls", () => {
  it("defers a call when the limit is exhausted and gives each waiter its own slot", async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const limiter = new TokenBucket({ ratePerSecond: 1, burst: 1, clock });
    const cache = new TokenCache({ clock, limiter, random: () => 0 });
    const fetch = vi.fn(async () => tokenIssuedNow(clock));

    expect((await cache.acquire("a", fetch)).outcome).toBe("Fetched");
    const b = await cache.acquire("b", fetch);
    expect(b).toMatchObject({ outcome: "Deferred", deferredBy: "RateLimited", nextAttemptAt: t0 + 1000 });
    const c = await cache.acquire("c", fetch);
    expect(c.nextAttemptAt).toBe(t0 + 2000);
    expect(fetch).toHaveBeenCalledTimes(1);

    clock.set(t0 + 1000);
    expect((await cache.acquire("b", fetch)).outcome).toBe("Fetched");
    // Coming back early keeps the slot already reserved instead of taking another.
    expect((await cache.acquire("c", fetch)).nextAttemptAt).toBe(t0 + 2000);
    expect((await cache.acquire("d", fetch)).nextAttemptAt).toBe(t0 + 3000);

    clock.set(t0 + 2000);
    expect((await cache.acquire("c", fetch)).outcome).toBe("Fetched");
    expect(fetch).toHaveBeenCalledTimes(3);
  });

  it("takes nothing from the limit for hits or for callers joining a call in flight", async () => {
    const { clock } = setup();
    const limiter: CallLimiter = { reserve: vi.fn(() => Number.NEGATIVE_INFINITY) };
    const cache = new TokenCache({ clock, limiter, random: () => 0 });
    const fetch = vi.fn(async () => tokenIssuedNow(clock));
    await Promise.all(Array.from({ length: 5 }, () => cache.acquire(KEY, fetch)));
    for (let i = 0; i < 100; i++) await cache.acquire(KEY, fetch);
    expect(limiter.reserve).toHaveBeenCalledTimes(1);
  });

  it("serves the old token while a refresh waits for its slot", async () => {
    const clock = new FakeClock();
    const limiter = new TokenBucket({ ratePerSecond: 1, burst: 1, clock });
    const cache = new TokenCache({ clock, limiter, random: () => 0 });
    const old = await cache.acquire(KEY, async () => tokenIssuedNow(clock));
    clock.set(old.refreshAt!);
    limiter.tryTake();
    const waiting = await cache.acquire(KEY, async () => tokenIssuedNow(clock));
    expect(waiting).toMatchObject({ outcome: "Deferred", deferredBy: "RateLimited", source: "Cache" });
    expect(waiting.token).toBe(old.token);
  });
});

describe("TokenCache.seed: hydration from persisted Secrets after a restart", () => {
  const persisted = (
    clock: FakeClock,
    expiresIn: number,
    refreshIn: number,
    issuedAgo = HOUR - expiresIn,
  ) => ({
    accessToken: "persisted",
    tokenType: "Bearer",
    issuedAt: clock.now() - issuedAgo,
    expiresAt: clock.now() + expiresIn,
    refreshAt: clock.now() + refreshIn,
  });

  it("serves a seeded fresh token without calling the token service until its persisted refresh time", async () => {
    const { cache, issue, clock } = setup();
    const token = persisted(clock, 50 * MINUTE, 20 * MINUTE);
    expect(cache.seed([{ keyId: KEY, token }])).toEqual({ fresh: 1, due: 0, skipped: 0 });
    const fetch = issue();
    const result = await cache.acquire(KEY, fetch);
    expect(result).toMatchObject({ outcome: "Hit", source: "Cache", refreshAt: token.refreshAt });
    expect(result.token?.accessToken).toBe("persisted");
    expect(fetch).not.toHaveBeenCalled();
  });

  it("seeds a token within the 5-minute floor as due: refreshed on first acquire, served if that fails", async () => {
    const { cache, clock } = setup();
    const token = persisted(clock, 4 * MINUTE, -10 * MINUTE);
    expect(cache.seed([{ keyId: KEY, token }])).toEqual({ fresh: 0, due: 1, skipped: 0 });
    const fetch = failing(transient());
    const result = await cache.acquire(KEY, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(result).toMatchObject({ outcome: "Failed", source: "Cache" });
    expect(result.token?.accessToken).toBe("persisted");
  });

  it("seeds a token whose persisted refresh time has passed as due", async () => {
    const { cache, issue, clock } = setup();
    expect(cache.seed([{ keyId: KEY, token: persisted(clock, 40 * MINUTE, -MINUTE) }]).due).toBe(1);
    expect((await cache.acquire(KEY, issue())).outcome).toBe("Fetched");
  });

  it("pulls a persisted refresh time later than the 5-minute floor back to it", () => {
    const { cache, clock } = setup();
    const token = persisted(clock, 50 * MINUTE, 49 * MINUTE);
    cache.seed([{ keyId: KEY, token }]);
    expect(cache.inspect(KEY)?.token?.refreshAt).toBe(token.expiresAt - REFRESH_FLOOR_MS);
  });

  it("does not seed an expired token, or a malformed one", async () => {
    const { cache, issue, clock } = setup();
    const report = cache.seed([
      { keyId: KEY, token: persisted(clock, 10 * SECOND, -HOUR) },
      { keyId: OTHER_KEY, token: { ...persisted(clock, HOUR, 30 * MINUTE), expiresAt: Number.NaN } },
    ]);
    expect(report).toEqual({ fresh: 0, due: 0, skipped: 2 });
    expect(cache.stats().keys).toBe(0);
    expect((await cache.acquire(KEY, issue())).outcome).toBe("Fetched");
  });

  it("does not replace a newer token the cache already holds", async () => {
    const { cache, issue, clock } = setup();
    const held = await cache.acquire(KEY, issue());
    expect(cache.seed([{ keyId: KEY, token: persisted(clock, 50 * MINUTE, 20 * MINUTE) }]).skipped).toBe(1);
    expect(cache.inspect(KEY)?.token).toBe(held.token);
  });
});

describe("TokenCache: eviction keeps memory bounded", () => {
  it("evicts a key when the last request using it is released", async () => {
    const { cache, issue } = setup();
    await cache.acquire(KEY, issue(), { holder: "payments/graph" });
    expect(cache.release("payments/graph")).toBe(true);
    expect(cache.inspect(KEY)).toBeUndefined();
    expect(cache.stats()).toMatchObject({ keys: 0, holders: 0, evictions: 1 });
    expect(cache.release("payments/graph")).toBe(false);
  });

  it("keeps a key shared by two requests until both are released", async () => {
    const { cache, issue } = setup();
    const fetch = issue();
    await cache.acquire(KEY, fetch, { holder: "a/graph" });
    await cache.acquire(KEY, fetch, { holder: "b/graph" });
    await cache.acquire(KEY, fetch, { holder: "b/graph" });
    expect(cache.inspect(KEY)?.holders).toBe(2);
    cache.release("a/graph");
    expect(cache.inspect(KEY)?.holders).toBe(1);
    cache.release("b/graph");
    expect(cache.inspect(KEY)).toBeUndefined();
  });

  it("evicts the old key when a request's spec moves it to another key", async () => {
    const { cache, issue } = setup();
    await cache.acquire(KEY, issue(), { holder: "payments/graph" });
    await cache.acquire(OTHER_KEY, issue(), { holder: "payments/graph" });
    expect(cache.inspect(KEY)).toBeUndefined();
    expect(cache.inspect(OTHER_KEY)?.holders).toBe(1);
  });

  it("counts each request once however often it acquires, including requests that come back to a key", async () => {
    const { cache, issue } = setup();
    const fetch = issue();
    for (const holder of ["a/graph", "b/graph", "a/graph", "a/graph", "b/graph"]) {
      await cache.acquire(KEY, fetch, { holder });
    }
    expect(cache.inspect(KEY)?.holders).toBe(2);
    await cache.acquire(OTHER_KEY, fetch, { holder: "a/graph" });
    await cache.acquire(KEY, fetch, { holder: "a/graph" });
    expect(cache.inspect(KEY)?.holders).toBe(2);
    expect(cache.inspect(OTHER_KEY)).toBeUndefined();
    cache.release("b/graph");
    cache.release("a/graph");
    expect(cache.stats()).toMatchObject({ keys: 0, holders: 0 });
  });

  it("evicts a released key only after its call in flight lands", async () => {
    const { cache, clock } = setup();
    const answer = deferred<TokenResponse>();
    const pending = cache.acquire(KEY, () => answer.promise, { holder: "payments/graph" });
    cache.release("payments/graph");
    expect(cache.stats()).toMatchObject({ keys: 1, inflight: 1 });
    answer.resolve(tokenIssuedNow(clock));
    expect((await pending).outcome).toBe("Fetched");
    expect(cache.stats()).toMatchObject({ keys: 0, inflight: 0 });
  });

  it("sweeps keys nobody asked for in a long time, and only those", async () => {
    const { cache, issue, clock } = setup({ idleEvictAfterMs: 24 * HOUR });
    await cache.acquire(KEY, issue(), { holder: "payments/graph" });
    await cache.acquire(OTHER_KEY, issue());
    clock.advance(23 * HOUR);
    await cache.acquire(OTHER_KEY, issue());
    clock.advance(2 * HOUR);
    expect(cache.sweep()).toBe(1);
    expect(cache.inspect(KEY)).toBeUndefined();
    expect(cache.inspect(OTHER_KEY)).toBeDefined();
    expect(cache.stats().holders).toBe(0);
  });

  it("holds a key before any acquire: one copy of its id and hash for every holder, who are listed", () => {
    const { cache } = setup();
    const a = cache.hold("a/graph", KEY);
    const b = cache.hold("b/graph", KEY);
    expect(a.keyHash).toBe(cacheKeyHash(KEY));
    expect(b.keyId).toBe(a.keyId);
    expect(b.keyHash).toBe(a.keyHash);
    expect([...cache.holdersOf(KEY)]).toEqual(["a/graph", "b/graph"]);
    expect([...cache.holdersOf(OTHER_KEY)]).toEqual([]);
    expect(cache.stats()).toMatchObject({ keys: 1, holders: 2 });
  });

  it("moves a holder with hold as with acquire, evicting the key nobody holds any more", async () => {
    const { cache, issue } = setup();
    await cache.acquire(KEY, issue(), { holder: "payments/graph" });
    cache.hold("payments/graph", OTHER_KEY);
    expect(cache.inspect(KEY)).toBeUndefined();
    expect([...cache.holdersOf(OTHER_KEY)]).toEqual(["payments/graph"]);
    // Held already: an acquire naming the same holder changes nothing.
    await cache.acquire(OTHER_KEY, issue(), { holder: "payments/graph" });
    expect(cache.stats()).toMatchObject({ keys: 1, holders: 1 });
  });

  it("holds a swept key's holder again when an acquire names it", async () => {
    const { cache, issue, clock } = setup({ idleEvictAfterMs: HOUR });
    await cache.acquire(KEY, issue(), { holder: "payments/graph" });
    clock.advance(2 * HOUR);
    expect(cache.sweep()).toBe(1);
    expect([...cache.holdersOf(KEY)]).toEqual([]);
    await cache.acquire(KEY, issue(), { holder: "payments/graph" });
    expect([...cache.holdersOf(KEY)]).toEqual(["payments/graph"]);
    expect(cache.release("payments/graph")).toBe(true);
    expect(cache.stats()).toMatchObject({ keys: 0, holders: 0 });
  });

  it("serves a holder through the key hold answered, the same as acquire by id", async () => {
    const { cache, issue } = setup();
    const { held } = cache.hold("payments/graph", KEY);
    const first = await cache.acquireHeld(held, issue(), { holder: "payments/graph" });
    expect(first.outcome).toBe("Fetched");
    const again = await cache.acquireHeld(held, issue(), { holder: "payments/graph" });
    expect(again.outcome).toBe("Hit");
    expect(again.token).toBe(first.token);
    expect(await cache.acquire(KEY, issue())).toMatchObject({ outcome: "Hit", token: first.token });
    expect(cache.stats()).toMatchObject({ keys: 1, holders: 1, hits: 2, misses: 1 });
  });

  it("looks an evicted held key up again and holds it, and says it was evicted", async () => {
    const { cache, issue, clock } = setup({ idleEvictAfterMs: HOUR });
    const { held } = cache.hold("payments/graph", KEY);
    await cache.acquireHeld(held, issue(), { holder: "payments/graph" });
    clock.advance(2 * HOUR);
    expect(cache.sweep()).toBe(1);
    expect(held.evicted).toBe(true);
    const after = await cache.acquireHeld(held, issue(), { holder: "payments/graph" });
    // A new key: the evicted one's token went with it.
    expect(after.outcome).toBe("Fetched");
    expect([...cache.holdersOf(KEY)]).toEqual(["payments/graph"]);
    const again = cache.hold("payments/graph", KEY);
    expect(again.held).not.toBe(held);
    expect(again.held.evicted).toBe(false);
    expect(cache.stats()).toMatchObject({ keys: 1, holders: 1 });
  });

  it("takes every call, by id or through a held key, from the source a subclass puts in front", async () => {
    const sourced: string[] = [];
    class Tiered extends TokenCache {
      protected override source(keyId: string, fetch: TokenFetch): TokenFetch {
        return () => {
          sourced.push(keyId);
          return fetch();
        };
      }
    }
    const { clock, issue } = setup();
    const cache = new Tiered({ clock, limiter: unlimited });
    const { held } = cache.hold("payments/graph", KEY);
    expect((await cache.acquireHeld(held, issue(), { holder: "payments/graph" })).outcome).toBe("Fetched");
    expect((await cache.acquire(OTHER_KEY, issue())).outcome).toBe("Fetched");
    // A hit does not ask the source.
    expect((await cache.acquireHeld(held, issue(), { holder: "payments/graph" })).outcome).toBe("Hit");
    expect(sourced).toEqual([KEY, OTHER_KEY]);
  });

  it("drops an evicted key's throttle state from the gauges", async () => {
    const { cache, clock } = setup();
    await cache.acquire(KEY, failing(throttled(clock.now() + MINUTE)), { holder: "payments/graph" });
    expect(cache.stats().throttledKeys).toBe(1);
    cache.release("payments/graph");
    expect(cache.stats().throttledKeys).toBe(0);
  });
});
