/**
 * What a failed call does to its key. Whatever the fetch threw is first made one of the identity
 * module's classes, because the class (its kind) picks the backoff policy and counts the streak: a
 * failure of the same kind as the last one lengthens the wait, another kind starts over.
 */
import { ThrottledError, TransientError, isTokenAcquisitionError } from "../identity/errors.js";
import type { TokenAcquisitionError } from "../identity/errors.js";
import { nextRetryAt } from "./backoff.js";
import type { BackoffPolicies } from "./backoff.js";
import { summarizeFailure } from "./key-state.js";
import type { KeyState, ThrottleStatus } from "./key-state.js";

/**
 * Counts the failure against the key and sets when it may call again; returns the throttle status
 * the key shows from now on.
 */
export function noteFailure(
  key: KeyState,
  error: TokenAcquisitionError,
  now: number,
  random: () => number,
  policies: BackoffPolicies,
): ThrottleStatus {
  key.consecutiveFailures++;
  if (key.streakKind === error.kind) key.streak++;
  else {
    key.streakKind = error.kind;
    key.streak = 1;
  }
  key.retryAt = nextRetryAt(
    {
      kind: error.kind,
      streak: key.streak,
      failedAt: now,
      retryAfterAt: error instanceof ThrottledError ? error.retryAt : undefined,
      usableUntil: now < key.usableUntil ? key.usableUntil : undefined,
    },
    random,
    policies,
  );
  key.lastError = error;
  return {
    state: error.kind === "Throttled" ? "Throttled" : "Backoff",
    retryAt: key.retryAt,
    consecutiveFailures: key.consecutiveFailures,
    lastError: summarizeFailure(error),
  };
}

/**
 * Anything that is not one of the identity module's classes (a bug, an unexpected library error) is
 * treated as transient, so the key backs off instead of retrying on every reconcile. Only the error's
 * class name is surfaced: its message was not written with secrets in mind.
 */
export function asTokenError(e: unknown): TokenAcquisitionError {
  if (isTokenAcquisitionError(e)) return e;
  const name = e instanceof Error ? e.name : typeof e;
  return new TransientError(`unexpected failure while requesting a token (${name})`, {
    reason: "UnexpectedError",
    cause: e,
  });
}

/** The key's failures are forgotten: no backoff, no streak, no last error (its throttle is the caller's). */
export function clearFailures(key: KeyState): void {
  key.retryAt = Number.NEGATIVE_INFINITY;
  key.consecutiveFailures = 0;
  key.streakKind = undefined;
  key.streak = 0;
  key.lastError = undefined;
}
