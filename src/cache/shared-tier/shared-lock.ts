/**
 * The one-caller-per-fleet rule for one key, against the SharedStore port: the first operator to
 * miss takes a short lock and calls; the others poll for its result and take the lock over when
 * it lapses (its holder died or stalled). Pure control flow: time comes from the injected clock and
 * waiting from the injected sleep, so the whole dance runs in unit tests without a server.
 */
import type { Clock } from "../../clock.js";

export interface LockTimings {
  /** How long a lock holds without being released: a token call's worst case plus margin. */
  lockTtlMs: number;
  /** How long a loser waits for the winner's token before calling itself. */
  maxWaitMs: number;
  /** Between two looks at the store while waiting. */
  pollMs: number;
}

export const DEFAULT_LOCK_TIMINGS: LockTimings = { lockTtlMs: 4_000, maxWaitMs: 5_000, pollMs: 50 };

/** What a waiting operator found on one look. */
export type Look<T> =
  /** The winner's result (or a throttle verdict): stop waiting. */
  | { kind: "Found"; value: T }
  /** Nothing usable yet. */
  | { kind: "Nothing" };

export interface LockedCallSteps<T> {
  /** SET NX PX; true when this caller holds the lock now. Rejects when the store is unreachable. */
  tryLock(): Promise<boolean>;
  /** The store, read again while waiting. Rejects when the store is unreachable. */
  look(): Promise<Look<T>>;
  /** Called when this caller holds the lock (or gave up waiting, `locked` false): the real call. */
  call(locked: boolean): Promise<T>;
  /** Lets go of a lock this caller took but does not need (best effort, never rejects). */
  release(): Promise<void>;
}

export type LockedCallOutcome =
  /** Won the lock at once and called. */
  | "Won"
  /** Waited, and the winner's result came. */
  | "Waited"
  /** Waited, the lock lapsed, took it over and called. */
  | "TookOver"
  /** Took the lock just after the previous holder released it, and found its result: no call. */
  | "LateHit"
  /** Waited in vain for maxWaitMs and called without the lock. */
  | "GaveUp";

/**
 * Runs `steps` to one result. Store failures reject out of here (the tier then calls on its own);
 * `call` failures reject as they are.
 */
export async function lockedCall<T>(
  steps: LockedCallSteps<T>,
  clock: Clock,
  sleep: (ms: number) => Promise<void>,
  timings: LockTimings = DEFAULT_LOCK_TIMINGS,
  onOutcome?: (outcome: LockedCallOutcome) => void,
): Promise<T> {
  if (await steps.tryLock()) return callOrLateHit(steps, "Won", onOutcome);
  const deadline = clock.now() + timings.maxWaitMs;
  for (;;) {
    const left = deadline - clock.now();
    if (left <= 0) {
      onOutcome?.("GaveUp");
      return steps.call(false);
    }
    await sleep(Math.min(timings.pollMs, left));
    const seen = await steps.look();
    if (seen.kind === "Found") {
      onOutcome?.("Waited");
      return seen.value;
    }
    if (await steps.tryLock()) return callOrLateHit(steps, "TookOver", onOutcome);
  }
}

/**
 * A free lock does not mean nobody called: its holder may have published and released it between
 * our last look and our SET NX. One more look under the lock tells; without it every such race
 * is a second call for the key.
 */
async function callOrLateHit<T>(
  steps: LockedCallSteps<T>,
  outcome: "Won" | "TookOver",
  onOutcome: ((outcome: LockedCallOutcome) => void) | undefined,
): Promise<T> {
  let seen: Look<T>;
  try {
    seen = await steps.look();
  } catch (e) {
    await steps.release();
    throw e;
  }
  if (seen.kind === "Found") {
    await steps.release();
    onOutcome?.("LateHit");
    return seen.value;
  }
  onOutcome?.(outcome);
  return steps.call(true);
}
