/**
 * "May this request have a token written to its target Secret?" as plain functions over one
 * snapshot, asked in order: the first that answers is the request's Ready=False reason and the
 * reconcile stops there. Nothing here does I/O; the reconciler gathers the snapshot from its
 * informers (and, once the cheap checks pass, resolves the credential) and acts on the answer.
 */
import type { SpecIssue } from "../api/schema.js";
import type { AppTokenRequest } from "../api/types.js";
import { KIND } from "../api/types.js";
import type { ClientCredential, TokenAcquisitionError } from "../identity/index.js";
import type { SecretProjection } from "../kube/projections.js";
import type { RegistrationLookup, UsableRegistration } from "./registrations/directory.js";
import { controllerOf, isOwnedBy } from "./target-secret.js";
import { TemplateError, checkTemplate } from "./template.js";

export interface Refusal {
  reason: string;
  message: string;
}

/** Another request that names the same target Secret, with its age (the oldest keeps the Secret). */
export interface Claimant {
  key: string;
  /** metadata.creationTimestamp in ms; 0 when unknown. */
  createdAt: number;
}

/** What the informers hold about one request whose spec parsed. */
export interface RequestSnapshot {
  /** namespace/name. */
  key: string;
  /** When it was gathered: what "now" means for this reconcile. */
  now: number;
  req: AppTokenRequest;
  secretName: string;
  /** The target Secret as the managed-Secret informer holds it (owner and metadata only matter here). */
  secret: SecretProjection | undefined;
  /** Every request whose target is that Secret, this one included. */
  claimants: readonly Claimant[];
  lookup: RegistrationLookup;
}

/** The credential as resolved for a usable registration: ready to send, or why not. */
export type ResolvedCredential =
  { ok: true; credential: ClientCredential; endpoint: URL } | { ok: false; error: TokenAcquisitionError };

export interface CredentialSnapshot {
  registration: UsableRegistration;
  resolved: ResolvedCredential;
}

export type Check<S> = (s: S) => Refusal | undefined;

/** How the reconciler acts on a refusal. */
export interface RefusalPolicy {
  /** Record a Warning Event (only on a change of Ready reason; see the status writer). */
  warn: boolean;
  /** When to look again by itself; undefined: only when something it watches changes. */
  retryAfterMs?: number | undefined;
  /** Events carry a shorter message than the condition when the message is a list of issues. */
  eventMessageMax?: number | undefined;
}

export interface CheckPolicy<S> extends RefusalPolicy {
  check: Check<S>;
}

/** Problems a person must fix: look again slowly, and at once when the spec or a Secret changes. */
export const SLOW_RETRY_MS = 5 * 60_000;
/**
 * How often a request recreated under the same name looks again while the garbage collector has
 * not yet deleted its predecessor's Secret. The deletion itself re-queues the request; this poll
 * only covers a collector that is slow or a watch event that was missed, so a few seconds is
 * enough and costs one informer read each time.
 */
export const PREDECESSOR_GC_POLL_MS = 5_000;

const SPEC_MESSAGE_MAX = 2000;

/**
 * Is the spec valid? (zod's re-validation of what CEL could not reject.) Asked first, by parsing:
 * every later check reads the parsed spec.
 */
export function invalidSpec(issues: readonly SpecIssue[]): Refusal {
  const message = issues.map((i) => `${i.path}: ${i.message}`).join("; ");
  return { reason: "InvalidSpec", message: message.slice(0, SPEC_MESSAGE_MAX) };
}

export const SPEC_POLICY: RefusalPolicy = { warn: true, eventMessageMax: 500 };

/** The Secret could not be written as asked (someone else's, a type that cannot change, refused). */
export const SECRET_WRITE_POLICY: RefusalPolicy = { warn: true, retryAfterMs: SLOW_RETRY_MS };

/** Does the target template only use the placeholders a token provides? */
export const templateValid: Check<RequestSnapshot> = (s) => {
  const data = s.req.spec.target?.template?.data;
  if (!data) return undefined;
  try {
    checkTemplate(data);
    return undefined;
  } catch (e) {
    if (!(e instanceof TemplateError)) throw e;
    return { reason: "InvalidSpec", message: e.message };
  }
};

/**
 * Was the request deleted and recreated under the same name (a GitOps replace) while the old
 * request's Secret is still there until the garbage collector deletes it? Not a conflict to warn
 * about; its deletion re-queues this request, which then writes a new Secret from the cache.
 */
export const predecessorCollected: Check<RequestSnapshot> = (s) => {
  const owner = s.secret ? controllerOf(s.secret) : undefined;
  const { name, uid } = s.req.metadata;
  if (!owner || owner.kind !== KIND || owner.name !== name || owner.uid === uid) return undefined;
  return {
    reason: "Pending",
    message: `waiting for the garbage collector to delete Secret ${s.secretName} of the previous AppTokenRequest ${name} (uid ${owner.uid})`,
  };
};

/** Is the target Secret this request's to write: claimed first by it, and not someone else's? */
export const targetUnclaimed: Check<RequestSnapshot> = (s) => {
  if (s.claimants.length > 1) {
    // The oldest claimant keeps the Secret, so adding a second request never steals it.
    const winner = [...s.claimants].sort((a, b) => a.createdAt - b.createdAt || a.key.localeCompare(b.key))[0]
      ?.key;
    if (winner !== s.key) {
      return {
        reason: "SecretConflict",
        message: `Secret ${s.secretName} is also the target of AppTokenRequest ${winner?.split("/")[1]}, which claimed it first; set spec.target.name to another Secret`,
      };
    }
  }
  if (s.secret && !isOwnedBy(s.secret, s.req)) {
    const owner = controllerOf(s.secret);
    return {
      reason: "SecretConflict",
      message: `Secret ${s.secretName} is managed by the operator for ${owner ? `${owner.kind} ${owner.name} (uid ${owner.uid})` : "another owner"}, not for this request; it is left untouched`,
    };
  }
  return undefined;
};

/**
 * May it use its registration: found, serving this namespace, Ready, allowing this tenant and
 * scope? (Answered by the registration directory's own checks.)
 */
export const registrationUsable: Check<RequestSnapshot> = (s) => (s.lookup.ok ? undefined : s.lookup.verdict);

export const REQUEST_CHECKS: readonly CheckPolicy<RequestSnapshot>[] = [
  { check: templateValid, warn: false },
  { check: predecessorCollected, warn: false, retryAfterMs: PREDECESSOR_GC_POLL_MS },
  { check: targetUnclaimed, warn: true, retryAfterMs: SLOW_RETRY_MS },
  { check: registrationUsable, warn: true, retryAfterMs: SLOW_RETRY_MS },
];

/**
 * Is the credential usable, and may it go to the registration's authority? The registration's
 * problem is told on every request that uses it, so the message names the registration.
 */
export const credentialUsable: Check<CredentialSnapshot> = (s) =>
  s.resolved.ok
    ? undefined
    : { reason: s.resolved.error.reason, message: `${s.registration.display}: ${s.resolved.error.message}` };

export const CREDENTIAL_CHECKS: readonly CheckPolicy<CredentialSnapshot>[] = [
  { check: credentialUsable, warn: true, retryAfterMs: SLOW_RETRY_MS },
];

/** The first check that refuses, with how to act on it. */
export function firstRefusal<S>(
  s: S,
  checks: readonly CheckPolicy<S>[],
): { refusal: Refusal; policy: RefusalPolicy } | undefined {
  for (const policy of checks) {
    const refusal = policy.check(s);
    if (refusal) return { refusal, policy };
  }
  return undefined;
}
