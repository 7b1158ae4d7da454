/**
 * What --per-request-metrics costs at N requests (default 10^4): the scrape's size, the time to
 * build and render it, and the heap it keeps, with the opt-in off and on. The requests are informer
 * objects as the controller holds them (status with Ready and expiresAt); no servers.
 *
 * Usage: node --expose-gc --import tsx bench/metrics/per-request-cost.ts [N]
 */
import { performance } from "node:perf_hooks";
import { collectRequestGauges } from "../../src/controller/controller-metrics.js";
import type { RawObject } from "../../src/kube/types.js";
import { Metrics } from "../../src/observability/metrics.js";

const N = Number(process.argv[2] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const requests: RawObject[] = Array.from({ length: N }, (_, i) => ({
  apiVersion: "apptoken.io/v1alpha1",
  kind: "AppTokenRequest",
  metadata: { namespace: `tenant-${i % 100}`, name: `graph-${i}` },
  status: {
    expiresAt: new Date(Date.now() + 3_600_000 + i).toISOString(),
    conditions: [
      {
        type: "Ready",
        status: i % 50 === 0 ? "False" : "True",
        reason: i % 50 === 0 ? "Pending" : "TokenIssued",
      },
    ],
  },
}));

async function measure(perRequestMetrics: boolean) {
  gc!();
  const heapBefore = process.memoryUsage().heapUsed;
  const metrics = new Metrics({ defaultMetrics: false, perRequestMetrics });
  metrics.onCollect(() => collectRequestGauges(metrics, requests));
  let bytes = 0;
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    bytes = Buffer.byteLength(await metrics.render());
    times.push(performance.now() - t0);
  }
  gc!();
  const heapAfter = process.memoryUsage().heapUsed;
  times.sort((a, b) => a - b);
  return {
    perRequestMetrics,
    scrapeBytes: bytes,
    scrapeMsMedian: Math.round(times[3]! * 10) / 10,
    heapKeptMiB: Math.round(((heapAfter - heapBefore) / 2 ** 20) * 10) / 10,
    keep: metrics,
  };
}

const off = await measure(false);
const on = await measure(true);
for (const r of [off, on]) {
  const { keep: _keep, ...row } = r;
  console.log(JSON.stringify({ requests: N, ...row }));
}
