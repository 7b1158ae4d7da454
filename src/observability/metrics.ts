/**
 * Prometheus metrics. Labels are low-cardinality on purpose: never a tenant, client id, token or
 * request name (10^5 requests would make 10^5 series), only results, reasons and AADSTS codes.
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { listen } from "./listen.js";

export class Metrics {
  readonly registry = new Registry();
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
    help: "Cache keys currently backing off, by state",
    labelNames: ["state"] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: "apptoken_reconcile_duration_seconds",
    help: "Duration of one reconcile",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "apptoken_reconcile_errors_total",
    help: "Reconciles that ended with Ready=False or an error, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "apptoken_queue_depth",
    help: "Items waiting in the work queue (ready to run)",
    registers: [this.registry],
  });
  readonly queueDelayed = new Gauge({
    name: "apptoken_queue_scheduled",
    help: "Items scheduled for a later reconcile (refreshes, backoffs)",
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
  readonly queueLatency = new Histogram({
    name: "apptoken_queue_latency_seconds",
    help: "Time from a request being queued (or due) until a worker takes it, by priority",
    labelNames: ["priority"] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly queueAdds = new Counter({
    name: "apptoken_queue_adds_total",
    help: "Items added to the work queue, by priority",
    labelNames: ["priority"] as const,
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: "apptoken_queue_retries_total",
    help: "Reconciles retried with backoff after an error",
    registers: [this.registry],
  });
  readonly isLeader = new Gauge({
    name: "apptoken_leader",
    help: "1 while this replica holds the leader Lease",
    registers: [this.registry],
  });

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

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
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
