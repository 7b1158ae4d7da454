#!/usr/bin/env node
/**
 * apptoken-operator: config -> clients -> controller -> servers. Reading this file and then
 * controller/reconcile.ts top to bottom answers "what happens when an AppTokenRequest is created?".
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import { TokenBucket, TokenCache } from "./cache/index.js";
import { SharedTierTokenCache, startSharedTier, type RunningTier } from "./cache/shared-tier/index.js";
import { systemClock, type Clock } from "./clock.js";
import { ConfigError, helpText, loadConfig, type Config } from "./config.js";
import { AppTokenController } from "./controller/controller.js";
import { TokenClient, allowedHostSet, type AuthorityPolicy } from "./identity/index.js";
import { KubeApiClient } from "./kube/api-client.js";
import { EventRecorder } from "./kube/events.js";
import { KubeconfigError, loadKubeConfig } from "./kube/kubeconfig.js";
import { LeaderElector } from "./kube/leader-election.js";
import { createKubeTransport } from "./kube/transport.js";
import { HealthServer } from "./observability/health.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";

const IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

function kubeConfigFor(config: Config): KubeConfig {
  try {
    return loadKubeConfig(config.kubeconfig);
  } catch (e) {
    if (e instanceof KubeconfigError) throw new ConfigError(`--kubeconfig: ${e.message}`);
    throw e;
  }
}

function leaseNamespace(config: Config): string {
  return config.leaderElectionNamespace ?? podNamespace();
}

/** The operator's own namespace: POD_NAMESPACE, else the in-cluster file, else apptoken-system. */
function podNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE_FILE, "utf8").trim();
  } catch {
    return "apptoken-system";
  }
}

/** Everything the operator runs, wired from the configuration; nothing started yet. */
interface Operator {
  kc: KubeConfig;
  metrics: Metrics;
  health: HealthServer;
  transport: ReturnType<typeof createKubeTransport>;
  tokenClient: TokenClient;
  cache: TokenCache;
  controller: AppTokenController;
  /** The fleet tier's Redis connection, when --shared-cache-url is set. */
  fleet: RunningTier | undefined;
  /** Set once leader election starts; every write is checked against its lease. */
  lease: { elector: LeaderElector | undefined };
}

/** config -> clients -> controller. */
async function wire(config: Config, log: Logger): Promise<Operator> {
  const kc = kubeConfigFor(config);
  const clock = systemClock;
  const metrics = new Metrics({ perRequestMetrics: config.perRequestMetrics });
  const transport = createKubeTransport(kc, { userAgent: "apptoken-operator" });
  const lease: Operator["lease"] = { elector: undefined };
  const api = new KubeApiClient({
    transport,
    clock,
    qps: config.kubeApiQps,
    burst: config.kubeApiBurst,
    onWrite: (verb, resource) => metrics.kubeWrites.inc({ verb, resource }),
    onAnswered: (verb, resource, seconds) => metrics.kubeRequestDuration.observe({ verb, resource }, seconds),
    mayWrite: () => !config.leaderElect || lease.elector?.holdsLease() === true,
  });
  const authority: AuthorityPolicy = {
    allowInsecureLoopback: config.allowInsecureLoopbackAuthority,
    allowedHosts: allowedHostSet(config.allowedAuthorityHosts),
  };
  const tokenClient = new TokenClient({
    clock,
    caBundle: config.authorityCa,
    allowInsecureLoopback: authority.allowInsecureLoopback,
    allowedAuthorityHosts: authority.allowedHosts,
  });
  const { cache, fleet } = await tokenCache(config, log, { clock, metrics, api });
  const events = new EventRecorder({
    api,
    clock,
    host: process.env.POD_NAME ?? hostname(),
    onError: (e) =>
      log.debug({ err: e instanceof Error ? e.message : String(e) }, "could not write an Event"),
    onDropped: () => log.debug("dropped an Event: over the Events rate"),
  });
  const controller = new AppTokenController({
    transport,
    api,
    clock,
    log,
    metrics,
    cache,
    tokenClient,
    events,
    authority,
    allowedAudiences: new Set(config.allowedTokenAudiences),
    clusterResourceNamespace: config.clusterResourceNamespace ?? podNamespace(),
    namespaces: config.namespaces,
    concurrency: config.maxConcurrentReconciles,
    credentialExpiryWarningMs: config.credentialExpiryWarning,
    forceRefreshMinIntervalMs: config.forceRefreshMinIntervalMs,
  });
  return { kc, metrics, health: new HealthServer(), transport, tokenClient, cache, controller, fleet, lease };
}

/** The token cache; with --shared-cache-url, the fleet tier sits between it and the token service. */
async function tokenCache(
  config: Config,
  log: Logger,
  { clock, metrics, api }: { clock: Clock; metrics: Metrics; api: KubeApiClient },
): Promise<{ cache: TokenCache; fleet: RunningTier | undefined }> {
  const cacheOptions = {
    clock,
    limiter: new TokenBucket({
      ratePerSecond: config.tokenRequestsPerSecond,
      burst: Math.max(1, Math.ceil(config.tokenRequestsPerSecond)),
      clock,
    }),
  };
  const fleet: RunningTier | undefined = config.sharedCacheUrl
    ? await startSharedTier(
        { ...config, sharedCacheUrl: config.sharedCacheUrl },
        {
          clock,
          log: log.child({ component: "fleet-tier" }),
          registry: metrics.registry,
          readSecretData: async (ns, name) => (await api.getSecret(ns, name)).data as Record<string, string>,
        },
      )
    : undefined;
  const cache = fleet ? new SharedTierTokenCache(cacheOptions, fleet.tier) : new TokenCache(cacheOptions);
  return { cache, fleet };
}

/** The first SIGTERM/SIGINT drains in-flight reconciles; a second one exits at once. */
function shutdownOnSignals(log: Logger): AbortSignal {
  const shutdown = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn({ signal: sig }, "second signal: exiting now");
      process.exit(1);
    }
    log.info({ signal: sig }, "shutting down: finishing in-flight reconciles");
    shutdown.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return shutdown.signal;
}

async function startServers(config: Config, log: Logger, o: Operator): Promise<void> {
  o.health.addLiveCheck("ping", () => true);
  o.health.addReadyCheck("informers", () => o.controller.hasSynced() || "caches not synced yet");
  const metricsAt = await o.metrics.start(config.metricsBindAddress);
  const healthAt = await o.health.start(config.healthProbeBindAddress);
  log.info(
    {
      server: o.kc.getCurrentCluster()?.server,
      namespaces: config.namespaces.length ? config.namespaces : "all",
      metrics: metricsAt ?? "disabled",
      health: healthAt ?? "disabled",
      leaderElect: config.leaderElect,
      allowedAuthorityHosts: config.allowedAuthorityHosts,
      allowedTokenAudiences: config.allowedTokenAudiences,
    },
    "apptoken-operator starting",
  );
}

/** Reconciles while leading (or always, without leader election); the exit code. */
async function lead(config: Config, log: Logger, o: Operator, shutdown: AbortSignal): Promise<number> {
  const leader = (v: number) => o.metrics.leader.set({ name: config.leaderElectionId }, v);
  if (!config.leaderElect) {
    // The only replica is the one that writes: the "is there a leader" alert holds for it too.
    leader(1);
    await o.controller.lead(shutdown);
    return 0;
  }
  const elector = new LeaderElector({
    transport: o.transport,
    namespace: leaseNamespace(config),
    name: config.leaderElectionId,
    log: log.child({ component: "leader-election" }),
    onStartedLeading: (signal) => {
      leader(1);
      return o.controller.lead(signal);
    },
    onStoppedLeading: () => leader(0),
    onNewLeader: (identity) => log.info({ leader: identity }, "observed leader"),
  });
  o.lease.elector = elector;
  // Standbys watch too: warm caches and tokens read back from Secrets make a takeover quiet.
  void o.controller.startWatching(shutdown);
  leader(0);
  const outcome = await elector.run(shutdown);
  if (outcome !== "lost") return 0;
  // Another replica may be leading by now: exit rather than risk writing beside it.
  log.error({}, "lost leadership; exiting so that a fresh process can campaign again");
  return 1;
}

async function run(config: Config, log: Logger): Promise<number> {
  const o = await wire(config, log);
  const shutdown = shutdownOnSignals(log);
  await startServers(config, log, o);
  let code = 0;
  try {
    code = await lead(config, log, o, shutdown);
  } finally {
    await o.controller.stop();
    await o.tokenClient.close();
    await o.fleet?.close();
    await Promise.all([o.metrics.stop(), o.health.stop()]);
  }
  log.info({}, "stopped");
  return code;
}

async function main(): Promise<void> {
  let config: Config | "help";
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (e) {
    process.stderr.write(`apptoken-operator: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  if (config === "help") {
    process.stdout.write(helpText());
    return;
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  try {
    process.exitCode = await run(config, log);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`apptoken-operator: ${e.message}\n`);
      process.exit(2);
    }
    log.fatal(
      { err: e instanceof Error ? { message: e.message, stack: e.stack } : String(e) },
      "operator failed",
    );
    process.exitCode = 1;
  }
  // Log transports flush on exit; give pino a tick.
  setTimeout(() => process.exit(), 100).unref();
}

void main();
