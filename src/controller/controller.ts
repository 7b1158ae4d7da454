/**
 * Wires watch -> queue -> reconcile. Informers run on every replica (a standby keeps its caches
 * warm and keeps reading the tokens the leader writes, so a takeover makes no calls for fresh
 * tokens); only the leader runs the workers.
 */
import type { Logger } from "pino";
import type { AppTokenRequestStatus } from "../api/types.js";
import type { Clock } from "../clock.js";
import { PersistedTokens, persistedTokenFromSecret } from "../cache/hydration.js";
import type { TokenCache } from "../cache/index.js";
import type { AuthorityPolicy, TokenClient } from "../identity/index.js";
import type { KubeApiClient } from "../kube/api-client.js";
import { CredentialSecrets } from "../kube/credential-secrets.js";
import type { EventRecorder } from "../kube/events.js";
import type { Informer } from "../kube/informer.js";
import type { KubeLogger } from "../kube/log.js";
import { objectKey, splitObjectKey } from "../kube/object-key.js";
import { createAppTokenRequestInformer, createManagedSecretInformer } from "../kube/operator-informers.js";
import { intern, projectSecret, trimAppTokenRequest, type SecretProjection } from "../kube/projections.js";
import {
  CREDENTIAL_SECRET_INDEX,
  controllerOwnerKey,
  credentialSecretKeys,
} from "../kube/request-indexes.js";
import type { KubeTransport } from "../kube/transport.js";
import type { RawObject } from "../kube/types.js";
import { WorkQueue, type Priority } from "../kube/work-queue.js";
import type { Metrics } from "../observability/metrics.js";
import { CredentialResolver } from "./credential-resolver.js";
import { Reconciler } from "./reconcile.js";
import { shareStatusMessages, shareTokenTimes } from "./status.js";
import { ANNOTATION, secretDataDigest } from "./target-secret.js";

export interface ControllerOptions {
  transport: KubeTransport;
  api: KubeApiClient;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  cache: TokenCache;
  tokenClient: Pick<TokenClient, "requestToken">;
  events: EventRecorder;
  authority: AuthorityPolicy;
  namespaces: readonly string[];
  concurrency: number;
  /** Drain deadline for in-flight reconciles on shutdown. */
  drainTimeoutMs?: number;
}

export class AppTokenController {
  readonly requests: Informer<RawObject>;
  readonly managedSecrets: Informer<SecretProjection>;
  readonly credentialSecrets: CredentialSecrets;
  readonly queue: WorkQueue;
  readonly reconciler: Reconciler;
  private readonly persisted = new PersistedTokens();
  /** True until this replica starts reconciling: until then it reads tokens back from Secrets. */
  private collecting = true;
  private leading = false;

  constructor(private readonly o: ControllerOptions) {
    const kubeLog = kubeLogger(o.log);
    const namespaces = o.namespaces.length ? o.namespaces : undefined;
    this.requests = createAppTokenRequestInformer({
      transport: o.transport,
      namespaces,
      log: kubeLog,
      transform: (raw) => {
        const trimmed = trimAppTokenRequest(raw);
        shareStatusMessages(trimmed.status);
        const secretName = (trimmed.status as { secretName?: unknown } | undefined)?.secretName;
        if (typeof secretName === "string") {
          const secret = this.managedSecrets.get(trimmed.metadata.namespace ?? "", secretName);
          shareTokenTimes(trimmed.status, secret?.metadata.annotations, "status");
        }
        return trimmed;
      },
    });
    this.managedSecrets = createManagedSecretInformer({
      transport: o.transport,
      namespaces,
      log: kubeLog,
      transform: (raw) => {
        // Only Secrets a request controls: a bare label is not proof the operator wrote it.
        if (this.collecting && controllerOwnerKey(raw)) {
          const persisted = persistedTokenFromSecret(raw, o.clock.now());
          if (persisted) this.persisted.add(raw.metadata.namespace ?? "", persisted.keyHash, persisted.token);
        }
        const projection = projectSecret(raw);
        if (raw.data !== undefined) projection.dataDigest = secretDataDigest(raw.data);
        const annotations = projection.metadata.annotations;
        // One copy per cache key (shared by every request on it), not one per Secret.
        const keyHash = annotations?.[ANNOTATION.cacheKeyHash];
        if (annotations && keyHash !== undefined) annotations[ANNOTATION.cacheKeyHash] = intern(keyHash);
        const ownerKey = controllerOwnerKey(projection);
        const request = ownerKey === undefined ? undefined : this.requests.getByKey(ownerKey);
        if (request) {
          shareTokenTimes(request.status, annotations, "annotations");
          const ref = projection.metadata.ownerReferences?.find((r) => r.uid === request.metadata.uid);
          if (ref) ref.uid = request.metadata.uid ?? ref.uid;
        }
        return projection;
      },
    });
    this.queue = new WorkQueue({
      metrics: {
        added: (priority) => o.metrics.queueAdds.inc({ priority }),
        queueLatency: (ms, priority) => o.metrics.queueLatency.observe({ priority }, ms / 1000),
        // reconcileDuration is observed by the reconciler itself, with its own error accounting.
        workDuration: () => undefined,
        retried: () => o.metrics.queueRetries.inc(),
      },
      onHandlerError: (key, err) =>
        o.log.warn(
          { request: key, err: err instanceof Error ? err.message : String(err) },
          "reconcile failed; retrying with backoff",
        ),
    });
    this.credentialSecrets = new CredentialSecrets({
      transport: o.transport,
      namespaces,
      log: kubeLog,
      onChange: (ns, name) => {
        for (const k of this.requests.indexKeys(CREDENTIAL_SECRET_INDEX, objectKey(ns, name)))
          this.queue.add(k, "high");
      },
    });
    const credentials = new CredentialResolver({
      secrets: this.credentialSecrets,
      serviceAccountTokens: o.api,
      clock: o.clock,
    });
    this.reconciler = new Reconciler({
      clock: o.clock,
      requests: this.requests,
      managedSecrets: this.managedSecrets,
      credentials,
      cache: o.cache,
      tokenClient: o.tokenClient,
      api: o.api,
      events: o.events,
      metrics: o.metrics,
      log: o.log,
      authority: o.authority,
      persisted: this.persisted,
      enqueue: (k, p) => this.queue.add(k, p),
    });
    this.registerHandlers();
    this.registerGauges();
  }

  /** Starts every watch; resolves when all caches are synced (or false when aborted first). */
  async startWatching(signal: AbortSignal): Promise<boolean> {
    this.requests.start();
    this.managedSecrets.start();
    this.credentialSecrets.start();
    const synced = await Promise.all([
      this.requests.waitForSync(signal),
      this.managedSecrets.waitForSync(signal),
    ]);
    return synced.every(Boolean);
  }

  hasSynced(): boolean {
    return this.requests.hasSynced() && this.managedSecrets.hasSynced() && this.credentialSecrets.hasSynced();
  }

  /**
   * Reconciles until `signal` aborts (leadership lost or shutdown), then drains in-flight work.
   * Every request is queued once at the start; fresh ones cost a cache hit (seeded from their
   * Secret) and no write.
   */
  async lead(signal: AbortSignal): Promise<void> {
    if (!(await this.startWatching(signal))) return;
    this.o.log.info(
      {
        requests: this.requests.size,
        managedSecrets: this.managedSecrets.size,
        persistedTokens: this.persisted.size,
      },
      "caches synced; reconciling",
    );
    this.leading = true;
    this.collecting = false;
    for (const key of this.requests.keys())
      this.queue.add(key, this.neverSynced(this.requests.getByKey(key)) ? "high" : "low");
    this.queue.run((key, s) => this.reconciler.reconcile(key, s), { concurrency: this.o.concurrency });
    const releaser = setInterval(() => this.reconciler.releaseForgotten(), 30_000);
    releaser.unref();
    signal.addEventListener("abort", () => clearInterval(releaser), { once: true });
    // Tokens read back from Secrets that no request claimed by then (deleted meanwhile) are dropped.
    setTimeout(() => this.persisted.clear(), 15 * 60_000).unref();
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    const { drained } = await this.queue.shutDown({ drainTimeoutMs: this.o.drainTimeoutMs ?? 20_000 });
    this.leading = false;
    this.o.log.info({ drained }, "stopped reconciling");
  }

  async stop(): Promise<void> {
    await Promise.all([this.requests.stop(), this.managedSecrets.stop(), this.credentialSecrets.stop()]);
  }

  private enqueue(key: string, priority: Priority): void {
    if (this.leading) this.queue.add(key, priority);
  }

  private neverSynced(obj: RawObject | undefined): boolean {
    const status = (obj as { status?: AppTokenRequestStatus } | undefined)?.status;
    return !status || status.observedGeneration !== obj?.metadata.generation;
  }

  private registerHandlers(): void {
    this.requests.addEventHandler({
      onAdd: (obj, { initialList, key }) => {
        this.enqueue(key, initialList && !this.neverSynced(obj) ? "low" : "high");
      },
      onUpdate: (oldObj, newObj, { resync, key }) => {
        if (resync) return this.enqueue(key, "low");
        this.reconciler.observed(key, newObj);
        const specChanged = oldObj.metadata.generation !== newObj.metadata.generation;
        const forceChanged =
          oldObj.metadata.annotations?.[ANNOTATION.forceRefresh] !==
          newObj.metadata.annotations?.[ANNOTATION.forceRefresh];
        // Status-only updates are our own writes: reconciling them would only loop.
        if (specChanged || forceChanged || oldObj.metadata.uid !== newObj.metadata.uid)
          this.enqueue(key, "high");
      },
      onDelete: (obj, { key }) => {
        this.queue.forget(key);
        this.reconciler.forget(key);
        // A credential nobody references any more leaves memory (its data is a secret).
        for (const ref of credentialSecretKeys(obj)) {
          if (this.requests.indexKeys(CREDENTIAL_SECRET_INDEX, ref).length === 0) {
            const { namespace, name } = splitObjectKey(ref);
            this.credentialSecrets.forget(namespace, name);
          }
        }
      },
    });
    this.managedSecrets.addEventHandler({
      onAdd: (_secret, { key }) => this.reconciler.secretObserved(key),
      // Data rewritten by someone else while our annotations stayed (our own refreshes change
      // issued-at): put our token back now, not at the next refresh.
      onUpdate: (oldSecret, newSecret, { resync, key }) => {
        if (resync) return;
        this.reconciler.secretObserved(key);
        if (oldSecret.dataDigest === newSecret.dataDigest) return;
        const issued = (x: SecretProjection) => x.metadata.annotations?.[ANNOTATION.issuedAt];
        if (issued(oldSecret) !== issued(newSecret)) return;
        const owner = controllerOwnerKey(newSecret);
        if (owner) this.enqueue(owner, "high");
      },
      // Deleted (or relabelled out of our selector): recreate it from the cache, without a call.
      onDelete: (secret, { key }) => {
        this.reconciler.secretObserved(key);
        const owner = controllerOwnerKey(secret);
        if (owner) this.enqueue(owner, "high");
      },
    });
  }

  private registerGauges(): void {
    const m = this.o.metrics;
    const collectors = {
      queue: () => {
        const s = this.queue.stats();
        m.queueDepth.set(s.high + s.low);
        m.queueDelayed.set(s.delayed);
      },
      cache: () => {
        const s = this.o.cache.stats();
        m.throttledKeys.set({ state: "Throttled" }, s.throttledKeys);
        m.throttledKeys.set({ state: "Backoff" }, s.backoffKeys);
      },
      expiry: () => {
        const soonest = this.reconciler.soonestExpiry();
        if (soonest !== undefined) m.soonestExpiry.set((soonest - this.o.clock.now()) / 1000);
      },
    };
    m.onCollect(() => {
      collectors.queue();
      collectors.cache();
      collectors.expiry();
    });
  }
}

/** pino's (object, message) signature is what src/kube expects. */
function kubeLogger(log: Logger): KubeLogger {
  return log.child({ component: "kube" });
}
