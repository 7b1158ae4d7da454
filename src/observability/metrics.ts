/**
 * Prometheus metrics. The generic ones carry the names and labels that controller-runtime and
 * client-go export (controller_runtime_*, workqueue_*, leader_election_master_status), so that
 * existing dashboards and alerts for Kubernetes controllers work unchanged; apptoken_* is the
 * domain. Labels are low-cardinality on purpose: never a tenant, client id or token, and a request's
 * name only in the opt-in per-request series (one series per request: see perRequest).
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { listen } from "./listen.js";

/** The controllers' (and their work queues') names, as the `controller` and `name` labels show them. */
export const CONTROLLER = { requests: "apptokenrequest", registrations: "appregistration" } as const;
export type ControllerName = (typeof CONTROLLER)[keyof typeof CONTROLLER];

/** controller-runtime's reconcile_time buckets (pkg/internal/controller/metrics). */
const RECONCILE_TIME_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
  1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];
/** client-go's workqueue buckets: 10 ns to 1000 s, by tens (ExponentialBuckets(10e-9, 10, 12)). */
const WORKQUEUE_BUCKETS = Array.from({ length: 12 }, (_, i) => Number(`1e${i - 8}`));

export class Metrics {
  readonly registry = new Registry();

  // controller-runtime: one series per controller.
  readonly reconcileTotal = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Total number of reconciliations per controller",
    labelNames: ["controller", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Total number of reconciliation errors per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "Length of time per reconciliation per controller",
    labelNames: ["controller"] as const,
    buckets: RECONCILE_TIME_BUCKETS,
    registers: [this.registry],
  });
  readonly maxConcurrentReconciles = new Gauge({
    name: "controller_runtime_max_concurrent_reconciles",
    help: "Maximum number of concurrent reconciles per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly activeWorkers = new Gauge({
    name: "controller_runtime_active_workers",
    help: "Number of currently used workers per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });

  // client-go's workqueue metrics; `controller` repeats `name`, as controller-runtime does.
  readonly workqueueDepth = new Gauge({
    name: "workqueue_depth",
    help: "Current depth of workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  readonly workqueueAdds = new Counter({
    name: "workqueue_adds_total",
    help: "Total number of adds handled by workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  readonly workqueueQueueDuration = new Histogram({
    name: "workqueue_queue_duration_seconds",
    help: "How long in seconds an item stays in workqueue before being requested",
    labelNames: ["name", "controller"] as const,
    buckets: WORKQUEUE_BUCKETS,
    registers: [this.registry],
  });
  readonly workqueueWorkDuration = new Histogram({
    name: "workqueue_work_duration_seconds",
    help: "How long in seconds processing an item from workqueue takes.",
    labelNames: ["name", "controller"] as const,
    buckets: WORKQUEUE_BUCKETS,
    registers: [this.registry],
  });
  readonly workqueueUnfinishedWork = new Gauge({
    name: "workqueue_unfinished_work_seconds",
    help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  readonly workqueueLongestRunning = new Gauge({
    name: "workqueue_longest_running_processor_seconds",
    help: "How many seconds has the longest running processor for workqueue been running.",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  readonly workqueueRetries = new Counter({
    name: "workqueue_retries_total",
    help: "Total number of retries handled by workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });

  // client-go's leader-election gauge.
  readonly leader = new Gauge({
    name: "leader_election_master_status",
    help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });

  // The domain.
  readonly tokenRequests = new Counter({
    name: "apptoken_token_requests_total",
    help: "Calls to the token service, by result (success|throttled|transient|permanent) and AADSTS code",
    labelNames: ["result", "aadsts"] as const,
    registers: [this.registry],
  });
  readonly tokenRequestDuration = new Histogram({
    name: "apptoken_token_request_duration_seconds",
    help: "Latency of calls to the token service",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: "apptoken_cache_hits_total",
    help: "Reconciles served from the token cache",
    registers: [this.registry],
  });
  readonly cacheMisses = new Counter({
    name: "apptoken_cache_misses_total",
    help: "Reconciles that needed a call to the token service",
    registers: [this.registry],
  });
  readonly throttledKeys = new Gauge({
    name: "apptoken_throttled_keys",
    help: "Cache keys currently backing off, by state (Throttled: the token service said when; Backoff: after a failure)",
    labelNames: ["state"] as const,
    registers: [this.registry],
  });
  readonly scheduled = new Gauge({
    name: "apptoken_workqueue_scheduled",
    help: "Items waiting for a later reconcile (refreshes, backoffs), per work queue",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });
  readonly soonestExpiry = new Gauge({
    name: "apptoken_soonest_expiry_seconds",
    help: "Seconds until the soonest-expiring token held in a Secret expires",
    registers: [this.registry],
  });
  readonly kubeWrites = new Counter({
    name: "apptoken_kube_writes_total",
    help: "Writes to the Kubernetes API, by verb and resource",
    labelNames: ["verb", "resource"] as const,
    registers: [this.registry],
  });
  readonly kubeRequestDuration = new Histogram({
    name: "rest_client_request_duration_seconds",
    help: "Latency of the operator's requests to the Kubernetes API (watches excepted), from send to answer, by verb and resource",
    labelNames: ["verb", "resource"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly requests = new Gauge({
    name: "apptoken_requests",
    help: "AppTokenRequests by the status and reason of a condition (Ready), as the operator's cache sees them",
    labelNames: ["condition", "status", "reason"] as const,
    registers: [this.registry],
  });
  readonly notReadyTotal = new Counter({
    name: "apptoken_request_not_ready_total",
    help: "Status writes that set an AppTokenRequest's Ready to False, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly credentialExpiration = new Gauge({
    name: "apptoken_credential_expiration_timestamp_seconds",
    help: "When each registration's credential expires (Unix seconds): a certificate's notAfter, a client secret's spec expiresAt, a client assertion's exp",
    labelNames: ["kind", "namespace", "name", "credential"] as const,
    registers: [this.registry],
  });

  /** Opt-in (--per-request-metrics): one series per AppTokenRequest, each. */
  readonly perRequest:
    { ready: Gauge<"namespace" | "name">; expiration: Gauge<"namespace" | "name"> } | undefined;

  private server: Server | undefined;
  private readonly collectHooks: (() => void)[] = [];

  /** Gauges that are cheaper to compute at scrape time than to keep current (queue depth, expiry). */
  onCollect(hook: () => void): void {
    this.collectHooks.push(hook);
  }

  /** The exposition text, after running the collect hooks. */
  async render(): Promise<string> {
    for (const hook of this.collectHooks) hook();
    return this.registry.metrics();
  }

  constructor(opts: { defaultMetrics?: boolean; perRequestMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.perRequest = opts.perRequestMetrics
      ? {
          ready: new Gauge({
            name: "apptoken_request_ready",
            help: "1 when the AppTokenRequest is Ready, else 0 (only with --per-request-metrics)",
            labelNames: ["namespace", "name"] as const,
            registers: [this.registry],
          }),
          expiration: new Gauge({
            name: "apptoken_token_expiration_timestamp_seconds",
            help: "When the token in the AppTokenRequest's Secret expires, Unix seconds (only with --per-request-metrics)",
            labelNames: ["namespace", "name"] as const,
            registers: [this.registry],
          }),
        }
      : undefined;
  }

  async start(bindAddress: string): Promise<string | undefined> {
    if (bindAddress === "0") return undefined;
    this.server = createServer((req, res) => {
      if ((req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404).end("not found\n");
        return;
      }
      this.render().then(
        (body) => res.writeHead(200, { "content-type": this.registry.contentType }).end(body),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    });
    return listen(this.server, bindAddress);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
