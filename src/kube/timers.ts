import type { Clock } from "../clock.js";

/** Cancels a scheduled callback; calling it after the callback ran (or twice) does nothing. */
export type CancelTimer = () => void;

/**
 * Where src/kube schedules its callbacks. Injected (with a Clock) so that the queue's delayed
 * requeue, the reflector's backoff and the leader's renew deadline are unit-tested by moving a fake
 * clock instead of sleeping.
 */
export interface TimerScheduler {
  schedule(callback: () => void, delayMs: number): CancelTimer;
}

/** Node's setTimeout stores delays as a signed 32-bit int; anything larger fires at once. */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

export const systemTimers: TimerScheduler = {
  schedule(callback, delayMs) {
    const t = setTimeout(callback, Math.min(Math.max(0, delayMs), MAX_TIMER_DELAY_MS));
    // Timers never keep the process alive on their own: open watches and servers do that.
    t.unref();
    return () => clearTimeout(t);
  },
};

/**
 * A clock that does not jump when NTP or an operator sets the wall clock. The leader elector judges
 * lease expiry with it: a wall-clock jump must not let a standby take a lease early.
 */
export const monotonicClock: Clock = { now: () => performance.timeOrigin + performance.now() };

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
export function sleep(timers: TimerScheduler, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      cancel();
      resolve();
    };
    const cancel = timers.schedule(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
