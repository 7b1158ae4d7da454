import type { FailureKind } from "../identity/errors.js";

/**
 * When a key that just failed may call the token service again, as a pure function of
 * (kind, failures in a row, time of failure, what the service said, how long the held token lasts)
 * and one random draw — cert-manager's "backoff is a function of attempts and last failure time".
 */

export interface BackoffPolicy {
  /** Delay before the first retry, before jitter. */
  readonly baseMs: number;
  /** Ceiling of the doubling, before jitter. */
  readonly maxMs: number;
}

/**
 * 5xx, timeouts, resets: probably over in seconds, so start at 2 s; cap at 5 min so that a long
 * outage is still probed a dozen times an hour per key (and the expiry cap below usually binds first).
 */
export const TRANSIENT_BACKOFF: BackoffPolicy = { baseMs: 2_000, maxMs: 5 * 60_000 };

/**
 * Bad secret, unknown app or tenant, missing consent: nothing changes until a person acts. Changes we
 * can see (the spec, the credential Secret) retry at once through TokenCache.resetBackoff/invalidate,
 * so the slow retry only serves fixes we cannot see (consent granted or a secret added in the
 * portal): about 5 minutes first, so such a fix shows quickly, doubling to a 1 h ceiling, which keeps
 * a broken key to ~24 calls a day and spares the app registration Entra's loop detection.
 */
export const PERMANENT_BACKOFF: BackoffPolicy = { baseMs: 5 * 60_000, maxMs: 60 * 60_000 };

/**
 * Throttled without a time (AADSTS50196 loop detection, a 429 without Retry-After): the service wants
 * us gone for a while and did not say how long; start at a minute.
 */
export const UNTIMED_THROTTLE_BACKOFF: BackoffPolicy = { baseMs: 60_000, maxMs: 15 * 60_000 };

/** No key calls again sooner than this after a failure, whatever the caps say: no hot loops. */
export const MIN_RETRY_DELAY_MS = 1_000;

export interface BackoffPolicies {
  transient: BackoffPolicy;
  permanent: BackoffPolicy;
  untimedThrottle: BackoffPolicy;
}

export const DEFAULT_BACKOFF_POLICIES: BackoffPolicies = {
  transient: TRANSIENT_BACKOFF,
  permanent: PERMANENT_BACKOFF,
  untimedThrottle: UNTIMED_THROTTLE_BACKOFF,
};

/**
 * Exponential delay with "equal jitter": d = min(max, base·2^(attempt−1)), result in [d/2, d).
 * Half of it is random so that 10^5 keys failing in the same outage do not retry in lockstep, and
 * half is fixed so that, while it is still doubling, the delay never shrinks from one attempt to the next.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 52));
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  return Math.floor(ceiling / 2 + (ceiling / 2) * random());
}

export interface FailureFacts {
  kind: FailureKind;
  /** Failures of this kind in a row for this key, this one included (≥ 1). */
  streak: number;
  failedAt: number;
  /** Throttled only: the time named by Retry-After, when the service named one. */
  retryAfterAt?: number | undefined;
  /** Until when the token the key still holds may be served; undefined when it holds none. */
  usableUntil?: number | undefined;
}

/**
 * The earliest time the key may call again.
 * - Throttled with a named time: exactly that time (never earlier, no jitter: the service's word).
 * - Throttled without one: UNTIMED_THROTTLE_BACKOFF.
 * - Transient: TRANSIENT_BACKOFF, but never later than halfway between the failure and the end of the
 *   held token's validity, so retries keep landing (closer and closer) before consumers see it expire.
 * - Permanent: PERMANENT_BACKOFF; no expiry cap, since retrying sooner cannot fix it.
 * Always at least MIN_RETRY_DELAY_MS after the failure.
 */
export function nextRetryAt(
  facts: FailureFacts,
  random: () => number,
  policies: BackoffPolicies = DEFAULT_BACKOFF_POLICIES,
): number {
  const earliest = facts.failedAt + MIN_RETRY_DELAY_MS;
  switch (facts.kind) {
    case "Throttled":
      if (facts.retryAfterAt !== undefined && Number.isFinite(facts.retryAfterAt)) {
        return Math.max(facts.retryAfterAt, earliest);
      }
      return Math.max(
        facts.failedAt + backoffDelay(facts.streak, policies.untimedThrottle, random),
        earliest,
      );
    case "Permanent":
      return Math.max(facts.failedAt + backoffDelay(facts.streak, policies.permanent, random), earliest);
    case "Transient": {
      let retryAt = facts.failedAt + backoffDelay(facts.streak, policies.transient, random);
      if (facts.usableUntil !== undefined && facts.usableUntil > facts.failedAt) {
        retryAt = Math.min(retryAt, facts.failedAt + Math.floor((facts.usableUntil - facts.failedAt) / 2));
      }
      return Math.max(retryAt, earliest);
    }
  }
}
