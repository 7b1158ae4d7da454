/**
 * An acquire's answer, read off its key's state at the moment it is given: the token only while it
 * is usable, and always a time to come back (nextAttemptAt), so that the controller never has to
 * look at the key itself. The cache's counters are the caller's.
 */
import type { TokenAcquisitionError } from "../identity/errors.js";
import { nextAttemptAt } from "./acquire-decision.js";
import type { AcquireOutcome, AcquireResult, DeferReason } from "./acquire-result.js";
import type { KeyState } from "./key-state.js";

/** The settled answer every hit gets until the key's state changes; kept on the key. */
export function buildHit(key: KeyState, now: number): Promise<AcquireResult> {
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

export function resultAfterCall(
  key: KeyState,
  outcome: AcquireOutcome,
  called: boolean,
  error: TokenAcquisitionError | undefined,
  now: number,
): AcquireResult {
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

export function deferredResult(key: KeyState, deferredBy: DeferReason, now: number): AcquireResult {
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
