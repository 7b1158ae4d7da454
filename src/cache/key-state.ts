import type { FailureKind, TokenAcquisitionError } from "../identity/errors.js";
import type { AcquireResult } from "./acquire-result.js";
import type { CachedToken } from "./token-response.js";

/** What status.throttle.state shows: why a key is not calling the token service. */
export type ThrottleState = "None" | "Backoff" | "Throttled";

/** The last failure of a key as status shows it: class, reason, AADSTS code, readable message. */
export interface FailureSummary {
  readonly kind: FailureKind;
  readonly reason: string;
  readonly aadsts: string | undefined;
  readonly message: string;
}

/** status.throttle for one key. `retryAt`: no call for this key before then (epoch ms). */
export interface ThrottleStatus {
  readonly state: ThrottleState;
  readonly retryAt: number | undefined;
  readonly consecutiveFailures: number;
  readonly lastError: FailureSummary | undefined;
}

export const NO_THROTTLE: ThrottleStatus = Object.freeze({
  state: "None",
  retryAt: undefined,
  consecutiveFailures: 0,
  lastError: undefined,
});

/**
 * Where refreshAt came from. "Computed": from refreshSchedule with this key's own draw, so a new
 * refreshBefore can recompute it. "Adopted": given from outside (a persisted Secret, or invalidate
 * making the token due at once), and kept until the next token arrives.
 */
export type ScheduleOrigin = "Computed" | "Adopted";

/**
 * Everything the cache knows about one key. Mutable and private to TokenCache; numbers use ±Infinity
 * instead of undefined for "none" so the hit test is plain comparisons. The fields the hit path reads
 * come first: V8 lays them out in this order, so a hit touches the object's first cache lines only
 * (at 500 000 keys a hit costs what it misses in the CPU cache, not what it computes).
 */
export interface KeyState {
  /** The answer to a hit, settled, built once per change of state and handed to every hit until the next. */
  hit: Promise<AcquireResult> | undefined;
  /** token.refreshAt, or −∞ without a token. */
  refreshAt: number;
  /** token.expiresAt minus the clock-skew allowance, or −∞: never serve at or after this. */
  usableUntil: number;
  /** The refreshBefore the schedule was computed for. */
  refreshBeforeMs: number | undefined;
  /** The call in flight for this key (single flight); resolves to its error, or undefined on success. */
  inflight: Promise<TokenAcquisitionError | undefined> | undefined;
  /** No call before this (backoff or Retry-After); −∞ when free. */
  retryAt: number;
  /** A slot reserved from the global limiter and not yet used. */
  slotAt: number | undefined;
  lastUsedAt: number;
  hits: number;

  readonly keyId: string;
  /** cacheKeyHash(keyId), computed once when the first holder takes the key. */
  keyHash: string | undefined;
  token: CachedToken | undefined;
  /** The service's refresh_in for the held token, kept to recompute refreshAt. */
  refreshIn: number | undefined;
  /** The random draw behind the held token's jitter, kept so a recomputation does not move it. */
  jitterDraw: number;
  schedule: ScheduleOrigin;
  consecutiveFailures: number;
  /** Failures of the same kind in a row: the exponent of that kind's backoff. */
  streakKind: FailureKind | undefined;
  streak: number;
  lastError: TokenAcquisitionError | undefined;
  throttle: ThrottleStatus;
  misses: number;
  /**
   * When the call that fetched the held token started (clock ms), or −∞ for a token seeded from a
   * Secret: a force-refresh value seen before this is satisfied by the held token.
   */
  fetchedAt: number;
  /** When the last call made because of `force` that produced a token started, or −∞. */
  forcedAt: number;
  /**
   * The holders (requests) using this key: the one record of which request holds which key (the
   * cache's `holders` Map is its inverse). A request fans a new token out to the others here.
   * Created with the first holder: a key acquired without one carries no empty Set.
   */
  holders: Set<string> | undefined;
  /** The last holder let go while a call was in flight: evict when it lands. */
  released: boolean;
  evicted: boolean;
  /** The held token was read from the fleet's shared tier, not fetched by this process. */
  fromSharedTier: boolean;
}

export function newKeyState(keyId: string, now: number): KeyState {
  return {
    hit: undefined,
    refreshAt: Number.NEGATIVE_INFINITY,
    usableUntil: Number.NEGATIVE_INFINITY,
    refreshBeforeMs: undefined,
    inflight: undefined,
    retryAt: Number.NEGATIVE_INFINITY,
    slotAt: undefined,
    lastUsedAt: now,
    hits: 0,
    keyId,
    keyHash: undefined,
    token: undefined,
    refreshIn: undefined,
    jitterDraw: 0,
    schedule: "Computed",
    consecutiveFailures: 0,
    streakKind: undefined,
    streak: 0,
    lastError: undefined,
    throttle: NO_THROTTLE,
    misses: 0,
    fetchedAt: Number.NEGATIVE_INFINITY,
    forcedAt: Number.NEGATIVE_INFINITY,
    holders: undefined,
    released: false,
    evicted: false,
    fromSharedTier: false,
  };
}

export function summarizeFailure(error: TokenAcquisitionError): FailureSummary {
  return { kind: error.kind, reason: error.reason, aadsts: error.aadsts, message: error.message };
}
