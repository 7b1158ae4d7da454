/**
 * What one acquire does for a key, and when the controller should come back: pure functions over a
 * snapshot of the key, evaluated in order like cert-manager's policy checks.
 */

/** The fields of a key's state these decisions read. */
export interface KeySnapshot {
  readonly refreshAt: number;
  readonly usableUntil: number;
  readonly inflight: unknown;
  readonly retryAt: number;
  readonly slotAt: number | undefined;
}

export type AcquireStep =
  /** A fresh token is held: hand it out, no call. */
  | "Serve"
  /** Another acquire is calling for this key: wait for its answer (single flight). */
  | "Join"
  /** Backoff or the service's Retry-After forbids a call until retryAt. */
  | "WaitForRetry"
  /** A slot from the global limiter is reserved but not yet due. */
  | "WaitForSlot"
  /** Call the token service (after taking a slot from the global limiter). */
  | "Call";

/**
 * The first rule that fires decides. `force` (the force-refresh annotation) skips freshness only:
 * it still joins a call in flight and still obeys backoff, Retry-After and the global limit.
 */
export function decideAcquire(key: KeySnapshot, now: number, force: boolean): AcquireStep {
  if (!force && now < key.refreshAt && now < key.usableUntil) return "Serve";
  if (key.inflight !== undefined) return "Join";
  if (now < key.retryAt) return "WaitForRetry";
  if (key.slotAt !== undefined && now < key.slotAt) return "WaitForSlot";
  return "Call";
}

/**
 * When the controller should reconcile this key again: when its fresh token becomes due; else when a
 * call is next allowed (backoff, Retry-After, reserved slot), or earlier when the token still held
 * stops being usable, so that status can say so at that moment.
 */
export function nextAttemptAt(key: KeySnapshot, now: number): number {
  if (now < key.refreshAt && now < key.usableUntil) return Math.min(key.refreshAt, key.usableUntil);
  let callableAt = Math.max(now, key.retryAt, key.slotAt ?? Number.NEGATIVE_INFINITY);
  if (now < key.usableUntil) callableAt = Math.min(callableAt, key.usableUntil);
  return callableAt;
}
