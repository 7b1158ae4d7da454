/**
 * Wires watch -> queue -> reconcile. Informers run on every replica (a standby keeps its caches
 * warm); only the leader runs the workers, after reading the tokens back from the managed Secrets
 * (hydration), so that a restart or a takeover makes no calls for fresh tokens.
 */
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import { PersistedTokens } from "../cache/hydration.js";
import type { TokenCache } from "../cache/index.js";
import type { AuthorityPolicy, TokenClient } from "../identity/index.js";
import type { KubeApiClient } from "../kube/api-client.js";
import { CredentialSecrets } from "../kube/credential-secrets.js";
import type { EventRecorder } from "../kube/events.js";
import type { Informer } from "../kube/informer.js";
import type { KubeLogger } from "../kube/log.js";
import { objectKey } from "../kube/object-key.js";
import {
  createAppTokenRequestInformer,
  createManagedSecretInformer,
  createNamespaceInformer,
  createRegistrationInformer,
} from "../kube/operator-informers.js";
import type { SecretProjection } from "../kube/projections.js";
import { APP_REF_INDEX, CREDENTIAL_SECRET_INDEX, appRefKeys } from "../kube/request-indexes.js";
import type { KubeTransport } from "../kube/transport.js";
import type { KubeObject, RawObject } from "../kube/types.js";
import { WorkQueue, type Priority } from "../kube/work-queue.js";
import { CONTROLLER, type ControllerName, type Metrics } from "../observability/metrics.js";
import { registerGauges, workQueueMetrics } from "./controller-metrics.js";
import { CredentialResolver } from "./credential-resolver.js";
import { neverSynced, refOf, registerHandlers } from "./event-handlers.js";
import { requestForInformer, secretForInformer } from "./informer-objects.js";
import { readTokensBack } from "./read-back.js";
import { Reconciler } from "./reconcile.js";
import { RegistrationDirectory } from "./registrations/directory.js";
import { RegistrationReconciler } from "./registrations/registration-reconcile.js";

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
  /** --allowed-token-audiences. */
  allowedAudiences: ReadonlySet<string>;
  /** Where ClusterAppRegistrations' Secrets and ServiceAccounts live. */
  clusterResourceNamespace: string;
  namespaces: readonly string[];
  concurrency: number;
  /** --force-refresh-min-interval in ms; default 30 s. */
  forceRefreshMinIntervalMs?: number | undefined;
  /** Drain deadline for in-flight reconciles on shutdown. */
  drainTimeoutMs?: number;
  /** --credential-expiry-warning. */
  credentialExpiryWarningMs?: number;
}

export class AppTokenController {
  readonly requests: Informer<RawObject>;
  readonly managedSecrets: Informer<SecretProjection>;
  readonly appRegistrations: Informer<RawObject>;
  readonly clusterAppRegistrations: Informer<RawObject>;
  readonly namespaceLabels: Informer<KubeObject>;
  readonly credentialSecrets: CredentialSecrets;
  readonly queue: WorkQueue;
  /** Registrations' status (credential loaded, requests using it): few keys, a queue of their own. */
  readonly registrationQueue: WorkQueue;
  readonly reconciler: Reconciler;
  readonly registrationReconciler: RegistrationReconciler;
  private readonly directory: RegistrationDirectory;
  /** Tokens read back from the managed Secrets when leadership starts, until requests claim them. */
  private readonly persisted = new PersistedTokens();
  private readonly kubeLog: KubeLogger;
  private leading = false;

  constructor(private readonly o: ControllerOptions) {
    // pino's (object, message) signature is what src/kube expects.
    const kubeLog: KubeLogger = o.log.child({ component: "kube" });
    this.kubeLog = kubeLog;
    const namespaces = this.servedNamespaces();
    this.requests = createAppTokenRequestInformer({
      transport: o.transport,
      namespaces,
      log: kubeLog,
      transform: (raw) => requestForInformer(raw, (ns, name) => this.managedSecrets.get(ns, name)),
    });
    this.managedSecrets = createManagedSecretInformer({
      transport: o.transport,
      namespaces,
      log: kubeLog,
      transform: (raw) => secretForInformer(raw, (key) => this.requests.getByKey(key)),
    });
    this.appRegistrations = createRegistrationInformer("AppRegistration", {
      transport: o.transport,
      namespaces,
      log: kubeLog,
      clusterResourceNamespace: o.clusterResourceNamespace,
    });
    this.clusterAppRegistrations = createRegistrationInformer("ClusterAppRegistration", {
      transport: o.transport,
      log: kubeLog,
      clusterResourceNamespace: o.clusterResourceNamespace,
    });
    this.namespaceLabels = createNamespaceInformer({ transport: o.transport, log: kubeLog });
    this.queue = retryingQueue(o, CONTROLLER.requests, "request", "reconcile failed; retrying with backoff");
    this.registrationQueue = retryingQueue(
      o,
      CONTROLLER.registrations,
      "registration",
      "registration reconcile failed; retrying with backoff",
    );
    this.credentialSecrets = this.createCredentialSecrets(namespaces, kubeLog);
    const { reconciler, registrationReconciler, directory } = this.createReconcilers();
    this.reconciler = reconciler;
    this.registrationReconciler = registrationReconciler;
    this.directory = directory;
    registerHandlers(this, {
      enqueue: (key, priority) => this.enqueue(key, priority),
      registrationChanged: (ref) => this.registrationChanged(ref),
      countChanged: (obj) => this.countChanged(obj),
    });
    registerGauges(this, { ...o, leading: () => this.leading });
  }

  private createCredentialSecrets(
    namespaces: readonly string[] | undefined,
    log: KubeLogger,
  ): CredentialSecrets {
    // A ClusterAppRegistration's Secret is in the cluster resource namespace, watched even when
    // the operator serves only some namespaces.
    const credentialNamespaces = namespaces
      ? [...new Set([...namespaces, this.o.clusterResourceNamespace])]
      : undefined;
    return new CredentialSecrets({
      transport: this.o.transport,
      namespaces: credentialNamespaces,
      log,
      onChange: (ns, name) => {
        for (const obj of this.registrationsNaming(objectKey(ns, name))) this.registrationChanged(refOf(obj));
      },
    });
  }

  /** The registrations whose credential is the Secret `secret` ("namespace/name"). */
  private registrationsNaming(secret: string): RawObject[] {
    return [this.appRegistrations, this.clusterAppRegistrations].flatMap((i) =>
      i.indexKeys(CREDENTIAL_SECRET_INDEX, secret).flatMap((key) => i.getByKey(key) ?? []),
    );
  }

  /** Both reconcilers ask the same credential resolver: a credential is loaded once for all. */
  private createReconcilers(): {
    reconciler: Reconciler;
    registrationReconciler: RegistrationReconciler;
    directory: RegistrationDirectory;
  } {
    const o = this.o;
    const credentials = new CredentialResolver({
      secrets: this.credentialSecrets,
      serviceAccountTokens: o.api,
      clock: o.clock,
      allowedAudiences: o.allowedAudiences,
    });
    const directory = new RegistrationDirectory({
      appRegistrations: this.appRegistrations,
      clusterAppRegistrations: this.clusterAppRegistrations,
      namespaces: this.namespaceLabels,
      clusterResourceNamespace: o.clusterResourceNamespace,
    });
    const reconciler = new Reconciler({
      clock: o.clock,
      requests: this.requests,
      managedSecrets: this.managedSecrets,
      credentials,
      registrations: directory,
      cache: o.cache,
      tokenClient: o.tokenClient,
      api: o.api,
      events: o.events,
      metrics: o.metrics,
      log: o.log,
      authority: o.authority,
      persisted: this.persisted,
      enqueue: (k, p) => this.enqueue(k, p),
      forceRefreshMinIntervalMs: o.forceRefreshMinIntervalMs,
    });
    const registrationReconciler = new RegistrationReconciler({
      clock: o.clock,
      directory,
      requests: this.requests,
      credentials,
      api: o.api,
      events: o.events,
      authority: o.authority,
      log: o.log.child({ component: "registrations" }),
      credentialExpiryWarningMs: o.credentialExpiryWarningMs,
      metrics: o.metrics,
      onReadyChanged: (ref) => {
        for (const key of this.requests.indexKeys(APP_REF_INDEX, ref)) this.enqueue(key, "high");
      },
      releaseUnusedCredentials: () =>
        this.credentialSecrets.retain((secret) => this.registrationsNaming(secret).length > 0),
    });
    return { reconciler, registrationReconciler, directory };
  }

  /** Starts every watch; resolves when all caches are synced (or false when aborted first). */
  async startWatching(signal: AbortSignal): Promise<boolean> {
    for (const i of this.informers()) i.start();
    this.credentialSecrets.start();
    // Registrations and namespaces too: a request reconciled before its registration is known
    // would be refused AppRegistrationNotFound for nothing.
    const synced = await Promise.all(this.informers().map((i) => i.waitForSync(signal)));
    return synced.every(Boolean);
  }

  hasSynced(): boolean {
    return this.informers().every((i) => i.hasSynced()) && this.credentialSecrets.hasSynced();
  }

  private informers(): {
    start(): void;
    stop(): Promise<void>;
    hasSynced(): boolean;
    waitForSync(s: AbortSignal): Promise<boolean>;
  }[] {
    return [
      this.requests,
      this.managedSecrets,
      this.appRegistrations,
      this.clusterAppRegistrations,
      this.namespaceLabels,
    ];
  }

  /**
   * Reconciles until `signal` aborts (leadership lost or shutdown), then drains in-flight work.
   * First the caches sync and, beside them, the tokens are read back from the managed Secrets
   * (hydration); then every request is queued once: fresh ones cost a cache hit (seeded from their
   * Secret) and no write.
   */
  async lead(signal: AbortSignal): Promise<void> {
    const readingBack = readTokensBack(
      {
        transport: this.o.transport,
        namespaces: this.servedNamespaces(),
        clock: this.o.clock,
        log: this.kubeLog,
      },
      this.persisted,
      signal,
    );
    if (!(await this.startWatching(signal))) return;
    const syncedAt = this.o.clock.now();
    this.o.log.info(
      { requests: this.requests.size, managedSecrets: this.managedSecrets.size },
      "caches synced",
    );
    const readBack = await readingBack;
    if (signal.aborted) return;
    this.o.log.info(
      {
        secrets: readBack.secrets,
        tokens: readBack.tokens,
        keys: this.persisted.size,
        complete: readBack.complete,
        // How long the first reconcile waited for hydration once the caches were synced.
        waitedMs: this.o.clock.now() - syncedAt,
      },
      "tokens read back; reconciling",
    );
    this.leading = true;
    for (const key of this.requests.keys())
      this.enqueue(key, neverSynced(this.requests.getByKey(key)) ? "high" : "low");
    this.queue.run((key, s) => this.reconciler.reconcile(key, s), { concurrency: this.o.concurrency });
    for (const informer of [this.appRegistrations, this.clusterAppRegistrations])
      for (const key of informer.keys()) {
        const obj = informer.getByKey(key);
        if (obj && this.ownsStatus(refOf(obj))) this.registrationQueue.add(refOf(obj), "high");
      }
    this.registrationQueue.run((ref, s) => this.registrationReconciler.reconcile(ref, s), { concurrency: 2 });
    const tidier = setInterval(() => this.reconciler.tidy(), 30_000);
    tidier.unref();
    signal.addEventListener("abort", () => clearInterval(tidier), { once: true });
    // Tokens read back from Secrets that no request claimed by then (deleted meanwhile) are dropped.
    setTimeout(() => this.persisted.clear(), 15 * 60_000).unref();
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    const [{ drained }] = await Promise.all([
      this.queue.shutDown({ drainTimeoutMs: this.o.drainTimeoutMs ?? 20_000 }),
      this.registrationQueue.shutDown({ drainTimeoutMs: this.o.drainTimeoutMs ?? 20_000 }),
    ]);
    this.leading = false;
    this.o.log.info({ drained }, "stopped reconciling");
  }

  private servedNamespaces(): readonly string[] | undefined {
    return this.o.namespaces.length ? this.o.namespaces : undefined;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers().map((i) => i.stop()), this.credentialSecrets.stop()]);
  }

  /** The one way request keys enter the queue: a standby replica queues nothing. */
  private enqueue(key: string, priority: Priority): void {
    if (this.leading) this.queue.add(key, priority);
  }

  /**
   * A registration (or its credential) changed: its status, and every request that uses it. One
   * that is gone is queued even when another install owns its status: its reconcile lets go here.
   */
  private registrationChanged(ref: string): void {
    if (!this.leading) return;
    if (this.ownsStatus(ref) || !this.directory.get(ref)) this.registrationQueue.add(ref, "high");
    for (const key of this.requests.indexKeys(APP_REF_INDEX, ref)) this.enqueue(key, "high");
  }

  /**
   * A request started or stopped naming a registration: its status.requests is recounted, a few
   * seconds later, so that 10^4 requests applied at once make one status write, not 10^4.
   */
  private countChanged(obj: RawObject): void {
    const ref = appRefKeys(obj)[0];
    if (ref !== undefined && this.leading && this.ownsStatus(ref))
      this.registrationQueue.addAfter(ref, 2_000, "low");
  }

  /**
   * An install that serves only some namespaces uses ClusterAppRegistrations but does not write
   * their status: it would count only its own namespaces' requests, and two such installs in one
   * cluster would overwrite each other's. The cluster-wide install owns it.
   */
  private ownsStatus(ref: string): boolean {
    return this.o.namespaces.length === 0 || !ref.startsWith("ClusterAppRegistration:");
  }
}

/** A reconcile queue whose failures are logged with the key under `field`. */
function retryingQueue(
  o: ControllerOptions,
  controller: ControllerName,
  field: "request" | "registration",
  message: string,
): WorkQueue {
  return new WorkQueue({
    metrics: workQueueMetrics(o.metrics, controller),
    onHandlerError: (key, err) =>
      o.log.warn({ [field]: key, err: err instanceof Error ? err.message : String(err) }, message),
  });
}
