/**
 * What happens when an AppTokenRequest is created, changed, due for refresh or touched in any way:
 * one level-triggered, idempotent pass that gathers a snapshot, asks the questions below in order,
 * and writes only what changed. The first question that refuses ends the pass with Ready=False.
 *
 *   is the request still there?          -> no: let go of its cache key (after a grace period)
 *   is it being deleted?                 -> nothing to do; the garbage collector takes its Secret
 *   is the spec valid?                   -> InvalidSpec
 *   does the template name only known placeholders?             -> InvalidSpec
 *   is a predecessor's Secret (same name, older uid) still there? -> Pending, looked at again soon
 *   is the target Secret ours to write?  -> SecretConflict
 *   may it use its registration?         -> AppRegistrationNotFound, NamespaceNotAllowed,
 *                                           AppRegistrationNotReady, TenantNotAllowed, ScopeNotAllowed
 *   is the credential usable?            -> CredentialSecretNotFound, MalformedPem, AudienceNotAllowed, ...
 *   may the credential go there?         -> AuthorityNotAllowed
 *   which cache key?                     -> a new spec generation retries at once; a rotated
 *                                           credential inherits the old key's token
 *   may this namespace trust a token read back from Secrets after a restart? -> else fetch anew
 *   is a refresh forced (annotation)?    -> skip freshness for one call, or wait for the key's
 *                                           minimum interval between forced calls
 *   what token should the Secret hold?   -> the token cache (hit, shared call, or a call);
 *                                           none: Throttled, Pending or the failure's reason
 *   does the Secret hold it?             -> create / replace (SecretConflict, SecretTypeImmutable,
 *                                           SecretRejected)
 *   does status say so?                  -> patch status, an Event on a change of Ready reason
 *   when do we look again?               -> the refresh time (or the retry time)
 *
 * The checks are plain functions in checks.ts; the Secret and status writers and the outcomes
 * (what Ready says) have files of their own.
 */
import type { Logger } from "pino";
import { parseAppTokenRequestSpec } from "../api/schema.js";
import { parseDuration } from "../api/duration.js";
import type { Clock } from "../clock.js";
import type { AcquireResult, CachedToken, TokenCache } from "../cache/index.js";
import type { PersistedTokens } from "../cache/hydration.js";
import type { AuthorityPolicy, TokenClient } from "../identity/index.js";
import type { KubeApiClient } from "../kube/api-client.js";
import type { EventRecorder } from "../kube/events.js";
import type { Informer } from "../kube/informer.js";
import { objectKey } from "../kube/object-key.js";
import type { SecretProjection } from "../kube/projections.js";
import type { RawObject } from "../kube/types.js";
import type { HandlerResult } from "../kube/work-queue.js";
import type { Metrics } from "../observability/metrics.js";
import {
  CREDENTIAL_CHECKS,
  REQUEST_CHECKS,
  SECRET_WRITE_POLICY,
  SPEC_POLICY,
  firstRefusal,
  invalidSpec,
  type CredentialSnapshot,
  type RequestSnapshot,
  type ResolvedCredential,
} from "./checks.js";
import type { CredentialResolver } from "./credential-resolver.js";
import {
  DEFAULT_FORCE_REFRESH_MIN_INTERVAL_MS,
  firstSeen,
  forceDecision,
  forcePending,
  forceToRecord,
  withForceWait,
  type ForceDecision,
  type ForceRefreshFacts,
} from "./force-refresh.js";
import { noTokenOutcome, refusalOutcome, tokenOutcome, type Outcome } from "./outcomes.js";
import type { RegistrationDirectory, UsableRegistration } from "./registrations/directory.js";
import { RequestMemory, type KeyedMemo, type RequestMemo } from "./request-memory.js";
import { SecretWriter } from "./secret-writer.js";
import { gatherRequest, resolveCredential } from "./snapshot.js";
import { StatusWriter, knownStatus } from "./status-writer.js";
import { ReadBackTrust, fetchToken } from "./token-step.js";
import { ANNOTATION, targetSecretFor } from "./target-secret.js";

export interface ReconcilerDeps {
  clock: Clock;
  requests: Pick<Informer<RawObject>, "getByKey" | "indexKeys">;
  managedSecrets: Pick<Informer<SecretProjection>, "getByKey">;
  credentials: Pick<CredentialResolver, "resolve">;
  registrations: Pick<RegistrationDirectory, "lookup">;
  cache: TokenCache;
  tokenClient: Pick<TokenClient, "requestToken">;
  api: Pick<
    KubeApiClient,
    "createSecret" | "replaceSecret" | "getSecret" | "getSecretMetadata" | "patchRequestStatus"
  >;
  events: Pick<EventRecorder, "record" | "forget">;
  metrics: Metrics;
  log: Logger;
  authority: AuthorityPolicy;
  persisted: PersistedTokens;
  /** Re-queues other requests (other holders of a key that just got a new token). */
  enqueue: (key: string, priority: "high" | "low") => void;
  /** At most one forced call per cache key per this many ms; 0 = no coalescing. Default 30 s. */
  forceRefreshMinIntervalMs?: number | undefined;
}

const NO_FORCE: ForceDecision = Object.freeze({ action: "none", handled: undefined });

/** How often `tidy` sweeps the cache for keys nobody holds or uses. */
const SWEEP_EVERY_MS = 60 * 60_000;

/** A snapshot that passed every check: what the token step needs. */
interface Passed {
  snap: RequestSnapshot;
  registration: UsableRegistration;
  credential: Extract<ResolvedCredential, { ok: true }>;
}

/** The request this reconcile is about. */
interface InFlight {
  key: string;
  obj: RawObject;
  memo: RequestMemo;
}

/** The token step's answer. */
interface Acquired {
  result: AcquireResult;
  token: CachedToken | undefined;
  /** The target Secret as it stood before the write (ours, if the informer has not caught up). */
  existing: SecretProjection | undefined;
  /** `before`: decided before the acquire; `after`: the same rule asked again with its result. */
  force: { facts: ForceRefreshFacts; before: ForceDecision; after: ForceDecision };
  keyHash: string;
}

export class Reconciler {
  private readonly memory: RequestMemory;
  private readonly readBack: ReadBackTrust;
  private readonly secrets: SecretWriter;
  private readonly statusWriter: StatusWriter;
  /** When `tidy` last swept the cache. */
  private sweptAt: number;

  constructor(private readonly d: ReconcilerDeps) {
    this.memory = new RequestMemory(d);
    this.sweptAt = d.clock.now();
    this.readBack = new ReadBackTrust(d.cache, d.clock);
    this.secrets = new SecretWriter(d);
    this.statusWriter = new StatusWriter(d);
  }

  /** Reconcile counts and times are the work queue's (controller-metrics.ts). */
  async reconcile(key: string, signal: AbortSignal): Promise<HandlerResult> {
    return this.reconcileOnce(key, signal);
  }

  /** Lets the cache drop keys of requests deleted more than the grace period ago. */
  releaseForgotten(): number {
    return this.memory.releaseForgotten();
  }

  /**
   * The cache's housekeeping, on the controller's one timer: the keys of requests deleted more than
   * the grace period ago go now; once an hour, keys nobody holds and nobody used for a day go too.
   */
  tidy(): void {
    this.releaseForgotten();
    const now = this.d.clock.now();
    if (now - this.sweptAt < SWEEP_EVERY_MS) return;
    this.sweptAt = now;
    this.d.cache.sweep();
  }

  /** Earliest expiry among the tokens this process put in Secrets (for the soonest-expiry gauge). */
  soonestExpiry(): number | undefined {
    return this.memory.soonestExpiry();
  }

  private async reconcileOnce(key: string, signal: AbortSignal): Promise<HandlerResult> {
    const obj = this.d.requests.getByKey(key);
    // The request is gone: let go of its cache key and memory (the GC deletes its Secret).
    if (!obj) return this.memory.forget(key);
    if (obj.metadata.deletionTimestamp) return;
    const r: InFlight = { key, obj, memo: this.memory.memoFor(key, obj) };

    const parsed = parseAppTokenRequestSpec(obj.spec);
    if (!parsed.ok) return this.finish(r, undefined, refusalOutcome(invalidSpec(parsed.issues), SPEC_POLICY));
    const snap = gatherRequest(this.d, key, obj, parsed.spec);
    const refused = firstRefusal(snap, REQUEST_CHECKS);
    if (refused) return this.finish(r, snap.secretName, refusalOutcome(refused.refusal, refused.policy));

    // Resolved only once the cheap checks pass: for a workload identity it mints a token.
    const cred = await resolveCredential(this.d, snap, signal);
    const credRefused = firstRefusal(cred, CREDENTIAL_CHECKS);
    if (credRefused)
      return this.finish(r, snap.secretName, refusalOutcome(credRefused.refusal, credRefused.policy));

    const acquired = await this.acquireToken(r.memo, passed(snap, cred), signal);
    if (!acquired.token) return this.finish(r, snap.secretName, noTokenOutcome(acquired.result, snap.now));
    return this.finish(
      r,
      snap.secretName,
      await this.putToken(r, snap, { ...acquired, token: acquired.token }, signal),
    );
  }

  /** Does the Secret hold the token? Writes it if not, and says what Ready should say. */
  private async putToken(
    r: InFlight,
    snap: RequestSnapshot,
    a: Acquired & { token: CachedToken },
    signal: AbortSignal,
  ): Promise<Outcome> {
    const { result, token, existing, force } = a;
    const handled = force.after.action === "none" ? force.after.handled : undefined;
    const forceDone = handled !== undefined;
    if (forceDone) {
      r.memo.forceHandled = handled;
      r.memo.forceSeen = undefined;
    }
    const recordForce = forceToRecord({ ...force.facts, handledHere: r.memo.forceHandled });
    const desired = targetSecretFor(snap.req, token, a.keyHash, recordForce);
    const write = await this.secrets.write(snap.req, existing, desired, signal);
    if (write.conflict) return refusalOutcome(write.conflict, SECRET_WRITE_POLICY);
    // The informer's copy as it is now: it may hold a status write newer than the snapshot's.
    const status = knownStatus(r.memo, this.d.requests.getByKey(r.key) ?? r.obj);
    const o = tokenOutcome({
      result,
      token,
      previousIssuedAt: existing?.metadata.annotations?.[ANNOTATION.issuedAt],
      status,
      previousSource: status?.tokenSource,
      secretName: snap.secretName,
      created: write.created,
      forcePending: force.before.action === "call" && !forceDone,
      now: snap.now,
    });
    const { wanted } = force.facts;
    return force.after.action === "wait" && wanted !== undefined
      ? withForceWait(o, wanted, force.after.until, snap.now)
      : o;
  }

  /**
   * What token should the Secret hold: the request's cache key, whether this namespace may trust a
   * token read back from Secrets, whether a refresh is forced, and the cache's answer.
   */
  private async acquireToken(memo: RequestMemo, p: Passed, signal: AbortSignal): Promise<Acquired> {
    const { snap, registration, credential } = p;
    const { req, key } = snap;
    const ns = req.metadata.namespace;
    const { keyId, keyHash, held } = this.linkKey(key, memo, p);
    const distrusted = this.readBack.distrusted(keyId, ns, this.d.persisted.take(ns, keyHash));
    // A new generation may fix what made the last call fail (e.g. the scope): retry at once.
    if (memo.generation !== undefined && memo.generation !== req.metadata.generation)
      this.d.cache.resetBackoff(keyId);
    memo.generation = req.metadata.generation;

    const existing = this.secrets.current(objectKey(ns, snap.secretName));
    const facts = {
      wanted: req.metadata.annotations?.[ANNOTATION.forceRefresh],
      recordedOnSecret: existing?.metadata.annotations?.[ANNOTATION.forceRefresh],
      handledHere: memo.forceHandled,
    };
    memo.forceSeen = firstSeen(memo.forceSeen, facts.wanted, snap.now);
    const decide = (): ForceDecision => {
      // Nearly every reconcile has no value pending: it costs no look at the cache's key.
      if (!forcePending(facts)) return NO_FORCE;
      const held = this.d.cache.inspect(keyId);
      return forceDecision({
        ...facts,
        seenAt: memo.forceSeen?.at,
        fetchedAt: held?.fetchedAt,
        forcedAt: held?.forcedAt,
        minIntervalMs: this.d.forceRefreshMinIntervalMs ?? DEFAULT_FORCE_REFRESH_MIN_INTERVAL_MS,
        now: this.d.clock.now(),
      });
    };
    const before = decide();
    const refreshBeforeMs = req.spec.refreshBefore ? parseDuration(req.spec.refreshBefore) : undefined;
    const fetch = () =>
      fetchToken(this.d.tokenClient, this.d.metrics, {
        endpoint: credential.endpoint,
        clientId: registration.spec.clientId,
        scope: req.spec.scope,
        credential: credential.credential,
        signal,
      });
    const result = await this.d.cache.acquireHeld(held, fetch, {
      force: before.action === "call" || distrusted,
      refreshBeforeMs,
      // Held since keyFor; named so that acquireHeld can hold it again, were it evicted meanwhile.
      holder: key,
    });
    this.count(memo, result);
    if (result.outcome === "Fetched" && result.token) {
      this.readBack.fetched(keyId);
      this.fanOut(keyId, key);
    }
    // A token no Secret of this namespace vouches for is not written here until it is replaced.
    const token = distrusted && result.outcome !== "Fetched" ? undefined : result.token;
    // Asked again only about the token this acquire returned: a later one may not be in the Secret.
    const after =
      before !== NO_FORCE && this.d.cache.inspect(keyId)?.token === result.token ? decide() : before;
    return { result, token, existing, force: { facts, before, after }, keyHash };
  }

  /**
   * The request's cache key, rebuilt only when what it is made of changed; a rotated credential
   * hands the old key's token to the new one.
   */
  private linkKey(key: string, memo: RequestMemo, p: Passed): KeyedMemo {
    return this.memory.keyFor(key, memo, p, this.handOver);
  }

  private readonly handOver = (previous: string, next: string): void =>
    this.readBack.carryOverOnRotation(previous, next);

  /** Status (and its Event) as the outcome says, and when to look again. */
  private async finish(r: InFlight, secretName: string | undefined, o: Outcome): Promise<HandlerResult> {
    const { key } = r;
    if (o.token) this.memory.tokenExpires(key, o.token.expiresAt);
    const latest = () => this.d.requests.getByKey(key);
    const present = await this.statusWriter.write(r.obj, r.memo, secretName, o, latest);
    if (!present) return; // deleted meanwhile
    return o.requeueAfterMs === undefined ? undefined : { requeueAfterMs: o.requeueAfterMs };
  }

  /** The request's own counts (its status); the process's totals are the cache's (`stats()`). */
  private count(memo: RequestMemo, result: AcquireResult): void {
    if (result.outcome === "Hit" || result.outcome === "Shared" || result.source === "SharedCache")
      memo.hits++;
    else if (result.outcome === "Fetched") memo.misses++;
  }

  /** Every other request on this key gets the new token now, not at its own next refresh. */
  private fanOut(keyId: string, except: string): void {
    for (const k of this.memory.othersOn(keyId, except)) this.d.enqueue(k, "low");
  }
}

/** Checked in order by firstRefusal: a snapshot past registrationUsable and credentialUsable. */
function passed(snap: RequestSnapshot, cred: CredentialSnapshot): Passed {
  if (!cred.resolved.ok) throw new Error("passed: the credential was not checked");
  return { snap, registration: cred.registration, credential: cred.resolved };
}
