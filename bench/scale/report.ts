/**
 * Writes a scale run as bench/results/<date>-scale.{md,json,svg}: a table of every figure beside
 * its reference and target, and a hand-made SVG of the time-to-Ready distributions (operator vs
 * floor) per N.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HeapBreakdown } from "./inspector.js";

export interface Memory {
  rssBytes: number;
  heapUsedBytes: number;
  /** V8 heap committed (in use + free pages V8 keeps). */
  heapTotalBytes?: number;
  breakdown?: HeapBreakdown;
}

export interface FloorRun {
  label: string;
  /** The floor also watched requests and managed Secrets (BENCH_FLOOR_WATCH=1). */
  watching?: boolean;
  allReadyMs: number;
  writesDoneMs: number;
  p50Ms: number;
  p99Ms: number;
  writes: Record<string, number>;
  writesTotal: number;
  /** CPU of the floor's own process. */
  clientCpuSeconds: number;
  apiserverCpuSeconds: number;
  etcdCpuSeconds: number;
  /** Mean latency of its Secret creates and status patches, from send to answer. */
  writeMeanMs: number;
  /** The API server's own time on those writes (its apiserver_request_duration_seconds). */
  serverWriteMeanMs: number;
  cdf: [number, number][];
}

export interface ScaleResult {
  n: number;
  m: number;
  namespaces: number;
  steadySeconds: number;
  tokenSeconds: number;
  tokenBytes: number;
  createSeconds: number;
  baseline: Memory;
  /** The faster of the floor runs (before and after the cold start): the ratio errs against the operator. */
  floor: FloorRun;
  floors: FloorRun[];
  cold: {
    allReadyMs: number;
    p50Ms: number;
    p99Ms: number;
    bootMs: number;
    syncedMs: number;
    tokenCalls: number;
    writes: Record<string, number>;
    writesTotal: number;
    peakRssBytes: number;
    cpuSeconds: number;
    apiserverCpuSeconds: number;
    etcdCpuSeconds: number;
    /** Mean reconcile duration and count, from the operator's own histogram. */
    reconcileMeanMs: number;
    reconciles: number;
    /** Mean latency of the operator's calls to the token service (its own histogram). */
    tokenCallMeanMs: number;
    /** GC time (all threads; major: mark-compact) and the event loop's p99 lag, from its own metrics. */
    gcSeconds: number;
    gcMajorSeconds: number;
    eventLoopLagP99Ms: number;
    /** Mean latency of its Secret creates and status patches (rest_client_request_duration_seconds). */
    writeMeanMs: number;
    serverWriteMeanMs: number;
    cdf: [number, number][];
  };
  restart?: {
    reverifiedMs: number;
    syncedMs: number;
    cacheHits: number;
    tokenCalls: number;
    writes: Record<string, number>;
    writesTotal: number;
    peakRssBytes: number;
    cpuSeconds: number;
  };
  memory?: Memory;
  /** At the end of the steady-refresh window, refreshes still under way. */
  memoryUnderLoad?: Memory;
  /**
   * After the steady-refresh window and one more refresh onto long-lived tokens, the operator idle:
   * every request refreshed, status written by this process.
   */
  memorySteady?: Memory;
  steady?: {
    windowSeconds: number;
    refreshes: number;
    naturalRefreshes: number;
    refreshesPerSecond: number;
    tokenCalls: number;
    operatorWrites: Record<string, number>;
    operatorWritesTotal: number;
    writesPerRefresh: number;
    harnessWrites: Record<string, number>;
    latenessP50Ms: number;
    latenessP99Ms: number;
    latenessMaxMs: number;
    expiredSecretsObserved: number;
    worstExpiredByMs: number;
    expiryChecks: number;
    operatorCpuSeconds: number;
    apiserverCpuSeconds: number;
    etcdCpuSeconds: number;
    peakRssBytes: number;
  };
  newRequest?: {
    readyMs: number;
    createdAfterForceMs: number;
    queueDepthAtCreate: number;
    maxQueueDepth: number;
    refreshesDoneBeforeCreate: number;
    cohortSize: number;
  };
}

export interface RunReport {
  date: string;
  machine: { nproc: number; memoryGiB: number; cpuModel: string; node: string };
  loadAverage: { before: number; after: number };
  operator: { mode: string; args: string[]; nodeOptions: string };
  floorConcurrency: number;
  durationSeconds: number;
  results: ScaleResult[];
}

const s = (ms: number, digits = 1) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(digits)} s` : "–");
const mib = (b: number) => (Number.isFinite(b) ? `${(b / 2 ** 20).toFixed(0)} MiB` : "–");
const kb = (b: number) => (Number.isFinite(b) ? `${(b / 1024).toFixed(2)} KB` : "–");
const memText = (m: Memory) =>
  `${mib(m.rssBytes)} / ${mib(m.heapUsedBytes)}${m.heapTotalBytes ? ` (${mib(m.heapTotalBytes)})` : ""}`;
const breakdownText = (b: HeapBreakdown | undefined) =>
  b
    ? `${mib(b.youngCommittedBytes)}; ${mib(b.oldCommittedBytes)} (${mib(b.oldUsedBytes)}); ${mib(b.externalBytes)}`
    : "–";
const mark = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? " ✅" : " ❌");
const writesText = (w: Record<string, number> | undefined) =>
  !w || Object.keys(w).length === 0
    ? "none"
    : Object.entries(w)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ");

/** Per request, beyond the tokens: (settled RSS − baseline RSS − M·token bytes) / N. */
export function bytesPerRequest(
  r: ScaleResult,
  field: "rssBytes" | "heapUsedBytes",
  which: "memory" | "memorySteady" | "memoryUnderLoad" = "memory",
): number {
  const mem = r[which];
  if (!mem) return Number.NaN;
  return (mem[field] - r.baseline[field] - r.m * r.tokenBytes) / r.n;
}

/** Slope between two sizes (RSS or heap), minus the tokens added. */
export function slope(
  a: ScaleResult,
  b: ScaleResult,
  field: "rssBytes" | "heapUsedBytes",
  which: "memory" | "memorySteady" | "memoryUnderLoad" = "memory",
): number {
  const ma = a[which];
  const mb = b[which];
  if (!ma || !mb) return Number.NaN;
  return (mb[field] - ma[field] - (b.m - a.m) * b.tokenBytes) / (b.n - a.n);
}

/** Cold start, operator over floor: tighter as N grows, where fixed start-up costs matter least. */
export function ratioTarget(n: number): number {
  return n >= 100_000 ? 1.25 : n >= 10_000 ? 1.35 : 1.5;
}

export const TARGETS = {
  writesPerRefresh: 2,
  newRequestMs: 10_000,
  bytesPerRequest: 3 * 1024,
};

export function markdown(r: RunReport): string {
  const cols = r.results;
  const head = `| figure | target | ${cols.map((c) => `N=${c.n}`).join(" | ")} |`;
  const sep = `|---|---|${cols.map(() => "---").join("|")}|`;
  const row = (figure: string, target: string, cell: (c: ScaleResult) => string) =>
    `| ${figure} | ${target} | ${cols.map(cell).join(" | ")} |`;
  const ratio = (c: ScaleResult) => c.cold.allReadyMs / c.floor.allReadyMs;
  const slopes: string[] = [];
  const label = {
    memory: "after the restart (all fresh)",
    memorySteady: "after the refresh window, load passed",
    memoryUnderLoad: "under the refresh load (not a target: includes the young generation grown for it)",
  } as const;
  for (let i = 1; i < cols.length; i++) {
    for (const which of ["memory", "memorySteady", "memoryUnderLoad"] as const) {
      const rss = slope(cols[i - 1]!, cols[i]!, "rssBytes", which);
      const heap = slope(cols[i - 1]!, cols[i]!, "heapUsedBytes", which);
      if (!Number.isFinite(rss)) continue;
      slopes.push(
        `- slope N=${cols[i - 1]!.n} → ${cols[i]!.n}, ${label[which]}: ` +
          `**RSS ${kb(rss)} per request**${which === "memoryUnderLoad" ? "" : mark(rss <= TARGETS.bytesPerRequest)}, V8 heap ${kb(heap)}, beyond the tokens`,
      );
    }
  }
  const lines = [
    `# Scale benchmark, ${r.date.slice(0, 10)}`,
    "",
    `Machine: ${r.machine.nproc} CPUs (${r.machine.cpuModel}), ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; ` +
      `load average ${r.loadAverage.before} before, ${r.loadAverage.after} after (the machine is shared: ` +
      `compare figures within a column, measured in the same run, rather than across runs).`,
    "",
    `Operator: \`node ${r.operator.mode === "dist" ? "dist/main.js" : r.operator.mode === "tsx" ? "--import tsx src/main.ts" : r.operator.mode} ${r.operator.args.join(" ")}\`` +
      (r.operator.nodeOptions ? ` with NODE_OPTIONS=\`${r.operator.nodeOptions}\`` : "") +
      `; floor at the same concurrency (${r.floorConcurrency}) and client-side rate limit. Run took ${(r.durationSeconds / 60).toFixed(1)} min.`,
    "",
    head,
    sep,
    row(
      "**1. Cold start**: requests / cache keys / namespaces",
      "",
      (c) => `${c.n} / ${c.m} / ${c.namespaces}`,
    ),
    row("all Ready, operator (from process start)", "", (c) => s(c.cold.allReadyMs)),
    row("all Ready, floor (plain script, same writes; see BENCH_FLOOR_WATCH): before / after", "", (c) =>
      c.floors.map((f) => s(f.allReadyMs) + (f.watching ? " (watching)" : "")).join(" / "),
    ),
    row("ratio operator / floor", "≤ 1.5; 1.35 at 10^4; 1.25 at 10^5", (c) =>
      c.floors.length ? `**${ratio(c).toFixed(2)}**${mark(ratio(c) <= ratioTarget(c.n))}` : "–",
    ),
    row(
      "of which process boot / caches synced",
      "",
      (c) => `${s(c.cold.bootMs, 2)} / ${s(c.cold.syncedMs, 2)}`,
    ),
    row("ratio counted from caches synced (first reconcile)", "", (c) =>
      c.floors.length ? ((c.cold.allReadyMs - c.cold.syncedMs) / c.floor.allReadyMs).toFixed(2) : "–",
    ),
    row("time-to-Ready p50 / p99, operator", "", (c) => `${s(c.cold.p50Ms)} / ${s(c.cold.p99Ms)}`),
    row("time-to-Ready p50 / p99, floor", "", (c) => `${s(c.floor.p50Ms)} / ${s(c.floor.p99Ms)}`),
    row("token-service calls", "= M", (c) => `${c.cold.tokenCalls}${mark(c.cold.tokenCalls === c.m)}`),
    row("API writes, operator (apiserver_request_total)", "", (c) => writesText(c.cold.writes)),
    row("API writes, floor", "", (c) => writesText(c.floor.writes)),
    row(
      "operator peak RSS / CPU",
      "",
      (c) => `${mib(c.cold.peakRssBytes)} / ${c.cold.cpuSeconds.toFixed(1)} s`,
    ),
    row(
      "apiserver + etcd CPU, operator run / floor",
      "",
      (c) =>
        `${(c.cold.apiserverCpuSeconds + c.cold.etcdCpuSeconds).toFixed(1)} s / ${(c.floor.apiserverCpuSeconds + c.floor.etcdCpuSeconds).toFixed(1)} s`,
    ),
    row("**2. Restart** (all fresh): token-service calls", "0", (c) =>
      c.restart ? `${c.restart.tokenCalls}${mark(c.restart.tokenCalls === 0)}` : "–",
    ),
    row("every request re-verified (cache hits = N)", "", (c) =>
      c.restart ? `${s(c.restart.reverifiedMs)} (synced at ${s(c.restart.syncedMs)})` : "–",
    ),
    row("API writes", "none", (c) =>
      c.restart ? `${writesText(c.restart.writes)}${mark(c.restart.writesTotal === 0)}` : "–",
    ),
    row("peak RSS / CPU of the restarted process", "", (c) =>
      c.restart ? `${mib(c.restart.peakRssBytes)} / ${c.restart.cpuSeconds.toFixed(1)} s` : "–",
    ),
    row("**3. Steady refresh**: token lifetime / window", "", (c) =>
      c.steady ? `${c.tokenSeconds} s / ${c.steady.windowSeconds.toFixed(0)} s` : "–",
    ),
    row("refreshes (Secret got a new token) per second", "", (c) =>
      c.steady ? `${c.steady.refreshesPerSecond.toFixed(1)} (${c.steady.refreshes} in window)` : "–",
    ),
    row("token-service calls in window", "", (c) => (c.steady ? String(c.steady.tokenCalls) : "–")),
    row("API writes per refresh", `≤ ${TARGETS.writesPerRefresh}`, (c) =>
      c.steady
        ? `**${c.steady.writesPerRefresh.toFixed(3)}**${mark(c.steady.writesPerRefresh <= TARGETS.writesPerRefresh)} (${writesText(c.steady.operatorWrites)})`
        : "–",
    ),
    row("Secrets seen holding an expired token", "0", (c) =>
      c.steady
        ? `${c.steady.expiredSecretsObserved}${mark(c.steady.expiredSecretsObserved === 0)} (${c.steady.expiryChecks} checks)`
        : "–",
    ),
    row("refresh lateness vs refreshAt p50 / p99 / max", "", (c) =>
      c.steady
        ? `${s(c.steady.latenessP50Ms)} / ${s(c.steady.latenessP99Ms)} / ${s(c.steady.latenessMaxMs)}`
        : "–",
    ),
    row("operator / apiserver+etcd CPU in window", "", (c) =>
      c.steady
        ? `${c.steady.operatorCpuSeconds.toFixed(1)} s / ${(c.steady.apiserverCpuSeconds + c.steady.etcdCpuSeconds).toFixed(1)} s`
        : "–",
    ),
    row(
      "**4. New request under load**: time-to-Ready",
      `seconds (≤ ${TARGETS.newRequestMs / 1000} s)`,
      (c) =>
        c.newRequest
          ? `**${s(c.newRequest.readyMs, 2)}**${mark(c.newRequest.readyMs <= TARGETS.newRequestMs)}`
          : "–",
    ),
    row("refresh cohort due / queue depth at create (max)", "", (c) =>
      c.newRequest
        ? `${c.newRequest.cohortSize} / ${c.newRequest.queueDepthAtCreate} (${c.newRequest.maxQueueDepth})`
        : "–",
    ),
    row("**5. Memory** (after GC): RSS / V8 heap used (committed) after the restart", "", (c) =>
      c.memory ? memText(c.memory) : "–",
    ),
    row("the same after the refresh window, load passed", "", (c) =>
      c.memorySteady ? memText(c.memorySteady) : "–",
    ),
    row("the same under the refresh load (end of the window)", "", (c) =>
      c.memoryUnderLoad ? memText(c.memoryUnderLoad) : "–",
    ),
    row(
      "of the committed heap, after restart / load passed / under load: young generation; old spaces committed (used); external",
      "",
      (c) =>
        [c.memory, c.memorySteady, c.memoryUnderLoad].map((m) => breakdownText(m?.breakdown)).join(" / "),
    ),
    row(
      "baseline (no requests) RSS / heap",
      "",
      (c) => `${mib(c.baseline.rssBytes)} / ${mib(c.baseline.heapUsedBytes)}`,
    ),
    row("token size × keys", "", (c) => `${c.tokenBytes} B × ${c.m}`),
    row(
      "RSS per request beyond tokens vs baseline, after restart / load passed (fixed costs included: the target is the slope below)",
      "",
      (c) =>
        `${kb(bytesPerRequest(c, "rssBytes", "memory"))} / ${kb(bytesPerRequest(c, "rssBytes", "memorySteady"))}`,
    ),
    row(
      "V8 heap per request beyond tokens: after restart / load passed",
      "",
      (c) =>
        `${kb(bytesPerRequest(c, "heapUsedBytes", "memory"))} / ${kb(bytesPerRequest(c, "heapUsedBytes", "memorySteady"))}`,
    ),
    "",
    ...slopes,
    "",
    "![time to Ready, operator vs floor](" + `${r.date.slice(0, 10)}-scale.svg` + ")",
    "",
  ];
  return lines.join("\n");
}

/** Cumulative time-to-Ready, operator vs floor, one panel per N. */
export function svg(r: RunReport): string {
  const W = 320;
  const H = 220;
  const pad = { l: 44, r: 12, t: 28, b: 36 };
  const panels = r.results.map((c, i) => {
    const x0 = i * W;
    const maxMs = Math.max(c.cold.allReadyMs, c.floor.allReadyMs, 1);
    const px = (ms: number) => x0 + pad.l + (ms / maxMs) * (W - pad.l - pad.r);
    const py = (f: number) => pad.t + (1 - f) * (H - pad.t - pad.b);
    const line = (pts: [number, number][], color: string) =>
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${[[0, 0] as [number, number], ...pts]
        .map(([ms, f]) => `${px(ms).toFixed(1)},${py(f).toFixed(1)}`)
        .join(" ")}"/>`;
    const ticks = [0, 0.25, 0.5, 0.75, 1]
      .map(
        (f) =>
          `<text x="${px(f * maxMs).toFixed(1)}" y="${H - pad.b + 14}" font-size="10" text-anchor="middle">${((f * maxMs) / 1000).toFixed(f === 0 ? 0 : 1)}</text>` +
          `<line x1="${px(f * maxMs).toFixed(1)}" y1="${py(0)}" x2="${px(f * maxMs).toFixed(1)}" y2="${py(1)}" stroke="#eee"/>`,
      )
      .join("");
    const yticks = [0, 0.5, 1]
      .map(
        (f) =>
          `<text x="${x0 + pad.l - 4}" y="${py(f) + 3}" font-size="10" text-anchor="end">${f * 100}%</text>`,
      )
      .join("");
    return [
      `<text x="${x0 + W / 2}" y="16" font-size="12" text-anchor="middle" font-weight="bold">N=${c.n}, M=${c.m}: ratio ${(c.cold.allReadyMs / c.floor.allReadyMs).toFixed(2)}</text>`,
      ticks,
      yticks,
      `<rect x="${x0 + pad.l}" y="${pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="none" stroke="#999"/>`,
      line(c.floor.cdf, "#888"),
      line(c.cold.cdf, "#1f77b4"),
      `<text x="${x0 + W / 2}" y="${H - 6}" font-size="10" text-anchor="middle">seconds to Ready</text>`,
    ].join("\n");
  });
  const width = Math.max(1, r.results.length) * W;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H + 20}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels,
    `<g font-size="11"><line x1="10" y1="${H + 10}" x2="30" y2="${H + 10}" stroke="#1f77b4" stroke-width="2"/><text x="34" y="${H + 14}">operator (cold start)</text>`,
    `<line x1="170" y1="${H + 10}" x2="190" y2="${H + 10}" stroke="#888" stroke-width="2"/><text x="194" y="${H + 14}">floor (Secret + status only)</text></g>`,
    `</svg>`,
    "",
  ].join("\n");
}

export function writeReport(dir: string, r: RunReport, tag = ""): string[] {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${r.date.slice(0, 10)}-scale${tag}`);
  const md = markdown(r).replace(
    `${r.date.slice(0, 10)}-scale.svg`,
    `${r.date.slice(0, 10)}-scale${tag}.svg`,
  );
  writeFileSync(`${base}.md`, md);
  writeFileSync(`${base}.svg`, svg(r));
  writeFileSync(`${base}.json`, JSON.stringify(r, null, 1) + "\n");
  return [`${base}.md`, `${base}.svg`, `${base}.json`];
}
