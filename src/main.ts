#!/usr/bin/env node
/**
 * apptoken-operator: config -> clients -> controller -> servers. Reading this file and then
 * controller/reconcile.ts top to bottom answers "what happens when an AppTokenRequest is created?".
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { KubeConfig } from "@kubernetes/client-node";
import { TokenBucket, TokenCache } from "./cache/index.js";
import { systemClock } from "./clock.js";
import { ConfigError, helpText, loadConfig, type Config } from "./config.js";
import { AppTokenController } from "./controller/controller.js";
import { TokenClient, allowedHostSet, type AuthorityPolicy } from "./identity/index.js";
import { KubeApiClient } from "./kube/api-client.js";
import { EventRecorder } from "./kube/events.js";
import { LeaderElector } from "./kube/leader-election.js";
import { createKubeTransport } from "./kube/transport.js";
import { HealthServer } from "./observability/health.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";

const IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

function loadKubeConfig(config: Config): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) {
    // KUBECONFIG may list several files; client-node merges them like kubectl does.
    if (config.kubeconfig.includes(":")) kc.loadFromDefault();
    else kc.loadFromFile(config.kubeconfig);
  } else {
    kc.loadFromCluster();
  }
  if (!kc.getCurrentCluster()) {
    throw new ConfigError(
      "no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod",
    );
  }
  return kc;
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

async function run(config: Config, log: Logger): Promise<number> {
  const kc = loadKubeConfig(config);
  const clock = systemClock;
  const metrics = new Metrics({ perRequestMetrics: config.perRequestMetrics });
  const health = new HealthServer();
  const transport = createKubeTransport(kc, { userAgent: "apptoken-operator" });
  // With leader election, every write is checked against the lease right before it is sent.
  let elector: LeaderElector | undefined;
  const api = new KubeApiClient({
    transport,
    clock,
    qps: config.kubeApiQps,
    burst: config.kubeApiBurst,
    onWrite: (verb, resource) => metrics.kubeWrites.inc({ verb, resource }),
    mayWrite: () => !config.leaderElect || elector?.holdsLease() === true,
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
  const cache = new TokenCache({
    clock,
    limiter: new TokenBucket({
      ratePerSecond: config.tokenRequestsPerSecond,
      burst: Math.max(1, Math.ceil(config.tokenRequestsPerSecond)),
      clock,
    }),
  });
  const events = new EventRecorder({
    api,
    clock,
    host: process.env.POD_NAME ?? hostname(),
    onError: (e) =>
      log.debug({ err: e instanceof Error ? e.message : String(e) }, "could not write an Event"),
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
  });

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

  health.addLiveCheck("ping", () => true);
  health.addReadyCheck("informers", () => controller.hasSynced() || "caches not synced yet");
  const metricsAt = await metrics.start(config.metricsBindAddress);
  const healthAt = await health.start(config.healthProbeBindAddress);
  log.info(
    {
      server: kc.getCurrentCluster()?.server,
      namespaces: config.namespaces.length ? config.namespaces : "all",
      metrics: metricsAt ?? "disabled",
      health: healthAt ?? "disabled",
      leaderElect: config.leaderElect,
      allowedAuthorityHosts: config.allowedAuthorityHosts,
      allowedTokenAudiences: config.allowedTokenAudiences,
    },
    "apptoken-operator starting",
  );
  const sweep = setInterval(() => cache.sweep(), 60 * 60_000);
  sweep.unref();

  let code = 0;
  try {
    if (config.leaderElect) {
      elector = new LeaderElector({
        transport,
        namespace: leaseNamespace(config),
        name: config.leaderElectionId,
        log: log.child({ component: "leader-election" }),
        onStartedLeading: (signal) => {
          metrics.leader.set({ name: config.leaderElectionId }, 1);
          return controller.lead(signal);
        },
        onStoppedLeading: () => metrics.leader.set({ name: config.leaderElectionId }, 0),
        onNewLeader: (identity) => log.info({ leader: identity }, "observed leader"),
      });
      // Standbys watch too: warm caches and tokens read back from Secrets make a takeover quiet.
      void controller.startWatching(shutdown.signal);
      metrics.leader.set({ name: config.leaderElectionId }, 0);
      const outcome = await elector.run(shutdown.signal);
      if (outcome === "lost") {
        // Another replica may be leading by now: exit rather than risk writing beside it.
        log.error({}, "lost leadership; exiting so that a fresh process can campaign again");
        code = 1;
      }
    } else {
      // The only replica is the one that writes: the "is there a leader" alert holds for it too.
      metrics.leader.set({ name: config.leaderElectionId }, 1);
      await controller.lead(shutdown.signal);
    }
  } finally {
    clearInterval(sweep);
    await controller.stop();
    await tokenClient.close();
    await Promise.all([metrics.stop(), health.stop()]);
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
