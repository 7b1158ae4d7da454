/**
 * What happens when an AppTokenRequest is created, changed, due for refresh or touched in any way:
 * one level-triggered, idempotent pass that reads snapshots, asks a short list of questions in
 * order, and writes only what changed.
 *
 *   is the spec valid?                 -> InvalidSpec
 *   is the target Secret ours to write? -> Pending (a predecessor's Secret), SecretConflict
 *   may it use its registration?       -> AppRegistrationNotFound, NamespaceNotAllowed,
 *                                         AppRegistrationNotReady, TenantNotAllowed, ScopeNotAllowed
 *   is the credential usable?          -> CredentialSecretNotFound, MalformedPem, AudienceNotAllowed, ...
 *   may the credential go there?       -> AuthorityNotAllowed
 *   what token should the Secret hold? -> the token cache (hit, shared call, or a call)
 *   does the Secret hold it?           -> create / replace the Secret
 *   does status say so?                -> patch status
 *   when do we look again?             -> requeue at the refresh time (or the retry time)
 */
import type { Logger } from "pino";
import { parseAppTokenRequestSpec } from "../api/schema.js";
import { parseDuration } from "../api/duration.js";
import type { AppTokenRequest, AppTokenRequestStatus, TokenSource } from "../api/types.js";
import { API_VERSION, KIND } from "../api/types.js";
import type { Clock } from "../clock.js";
import type { AcquireResult, TokenCache } from "../cache/index.js";
import { cacheKeyHash, cacheKeyId } from "../cache/index.js";
import type { PersistedTokens } from "../cache/hydration.js";
import type { PersistedToken } from "../cache/token-cache.js";
import type { AuthorityPolicy, ClientCredential, TokenClient, TokenResponse } from "../identity/index.js";
import { TransientError, isTokenAcquisitionError, tokenEndpointFor } from "../identity/index.js";
import type { KubeApiClient } from "../kube/api-client.js";
import type { EventRecorder, EventType } from "../kube/events.js";
import type { Informer } from "../kube/informer.js";
import { KeyedMinHeap } from "../kube/keyed-heap.js";
import { objectKey } from "../kube/object-key.js";
import { intern, projectSecret, type SecretProjection } from "../kube/projections.js";
import { TARGET_SECRET_INDEX } from "../kube/request-indexes.js";
import { KubeApiError, isConflict, isNotFound } from "../kube/transport.js";
import type { RawObject } from "../kube/types.js";
import type { HandlerResult } from "../kube/work-queue.js";
import type { Metrics } from "../observability/metrics.js";
import type { CredentialResolver } from "./credential-resolver.js";
import type { RegistrationDirectory, UsableRegistration } from "./registrations/directory.js";
import { findCondition } from "./conditions.js";
import { forceHandledBy, forceToRecord, mustForce } from "./force-refresh.js";
import {
  TOKEN_ISSUED_MESSAGE,
  desiredStatus,
  statusChange,
  statusPatch,
  type ReadyVerdict,
} from "./status.js";
import {
  ANNOTATION,
  controllerOf,
  isOwnedBy,
  iso,
  secretDataDigest,
  secretIsCurrent,
  targetSecretFor,
  targetSecretName,
  type DesiredSecret,
  type SecretLike,
} from "./target-secret.js";
import { OwnWrites } from "./own-writes.js";
import { TemplateError, checkTemplate } from "./template.js";

/** Problems a person must fix: look again slowly, and at once when the spec or a Secret changes. */
const SLOW_RETRY_MS = 5 * 60_000;
/** How long a deleted request's cache key is kept for a recreated request of the same name. */
const RELEASE_GRACE_MS = 5 * 60_000;
/** A force-refresh that could not call yet is looked at again no sooner than this. */
const FORCE_RETRY_FLOOR_MS = 1_000;

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
}

/** What this process remembers about one request between reconciles. */
interface RequestMemo {
  uid: string;
  keyId: string | undefined;
  keyHash: string | undefined;
  generation: number | undefined;
  hits: number;
  misses: number;
  /** The last status this process wrote: the informer's copy may lag behind our own write. */
  lastStatus: AppTokenRequestStatus | undefined;
  /**
   * The resourceVersion that write produced: once the informer holds it, lastStatus is a copy of the
   * informer's status and is dropped (about 650 bytes per request, kept 10^5 times otherwise).
   */
  writtenRv: string | undefined;
  /** The force-refresh value already acted on (also recorded on the Secret). */
  forceHandled: string | undefined;
}

interface Outcome {
  ready: ReadyVerdict;
  token?: { expiresAt: number; refreshAt: number; issuedAt: number; source: TokenSource } | undefined;
  acquire?: AcquireResult | undefined;
  requeueAfterMs?: number | undefined;
  event?: { type: EventType; reason: string; message: string } | undefined;
}

export class Reconciler {
  private readonly memos = new Map<string, RequestMemo>();
  /**
   * keyId -> request keys using it, to fan a new token out to every Secret that shares it; also the
   * one copy of the key's id and hash that every request's memo points to (a per-request copy of
   * both is ~250 bytes, ×10^5).
   */
  private readonly keyUsers = new Map<string, { keyId: string; keyHash: string; users: Set<string> }>();
  /** request key -> expiry of the token in its Secret: O(1) soonest-expiry at scrape time. */
  private readonly expiries = new KeyedMinHeap<undefined>();
  /** request key -> when its cache holder may be released (see forget). */
  private readonly pendingRelease = new Map<string, number>();
  /**
   * keyId -> namespaces whose own Secrets hold the token the cache was seeded with after a restart,
   * until the key's next fetch (see readBackDistrusted). Empty in steady state.
   */
  private readonly readBack = new Map<string, Set<string>>();
  /** Target Secrets written here that the informer has not delivered back yet (see OwnWrites). */
  private readonly ownWrites: OwnWrites<SecretProjection>;

  constructor(private readonly d: ReconcilerDeps) {
    this.ownWrites = new OwnWrites(d.clock);
  }

  /** Reconcile counts and times are the work queue's (controller-metrics.ts). */
  async reconcile(key: string, signal: AbortSignal): Promise<HandlerResult> {
    return this.reconcileOnce(key, signal);
  }

  /**
   * The informer now holds `obj`. Once that is the version our last status write produced, the
   * memo's copy of the status is redundant: drop it and read the informer's from then on.
   */
  observed(key: string, obj: RawObject): void {
    const memo = this.memos.get(key);
    if (memo?.writtenRv !== undefined && obj.metadata.resourceVersion === memo.writtenRv) {
      memo.lastStatus = undefined;
      memo.writtenRv = undefined;
    }
  }

  /** The Secret informer delivered an add, update or delete of target Secret `key`. */
  secretObserved(key: string): void {
    this.ownWrites.observed(key);
  }

  private currentSecret(key: string): SecretProjection | undefined {
    return this.ownWrites.current(key, this.d.managedSecrets.getByKey(key));
  }

  /** The request is gone: let go of its cache key and memory (the GC deletes its Secret). */
  forget(key: string): void {
    const memo = this.memos.get(key);
    if (memo) {
      this.unlinkKey(key, memo.keyId);
      this.d.events.forget(memo.uid);
      this.memos.delete(key);
    }
    this.expiries.delete(key);
    // Released after a grace period: a request deleted and recreated under the same name (a GitOps
    // replace) finds its token still cached instead of calling the token service again.
    this.pendingRelease.set(key, this.d.clock.now() + RELEASE_GRACE_MS);
  }

  /** Lets the cache drop keys of requests deleted more than the grace period ago. */
  releaseForgotten(): number {
    const now = this.d.clock.now();
    let n = 0;
    for (const [key, at] of this.pendingRelease) {
      if (at > now) continue;
      this.pendingRelease.delete(key);
      if (!this.memos.has(key)) {
        this.d.cache.release(key);
        n++;
      }
    }
    return n;
  }

  private async reconcileOnce(key: string, signal: AbortSignal): Promise<HandlerResult> {
    const obj = this.d.requests.getByKey(key);
    if (!obj) {
      this.forget(key);
      return;
    }
    if (obj.metadata.deletionTimestamp) return;
    const now = this.d.clock.now();
    const memo = this.memoFor(key, obj);

    const parsed = parseAppTokenRequestSpec(obj.spec);
    if (!parsed.ok) {
      const message = parsed.issues.map((i) => `${i.path}: ${i.message}`).join("; ");
      return this.finish(key, obj, memo, undefined, {
        ready: { status: "False", reason: "InvalidSpec", message: message.slice(0, 2000) },
        event: { type: "Warning", reason: "InvalidSpec", message: message.slice(0, 500) },
      });
    }
    const req = { ...obj, spec: parsed.spec } as unknown as AppTokenRequest;
    const ns = req.metadata.namespace;
    const secretName = targetSecretName(req);
    if (req.spec.target?.template?.data) {
      try {
        checkTemplate(req.spec.target.template.data);
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        return this.finish(key, obj, memo, secretName, {
          ready: { status: "False", reason: "InvalidSpec", message: e.message },
        });
      }
    }

    const predecessor = this.predecessorSecret(req, secretName);
    if (predecessor) {
      return this.finish(key, obj, memo, secretName, {
        ready: { status: "False", reason: "Pending", message: predecessor },
        requeueAfterMs: 5_000,
      });
    }
    const conflict = this.targetConflict(key, req, secretName);
    if (conflict) {
      return this.finish(key, obj, memo, secretName, {
        ready: { status: "False", reason: "SecretConflict", message: conflict },
        event: { type: "Warning", reason: "SecretConflict", message: conflict },
        requeueAfterMs: SLOW_RETRY_MS,
      });
    }

    const lookup = this.d.registrations.lookup(ns, req.spec.appRef, req.spec.tenantId, req.spec.scope);
    if (!lookup.ok) {
      const { reason, message } = lookup.verdict;
      return this.finish(key, obj, memo, secretName, {
        ready: { status: "False", reason, message },
        event: { type: "Warning", reason, message },
        requeueAfterMs: SLOW_RETRY_MS,
      });
    }
    const registration = lookup.registration;

    let credential: ClientCredential;
    let endpoint: URL;
    try {
      credential = await this.d.credentials.resolve(
        registration.credentialNamespace,
        registration.spec.credential,
        signal,
        registration.spec.cloud,
      );
      endpoint = tokenEndpointFor(
        {
          cloud: registration.spec.cloud,
          authorityHost: registration.spec.authorityHost,
          tenantId: req.spec.tenantId,
        },
        this.d.authority,
      );
    } catch (e) {
      if (!isTokenAcquisitionError(e) || e.kind === "Transient") throw e;
      // The registration's problem, told on every request that uses it: name it.
      const message = `${registration.display}: ${e.message}`;
      return this.finish(key, obj, memo, secretName, {
        ready: { status: "False", reason: e.reason, message },
        event: { type: "Warning", reason: e.reason, message },
        requeueAfterMs: SLOW_RETRY_MS,
      });
    }

    const keyId = cacheKeyId({
      authorityHost: endpoint.origin + endpoint.pathname,
      tenantId: req.spec.tenantId,
      clientId: registration.spec.clientId,
      scope: req.spec.scope,
      credentialFingerprint: credential.fingerprint,
    });
    if (memo.keyId !== keyId) {
      if (memo.keyId !== undefined) this.carryOverOnRotation(memo.keyId, keyId);
      this.unlinkKey(key, memo.keyId);
      let shared = this.keyUsers.get(keyId);
      if (!shared)
        this.keyUsers.set(
          keyId,
          (shared = { keyId, keyHash: intern(cacheKeyHash(keyId)), users: new Set() }),
        );
      shared.users.add(key);
      memo.keyId = shared.keyId;
      memo.keyHash = shared.keyHash;
    }
    const keyHash = memo.keyHash!;
    const distrusted = this.readBackDistrusted(keyId, ns, this.d.persisted.take(ns, keyHash));
    // A new generation may fix what made the last call fail (e.g. the scope): retry at once.
    if (memo.generation !== undefined && memo.generation !== req.metadata.generation)
      this.d.cache.resetBackoff(keyId);
    memo.generation = req.metadata.generation;

    const existing = this.currentSecret(objectKey(ns, secretName));
    const forceFacts = {
      wanted: req.metadata.annotations?.[ANNOTATION.forceRefresh],
      recordedOnSecret: existing?.metadata.annotations?.[ANNOTATION.forceRefresh],
      handledHere: memo.forceHandled,
    };
    const force = mustForce(forceFacts);
    const refreshBeforeMs = req.spec.refreshBefore ? parseDuration(req.spec.refreshBefore) : undefined;

    const result = await this.d.cache.acquire(
      keyId,
      () => this.fetchToken(req, registration, endpoint, credential, signal),
      {
        force: force || distrusted,
        refreshBeforeMs,
        holder: key,
      },
    );
    this.count(memo, result);
    if (result.outcome === "Fetched" && result.token) {
      this.readBack.delete(keyId);
      this.fanOut(keyId, key);
    }

    // A token no Secret of this namespace vouches for is not written here until it is replaced.
    const token = distrusted && result.outcome !== "Fetched" ? undefined : result.token;
    if (!token) return this.finish(key, obj, memo, secretName, this.noTokenOutcome(result, now));

    const forceDone = forceHandledBy(force, result.outcome);
    if (forceDone) memo.forceHandled = forceFacts.wanted;
    const recordForce = forceToRecord({ ...forceFacts, handledHere: memo.forceHandled });
    const desired = targetSecretFor(req, token, keyHash, recordForce);
    const write = await this.writeSecret(req, existing, desired, signal).catch((e: unknown) => {
      const rejected = secretRejected(e, desired.metadata.name);
      if (!rejected) throw e;
      return { created: false, conflict: rejected };
    });
    if (write.conflict) {
      return this.finish(key, obj, memo, secretName, {
        ready: { status: "False", reason: write.conflict.reason, message: write.conflict.message },
        event: { type: "Warning", reason: write.conflict.reason, message: write.conflict.message },
        requeueAfterMs: SLOW_RETRY_MS,
      });
    }

    const previousIssuedAt = existing?.metadata.annotations?.[ANNOTATION.issuedAt];
    const tokenChanged = previousIssuedAt !== iso(token.issuedAt);
    const source: TokenSource = tokenChanged
      ? result.source === "IdentityProvider"
        ? "IdentityProvider"
        : "Cache"
      : (memo.lastStatus?.tokenSource ?? req.status?.tokenSource ?? result.source ?? "Cache");

    const ready = this.readyWithToken(result, token.expiresAt, source);
    // Recorded by finish only for a request's first token, a new Secret or a change of Ready reason
    // (a recovery, a failing refresh): never for a routine refresh, which status.lastRefreshTime
    // and the metrics show. An Event per refresh would be a third write per refresh (10^5
    // requests: ~55 Events/s). "First" is read from status, not from this reconcile's create: a
    // create whose response was lost, or a status write that failed after it, is retried by a
    // reconcile that finds the Secret already there.
    const firstToken = (memo.lastStatus ?? req.status)?.expiresAt === undefined;
    const event: Outcome["event"] =
      ready.reason !== "TokenIssued"
        ? { type: "Warning", reason: ready.reason, message: ready.message }
        : write.created || firstToken
          ? {
              type: "Normal",
              reason: "Issued",
              message: `wrote a token valid until ${iso(token.expiresAt)} to Secret ${secretName} (source ${source})`,
            }
          : { type: "Normal", reason: ready.reason, message: ready.message };

    return this.finish(key, obj, memo, secretName, {
      ready,
      token: { expiresAt: token.expiresAt, refreshAt: token.refreshAt, issuedAt: token.issuedAt, source },
      acquire: result,
      requeueAfterMs: Math.max(0, this.nextLook(result, force && !forceDone, now) - now),
      event,
    });
  }

  /**
   * When to reconcile again. The cache answers for the key's own schedule; a force-refresh still
   * pending (throttled or failed) must come back when the key may call again, not at refreshAt.
   */
  private nextLook(result: AcquireResult, forcePending: boolean, now: number): number {
    if (!forcePending) return result.nextAttemptAt;
    const retryAt = result.throttle.retryAt;
    const next =
      retryAt !== undefined && retryAt > now ? Math.min(result.nextAttemptAt, retryAt) : result.nextAttemptAt;
    // A force deferred by the global limit must not spin: look again in a second at the soonest.
    return Math.max(next, now + FORCE_RETRY_FLOOR_MS);
  }

  /**
   * Only the credential changed (a rotation): the old key's token is still valid for the same app,
   * tenant and scope. It goes to the new key marked due, so the new credential is used at once, yet
   * the Secret and Ready stay valid if that call must wait (global limit, throttling): rotating one
   * credential shared by 10^5 requests must not flip them all to Ready=False.
   */
  private carryOverOnRotation(previousKeyId: string, keyId: string): void {
    const identity = (id: string) => id.slice(0, id.lastIndexOf("|"));
    if (identity(previousKeyId) !== identity(keyId)) return;
    const previous = this.d.cache.inspect(previousKeyId);
    if (!previous?.usable || !previous.token || this.d.cache.inspect(keyId)?.token) return;
    this.d.cache.seed([{ keyId, token: { ...previous.token, refreshAt: this.d.clock.now() } }]);
    const vouched = this.readBack.get(previousKeyId);
    if (vouched) this.readBack.set(keyId, new Set(vouched));
  }

  /**
   * After a restart the cache is seeded from the managed Secrets (no call for a fresh token). A
   * Secret is only as trustworthy as whoever may write Secrets in its namespace, and a key is
   * shared across namespaces: so a token read back from one namespace is served to another only
   * when that namespace's own Secret holds the very same token. Otherwise (a planted Secret on
   * either side, or no Secret here yet) the key fetches a fresh token, which every namespace may
   * trust. True when this request must not be served the cached token as it stands.
   */
  private readBackDistrusted(keyId: string, ns: string, seed: PersistedToken | undefined): boolean {
    const cached = this.d.cache.inspect(keyId)?.token;
    if (seed && !cached) {
      this.d.cache.seed([{ keyId, token: seed }]);
      this.readBack.set(keyId, new Set([ns]));
      return false;
    }
    const vouched = this.readBack.get(keyId);
    if (!vouched || vouched.has(ns)) return false;
    if (seed && cached && seed.accessToken === cached.accessToken) {
      vouched.add(ns);
      return false;
    }
    return true;
  }

  /** Earliest expiry among the tokens this process put in Secrets (for the soonest-expiry gauge). */
  soonestExpiry(): number | undefined {
    return this.expiries.peek()?.due;
  }

  private memoFor(key: string, obj: RawObject): RequestMemo {
    const uid = obj.metadata.uid ?? "";
    let memo = this.memos.get(key);
    if (memo && memo.uid !== uid) {
      // Deleted and recreated under the same name (a GitOps replace): counters and status start
      // over, but the cache key is not released: its token is as good for the new request.
      this.unlinkKey(key, memo.keyId);
      this.d.events.forget(memo.uid);
      this.memos.delete(key);
      memo = undefined;
    }
    if (!memo) {
      this.pendingRelease.delete(key);
      const status = (obj as { status?: AppTokenRequestStatus }).status;
      memo = {
        uid,
        keyId: undefined,
        keyHash: undefined,
        generation: undefined,
        hits: status?.cache?.hits ?? 0,
        misses: status?.cache?.misses ?? 0,
        lastStatus: undefined,
        writtenRv: undefined,
        forceHandled: undefined,
      };
      this.memos.set(key, memo);
    }
    return memo;
  }

  /**
   * The request was deleted and recreated under the same name (a GitOps replace): the old
   * request's Secret is still there until the garbage collector deletes it. Not a conflict to warn
   * about; its deletion re-queues this request, which then writes a new Secret from the cache.
   */
  private predecessorSecret(req: AppTokenRequest, secretName: string): string | undefined {
    const existing = this.d.managedSecrets.getByKey(objectKey(req.metadata.namespace, secretName));
    const owner = existing ? controllerOf(existing) : undefined;
    if (!owner || owner.kind !== KIND || owner.name !== req.metadata.name || owner.uid === req.metadata.uid)
      return undefined;
    return `waiting for the garbage collector to delete Secret ${secretName} of the previous AppTokenRequest ${req.metadata.name} (uid ${owner.uid})`;
  }

  /** Why this request may not write its target Secret, or undefined when it may. */
  private targetConflict(key: string, req: AppTokenRequest, secretName: string): string | undefined {
    const ns = req.metadata.namespace;
    const claimants = this.d.requests.indexKeys(TARGET_SECRET_INDEX, objectKey(ns, secretName));
    if (claimants.length > 1) {
      // The oldest claimant keeps the Secret, so adding a second request never steals it.
      const winner = [...claimants].sort(
        (a, b) => compareAge(this.d.requests.getByKey(a), this.d.requests.getByKey(b)) || a.localeCompare(b),
      )[0];
      if (winner !== key) {
        return `Secret ${secretName} is also the target of AppTokenRequest ${winner?.split("/")[1]}, which claimed it first; set spec.target.name to another Secret`;
      }
    }
    const existing = this.d.managedSecrets.getByKey(objectKey(ns, secretName));
    if (existing && !isOwnedBy(existing, req)) {
      const owner = controllerOf(existing);
      return `Secret ${secretName} is managed by the operator for ${owner ? `${owner.kind} ${owner.name} (uid ${owner.uid})` : "another owner"}, not for this request; it is left untouched`;
    }
    return undefined;
  }

  private async fetchToken(
    req: AppTokenRequest,
    registration: UsableRegistration,
    endpoint: URL,
    credential: ClientCredential,
    signal: AbortSignal,
  ): Promise<TokenResponse> {
    const started = performance.now();
    try {
      const token = await this.d.tokenClient.requestToken({
        endpoint,
        clientId: registration.spec.clientId,
        scope: req.spec.scope,
        credential,
        signal,
      });
      this.d.metrics.tokenRequests.inc({ result: "success", aadsts: "" });
      return token;
    } catch (e) {
      const err = isTokenAcquisitionError(e)
        ? e
        : new TransientError(`token request failed: ${e instanceof Error ? e.message : String(e)}`, {
            reason: "TokenServiceUnavailable",
            cause: e,
          });
      this.d.metrics.tokenRequests.inc({ result: err.kind.toLowerCase(), aadsts: err.aadsts ?? "" });
      throw err;
    } finally {
      this.d.metrics.tokenRequestDuration.observe((performance.now() - started) / 1000);
    }
  }

  private count(memo: RequestMemo, result: AcquireResult): void {
    if (result.outcome === "Hit" || result.outcome === "Shared") {
      memo.hits++;
      this.d.metrics.cacheHits.inc();
    } else if (result.outcome === "Fetched") {
      memo.misses++;
      this.d.metrics.cacheMisses.inc();
    }
  }

  /** Every other request on this key gets the new token now, not at its own next refresh. */
  private fanOut(keyId: string, except: string): void {
    const shared = this.keyUsers.get(keyId);
    if (!shared) return;
    for (const k of shared.users) if (k !== except) this.d.enqueue(k, "low");
  }

  private unlinkKey(key: string, keyId: string | undefined): void {
    if (keyId === undefined) return;
    const shared = this.keyUsers.get(keyId);
    shared?.users.delete(key);
    if (shared && shared.users.size === 0) this.keyUsers.delete(keyId);
  }

  private async writeSecret(
    req: AppTokenRequest,
    existing: SecretProjection | undefined,
    desired: DesiredSecret,
    signal: AbortSignal,
  ): Promise<{ created: boolean; conflict?: { reason: string; message: string } }> {
    if (existing && secretIsCurrent(existing, desired)) return { created: false };
    if (!existing) {
      try {
        return await this.createSecret(desired, signal);
      } catch (e) {
        if (!isConflict(e)) throw e;
        // It exists but is not in our label-selected informer (yet): read it to find out whose it is.
      }
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      const { namespace, name } = desired.metadata;
      const orNone = (e: unknown) => {
        if (isNotFound(e)) return undefined;
        throw e;
      };
      // Whose it is, from its metadata alone: the data of someone else's Secret is never read.
      const owner =
        attempt === 0 && existing
          ? existing
          : await this.d.api.getSecretMetadata(namespace, name, signal).catch(orNone);
      if (!owner) return this.createSecret(desired, signal);
      if (!isOwnedBy(owner as SecretLike, req)) {
        return {
          created: false,
          conflict: {
            reason: "SecretConflict",
            message: `Secret ${desired.metadata.name} already exists and is not owned by this AppTokenRequest; the operator never overwrites it. Delete it or set spec.target.name`,
          },
        };
      }
      const current =
        owner === existing ? existing : await this.d.api.getSecret(namespace, name, signal).catch(orNone);
      if (!current) return this.createSecret(desired, signal);
      // Our informer had not seen it yet, but it may already be what we want (our own earlier write).
      const fresh = {
        ...(current as SecretLike),
        dataDigest: secretDataDigest((current as { data?: unknown }).data),
      };
      if (secretIsCurrent(fresh, desired)) return { created: false };
      const type = (current as { type?: string }).type ?? "Opaque";
      if (type !== desired.type) {
        return {
          created: false,
          conflict: {
            reason: "SecretTypeImmutable",
            message: `Secret ${desired.metadata.name} has type ${type} but the template asks for ${desired.type}; a Secret's type cannot change: delete the Secret and the operator recreates it`,
          },
        };
      }
      try {
        this.noteWrite(
          await this.d.api.replaceSecret(toSecretBody(desired, current), signal),
          desired,
          current.metadata.resourceVersion,
        );
        return { created: false };
      } catch (e) {
        if (!isConflict(e) || attempt === 1) throw e;
        // Our informer copy was stale: retry once from a fresh read.
      }
    }
    return { created: false };
  }

  private async createSecret(desired: DesiredSecret, signal: AbortSignal): Promise<{ created: true }> {
    this.noteWrite(
      await this.d.api.createSecret(toSecretBody(desired, undefined), signal),
      desired,
      undefined,
    );
    return { created: true };
  }

  /** Remembers a write of ours until the informer delivers it (see OwnWrites.wrote). */
  private noteWrite(
    written: RawObject | undefined,
    desired: DesiredSecret,
    basedOn: string | undefined,
  ): void {
    if (!written?.metadata) return;
    const key = objectKey(desired.metadata.namespace, desired.metadata.name);
    const secret = projectSecret(written);
    secret.dataDigest = desired.dataDigest;
    this.ownWrites.wrote(key, secret, basedOn, this.currentSecret(key));
  }

  private noTokenOutcome(result: AcquireResult, now: number): Outcome {
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

  private readyWithToken(result: AcquireResult, expiresAt: number, source: TokenSource): ReadyVerdict {
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

  private async finish(
    reqKey: string,
    obj: RawObject,
    memo: RequestMemo,
    secretName: string | undefined,
    o: Outcome,
  ): Promise<HandlerResult> {
    const now = this.d.clock.now();
    if (o.token) this.expiries.set(reqKey, o.token.expiresAt, undefined);
    const current = memo.lastStatus ?? (obj as { status?: AppTokenRequestStatus }).status;
    const desired = desiredStatus({
      previous: current,
      generation: obj.metadata.generation,
      secretName,
      token: o.token,
      throttle: o.acquire?.throttle,
      ready: o.ready,
      hits: memo.hits,
      misses: memo.misses,
      now,
    });
    // Counter-only changes are never written on their own: they ride along with the next write a
    // person would want (a refresh, an error), so a resync of 10^5 requests writes nothing (§3.5).
    if (statusChange(current, desired) === "changed") {
      const ns = obj.metadata.namespace ?? "";
      const name = obj.metadata.name ?? "";
      let written: RawObject | undefined;
      try {
        written = await this.d.api.patchRequestStatus(ns, name, statusPatch(current, desired));
      } catch (e) {
        if (isNotFound(e)) return; // deleted meanwhile
        throw e;
      }
      memo.lastStatus = desired;
      memo.writtenRv = written?.metadata?.resourceVersion;
      // The watch may have delivered our write before the response came back.
      const cached = this.d.requests.getByKey(reqKey);
      if (cached) this.observed(reqKey, cached);
      const previousReady = findCondition(current?.conditions, "Ready");
      // Events mark what a person looks for in `kubectl describe`: the Secret's creation and each
      // change of Ready reason, not every status write.
      if (o.event && (previousReady?.reason !== o.ready.reason || o.event.reason === "Issued")) {
        this.d.events.record(
          { apiVersion: API_VERSION, kind: KIND, namespace: ns, name, uid: obj.metadata.uid },
          o.event.type,
          o.event.reason,
          o.event.message,
        );
      }
      if (o.ready.status === "False") this.d.metrics.notReadyTotal.inc({ reason: o.ready.reason });
      this.logOutcome(obj, o, previousReady?.reason);
    }
    return o.requeueAfterMs === undefined ? undefined : { requeueAfterMs: o.requeueAfterMs };
  }

  /**
   * Failures at warn; a token from the identity provider (one line per call, not per request that
   * shares it) and a change of Ready reason at info; a routine refresh from the cache at debug, so
   * that 10^5 requests refreshing do not write 10^5 info lines an hour.
   */
  private logOutcome(obj: RawObject, o: Outcome, previousReason: string | undefined): void {
    const fields = {
      request: `${obj.metadata.namespace}/${obj.metadata.name}`,
      ready: o.ready.status,
      reason: o.ready.reason,
      ...(o.token
        ? { expiresAt: iso(o.token.expiresAt), refreshAt: iso(o.token.refreshAt), source: o.token.source }
        : {}),
      ...(o.acquire ? { outcome: o.acquire.outcome, throttle: o.acquire.throttle.state } : {}),
    };
    if (o.ready.status === "False")
      this.d.log.warn({ ...fields, detail: o.ready.message }, "request not ready");
    else if (o.ready.reason !== "TokenIssued")
      this.d.log.warn({ ...fields, detail: o.ready.message }, "refresh failing, old token kept");
    else if (o.acquire?.outcome === "Fetched" || previousReason !== o.ready.reason)
      this.d.log.info(fields, "token in place");
    else this.d.log.debug(fields, "token in place");
  }
}

/**
 * The API server refused the Secret itself (422 Invalid, 400): e.g. a template type whose required
 * keys are missing (kubernetes.io/tls without tls.crt) or whose data must parse
 * (kubernetes.io/dockerconfigjson). Retrying cannot help until the spec changes, so it is a reason
 * on the request, not a reconcile error retried in silence. The server's message names the field;
 * it redacts Secret values, and anything JWT-shaped is cut out all the same.
 */
function secretRejected(e: unknown, name: string): { reason: string; message: string } | undefined {
  if (!(e instanceof KubeApiError) || (e.statusCode !== 422 && e.statusCode !== 400)) return undefined;
  const detail = (e.status?.message ?? `HTTP ${e.statusCode}`)
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, "[redacted]")
    .slice(0, 500);
  return {
    reason: "SecretRejected",
    message: `the API server refused Secret ${name}: ${detail}; check spec.target.template (type and data)`,
  };
}

function compareAge(a: RawObject | undefined, b: RawObject | undefined): number {
  const ta = Date.parse(a?.metadata.creationTimestamp ?? "") || 0;
  const tb = Date.parse(b?.metadata.creationTimestamp ?? "") || 0;
  return ta - tb;
}

/** The full Secret to send; keeps labels and annotations others put on our Secret. */
function toSecretBody(desired: DesiredSecret, current: RawObject | SecretProjection | undefined): RawObject {
  const meta = current?.metadata;
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: desired.metadata.name,
      namespace: desired.metadata.namespace,
      ...(meta?.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
      labels: { ...(meta?.labels ?? {}), ...desired.metadata.labels },
      annotations: { ...(meta?.annotations ?? {}), ...desired.metadata.annotations },
      // Other owners' references stay; ours is the one controller reference.
      ownerReferences: [
        ...(meta?.ownerReferences ?? []).filter((r) => r.controller !== true),
        ...desired.metadata.ownerReferences,
      ],
    },
    type: desired.type,
    data: desired.data,
  };
}
