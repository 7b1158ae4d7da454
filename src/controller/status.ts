/**
 * The status a person reads: built as a pure function of what reconcile learned, and
 * compared with what is there so that only changes a person would want to see are written
 * (docs/design.md#writes-to-the-kubernetes-api).
 */
import type { AppTokenRequestStatus, Condition, ThrottleStatus, TokenSource } from "../api/types.js";
import type { ThrottleStatus as CacheThrottle } from "../cache/index.js";
import { setCondition } from "./conditions.js";
import { ANNOTATION, iso } from "./target-secret.js";

export interface ReadyVerdict {
  status: "True" | "False";
  reason: string;
  message: string;
}

export interface TokenFacts {
  expiresAt: number;
  refreshAt: number;
  issuedAt: number;
  source: TokenSource;
}

export interface StatusInput {
  previous: AppTokenRequestStatus | undefined;
  generation: number | undefined;
  secretName: string | undefined;
  token: TokenFacts | undefined;
  throttle: CacheThrottle | undefined;
  ready: ReadyVerdict;
  hits: number;
  misses: number;
  now: number;
}

/**
 * Ready's message while all is well. No times in it (status.expiresAt and status.refreshAt carry
 * them): one string shared by every request instead of ~150 bytes per request, unique and rewritten
 * at each refresh, kept 10^5 times in the informer's cache.
 */
export const TOKEN_ISSUED_MESSAGE: Readonly<Record<TokenSource, string>> = Object.freeze({
  Cache:
    "the Secret holds a valid token, from the cache; status.expiresAt and status.refreshAt say until when and when it is replaced",
  IdentityProvider:
    "the Secret holds a valid token, from the identity provider; status.expiresAt and status.refreshAt say until when and when it is replaced",
  SharedCache:
    "the Secret holds a valid token, from the fleet's shared cache; status.expiresAt and status.refreshAt say until when and when it is replaced",
});

/**
 * For the request informer's transform: well-known condition messages in a decoded status are
 * replaced by the one shared copy (each decoded object otherwise holds its own).
 */
export function shareStatusMessages(status: unknown): void {
  const conditions = (status as { conditions?: unknown } | undefined)?.conditions;
  if (!Array.isArray(conditions)) return;
  for (const c of conditions as { message?: unknown }[]) {
    if (c?.message === TOKEN_ISSUED_MESSAGE.Cache) c.message = TOKEN_ISSUED_MESSAGE.Cache;
    else if (c?.message === TOKEN_ISSUED_MESSAGE.IdentityProvider)
      c.message = TOKEN_ISSUED_MESSAGE.IdentityProvider;
  }
}

export function throttleStatus(t: CacheThrottle | undefined): ThrottleStatus | undefined {
  if (!t || t.state === "None") return undefined;
  const out: ThrottleStatus = { state: t.state, consecutiveFailures: t.consecutiveFailures };
  if (t.retryAt !== undefined && Number.isFinite(t.retryAt)) out.retryAfter = iso(t.retryAt);
  if (t.lastError) out.lastError = t.lastError.message.slice(0, 1024);
  return out;
}

export function desiredStatus(i: StatusInput): AppTokenRequestStatus {
  // Not iso(): each reconcile's "now" is new, and would only push the token times out of its memory.
  const nowIso = new Date(i.now).toISOString();
  const conditions = setCondition(
    i.previous?.conditions as Condition[] | undefined,
    {
      type: "Ready",
      status: i.ready.status,
      reason: i.ready.reason,
      message: i.ready.message,
      ...(i.generation !== undefined ? { observedGeneration: i.generation } : {}),
    },
    nowIso,
  ) as Condition[];
  const s: AppTokenRequestStatus = { conditions };
  if (i.generation !== undefined) s.observedGeneration = i.generation;
  if (i.secretName !== undefined) s.secretName = i.secretName;
  if (i.token) {
    s.expiresAt = iso(i.token.expiresAt);
    s.refreshAt = iso(i.token.refreshAt);
    s.lastRefreshTime = iso(i.token.issuedAt);
    s.tokenSource = i.token.source;
  } else if (i.previous?.expiresAt && Date.parse(i.previous.expiresAt) > i.now) {
    // No token from this reconcile (e.g. conflict) but the Secret may still hold the old one.
    s.expiresAt = i.previous.expiresAt;
    if (i.previous.refreshAt) s.refreshAt = i.previous.refreshAt;
    if (i.previous.lastRefreshTime) s.lastRefreshTime = i.previous.lastRefreshTime;
    if (i.previous.tokenSource) s.tokenSource = i.previous.tokenSource;
  }
  s.cache = { hits: i.hits, misses: i.misses };
  const throttle = throttleStatus(i.throttle);
  if (throttle) s.throttle = throttle;
  return s;
}

/**
 * Equal as JSON, key order aside: what the API server would store for each. Every reconcile asks
 * (a resync of 10^5 requests asks 10^5 times), so it walks the two objects instead of serializing
 * sorted copies of them.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => sameJson(v, b[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  let fields = 0;
  for (const k in ao) {
    if (ao[k] === undefined) continue; // absent from the JSON, as it is from the other side
    fields++;
    if (!sameJson(ao[k], bo[k])) return false;
  }
  for (const k in bo) if (bo[k] !== undefined) fields--;
  return fields === 0;
}

function byType(conditions: readonly Condition[] | undefined): Condition[] {
  return [...(conditions ?? [])].sort((x, y) => (x.type < y.type ? -1 : x.type > y.type ? 1 : 0));
}

/** Everything except the counters, which ride along with other writes (see statusChange). */
function sameExceptCounters(a: AppTokenRequestStatus | undefined, b: AppTokenRequestStatus): boolean {
  if (a === undefined) return false;
  const { cache: _a, conditions: ca, ...ra } = a;
  const { cache: _b, conditions: cb, ...rb } = b;
  return sameJson(ra, rb) && sameJson(byType(ca), byType(cb));
}

export type StatusChange = "none" | "countersOnly" | "changed";

export function statusChange(
  current: AppTokenRequestStatus | undefined,
  desired: AppTokenRequestStatus,
): StatusChange {
  if (!sameExceptCounters(current, desired)) return "changed";
  const a = current?.cache;
  const b = desired.cache;
  return (a?.hits ?? 0) === (b?.hits ?? 0) && (a?.misses ?? 0) === (b?.misses ?? 0) ? "none" : "countersOnly";
}

/** A merge patch that also removes fields the desired status no longer has. */
export function statusPatch(
  current: AppTokenRequestStatus | undefined,
  desired: AppTokenRequestStatus,
): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...desired };
  for (const k of Object.keys(current ?? {})) if (!(k in desired)) patch[k] = null;
  return patch;
}

/** Status fields that repeat an annotation of the target Secret, token for token. */
const TIMES_ON_SECRET = [
  ["expiresAt", ANNOTATION.expiresAt],
  ["refreshAt", ANNOTATION.refreshAt],
  ["lastRefreshTime", ANNOTATION.issuedAt],
] as const;

/**
 * Makes a request's status and its Secret's annotations hold the same string objects for the three
 * times they both carry (expiry, refresh, issue), whichever was decoded last: ~120 bytes per
 * request. `into` says which side gets the other's copies: the one just decoded.
 */
export function shareTokenTimes(
  status: unknown,
  annotations: Record<string, string> | undefined,
  into: "status" | "annotations",
): void {
  if (typeof status !== "object" || status === null || annotations === undefined) return;
  const st = status as Record<string, unknown>;
  for (const [field, annotation] of TIMES_ON_SECRET) {
    const a = annotations[annotation];
    if (a === undefined || st[field] !== a) continue;
    if (into === "status") st[field] = a;
    else annotations[annotation] = st[field] as string;
  }
}
