/**
 * How a token becomes a key's entry, from a call's answer or from a Secret after a restart, and the
 * time arithmetic that goes with it: refreshAt from the schedule, usableUntil from the expiry minus
 * the clock-skew allowance. Kept to the key's own fields; the cache's counters are the caller's.
 */
import { TransientError } from "../identity/errors.js";
import type { TokenAcquisitionError } from "../identity/errors.js";
import { newKeyState } from "./key-state.js";
import type { KeyState } from "./key-state.js";
import { latestRefreshAt, refreshSchedule } from "./refresh-schedule.js";
import type { CachedToken, TokenResponse } from "./token-response.js";

/** A token read back from a target Secret after a restart. */
export interface PersistedToken {
  accessToken: string;
  tokenType: string;
  issuedAt: number;
  expiresAt: number;
  refreshAt: number;
}

export interface SeedEntry {
  keyId: string;
  token: PersistedToken;
}

export interface SeedReport {
  /** Seeded and fresh: no call until refreshAt. */
  fresh: number;
  /** Seeded but already due (refreshAt passed, or within the 5-minute floor): served while usable, refreshed on first acquire. */
  due: number;
  /** Not seeded: expired, malformed, or older than the token the cache already holds. */
  skipped: number;
}

/**
 * Stores a new token, or says why the answer cannot be used as one. Clears the key's failure
 * history; its throttle status is the caller's to reset.
 */
export function storeToken(
  key: KeyState,
  response: TokenResponse,
  refreshBeforeMs: number | undefined,
  now: number,
  skewMs: number,
  random: () => number,
): TokenAcquisitionError | undefined {
  const { accessToken, tokenType, issuedAt, expiresAt, refreshIn } = response;
  if (typeof accessToken !== "string" || accessToken === "" || typeof tokenType !== "string") {
    return new TransientError("the token service's answer has no access token", {
      reason: "UnusableTokenResponse",
    });
  }
  if (!Number.isFinite(issuedAt) || !Number.isFinite(expiresAt) || expiresAt - skewMs <= now) {
    return new TransientError("the token service's answer expires before it could be used", {
      reason: "UnusableTokenResponse",
    });
  }
  const draw = random();
  const plan = refreshSchedule({ issuedAt, expiresAt, refreshIn, refreshBeforeMs }, () => draw);
  key.token = { accessToken, tokenType, issuedAt, expiresAt, refreshAt: plan.refreshAt };
  key.fromSharedTier = response.source === "SharedCache";
  key.refreshAt = plan.refreshAt;
  key.usableUntil = expiresAt - skewMs;
  key.refreshIn = refreshIn;
  key.jitterDraw = draw;
  key.refreshBeforeMs = refreshBeforeMs;
  key.schedule = "Computed";
  key.consecutiveFailures = 0;
  key.streakKind = undefined;
  key.streak = 0;
  key.lastError = undefined;
  key.retryAt = Number.NEGATIVE_INFINITY;
  return undefined;
}

/** A changed refreshBefore moves the held token's refreshAt, keeping its jitter draw. */
export function adoptRefreshBefore(key: KeyState, refreshBeforeMs: number | undefined): void {
  key.refreshBeforeMs = refreshBeforeMs;
  const token = key.token;
  if (token === undefined || key.schedule === "Adopted") return;
  const draw = key.jitterDraw;
  const plan = refreshSchedule(
    { issuedAt: token.issuedAt, expiresAt: token.expiresAt, refreshIn: key.refreshIn, refreshBeforeMs },
    () => draw,
  );
  replaceRefreshAt(key, token, plan.refreshAt);
}

export function replaceRefreshAt(key: KeyState, token: CachedToken, refreshAt: number): void {
  key.token = { ...token, refreshAt };
  key.refreshAt = refreshAt;
  key.hit = undefined;
}

/** TokenCache.seed: the Secrets' tokens into `keys`, as of `now`. */
export function seedKeys(
  keys: Map<string, KeyState>,
  entries: Iterable<SeedEntry>,
  now: number,
  skewMs: number,
  random: () => number,
): SeedReport {
  const report: SeedReport = { fresh: 0, due: 0, skipped: 0 };
  for (const { keyId, token } of entries) {
    const { accessToken, tokenType, issuedAt, expiresAt } = token;
    const usableUntil = expiresAt - skewMs;
    const existing = keys.get(keyId);
    if (
      typeof accessToken !== "string" ||
      accessToken === "" ||
      typeof tokenType !== "string" ||
      !Number.isFinite(expiresAt) ||
      now >= usableUntil ||
      (existing?.token !== undefined && existing.token.expiresAt >= expiresAt)
    ) {
      report.skipped++;
      continue;
    }
    const sane = Number.isFinite(issuedAt) && issuedAt < expiresAt;
    const start = sane ? issuedAt : Math.min(now, expiresAt);
    const latest = sane ? latestRefreshAt(issuedAt, expiresAt) : expiresAt - 5 * 60_000;
    let refreshAt = Number.isFinite(token.refreshAt)
      ? token.refreshAt
      : refreshSchedule({ issuedAt: start, expiresAt }, random).refreshAt;
    refreshAt = Math.min(refreshAt, latest);
    if (now >= refreshAt) {
      refreshAt = now;
      report.due++;
    } else report.fresh++;

    const key = existing ?? newKeyState(keyId, now);
    key.token = { accessToken, tokenType, issuedAt: start, expiresAt, refreshAt };
    key.refreshAt = refreshAt;
    key.usableUntil = usableUntil;
    key.refreshIn = undefined;
    key.fetchedAt = Number.NEGATIVE_INFINITY;
    key.schedule = "Adopted";
    key.lastUsedAt = now;
    // A slot reserved while the key had no token is not needed for this one; when it is next due
    // it takes a fresh slot rather than a stale one the limiter has long counted.
    key.slotAt = undefined;
    key.hit = undefined;
    if (existing === undefined) keys.set(keyId, key);
  }
  return report;
}
