/**
 * The work queue's contract with the controller: what a handler is and returns, what the queue
 * reports, how it is configured. Apart from the queue so that its parts (delayed-requeues.ts) can
 * name a priority without importing the queue itself.
 */
import type { Clock } from "../clock.js";
import type { RateLimiter } from "./rate-limiter.js";
import type { TimerScheduler } from "./timers.js";

export type Priority = "high" | "low";

/** What a handler returns: nothing (done until the next event) or when to look at the key again. */
export type HandlerResult = { requeueAfterMs?: number } | void;

/**
 * Processes one key. Throwing means "retry with backoff" (per-key exponential plus the overall
 * bucket); returning `requeueAfterMs` schedules a low-priority requeue and clears the key's
 * failure history. `signal` aborts when shutdown's drain deadline passes.
 */
export type KeyHandler = (key: string, signal: AbortSignal) => Promise<HandlerResult>;

export type WorkOutcome = "success" | "requeue" | "error";

/** Counters and histograms (the controller wires them to prom-client); gauges read `stats()` at scrape time. */
export interface WorkQueueMetrics {
  added(priority: Priority): void;
  /** Time from add (or due time, for delayed adds) until a worker took the key. */
  queueLatency(ms: number, priority: Priority): void;
  workDuration(ms: number, outcome: WorkOutcome): void;
  retried(): void;
}

export interface WorkQueueStats {
  /** Keys ready to be handed out, by priority. */
  high: number;
  low: number;
  /** Keys waiting for their due time (delayed requeues and backoffs). */
  delayed: number;
  processing: number;
  /** How long the oldest in-flight handler has been running (0 when idle): a stuck-worker signal. */
  longestRunningMs: number;
  /** Sum of how long every in-flight handler has been running (client-go's unfinished work). */
  unfinishedMs: number;
}

export interface WorkQueueOptions {
  clock?: Clock;
  timers?: TimerScheduler;
  /** Default: controller-runtime's max(5 ms -> 1000 s per key, token bucket); see rate-limiter.ts. */
  rateLimiter?: RateLimiter;
  /** Anti-starvation: after this many high items in a row while low work waits, one low item goes. Default 9. */
  maxConsecutiveHigh?: number;
  metrics?: WorkQueueMetrics;
  /** Called when a handler throws, before the key is re-added with backoff (for logging). */
  onHandlerError?: (key: string, err: unknown) => void;
}

export interface RunOptions {
  /** Number of handlers running at once (--max-concurrent-reconciles). */
  concurrency: number;
}
