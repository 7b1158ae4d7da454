/**
 * The apptoken.io/force-refresh annotation as a decision (cert-manager style: plain functions).
 * A person sets any new value on the request; the value is handled once the Secret holds a token
 * whose call started after this process first saw the value, and is then recorded on the Secret so
 * that a restarted operator does not act on it again.
 *
 * Forced calls are coalesced per cache key: at most one per `--force-refresh-min-interval`. A
 * script or a GitOps loop rewriting the annotation every second would otherwise make a call per
 * value, which Entra ID answers with loop detection (AADSTS50196) for the whole key. A value set
 * while the key's last forced call is younger than the interval waits for the interval's end; the
 * one token fetched then satisfies every value set meanwhile, on every request sharing the key.
 */
import type { Outcome } from "./outcomes.js";
import { iso } from "./target-secret.js";

export const DEFAULT_FORCE_REFRESH_MIN_INTERVAL_MS = 30_000;

export interface ForceRefreshFacts {
  /** The request's annotation value. */
  wanted: string | undefined;
  /** The value recorded on the target Secret (handled by some earlier process). */
  recordedOnSecret: string | undefined;
  /** The value this process already handled (its Secret write may have failed). */
  handledHere: string | undefined;
}

/** What the cache knows about the request's key, and the clock. Times are epoch ms. */
export interface ForceKeyFacts {
  /** When this process first saw `wanted` on the request. */
  seenAt: number | undefined;
  /** When the call that fetched the key's held token started; undefined if unknown (seeded). */
  fetchedAt: number | undefined;
  /** When the key's last forced call started (any request sharing the key); undefined if none. */
  forcedAt: number | undefined;
  /** --force-refresh-min-interval; 0 turns coalescing off. */
  minIntervalMs: number;
  now: number;
}

export type ForceDecision =
  /** Nothing to force; `handled` is a value the held token satisfies (record it), if any. */
  | { action: "none"; handled: string | undefined }
  /** Ask the cache for a new token regardless of freshness. */
  | { action: "call" }
  /** The key was forced less than the interval ago: look again at `until`, then call. */
  | { action: "wait"; until: number };

/** Whether the annotation holds a value that neither the Secret nor this process has handled. */
export function forcePending(f: ForceRefreshFacts): boolean {
  return f.wanted !== undefined && f.wanted !== f.recordedOnSecret && f.wanted !== f.handledHere;
}

/** The first rule that fires decides. */
export function forceDecision(f: ForceRefreshFacts & ForceKeyFacts): ForceDecision {
  if (!forcePending(f)) return { action: "none", handled: undefined };
  // Fetched after the value was seen (by this request, another on the key, or a routine refresh).
  if (f.fetchedAt !== undefined && f.seenAt !== undefined && f.fetchedAt >= f.seenAt)
    return { action: "none", handled: f.wanted };
  if (f.minIntervalMs <= 0 || f.forcedAt === undefined) return { action: "call" };
  const until = f.forcedAt + f.minIntervalMs;
  return f.now < until ? { action: "wait", until } : { action: "call" };
}

/** When this process first saw the value `wanted`: kept while the value stays, restarted when it changes. */
export function firstSeen(
  previous: { value: string; at: number } | undefined,
  wanted: string | undefined,
  now: number,
): { value: string; at: number } | undefined {
  if (wanted === undefined) return undefined;
  return previous?.value === wanted ? previous : { value: wanted, at: now };
}

/** The value the Secret should record after this reconcile. */
export function forceToRecord(f: ForceRefreshFacts): string | undefined {
  return f.wanted !== undefined && f.wanted === f.handledHere
    ? f.wanted
    : (f.recordedOnSecret ?? f.handledHere);
}

/** Longest annotation value quoted in a condition message (annotation values may be long). */
const QUOTED_VALUE_MAX = 64;

/**
 * A value waiting for the interval's end: Ready says when the forced call will be made, and the
 * request is looked at again then (or earlier, when the key's own schedule says so).
 */
export function withForceWait(o: Outcome, wanted: string, until: number, now: number): Outcome {
  const value = wanted.length > QUOTED_VALUE_MAX ? `${wanted.slice(0, QUOTED_VALUE_MAX)}...` : wanted;
  const note =
    `force-refresh ${JSON.stringify(value)} waits for the next forced call at ${iso(until)} ` +
    "(at most one per token per --force-refresh-min-interval)";
  const requeue = Math.max(0, until - now);
  return {
    ...o,
    ready: { ...o.ready, message: `${o.ready.message}; ${note}` },
    requeueAfterMs: o.requeueAfterMs === undefined ? requeue : Math.min(o.requeueAfterMs, requeue),
  };
}
