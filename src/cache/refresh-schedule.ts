/**
 * When a token should be replaced, as a pure function of the token's times, the
 * user's refreshBefore and one random draw. No clock: the answer depends only on the token.
 */

/** Never refresh later than this before expiry (for tokens long enough to allow it). */
export const REFRESH_FLOOR_MS = 5 * 60_000;
/** Jitter moves refreshAt earlier by up to this fraction of the lifetime... */
export const JITTER_FRACTION = 0.05;
/** ...but never by more than this, so that 24 h tokens are not refreshed an hour early. */
export const MAX_JITTER_MS = 5 * 60_000;

export interface RefreshScheduleInput {
  issuedAt: number;
  expiresAt: number;
  /** The service's refresh_in, seconds after issuedAt. */
  refreshIn?: number | undefined;
  /** The spec's refreshBefore: how long before expiry to refresh, ms. */
  refreshBeforeMs?: number | undefined;
}

/** Which rule set the target before clamping and jitter; for logs, tests and status messages. */
export type RefreshBasis = "RefreshIn" | "RefreshBefore" | "HalfLife";

export interface RefreshPlan {
  refreshAt: number;
  basis: RefreshBasis;
  /** True when the target was later than the floor allows and was pulled back to it. */
  clampedToFloor: boolean;
}

/**
 * The latest moment a token may still be refreshed: 5 minutes before expiry, or, for tokens shorter
 * than 10 minutes, half their lifetime before expiry (a 4-minute token is replaced after 2 minutes,
 * not "1 minute before it was issued").
 */
export function latestRefreshAt(issuedAt: number, expiresAt: number): number {
  const lifetime = expiresAt - issuedAt;
  return expiresAt - Math.min(REFRESH_FLOOR_MS, lifetime / 2);
}

function positiveFinite(n: number | undefined): n is number {
  return n !== undefined && Number.isFinite(n) && n > 0;
}

/**
 * The refresh time of one token.
 *
 * Target: refresh_in after issue when the service sent it; refreshBefore before expiry when the
 * spec sets it; when both are present the earlier wins (refresh_in is the service's "refresh by",
 * refreshBefore the user's "I need this much validity left", and refreshing early satisfies both);
 * with neither, half the lifetime. A refreshBefore as long as the whole lifetime cannot be met and
 * would make every token due the moment it arrives, so it is ignored, as cert-manager ignores a
 * renewBefore longer than the certificate's duration.
 *
 * Then: never later than latestRefreshAt (the 5-minute floor); then moved earlier by a random
 * jitter of up to min(5% of lifetime, 5 min), so that tokens issued in the same second are
 * refreshed over a window, not in a spike; never before issuedAt. Whole milliseconds.
 *
 * `random` returns [0, 1), like Math.random; tests pass a fixed or seeded source.
 */
export function refreshSchedule(input: RefreshScheduleInput, random: () => number): RefreshPlan {
  const { issuedAt, expiresAt } = input;
  const lifetime = expiresAt - issuedAt;
  if (!(lifetime > 0)) {
    // A token without a lifetime is due at once; the cache refuses such answers before they get here.
    return { refreshAt: issuedAt, basis: "HalfLife", clampedToFloor: true };
  }

  let target = Number.POSITIVE_INFINITY;
  let basis: RefreshBasis = "HalfLife";
  if (positiveFinite(input.refreshBeforeMs) && input.refreshBeforeMs < lifetime) {
    target = expiresAt - input.refreshBeforeMs;
    basis = "RefreshBefore";
  }
  if (positiveFinite(input.refreshIn)) {
    const byService = issuedAt + input.refreshIn * 1000;
    if (byService < target) {
      target = byService;
      basis = "RefreshIn";
    }
  }
  if (target === Number.POSITIVE_INFINITY) target = issuedAt + lifetime / 2;

  const latest = latestRefreshAt(issuedAt, expiresAt);
  const clampedToFloor = target > latest;
  if (clampedToFloor) target = latest;

  const jitter = Math.min(lifetime * JITTER_FRACTION, MAX_JITTER_MS) * random();
  const refreshAt = Math.max(issuedAt, Math.floor(target - jitter));
  return { refreshAt, basis, clampedToFloor };
}
