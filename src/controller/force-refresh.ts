/**
 * The apptoken.io/force-refresh annotation as a decision (cert-manager style: a plain function).
 * A person sets any new value on the request; the value is handled once a new token was obtained
 * for it, and recorded on the Secret so that a restarted operator does not act on it again.
 */
import type { AcquireOutcome } from "../cache/index.js";

export interface ForceRefreshFacts {
  /** The request's annotation value. */
  wanted: string | undefined;
  /** The value recorded on the target Secret (handled by some earlier process). */
  recordedOnSecret: string | undefined;
  /** The value this process already fetched a token for (its Secret write may have failed). */
  handledHere: string | undefined;
}

/** Whether this reconcile must ask the cache for a new token regardless of freshness. */
export function mustForce(f: ForceRefreshFacts): boolean {
  return f.wanted !== undefined && f.wanted !== f.recordedOnSecret && f.wanted !== f.handledHere;
}

/** Whether the acquire that was forced produced a new token, so the value counts as handled. */
export function forceHandledBy(forced: boolean, outcome: AcquireOutcome): boolean {
  return forced && (outcome === "Fetched" || outcome === "Shared");
}

/** The value the Secret should record after this reconcile. */
export function forceToRecord(f: ForceRefreshFacts): string | undefined {
  return f.wanted !== undefined && f.wanted === f.handledHere
    ? f.wanted
    : (f.recordedOnSecret ?? f.handledHere);
}
