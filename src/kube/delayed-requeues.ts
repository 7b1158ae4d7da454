/**
 * The work queue's keys that are due later: routine refreshes at each token's refresh time, and
 * failed keys after their backoff. At 10^5–5·10^5 keys one timer per key is too many, so they live
 * in one keyed min-heap with a single timer armed for the earliest.
 */
import type { Clock } from "../clock.js";
import { KeyedMinHeap } from "./keyed-heap.js";
import { MAX_TIMER_DELAY_MS, type CancelTimer, type TimerScheduler } from "./timers.js";
import type { Priority } from "./work-queue-types.js";

/** Called for each key whose time has come, with the time it was due. */
export type OnDue = (key: string, priority: Priority, due: number) => void;

export class DelayedRequeues {
  private readonly delayed = new KeyedMinHeap<Priority>();
  private timer: { due: number; cancel: CancelTimer } | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerScheduler,
    private readonly onDue: OnDue,
  ) {}

  get size(): number {
    return this.delayed.size;
  }

  has(key: string): boolean {
    return this.delayed.get(key) !== undefined;
  }

  /** Stops `key` waiting, if it was. */
  delete(key: string): void {
    if (this.delayed.delete(key)) this.armTimer();
  }

  /**
   * `key` is due at `due`. A key waits at most once: a later due time for a key already waiting is
   * ignored (the earliest wins), an earlier one moves it forward; high priority is never lowered.
   */
  schedule(key: string, due: number, priority: Priority): void {
    const found = this.delayed.get(key);
    if (found && found.due <= due) {
      if (priority === "high" && found.value !== "high") this.delayed.set(key, found.due, "high");
      return;
    }
    this.delayed.set(key, due, found?.value === "high" ? "high" : priority);
    this.armTimer();
  }

  /** Drops every waiting key and the timer. */
  clear(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.delayed.clear();
  }

  /** Keeps the single timer armed for the earliest delayed key. */
  private armTimer(): void {
    const head = this.delayed.peek();
    if (!head) {
      this.timer?.cancel();
      this.timer = undefined;
      return;
    }
    if (this.timer && this.timer.due === head.due) return;
    this.timer?.cancel();
    const due = head.due;
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(0, due - this.clock.now()));
    this.timer = { due, cancel: this.timers.schedule(() => this.fireDelayed(), delay) };
  }

  private fireDelayed(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (let head = this.delayed.peek(); head && head.due <= now; head = this.delayed.peek()) {
      this.delayed.pop();
      this.onDue(head.key, head.value, head.due);
    }
    this.armTimer();
  }
}
