/**
 * The controller's work queue: client-go's workqueue semantics (dedupe, never two workers on one
 * key, re-adds while processing deferred until done, rate-limited retries, delayed requeue) plus
 * two priorities and a worker pool running an async handler.
 *
 * Scale notes (10^5–5·10^5 keys on one replica):
 * - Delayed requeues (each token's refresh time) live in one keyed min-heap with a single timer
 *   armed for the earliest; never one timer per object (delayed-requeues.ts).
 * - Two priorities: first syncs and user-driven changes ("high") are handed out before routine
 *   refreshes ("low"), so a new request is processed in seconds even while 10^5 refreshes are
 *   due. Low is never starved: after `maxConsecutiveHigh` high items in a row while low work
 *   waits, one low item is handed out.
 */
import { setMaxListeners } from "node:events";
import type { Clock } from "../clock.js";
import { systemClock } from "../clock.js";
import { DelayedRequeues } from "./delayed-requeues.js";
import { Fifo } from "./fifo.js";
import { defaultControllerRateLimiter, type RateLimiter } from "./rate-limiter.js";
import { systemTimers, type TimerScheduler } from "./timers.js";
import type {
  KeyHandler,
  Priority,
  RunOptions,
  WorkOutcome,
  WorkQueueMetrics,
  WorkQueueOptions,
  WorkQueueStats,
} from "./work-queue-types.js";

export type * from "./work-queue-types.js";

interface ItemState {
  priority: Priority;
  /** When the pending work was added; queue latency is measured from here. */
  addedAt: number;
  /** Needs processing: waiting in a ready FIFO, or (when processing) deferred until done. */
  dirty: boolean;
  processing: boolean;
  /** Ticket of the live FIFO entry; older entries for this key are stale and skipped. */
  seq: number;
}

const noopMetrics: WorkQueueMetrics = {
  added: () => undefined,
  queueLatency: () => undefined,
  workDuration: () => undefined,
  retried: () => undefined,
};

export class WorkQueue {
  private readonly clock: Clock;
  private readonly timers: TimerScheduler;
  private readonly rateLimiter: RateLimiter;
  private readonly maxConsecutiveHigh: number;
  private readonly metrics: WorkQueueMetrics;
  private readonly onHandlerError: (key: string, err: unknown) => void;

  private readonly items = new Map<string, ItemState>();
  private readonly ready: Record<Priority, Fifo> = { high: new Fifo(), low: new Fifo() };
  private readonly readyCount: Record<Priority, number> = { high: 0, low: 0 };
  private nextSeq = 1;
  private highStreak = 0;

  private readonly delayed: DelayedRequeues;

  private handler: KeyHandler | undefined;
  private concurrency = 0;
  private inFlight = 0;
  private readonly running = new Map<string, number>();
  private pumpScheduled = false;
  private readonly handlerAbort = new AbortController();
  private drainWaiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter(this.clock);
    this.maxConsecutiveHigh = Math.max(1, options.maxConsecutiveHigh ?? 9);
    this.metrics = options.metrics ?? noopMetrics;
    this.onHandlerError = options.onHandlerError ?? (() => undefined);
    this.delayed = new DelayedRequeues(this.clock, this.timers, (key, priority, due) => {
      this.metrics.added(priority);
      // Latency counts from the due time, not from when the requeue was scheduled.
      this.enqueue(key, priority, due);
    });
    // Every in-flight handler's API and token calls listen on this one signal: more than Node's
    // default of 10 listeners is the design, not a leak.
    setMaxListeners(0, this.handlerAbort.signal);
  }

  /**
   * Marks `key` as needing processing now. Deduplicated: a key already waiting is not queued
   * twice (a high add upgrades a waiting low one); a key being processed is processed once more
   * after its handler finishes. Cancels any pending delayed requeue or backoff for the key: the
   * handler runs now and schedules whatever it needs next (level-triggered).
   */
  add(key: string, priority: Priority = "high"): void {
    if (this.shuttingDown) return;
    this.delayed.delete(key);
    this.metrics.added(priority);
    this.enqueue(key, priority, this.clock.now());
  }

  /**
   * Adds `key` after `delayMs` (default priority low: routine refreshes). A key waits at most once:
   * a later due time for a key already waiting is ignored (the earliest wins), an earlier one
   * moves it forward; `delayMs <= 0` is `add`.
   */
  addAfter(key: string, delayMs: number, priority: Priority = "low"): void {
    if (this.shuttingDown) return;
    if (!(delayMs > 0)) {
      this.add(key, priority);
      return;
    }
    this.delayed.schedule(key, this.clock.now() + delayMs, priority);
  }

  /** Re-adds `key` after its backoff: max(per-key exponential, overall token bucket). */
  addRateLimited(key: string, priority: Priority = "low"): void {
    if (this.shuttingDown) return;
    this.addAfter(key, this.rateLimiter.when(key), priority);
  }

  /** Clears `key`'s failure history (the worker does this after every successful handler run). */
  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.retries(key);
  }

  /** Keys ready to hand out (both priorities). */
  len(): number {
    return this.readyCount.high + this.readyCount.low;
  }

  /** True when `key` waits for a delayed requeue; for tests and debugging. */
  isDelayed(key: string): boolean {
    return this.delayed.has(key);
  }

  stats(): WorkQueueStats {
    const now = this.clock.now();
    let longest = 0;
    let unfinished = 0;
    for (const started of this.running.values()) {
      longest = Math.max(longest, now - started);
      unfinished += now - started;
    }
    return {
      high: this.readyCount.high,
      low: this.readyCount.low,
      delayed: this.delayed.size,
      processing: this.running.size,
      longestRunningMs: longest,
      unfinishedMs: unfinished,
    };
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Takes the next key for processing (non-blocking); undefined when nothing is ready or the queue
   * is shutting down. The caller must call `done(key)` when finished. `run` does this for you;
   * this is for custom loops and tests.
   */
  get(): { key: string; priority: Priority } | undefined {
    if (this.shuttingDown) return undefined;
    const useHigh =
      this.readyCount.high > 0 && (this.readyCount.low === 0 || this.highStreak < this.maxConsecutiveHigh);
    const priority: Priority = useHigh ? "high" : "low";
    if (this.readyCount[priority] === 0) return undefined;
    const fifo = this.ready[priority];
    for (let e = fifo.shift(); e; e = fifo.shift()) {
      const st = this.items.get(e.key);
      if (!st || st.seq !== e.seq || !st.dirty || st.processing) continue; // stale ticket
      this.readyCount[priority]--;
      this.highStreak = priority === "high" ? this.highStreak + 1 : 0;
      st.dirty = false;
      st.processing = true;
      this.metrics.queueLatency(this.clock.now() - st.addedAt, priority);
      return { key: e.key, priority };
    }
    return undefined; // unreachable while readyCount is exact
  }

  /** Ends processing of `key`; if it was re-added meanwhile, it is queued again now. */
  done(key: string): void {
    const st = this.items.get(key);
    if (!st?.processing) return;
    st.processing = false;
    if (st.dirty && !this.shuttingDown) this.pushReady(key, st);
    else this.items.delete(key);
  }

  /** Starts `concurrency` workers running `handler`. Call once. */
  run(handler: KeyHandler, options: RunOptions): void {
    if (this.handler) throw new Error("work queue is already running");
    if (!(options.concurrency >= 1)) throw new Error(`concurrency must be >= 1, got ${options.concurrency}`);
    this.handler = handler;
    this.concurrency = Math.floor(options.concurrency);
    this.schedulePump();
  }

  /**
   * Graceful shutdown: stops accepting adds, drops waiting and delayed keys, hands out nothing
   * more, and waits for in-flight handlers. At `drainTimeoutMs` it aborts the handlers' signal and
   * resolves `{ drained: false }`.
   */
  async shutDown(options: { drainTimeoutMs?: number } = {}): Promise<{ drained: boolean }> {
    if (!this.shuttingDown) {
      this.shuttingDown = true;
      this.delayed.clear();
      this.ready.high.clear();
      this.ready.low.clear();
      this.readyCount.high = this.readyCount.low = 0;
      for (const [key, st] of this.items) if (!st.processing) this.items.delete(key);
    }
    if (this.inFlight === 0) return { drained: true };
    const drained = await new Promise<boolean>((resolve) => {
      const cancel = this.timers.schedule(() => resolve(false), options.drainTimeoutMs ?? 30_000);
      this.drainWaiters.push(() => {
        cancel();
        resolve(true);
      });
    });
    if (!drained) this.handlerAbort.abort(new Error("work queue shut down before the handler finished"));
    return { drained };
  }

  private enqueue(key: string, priority: Priority, addedAt: number): void {
    const st = this.items.get(key);
    if (!st) {
      const fresh: ItemState = { priority, addedAt, dirty: true, processing: false, seq: 0 };
      this.items.set(key, fresh);
      this.pushReady(key, fresh);
      return;
    }
    if (st.processing) {
      if (!st.dirty) {
        st.dirty = true;
        st.priority = priority;
        st.addedAt = addedAt;
      } else if (priority === "high") {
        st.priority = "high";
      }
      return;
    }
    // Waiting already: only an upgrade from low to high changes anything.
    if (priority === "high" && st.priority === "low") {
      this.readyCount.low--;
      st.priority = "high";
      this.pushReady(key, st);
    }
  }

  private pushReady(key: string, st: ItemState): void {
    st.dirty = true;
    st.seq = this.nextSeq++;
    this.ready[st.priority].push({ key, seq: st.seq });
    this.readyCount[st.priority]++;
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled || !this.handler) return;
    this.pumpScheduled = true;
    // A microtask, not a direct call: adds come from informer callbacks, and handlers must not
    // start inside them (re-entrancy), while a synchronous burst of adds still pumps once.
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.handler && this.inFlight < this.concurrency) {
      const item = this.get();
      if (!item) return;
      this.inFlight++;
      void this.process(this.handler, item.key, item.priority);
    }
  }

  private async process(handler: KeyHandler, key: string, priority: Priority): Promise<void> {
    const started = this.clock.now();
    this.running.set(key, started);
    let outcome: WorkOutcome = "success";
    try {
      const result = await handler(key, this.handlerAbort.signal);
      this.rateLimiter.forget(key);
      const after = result ? result.requeueAfterMs : undefined;
      if (after !== undefined && after >= 0) {
        outcome = "requeue";
        this.addAfter(key, after, "low");
      }
    } catch (err) {
      outcome = "error";
      this.metrics.retried();
      try {
        this.onHandlerError(key, err);
      } catch {
        // A failing logger must not lose the retry.
      }
      // Retries keep the priority they were processed with: a new request whose first sync
      // fails is still a first sync.
      this.addRateLimited(key, priority);
    } finally {
      this.running.delete(key);
      this.metrics.workDuration(this.clock.now() - started, outcome);
      this.done(key);
      this.inFlight--;
      if (this.inFlight === 0 && this.drainWaiters.length > 0) {
        const waiters = this.drainWaiters;
        this.drainWaiters = [];
        for (const w of waiters) w();
      }
      this.schedulePump();
    }
  }
}
