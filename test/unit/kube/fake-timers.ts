import type { CancelTimer, TimerScheduler } from "../../../src/kube/timers.js";
import { FakeClock } from "../../support/fake-clock.js";

interface Pending {
  id: number;
  due: number;
  callback: () => void;
}

/** Timers driven by a FakeClock: nothing fires until the test advances time. */
export class FakeTimers implements TimerScheduler {
  private pendingTimers: Pending[] = [];
  private nextId = 1;
  /** Every schedule() call ever made (to show one timer serves many keys). */
  scheduled = 0;

  constructor(readonly clock: FakeClock = new FakeClock()) {}

  schedule(callback: () => void, delayMs: number): CancelTimer {
    this.scheduled++;
    const t: Pending = { id: this.nextId++, due: this.clock.now() + Math.max(0, delayMs), callback };
    this.pendingTimers.push(t);
    return () => {
      this.pendingTimers = this.pendingTimers.filter((p) => p !== t);
    };
  }

  /** Timers scheduled and not yet fired or cancelled. */
  get pending(): number {
    return this.pendingTimers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order (each at its own due time). */
  advance(ms: number): void {
    const target = this.clock.now() + ms;
    for (;;) {
      const next = this.nextDue(target);
      if (!next) break;
      this.pendingTimers = this.pendingTimers.filter((p) => p !== next);
      if (next.due > this.clock.now()) this.clock.set(next.due);
      next.callback();
    }
    this.clock.set(target);
  }

  /** Like advance, but lets promise chains run after each timer (for async code under test). */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    await flush();
    for (;;) {
      const next = this.nextDue(target);
      if (!next) break;
      this.pendingTimers = this.pendingTimers.filter((p) => p !== next);
      if (next.due > this.clock.now()) this.clock.set(next.due);
      next.callback();
      await flush();
    }
    this.clock.set(target);
    await flush();
  }

  private nextDue(limit: number): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pendingTimers) {
      if (p.due <= limit && (!best || p.due < best.due || (p.due === best.due && p.id < best.id))) best = p;
    }
    return best;
  }
}

/** Lets pending promise callbacks and microtasks run. */
export async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
