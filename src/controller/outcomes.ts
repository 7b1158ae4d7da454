/**
 * What a reconcile concluded, as plain data: Ready, the token facts for status, the Event a person
 * should see and when to look again. Pure functions of the cache's answer and the clock.
 */
import type { AppTokenRequestStatus, TokenSource } from "../api/types.js";
import type { AcquireResult } from "../cache/index.js";
import type { EventType } from "../kube/events.js";
import type { Refusal, RefusalPolicy } from "./checks.js";
import { TOKEN_ISSUED_MESSAGE, type ReadyVerdict, type TokenFacts } from "./status.js";
import { iso } from "./target-secret.js";

/** A force-refresh that could not call yet is looked at again no sooner than this. */
const FORCE_RETRY_FLOOR_MS = 1_000;

export interface Outcome {
  ready: ReadyVerdict;
  token?: TokenFacts | undefined;
  acquire?: AcquireResult | undefined;
  requeueAfterMs?: number | undefined;
  event?: { type: EventType; reason: string; message: string } | undefined;
}

/** A check refused: Ready=False with its reason, and the Event and retry its policy asks for. */
export function refusalOutcome(refusal: Refusal, policy: RefusalPolicy): Outcome {
  const { reason, message } = refusal;
  const eventMessage =
    policy.eventMessageMax === undefined ? message : message.slice(0, policy.eventMessageMax);
  return {
    ready: { status: "False", reason, message },
    event: policy.warn ? { type: "Warning", reason, message: eventMessage } : undefined,
    requeueAfterMs: policy.retryAfterMs,
  };
}

/** The cache had no token to give (failure, throttling, the global limit, or none yet). */
export function noTokenOutcome(result: AcquireResult, now: number): Outcome {
  const err = result.error;
  const retry = result.throttle.retryAt;
  const retryText = retry !== undefined && Number.isFinite(retry) ? `; next attempt at ${iso(retry)}` : "";
  let ready: ReadyVerdict;
  if (err) {
    const reason = err.kind === "Throttled" ? "Throttled" : err.reason;
    ready = { status: "False", reason, message: `${err.message}${retryText}` };
  } else if (result.deferredBy === "RateLimited") {
    ready = {
      status: "False",
      reason: "Pending",
      message: `waiting for a slot under the global limit on calls to the token service (--token-requests-per-second)${retryText}`,
    };
  } else {
    ready = { status: "False", reason: "Pending", message: `no token yet${retryText}` };
  }
  return {
    ready,
    acquire: result,
    requeueAfterMs: Math.max(0, result.nextAttemptAt - now),
    event: err ? { type: "Warning", reason: ready.reason, message: ready.message } : undefined,
  };
}

export function readyWithToken(result: AcquireResult, expiresAt: number, source: TokenSource): ReadyVerdict {
  const err = result.error;
  const validity = `the Secret holds a token valid until ${iso(expiresAt)}`;
  if (err && result.throttle.state === "Throttled") {
    const until = result.throttle.retryAt !== undefined ? ` until ${iso(result.throttle.retryAt)}` : "";
    return {
      status: "True",
      reason: "RefreshThrottled",
      message: `the token service is throttling refreshes${until} (${err.message}); ${validity}`,
    };
  }
  if (err) {
    return {
      status: "True",
      reason: "RefreshFailing",
      message: `refresh failed: ${err.message}; ${validity}`,
    };
  }
  return { status: "True", reason: "TokenIssued", message: TOKEN_ISSUED_MESSAGE[source] };
}

export interface TokenInPlace {
  result: AcquireResult;
  token: { expiresAt: number; refreshAt: number; issuedAt: number };
  /** The Secret's issued-at annotation before this reconcile. */
  previousIssuedAt: string | undefined;
  /** The status this process last wrote, else the informer's. */
  status: AppTokenRequestStatus | undefined;
  /** The token source status names (ours, else the informer's): kept while the token is the same. */
  previousSource: TokenSource | undefined;
  secretName: string;
  created: boolean;
  /** A force-refresh is wanted and this acquire did not satisfy it. */
  forcePending: boolean;
  now: number;
}

/** The Secret holds a token: Ready=True (or a failing refresh), its Event, and the next look. */
export function tokenOutcome(t: TokenInPlace): Outcome {
  const { result, token, secretName } = t;
  const tokenChanged = t.previousIssuedAt !== iso(token.issuedAt);
  const source: TokenSource = tokenChanged
    ? (result.source ?? "Cache")
    : (t.previousSource ?? result.source ?? "Cache");
  const ready = readyWithToken(result, token.expiresAt, source);
  // Recorded by the status writer only for a request's first token, a new Secret or a change of
  // Ready reason (a recovery, a failing refresh): never for a routine refresh, which
  // status.lastRefreshTime and the metrics show. An Event per refresh would be a third write per
  // refresh (10^5 requests: ~55 Events/s). "First" is read from status, not from this reconcile's
  // create: a create whose response was lost, or a status write that failed after it, is retried
  // by a reconcile that finds the Secret already there. A status write that landed but whose answer
  // was lost makes the retry's token not the first: the status writer records Issued on that
  // failure, and the recorder writes one Issued per token however often it is asked.
  const firstToken = t.status?.expiresAt === undefined;
  const event: Outcome["event"] =
    ready.reason !== "TokenIssued"
      ? { type: "Warning", reason: ready.reason, message: ready.message }
      : t.created || firstToken
        ? {
            type: "Normal",
            reason: "Issued",
            message: `wrote a token valid until ${iso(token.expiresAt)} to Secret ${secretName} (source ${source})`,
          }
        : { type: "Normal", reason: ready.reason, message: ready.message };
  return {
    ready,
    token: { expiresAt: token.expiresAt, refreshAt: token.refreshAt, issuedAt: token.issuedAt, source },
    acquire: result,
    requeueAfterMs: Math.max(0, nextLook(result, t.forcePending, t.now) - t.now),
    event,
  };
}

/**
 * When to reconcile again. The cache answers for the key's own schedule; a force-refresh still
 * pending (throttled or failed) must come back when the key may call again, not at refreshAt.
 */
export function nextLook(result: AcquireResult, forcePending: boolean, now: number): number {
  if (!forcePending) return result.nextAttemptAt;
  const retryAt = result.throttle.retryAt;
  const next =
    retryAt !== undefined && retryAt > now ? Math.min(result.nextAttemptAt, retryAt) : result.nextAttemptAt;
  // A force deferred by the global limit must not spin: look again in a second at the soonest.
  return Math.max(next, now + FORCE_RETRY_FLOOR_MS);
}
