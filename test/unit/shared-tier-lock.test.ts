import { randomBytes } from "node:crypto";
import { Registry } from "prom-client";
import { describe, expect, it, vi } from "vitest";
import {
  addressOf,
  deriveFleetKeys,
  sealToken,
  type FleetKeys,
} from "../../src/cache/shared-tier/sealed-token.js";
import { SharedTier, SharedTierTokenCache } from "../../src/cache/shared-tier/shared-tier.js";
import { lockedCall } from "../../src/cache/shared-tier/shared-lock.js";
import type { EntryRead, SharedStore } from "../../src/cache/shared-tier/store.js";
import { TokenBucket, unlimited } from "../../src/rate/token-bucket.js";
import type { TokenFetch } from "../../src/cache/token-cache.js";
import { ThrottledError, TransientError } from "../../src/identity/errors.js";
import { FakeClock } from "../support/fake-clock.js";
import { HOUR, MINUTE, SECOND, tokenIssuedNow } from "./cache/support.js";

const KEY_ID = "login.microsoftonline.com|contoso|0a1b2c3d|https://graph.microsoft.com/.default|fp1";

/** The SharedStore port in memory, with TTLs on the fake clock; `down` makes every call reject. */
class MemoryStore implements SharedStore {
  readonly values = new Map<string, { value: string; until: number }>();
  down = false;
  calls: string[] = [];
  constructor(private readonly clock: FakeClock) {}
  private get(k: string): string | undefined {
    const e = this.values.get(k);
    if (e === undefined || e.until <= this.clock.now()) return undefined;
    return e.value;
  }
  private set(k: string, value: string, ttlMs: number): void {
    this.values.set(k, { value, until: this.clock.now() + ttlMs });
  }
  private check(op: string): void {
    this.calls.push(op);
    if (this.down) throw new Error("ECONNREFUSED 127.0.0.1:6379");
  }
  async read(a: string): Promise<EntryRead> {
    this.check("read");
    return { sealed: this.get(`${a}:token`), throttle: this.get(`${a}:throttle`) };
  }
  async write(a: string, sealed: string, ttlMs: number): Promise<void> {
    this.check("write");
    this.set(`${a}:token`, sealed, ttlMs);
  }
  async lock(a: string, fencing: string, ttlMs: number): Promise<boolean> {
    this.check("lock");
    if (this.get(`${a}:lock`) !== undefined) return false;
    this.set(`${a}:lock`, fencing, ttlMs);
    return true;
  }
  async unlock(a: string, fencing: string): Promise<void> {
    this.check("unlock");
    if (this.get(`${a}:lock`) === fencing) this.values.delete(`${a}:lock`);
  }
  async throttle(a: string, record: string, ttlMs: number): Promise<void> {
    this.check("throttle");
    this.set(`${a}:throttle`, record, ttlMs);
  }
}

function fleet() {
  const clock = new FakeClock();
  const store = new MemoryStore(clock);
  const keys = deriveFleetKeys(randomBytes(32));
  const sleep = vi.fn(async (ms: number) => clock.advance(ms));
  const operator = (k: FleetKeys = keys, previousKeys?: FleetKeys) => {
    const log = { warn: vi.fn(), info: vi.fn(), debug: vi.fn() };
    const registry = new Registry();
    const tier = new SharedTier({ store, keys: k, previousKeys, clock, log, registry, sleep });
    return { tier, log, registry };
  };
  const issue = (): TokenFetch => vi.fn(async () => tokenIssuedNow(clock, HOUR));
  return { clock, store, keys, sleep, operator, issue };
}

async function metric(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (m?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("the fleet tier", () => {
  it("calls once for the fleet: the next operator reads the sealed token instead of calling", async () => {
    const f = fleet();
    const a = f.operator();
    const b = f.operator();
    const fetchA = f.issue();
    const fetchB = f.issue();
    const first = await a.tier.fetch(KEY_ID, fetchA);
    expect(first.source).toBeUndefined();
    const second = await b.tier.fetch(KEY_ID, fetchB);
    expect(fetchA).toHaveBeenCalledTimes(1);
    expect(fetchB).not.toHaveBeenCalled();
    expect(second).toEqual({ ...first, source: "SharedCache" });
    // The winner let the lock go; nothing in the store is the token in clear.
    expect([...f.store.values.keys()].some((k) => k.endsWith(":lock"))).toBe(false);
    for (const { value } of f.store.values.values()) expect(value).not.toContain(first.accessToken);
    expect(await metric(a.registry, "apptoken_shared_cache_up")).toBe(1);
  });

  it("does not hand out a token inside its refresh window: that one is replaced by a call", async () => {
    const f = fleet();
    await f.operator().tier.fetch(KEY_ID, f.issue());
    f.clock.advance(HOUR / 2); // refreshAt is at half the lifetime at the latest
    const fetchB = f.issue();
    const got = await f.operator().tier.fetch(KEY_ID, fetchB);
    expect(fetchB).toHaveBeenCalledTimes(1);
    expect(got.source).toBeUndefined();
  });

  it("honours the reader's refreshBefore", async () => {
    const f = fleet();
    await f.operator().tier.fetch(KEY_ID, f.issue());
    f.clock.advance(20 * MINUTE);
    const fetchB = f.issue();
    await f.operator().tier.fetch(KEY_ID, fetchB, { refreshBeforeMs: 45 * MINUTE });
    expect(fetchB).toHaveBeenCalledTimes(1);
  });

  it("a forced refresh calls even when the store holds a fresh token", async () => {
    const f = fleet();
    await f.operator().tier.fetch(KEY_ID, f.issue());
    const fetchB = f.issue();
    const got = await f.operator().tier.fetch(KEY_ID, fetchB, { force: true });
    expect(fetchB).toHaveBeenCalledTimes(1);
    expect(got.source).toBeUndefined();
  });

  it("a loser waits for the winner's token and does not call", async () => {
    const f = fleet();
    const address = addressOf(f.keys, KEY_ID);
    await f.store.lock(address, "someone-else", 4 * SECOND);
    const winnerToken = tokenIssuedNow(f.clock, HOUR);
    // The winner publishes 300 ms later (on the fake clock the loser's sleeps advance).
    const due = f.clock.now() + 300;
    f.sleep.mockImplementation(async (ms: number) => {
      f.clock.advance(ms);
      if (f.clock.now() >= due && !f.store.values.has(`${address}:token`))
        await f.store.write(address, sealToken(f.keys, address, winnerToken), HOUR);
    });
    const fetch = f.issue();
    const b = f.operator();
    const got = await b.tier.fetch(KEY_ID, fetch);
    expect(fetch).not.toHaveBeenCalled();
    expect(got.accessToken).toBe(winnerToken.accessToken);
    expect(await metric(b.registry, "apptoken_shared_cache_lock_outcomes_total", { outcome: "Waited" })).toBe(
      1,
    );
  });

  it("a loser takes over when the winner's lock lapses, and calls once", async () => {
    const f = fleet();
    const address = addressOf(f.keys, KEY_ID);
    const started = f.clock.now();
    await f.store.lock(address, "a-dead-operator", 4 * SECOND);
    const fetch = vi.fn(async () => {
      expect(f.clock.now() - started).toBeGreaterThanOrEqual(4 * SECOND);
      return tokenIssuedNow(f.clock, HOUR);
    });
    const b = f.operator();
    await b.tier.fetch(KEY_ID, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(
      await metric(b.registry, "apptoken_shared_cache_lock_outcomes_total", { outcome: "TookOver" }),
    ).toBe(1);
  });

  it("waits no longer than its bound, then calls without the lock", async () => {
    const f = fleet();
    const address = addressOf(f.keys, KEY_ID);
    const started = f.clock.now();
    await f.store.lock(address, "stuck", HOUR); // a lock that never lapses in time
    const fetch = f.issue();
    await f.operator().tier.fetch(KEY_ID, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(f.clock.now() - started).toBe(5 * SECOND);
  });

  it("the lock decision alone: a won lock calls at once, without sleeping", async () => {
    const clock = new FakeClock();
    const sleep = vi.fn(async () => undefined);
    const call = vi.fn(async (locked: boolean) => (locked ? "locked" : "unlocked"));
    const got = await lockedCall(
      {
        tryLock: async () => true,
        look: async () => ({ kind: "Nothing" }),
        call,
        release: async () => undefined,
      },
      clock,
      sleep,
    );
    expect(got).toBe("locked");
    expect(sleep).not.toHaveBeenCalled();
  });

  it("a lock freed by a winner that just published: the token is found under the lock, no call", async () => {
    const f = fleet();
    const address = addressOf(f.keys, KEY_ID);
    const winnerToken = tokenIssuedNow(f.clock, HOUR);
    await f.store.write(address, sealToken(f.keys, address, winnerToken), HOUR);
    // The first look raced the winner's write: it saw nothing, and by the SET NX the lock was free.
    vi.spyOn(f.store, "read").mockResolvedValueOnce({ sealed: undefined, throttle: undefined });
    const b = f.operator();
    const fetch = f.issue();
    const got = await b.tier.fetch(KEY_ID, fetch);
    expect(fetch).not.toHaveBeenCalled();
    expect(got.accessToken).toBe(winnerToken.accessToken);
    expect([...f.store.values.keys()].some((k) => k.endsWith(":lock"))).toBe(false);
    expect(
      await metric(b.registry, "apptoken_shared_cache_lock_outcomes_total", { outcome: "LateHit" }),
    ).toBe(1);
  });

  it("shares a throttle verdict: no operator calls for that key before Retry-After", async () => {
    const f = fleet();
    const retryAt = f.clock.now() + 90 * SECOND;
    const throttled = new ThrottledError("AADSTS50196 (HTTP 429)", {
      reason: "Throttled",
      httpStatus: 429,
      retryAt,
    });
    await expect(
      f.operator().tier.fetch(
        KEY_ID,
        vi.fn(async () => Promise.reject(throttled)),
      ),
    ).rejects.toBe(throttled);

    const fetchB = f.issue();
    const b = f.operator();
    const refused = await b.tier.fetch(KEY_ID, fetchB).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ThrottledError);
    expect((refused as ThrottledError).retryAt).toBe(retryAt);
    expect(fetchB).not.toHaveBeenCalled();

    f.clock.set(retryAt);
    await b.tier.fetch(KEY_ID, fetchB);
    expect(fetchB).toHaveBeenCalledTimes(1);
  });

  it("other failures are not shared and release the lock for the next caller", async () => {
    const f = fleet();
    const failure = new TransientError("HTTP 500", { reason: "ServerError", httpStatus: 500 });
    await expect(
      f.operator().tier.fetch(
        KEY_ID,
        vi.fn(async () => Promise.reject(failure)),
      ),
    ).rejects.toBe(failure);
    const fetchB = f.issue();
    await f.operator().tier.fetch(KEY_ID, fetchB);
    expect(fetchB).toHaveBeenCalledTimes(1);
    expect(f.sleep).not.toHaveBeenCalled();
  });

  it("with the store down calls directly, says so once, and comes back by itself", async () => {
    const f = fleet();
    const a = f.operator();
    await a.tier.fetch(KEY_ID, f.issue());
    f.store.down = true;
    const direct = f.issue();
    for (let i = 0; i < 5; i++) {
      await a.tier.fetch(`${KEY_ID}-${i}`, direct);
      f.clock.advance(3 * SECOND);
    }
    expect(direct).toHaveBeenCalledTimes(5);
    expect(a.log.warn).toHaveBeenCalledTimes(1);
    expect(JSON.stringify(a.log.warn.mock.calls)).not.toMatch(/token-\d/);
    expect(await metric(a.registry, "apptoken_shared_cache_up")).toBe(0);
    expect(
      await metric(a.registry, "apptoken_shared_cache_operations_total", { result: "error" }),
    ).toBeGreaterThan(0);

    f.store.down = false;
    f.clock.advance(3 * SECOND);
    await a.tier.fetch(`${KEY_ID}-again`, f.issue());
    const fetchB = f.issue();
    const got = await f.operator().tier.fetch(`${KEY_ID}-again`, fetchB);
    expect(fetchB).not.toHaveBeenCalled();
    expect(got.source).toBe("SharedCache");
    expect(a.log.info).toHaveBeenCalledTimes(1);
    expect(await metric(a.registry, "apptoken_shared_cache_up")).toBe(1);
  });

  it("right after a failure leaves the store alone instead of paying its deadline on every call", async () => {
    const f = fleet();
    const a = f.operator();
    f.store.down = true;
    await a.tier.fetch(KEY_ID, f.issue());
    const before = f.store.calls.length;
    await a.tier.fetch(`${KEY_ID}-2`, f.issue());
    expect(f.store.calls.length).toBe(before);
  });

  it("an operator with another fleet key reads nothing and calls itself", async () => {
    const f = fleet();
    await f.operator().tier.fetch(KEY_ID, f.issue());
    const stranger = f.operator(deriveFleetKeys(randomBytes(32)));
    const fetch = f.issue();
    const got = await stranger.tier.fetch(KEY_ID, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(got.source).toBeUndefined();
  });

  it("garbage at a key's address is a miss: the operator calls and overwrites it", async () => {
    const f = fleet();
    const address = addressOf(f.keys, KEY_ID);
    await f.store.write(address, "garbage-not-a-sealed-token", HOUR);
    await f.store.throttle(address, "{not json", HOUR);
    const a = f.operator();
    const fetch = f.issue();
    await a.tier.fetch(KEY_ID, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(
      await metric(a.registry, "apptoken_shared_cache_operations_total", {
        op: "read",
        result: "unreadable",
      }),
    ).toBe(2); // the first look, and the one under the lock
    const again = f.issue();
    expect((await f.operator().tier.fetch(KEY_ID, again)).source).toBe("SharedCache");
    expect(again).not.toHaveBeenCalled();
  });

  it("in front of the token cache: a token from the tier is a hit with source SharedCache", async () => {
    const f = fleet();
    await f.operator().tier.fetch(KEY_ID, f.issue());
    const cache = new SharedTierTokenCache(
      { clock: f.clock, limiter: unlimited, random: () => 0 },
      f.operator().tier,
    );
    const fetch = f.issue();
    const result = await cache.acquire(KEY_ID, fetch);
    expect(fetch).not.toHaveBeenCalled();
    expect(result).toMatchObject({ outcome: "Fetched", source: "SharedCache", called: false });
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 0 });
    // Served from memory afterwards, as any cached token.
    expect(await cache.acquire(KEY_ID, fetch)).toMatchObject({ outcome: "Hit", source: "Cache" });
  });

  it("a token read from the tier does not use up the operator's own budget of calls", async () => {
    const f = fleet();
    const keyIds = [1, 2, 3].map((i) => `${KEY_ID}|${i}`);
    for (const k of keyIds) await f.operator().tier.fetch(k, f.issue());
    // One call per second, no burst: three real calls would be paced a second apart.
    const limiter = new TokenBucket({ ratePerSecond: 1, burst: 1, clock: f.clock });
    const cache = new SharedTierTokenCache({ clock: f.clock, limiter, random: () => 0 }, f.operator().tier);
    for (const k of keyIds) {
      expect(await cache.acquire(k, f.issue())).toMatchObject({ outcome: "Fetched", source: "SharedCache" });
    }
    // The budget is whole for the first real call.
    const fresh = f.issue();
    expect(await cache.acquire(`${KEY_ID}|4`, fresh)).toMatchObject({ outcome: "Fetched", called: true });
    expect(fresh).toHaveBeenCalledTimes(1);
    expect(await cache.acquire(`${KEY_ID}|5`, f.issue())).toMatchObject({
      outcome: "Deferred",
      called: false,
    });
  });

  it("a key rotation: the new key reads what the previous one sealed, and seals under itself", async () => {
    const f = fleet();
    const oldKeys = f.keys;
    const newKeys = deriveFleetKeys(randomBytes(32));
    // An operator not switched yet publishes a token under the old key.
    await f.operator(oldKeys).tier.fetch(KEY_ID, f.issue());
    const switched = f.operator(newKeys, oldKeys);
    const fetch = f.issue();
    expect((await switched.tier.fetch(KEY_ID, fetch)).source).toBe("SharedCache");
    expect(fetch).not.toHaveBeenCalled();
    // A key only the new operators know: the switched one calls, and seals under the new key only.
    const other = `${KEY_ID}|other`;
    const called = f.issue();
    await switched.tier.fetch(other, called);
    expect(called).toHaveBeenCalledTimes(1);
    expect((await f.operator(newKeys).tier.fetch(other, f.issue())).source).toBe("SharedCache");
    const notSwitched = f.issue();
    await f.operator(oldKeys).tier.fetch(other, notSwitched);
    expect(notSwitched).toHaveBeenCalledTimes(1);
  });

  it("useKeys switches a running tier to a new key", async () => {
    const f = fleet();
    const newKeys = deriveFleetKeys(randomBytes(32));
    const a = f.operator();
    await a.tier.fetch(KEY_ID, f.issue());
    a.tier.useKeys(newKeys, undefined);
    // Without the previous key it no longer reads the old entry: it calls, and publishes anew.
    const fetch = f.issue();
    await a.tier.fetch(KEY_ID, fetch);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect((await f.operator(newKeys).tier.fetch(KEY_ID, f.issue())).source).toBe("SharedCache");
  });
});
