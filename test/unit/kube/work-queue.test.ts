import { describe, expect, it } from "vitest";
import {
  ExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  TokenBucketRateLimiter,
} from "../../../src/kube/rate-limiter.js";
import { WorkQueue, type Priority, type WorkQueueMetrics } from "../../../src/kube/work-queue.js";
import { FakeClock } from "../../support/fake-clock.js";
import { FakeTimers, flush } from "./fake-timers.js";

function setup(opts: ConstructorParameters<typeof WorkQueue>[0] = {}) {
  const timers = new FakeTimers(new FakeClock());
  const queue = new WorkQueue({ clock: timers.clock, timers, ...opts });
  return { timers, clock: timers.clock, queue };
}

function drain(queue: WorkQueue): string[] {
  const out: string[] = [];
  for (let item = queue.get(); item; item = queue.get()) {
    out.push(item.key);
    queue.done(item.key);
  }
  return out;
}

/** A promise the test settles by hand. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("WorkQueue: client-go semantics", () => {
  it("holds a key once however often it is added", () => {
    const { queue } = setup();
    queue.add("ns/a");
    queue.add("ns/a");
    queue.add("ns/b");
    queue.add("ns/a");
    expect(queue.len()).toBe(2);
    expect(drain(queue)).toEqual(["ns/a", "ns/b"]);
  });

  it("defers a re-add while the key is processing until done", () => {
    const { queue } = setup();
    queue.add("ns/a");
    const item = queue.get()!;
    expect(item.key).toBe("ns/a");
    queue.add("ns/a");
    queue.add("ns/a");
    expect(queue.len()).toBe(0);
    expect(queue.get()).toBeUndefined();
    queue.done("ns/a");
    expect(queue.len()).toBe(1);
    expect(drain(queue)).toEqual(["ns/a"]);
  });

  it("never hands one key to two workers at once, and processes it again after a re-add", async () => {
    const { queue } = setup();
    const active = new Set<string>();
    let overlaps = 0;
    let runs = 0;
    const gates: ReturnType<typeof deferred<void>>[] = [];
    queue.run(
      async (key) => {
        if (active.has(key)) overlaps++;
        active.add(key);
        runs++;
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
        active.delete(key);
      },
      { concurrency: 4 },
    );
    queue.add("ns/a");
    await flush();
    expect(runs).toBe(1);
    queue.add("ns/a");
    queue.add("ns/a");
    await flush();
    expect(runs).toBe(1); // still the first run; the re-adds wait
    gates[0]!.resolve();
    await flush();
    expect(runs).toBe(2); // exactly one more run for any number of re-adds
    gates[1]!.resolve();
    await flush();
    expect(runs).toBe(2);
    expect(overlaps).toBe(0);
  });

  it("runs up to N handlers at once", async () => {
    const { queue } = setup();
    let running = 0;
    let peak = 0;
    const gate = deferred();
    queue.run(
      async () => {
        running++;
        peak = Math.max(peak, running);
        await gate.promise;
        running--;
      },
      { concurrency: 3 },
    );
    for (let i = 0; i < 10; i++) queue.add(`ns/k${i}`);
    await flush();
    expect(peak).toBe(3);
    expect(queue.stats().processing).toBe(3);
    gate.resolve();
    await flush(20);
    expect(queue.len()).toBe(0);
    expect(queue.stats().processing).toBe(0);
  });
});

describe("WorkQueue: delayed requeue", () => {
  it("serves 100 000 delayed keys with a single timer, in due order", () => {
    const { queue, timers } = setup();
    const n = 100_000;
    const delays = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const key = `ns${i % 50}/req-${i}`;
      const delay = 1000 + ((i * 7919) % 3_600_000);
      delays.set(key, delay);
      queue.addAfter(key, delay);
    }
    expect(queue.stats().delayed).toBe(n);
    expect(timers.pending).toBe(1);
    timers.advance(3_600_000 + 1000);
    expect(timers.pending).toBe(0);
    expect(queue.len()).toBe(n);
    const order = drain(queue);
    expect(order).toHaveLength(n);
    let outOfOrder = 0;
    for (let i = 1; i < order.length; i++)
      if (delays.get(order[i]!)! < delays.get(order[i - 1]!)!) outOfOrder++;
    expect(outOfOrder).toBe(0);
  });

  it("does not hand out a delayed key before its time", () => {
    const { queue, timers } = setup();
    queue.addAfter("ns/a", 1000);
    timers.advance(999);
    expect(queue.len()).toBe(0);
    timers.advance(1);
    expect(queue.len()).toBe(1);
  });

  it("keeps the earliest due time when a key is added after a delay twice", () => {
    const { queue, timers } = setup();
    queue.addAfter("ns/a", 1000);
    queue.addAfter("ns/a", 5000); // later: ignored
    timers.advance(1000);
    expect(drain(queue)).toEqual(["ns/a"]);
    queue.addAfter("ns/b", 5000);
    queue.addAfter("ns/b", 1000); // earlier: moves it forward
    timers.advance(1000);
    expect(drain(queue)).toEqual(["ns/b"]);
    timers.advance(10_000);
    expect(queue.len()).toBe(0); // no stale second entry
  });

  it("lets an immediate add win over a pending delayed one", () => {
    const { queue, timers } = setup();
    queue.addAfter("ns/a", 60_000);
    queue.add("ns/a");
    expect(queue.isDelayed("ns/a")).toBe(false);
    expect(drain(queue)).toEqual(["ns/a"]);
    timers.advance(60_000);
    expect(queue.len()).toBe(0);
    expect(timers.pending).toBe(0);
  });

  it("re-arms its single timer when an earlier key arrives", () => {
    const { queue, timers } = setup();
    queue.addAfter("ns/late", 60_000);
    queue.addAfter("ns/early", 10);
    expect(timers.pending).toBe(1);
    timers.advance(10);
    expect(drain(queue)).toEqual(["ns/early"]);
    expect(timers.pending).toBe(1);
  });

  it("schedules the handler's requeueAfter at low priority and clears the failure history", async () => {
    const { queue, timers } = setup();
    let calls = 0;
    queue.run(
      async () => {
        calls++;
        if (calls === 1) throw new Error("boom");
        return { requeueAfterMs: 30 * 60_000 };
      },
      { concurrency: 1 },
    );
    queue.add("ns/a");
    await flush();
    expect(queue.numRequeues("ns/a")).toBe(1);
    await timers.advanceAsync(5);
    expect(calls).toBe(2);
    expect(queue.numRequeues("ns/a")).toBe(0);
    expect(queue.isDelayed("ns/a")).toBe(true);
    await timers.advanceAsync(30 * 60_000 - 1);
    expect(calls).toBe(2);
    await timers.advanceAsync(1);
    expect(calls).toBe(3);
  });
});

describe("WorkQueue: failure backoff and rate limits", () => {
  it("doubles a failing key's delay from 5 ms and caps it at 1000 s", () => {
    const limiter = new ExponentialFailureRateLimiter();
    const delays = Array.from({ length: 25 }, () => limiter.when("ns/a"));
    expect(delays.slice(0, 5)).toEqual([5, 10, 20, 40, 80]);
    expect(Math.max(...delays)).toBe(1_000_000);
    expect(delays.at(-1)).toBe(1_000_000);
    expect(limiter.when("ns/b")).toBe(5); // per key
    limiter.forget("ns/a");
    expect(limiter.when("ns/a")).toBe(5);
    for (let i = 0; i < 2000; i++) limiter.when("ns/c"); // no overflow to NaN/Infinity
    expect(limiter.when("ns/c")).toBe(1_000_000);
  });

  it("spreads a burst of failures at the bucket's rate", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucketRateLimiter(10, 3, clock);
    expect([bucket.when(), bucket.when(), bucket.when()]).toEqual([0, 0, 0]);
    expect(bucket.when()).toBe(100);
    expect(bucket.when()).toBe(200);
    clock.advance(1000); // refills 10 tokens, 2 of which pay back the reservations; capped at burst
    expect([bucket.when(), bucket.when(), bucket.when()]).toEqual([0, 0, 0]);
    expect(bucket.when()).toBe(100);
  });

  it("uses the larger of per-key backoff and the overall bucket", () => {
    const clock = new FakeClock();
    const limiter = new MaxOfRateLimiter(
      new ExponentialFailureRateLimiter(5, 1_000_000),
      new TokenBucketRateLimiter(1, 1, clock),
    );
    expect(limiter.when("ns/a")).toBe(5);
    expect(limiter.when("ns/b")).toBe(1000);
    expect(limiter.retries("ns/a")).toBe(1);
  });

  it("retries a throwing handler with growing backoff until it succeeds", async () => {
    const { queue, timers } = setup();
    const at: number[] = [];
    queue.run(
      async () => {
        at.push(timers.clock.now());
        if (at.length < 5) throw new Error(`attempt ${at.length}`);
      },
      { concurrency: 1 },
    );
    queue.add("ns/a");
    await flush();
    await timers.advanceAsync(1000);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps).toEqual([5, 10, 20, 40]);
    expect(queue.numRequeues("ns/a")).toBe(0);
  });

  it("reports handler errors to onHandlerError", async () => {
    const seen: string[] = [];
    const { queue } = setup({ onHandlerError: (key, err) => seen.push(`${key}: ${(err as Error).message}`) });
    queue.run(async () => Promise.reject(new Error("nope")), { concurrency: 1 });
    queue.add("ns/a");
    await flush();
    expect(seen).toEqual(["ns/a: nope"]);
  });
});

describe("WorkQueue: priorities", () => {
  it("hands a new request out before 10 000 due refreshes", () => {
    const { queue, timers } = setup();
    for (let i = 0; i < 10_000; i++) queue.addAfter(`ns/refresh-${i}`, 1000 + i);
    timers.advance(20_000);
    expect(queue.stats().low).toBe(10_000);
    // A few refreshes already went out...
    for (let i = 0; i < 3; i++) queue.done(queue.get()!.key);
    queue.add("ns/new-request", "high");
    expect(queue.get()?.key).toBe("ns/new-request");
  });

  it("runs a new request within the first handler slots while 10 000 refreshes are due", async () => {
    const { queue, timers } = setup();
    const order: string[] = [];
    const gate = deferred();
    queue.run(
      async (key) => {
        order.push(key);
        await gate.promise;
      },
      { concurrency: 4 },
    );
    for (let i = 0; i < 10_000; i++) queue.addAfter(`ns/refresh-${i}`, 1000);
    await timers.advanceAsync(1000);
    expect(order).toHaveLength(4); // workers busy with refreshes
    queue.add("ns/new-request", "high");
    gate.resolve();
    await flush();
    expect(order.indexOf("ns/new-request")).toBe(4);
  });

  it("upgrades a waiting low-priority key when it is added with high priority", () => {
    const { queue } = setup();
    queue.add("ns/a", "low");
    queue.add("ns/b", "low");
    queue.add("ns/b", "high");
    expect(queue.stats()).toMatchObject({ high: 1, low: 1 });
    expect(drain(queue)).toEqual(["ns/b", "ns/a"]);
  });

  it("does not starve refreshes while new requests keep arriving", () => {
    const { queue } = setup({ maxConsecutiveHigh: 9 });
    for (let i = 0; i < 100; i++) queue.add(`ns/refresh-${i}`, "low");
    const handedOut: Priority[] = [];
    let nextHigh = 0;
    for (let i = 0; i < 1000; i++) {
      queue.add(`ns/new-${nextHigh++}`, "high"); // high work never runs dry
      const item = queue.get()!;
      handedOut.push(item.priority);
      queue.done(item.key);
    }
    const lows = handedOut.filter((p) => p === "low").length;
    expect(lows).toBe(100);
    // Never more than 9 highs in a row while lows waited.
    const firstLows = handedOut.slice(0, 500);
    let streak = 0;
    for (const p of firstLows) {
      streak = p === "high" ? streak + 1 : 0;
      expect(streak).toBeLessThanOrEqual(9);
    }
  });

  it("keeps a failed first sync at high priority for its retry", async () => {
    const { queue, timers } = setup();
    const seen: string[] = [];
    const gate = deferred();
    let failed = false;
    queue.run(
      async (key) => {
        seen.push(key);
        if (key === "ns/new" && !failed) {
          failed = true;
          throw new Error("transient");
        }
        if (key !== "ns/new") await gate.promise;
      },
      { concurrency: 1 },
    );
    queue.add("ns/new", "high");
    await flush();
    for (let i = 0; i < 50; i++) queue.add(`ns/refresh-${i}`, "low");
    await flush(); // the worker is now busy with refresh-0
    await timers.advanceAsync(5); // the 5 ms backoff elapses while 49 refreshes wait
    gate.resolve();
    await flush(20);
    expect(seen.slice(0, 3)).toEqual(["ns/new", "ns/refresh-0", "ns/new"]);
  });
});

describe("WorkQueue: metrics", () => {
  it("reports adds, latency, work duration and retries", async () => {
    const events: string[] = [];
    const metrics: WorkQueueMetrics = {
      added: (p) => events.push(`added:${p}`),
      queueLatency: (ms, p) => events.push(`latency:${p}:${ms}`),
      workDuration: (ms, outcome) => events.push(`work:${outcome}:${ms}`),
      retried: () => events.push("retried"),
    };
    const { queue, timers } = setup({ metrics });
    queue.run(
      async (key) => {
        timers.clock.advance(7);
        if (key === "ns/bad") throw new Error("x");
      },
      { concurrency: 1 },
    );
    queue.add("ns/ok", "high");
    timers.clock.advance(3);
    await flush();
    queue.add("ns/bad", "low");
    await flush();
    expect(events).toEqual([
      "added:high",
      "latency:high:3",
      "work:success:7",
      "added:low",
      "latency:low:0",
      "retried",
      "work:error:7",
    ]);
  });
});

describe("WorkQueue: shutdown", () => {
  it("stops accepting work and lets in-flight handlers finish", async () => {
    const { queue, timers } = setup();
    const gate = deferred();
    let finished = 0;
    queue.run(
      async () => {
        await gate.promise;
        finished++;
      },
      { concurrency: 2 },
    );
    for (let i = 0; i < 5; i++) queue.add(`ns/k${i}`);
    queue.addAfter("ns/later", 1000);
    await flush();
    const shut = queue.shutDown({ drainTimeoutMs: 10_000 });
    queue.add("ns/after-shutdown");
    expect(queue.len()).toBe(0);
    expect(queue.stats().delayed).toBe(0);
    expect(timers.pending).toBe(1); // only the drain deadline
    gate.resolve();
    await expect(shut).resolves.toEqual({ drained: true });
    expect(finished).toBe(2); // the two in flight; queued ones were dropped
  });

  it("aborts the handlers' signal when the drain deadline passes", async () => {
    const { queue, timers } = setup();
    let signal: AbortSignal | undefined;
    queue.run(
      (_key, s) => {
        signal = s;
        return new Promise(() => undefined); // never settles
      },
      { concurrency: 1 },
    );
    queue.add("ns/stuck");
    await flush();
    const shut = queue.shutDown({ drainTimeoutMs: 5000 });
    await timers.advanceAsync(5000);
    await expect(shut).resolves.toEqual({ drained: false });
    expect(signal?.aborted).toBe(true);
  });

  it("resolves at once when nothing is in flight", async () => {
    const { queue } = setup();
    queue.add("ns/a");
    await expect(queue.shutDown()).resolves.toEqual({ drained: true });
    expect(queue.get()).toBeUndefined();
  });
});
