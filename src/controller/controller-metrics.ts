/**
 * How the controllers feed the metrics: the work queues' hooks (controller-runtime's reconcile
 * counters and client-go's workqueue series, per controller) and the gauges computed at scrape
 * time from the informers' caches, so that nothing on the reconcile path keeps them current.
 */
import type { AppTokenRequestStatus } from "../api/types.js";
import type { TokenCache } from "../cache/index.js";
import type { Clock } from "../clock.js";
import type { RawObject } from "../kube/types.js";
import type { WorkQueue, WorkQueueMetrics, WorkOutcome } from "../kube/work-queue.js";
import { CONTROLLER, type ControllerName, type Metrics } from "../observability/metrics.js";

/** controller-runtime's result label: every run of ours that asks to come back names a time. */
const RESULT: Record<WorkOutcome, string> = { success: "success", requeue: "requeue_after", error: "error" };

export function workQueueMetrics(m: Metrics, controller: ControllerName): WorkQueueMetrics {
  const queue = { name: controller, controller };
  // Present from the start at 0, as controller-runtime does: a rate() of an error counter that
  // appears only at its first error misses that error.
  for (const result of Object.values(RESULT)) m.reconcileTotal.inc({ controller, result }, 0);
  m.reconcileErrors.inc({ controller }, 0);
  m.workqueueRetries.inc(queue, 0);
  m.workqueueAdds.inc(queue, 0);
  return {
    added: () => m.workqueueAdds.inc(queue),
    queueLatency: (ms) => m.workqueueQueueDuration.observe(queue, ms / 1000),
    workDuration: (ms, outcome) => {
      m.workqueueWorkDuration.observe(queue, ms / 1000);
      m.reconcileTime.observe({ controller }, ms / 1000);
      m.reconcileTotal.inc({ controller, result: RESULT[outcome] });
      if (outcome === "error") m.reconcileErrors.inc({ controller });
    },
    retried: () => m.workqueueRetries.inc(queue),
  };
}

/** The queue's gauges, read at scrape time. `concurrency` is 0 while this replica is not leading. */
export function collectQueueGauges(
  m: Metrics,
  controller: ControllerName,
  queue: Pick<WorkQueue, "stats">,
  concurrency: number,
): void {
  const s = queue.stats();
  const labels = { name: controller, controller };
  m.workqueueDepth.set(labels, s.high + s.low);
  m.workqueueUnfinishedWork.set(labels, s.unfinishedMs / 1000);
  m.workqueueLongestRunning.set(labels, s.longestRunningMs / 1000);
  m.scheduled.set({ name: controller }, s.delayed);
  m.activeWorkers.set({ controller }, s.processing);
  m.maxConcurrentReconciles.set({ controller }, concurrency);
}

/**
 * Requests by Ready status and reason (always: one series per reason, whatever the number of
 * requests), and with --per-request-metrics one `ready` and one `expiration` series per request.
 * Rebuilt from the informer on each scrape, so a deleted request's series go with it.
 */
export function collectRequestGauges(m: Metrics, requests: Iterable<RawObject>): void {
  const counts = new Map<string, { status: string; reason: string; n: number }>();
  const perRequest = m.perRequest;
  m.requests.reset();
  perRequest?.ready.reset();
  perRequest?.expiration.reset();
  for (const obj of requests) {
    const status = (obj as { status?: AppTokenRequestStatus }).status;
    const ready = status?.conditions?.find((c) => c.type === "Ready");
    const st = ready?.status ?? "Unknown";
    const reason = ready?.reason ?? "";
    const key = `${st}\u0000${reason}`;
    const entry = counts.get(key);
    if (entry) entry.n++;
    else counts.set(key, { status: st, reason, n: 1 });
    if (!perRequest) continue;
    const labels = { namespace: obj.metadata.namespace ?? "", name: obj.metadata.name ?? "" };
    perRequest.ready.set(labels, st === "True" ? 1 : 0);
    const expiresAt = status?.expiresAt === undefined ? NaN : Date.parse(status.expiresAt);
    if (Number.isFinite(expiresAt)) perRequest.expiration.set(labels, expiresAt / 1000);
  }
  for (const { status, reason, n } of counts.values())
    m.requests.set({ condition: "Ready", status, reason }, n);
}

/** The controller's queues, requests and reconciler (its public fields). */
export interface GaugeSources {
  readonly queue: Pick<WorkQueue, "stats">;
  readonly registrationQueue: Pick<WorkQueue, "stats">;
  readonly requests: { list(): Iterable<RawObject> };
  readonly reconciler: { soonestExpiry(): number | undefined };
}

export interface GaugeOptions {
  metrics: Metrics;
  clock: Clock;
  cache: Pick<TokenCache, "stats">;
  concurrency: number;
  /** Asked at each scrape: a standby runs no workers. */
  leading(): boolean;
}

export function registerGauges(s: GaugeSources, o: GaugeOptions): void {
  const m = o.metrics;
  const collectors = {
    queue: () => {
      const workers = o.leading() ? o.concurrency : 0;
      collectQueueGauges(m, CONTROLLER.requests, s.queue, workers);
      collectQueueGauges(m, CONTROLLER.registrations, s.registrationQueue, o.leading() ? 2 : 0);
      collectRequestGauges(m, s.requests.list());
    },
    cache: () => {
      const c = o.cache.stats();
      // The cache counts its hits and misses; the counters show its totals at each scrape.
      m.cacheHits.reset();
      m.cacheHits.inc(c.hits);
      m.cacheMisses.reset();
      m.cacheMisses.inc(c.misses);
      m.throttledKeys.set({ state: "Throttled" }, c.throttledKeys);
      m.throttledKeys.set({ state: "Backoff" }, c.backoffKeys);
    },
    expiry: () => {
      const soonest = s.reconciler.soonestExpiry();
      if (soonest !== undefined) m.soonestExpiry.set((soonest - o.clock.now()) / 1000);
    },
  };
  m.onCollect(() => {
    collectors.queue();
    collectors.cache();
    collectors.expiry();
  });
}
