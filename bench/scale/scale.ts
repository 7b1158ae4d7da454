/**
 * Scale benchmarks (`make bench-scale`): the real operator process against a fresh real control
 * plane and the local token service, each figure measured in one run beside its reference.
 * See bench/README.md ("Scale") for what each figure means.
 *
 *   node --import tsx bench/scale/scale.ts                 # N = 1000 and 10000
 *   BENCH_N=1000 node --import tsx bench/scale/scale.ts    # one size
 *   BENCH_LARGE=1 ... (or --large)                         # adds N = 100000
 *
 * Environment (all optional):
 *   BENCH_N                     comma-separated sizes (default 1000,10000)
 *   BENCH_LARGE=1               add 100000
 *   BENCH_STEADY_SECONDS        steady-refresh window (default 90 for N <= 1000, else 600)
 *   BENCH_TOKEN_SECONDS         token lifetime in the steady phase (default 120, or N/50 above 10^4;
 *                               refresh_in = half)
 *   BENCH_CONCURRENCY           --max-concurrent-reconciles, and the floor's workers (default 16)
 *   BENCH_KUBE_QPS/BURST        --kube-api-qps/--kube-api-burst, and the floor's limit (default 2000/4000)
 *   BENCH_TOKEN_RPS             --token-requests-per-second (default 1000)
 *   BENCH_OPERATOR              dist (default: node dist/main.js, run `npm run build` first) | tsx
 *   BENCH_OPERATOR_MAIN         run this main.js instead (an A/B run against another build)
 *   BENCH_OPERATOR_NODE_OPTIONS NODE_OPTIONS for the operator, e.g. "--cpu-prof --cpu-prof-dir=DIR"
 *   BENCH_HEAP_SNAPSHOT=1       write a heap snapshot of the settled operator next to the report
 *                               (=all: after the restart too; later RSS figures then not comparable)
 *   BENCH_PHASES                subset of cold,restart,steady (default all; cold always runs)
 *   BENCH_FLOOR=0               skip the floor (profiling iterations; no ratio)
 *   BENCH_FLOOR=once            run the floor only before the operator (saves ~12 min at 10^5)
 *   BENCH_FLOOR_WATCH=1         the floor also watches every request and the managed Secrets, as the
 *                               operator must (a diagnostic: what watching costs the API server)
 *   BENCH_DUMP_COUNTS=1         print every request the API server counted in each timed phase
 *   BENCH_OUT                   results dir (default bench/results)
 *   BENCH_TAG                   suffix for the report's file names (e.g. "before")
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startControlPlane, freePort } from "../../hack/control-plane/control-plane.js";
import { installCrds } from "../../test/support/crds.js";
import { APP_TOKEN_REQUESTS, collectionPath } from "../../src/kube/resources.js";
import type { RawObject } from "../../src/kube/types.js";
import {
  diffCounts,
  scrapeRequestCounts,
  toObject,
  total,
  serverWriteMeanMs,
  writesOf,
  type ApiserverAccess,
  type RequestCounts,
} from "./apiserver-metrics.js";
import {
  CLIENT_SECRET,
  CLUSTER_RESOURCE_NAMESPACE,
  CRED_SECRET,
  NAMESPACES,
  fetchOneToken,
  namespaceOf,
  namespaces,
  registrationManifest,
  requestName,
  requestSpec,
  startBenchTokenService,
} from "./fixture.js";
import type { FloorJob, FloorResult } from "./floor.js";
import { Inspector } from "./inspector.js";
import {
  createClusterObject,
  createNamespace,
  createRequest,
  createSecret,
  currentRevision,
  harnessTransport,
  pollUntil,
  kubeConfig,
  pool,
  withRetry,
} from "./kube.js";
import { OperatorProcess, sumMetric } from "./operator-process.js";
import { ProcWatcher, cpuSeconds, loadAverage, machineInfo } from "./proc.js";
import { writeReport, type FloorRun, type Memory, type RunReport, type ScaleResult } from "./report.js";
import { SecretWatcher, ReadyWatcher } from "./watchers.js";

/** The request controller's series (the registration controller has its own). */
const REQUESTS = { controller: "apptokenrequest" };
const QUEUE = { name: "apptokenrequest" };

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const env = process.env;
const num = (v: string | undefined, d: number): number => (v !== undefined && v !== "" ? Number(v) : d);

const large = env.BENCH_LARGE === "1" || process.argv.includes("--large");
const SIZES = [
  ...(env.BENCH_N ? env.BENCH_N.split(",").map(Number) : [1000, 10000]),
  ...(large ? [100000] : []),
].filter((n, i, a) => n > 0 && a.indexOf(n) === i);
const CONCURRENCY = num(env.BENCH_CONCURRENCY, 16);
const KUBE_QPS = num(env.BENCH_KUBE_QPS, 2000);
const KUBE_BURST = num(env.BENCH_KUBE_BURST, 4000);
const TOKEN_RPS = num(env.BENCH_TOKEN_RPS, 1000);
/**
 * 2-minute tokens make N/60 refreshes a second: 167/s at 10^4, about what this 2-core machine's API
 * server sustains. Above 10^4 the lifetime grows with N (2 000 s at 10^5) to keep the same rate:
 * the phase measures refreshing at the machine's pace, not a backlog no single machine could clear.
 */
const tokenSecondsFor = (n: number): number =>
  num(env.BENCH_TOKEN_SECONDS, n <= 10_000 ? 120 : Math.ceil(n / 50));
const CREATE_CONCURRENCY = num(env.BENCH_CREATE_CONCURRENCY, 64);
const MODE = env.BENCH_OPERATOR === "tsx" ? "tsx" : "dist";
const PHASES = new Set((env.BENCH_PHASES ?? "cold,restart,steady").split(","));
const OUT = resolve(ROOT, env.BENCH_OUT ?? "bench/results");
const TAG = env.BENCH_TAG ? `-${env.BENCH_TAG}` : "";

const OPERATOR_ARGS = [
  "--max-concurrent-reconciles",
  String(CONCURRENCY),
  "--kube-api-qps",
  String(KUBE_QPS),
  "--kube-api-burst",
  String(KUBE_BURST),
  "--token-requests-per-second",
  String(TOKEN_RPS),
  "--log-level",
  "info",
];

function say(n: number, msg: string): void {
  process.stderr.write(`[bench-scale ${new Date().toISOString().slice(11, 19)} N=${n}] ${msg}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function checkBuild(): void {
  if (MODE !== "dist") return;
  const main = join(ROOT, "dist/main.js");
  if (!existsSync(main))
    throw new Error("dist/main.js is missing: run `npm run build` (make bench-scale does)");
  const built = statSync(main).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((d) =>
        d.isDirectory() ? newest(join(dir, d.name)) : statSync(join(dir, d.name)).mtimeMs,
      ),
    );
  if (newest(join(ROOT, "src")) > built + 1000)
    process.stderr.write("[bench-scale] warning: src/ is newer than dist/: run `npm run build`\n");
}

function pidOf(dir: string, name: string): number | undefined {
  try {
    return Number(readFileSync(join(dir, `${name}.pid`), "utf8"));
  } catch {
    return undefined;
  }
}

/** Writes the operator makes (secrets, request status, events), as the API server counted them. */
const NO_FLOOR: FloorRun = {
  label: "none",
  allReadyMs: Number.POSITIVE_INFINITY,
  writesDoneMs: Number.NaN,
  p50Ms: Number.NaN,
  p99Ms: Number.NaN,
  writes: {},
  writesTotal: 0,
  clientCpuSeconds: Number.NaN,
  apiserverCpuSeconds: Number.NaN,
  etcdCpuSeconds: Number.NaN,
  writeMeanMs: Number.NaN,
  serverWriteMeanMs: Number.NaN,
  cdf: [],
};

const OPERATOR_RESOURCES = ["secrets", "apptokenrequests/status", "events"];
function operatorWrites(d: RequestCounts): RequestCounts {
  return writesOf(d, OPERATOR_RESOURCES);
}

/** One control plane with the CRDs installed and a ReadyWatcher on it. */
interface Plane {
  cp: Awaited<ReturnType<typeof startControlPlane>>;
  t: ReturnType<typeof harnessTransport>;
  access: ApiserverAccess;
  serverCpu: () => { apiserver: number; etcd: number };
  ready: ReadyWatcher;
}

/**
 * Runs `fn` on a control plane of its own, started fresh and stopped after. Each timed phase (the
 * floor before, the operator, the floor after) gets one, so none inherits another's deleted
 * objects, compactions or garbage-collector backlog.
 */
async function withPlane<T>(n: number, label: string, fn: (p: Plane) => Promise<T>): Promise<T> {
  say(n, `starting a fresh control plane${label ? ` (${label})` : ""}`);
  const cp = await startControlPlane({
    log: (l) => say(n, l),
    beforeControllerManager: (path) => installCrds(kubeConfig(path)),
  });
  let ready: ReadyWatcher | undefined;
  try {
    const t = harnessTransport(kubeConfig(cp.kubeconfigPath));
    const apiserverPid = pidOf(cp.dir, "kube-apiserver");
    const etcdPid = pidOf(cp.dir, "etcd");
    ready = new ReadyWatcher(t);
    await ready.start();
    return await fn({
      cp,
      t,
      access: cp,
      serverCpu: () => ({ apiserver: cpuSeconds(apiserverPid), etcd: cpuSeconds(etcdPid) }),
      ready,
    });
  } finally {
    await ready?.stop().catch(() => undefined);
    await cp.stop();
  }
}

async function runOne(n: number): Promise<ScaleResult> {
  const m = Math.max(1, Math.round(n / 10));
  const tokenSeconds = tokenSecondsFor(n);
  // Long enough for the forced cohort's natural refresh (at half the lifetime) and 30 s after it.
  const steadySeconds = num(env.BENCH_STEADY_SECONDS, n <= 1000 ? 90 : Math.max(600, tokenSeconds / 2 + 60));
  const work = mkdtempSync(join(tmpdir(), `apptoken-bench-${n}-`));
  const logDir = join(OUT, "logs");
  mkdirSync(logDir, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 10);
  const logFile = (what: string) => join(logDir, `${stamp}-scale${TAG}-n${n}-${what}.log`);
  for (const what of ["baseline", "cold", "restart"]) rmSync(logFile(what), { force: true });
  const result: ScaleResult = {
    n,
    m,
    namespaces: NAMESPACES,
    steadySeconds,
    tokenSeconds,
  } as ScaleResult;

  const operators: OperatorProcess[] = [];
  // One tenant more than M: the "new request under load" asks for a key nobody holds yet.
  const service = await startBenchTokenService(m + 1, 3599);
  try {
    const caFile = join(work, "ca.pem");
    writeFileSync(caFile, service.caPem);
    const startOperator = (kubeconfigPath: string, what: string, inspect?: number) =>
      OperatorProcess.start({
        root: ROOT,
        kubeconfigPath,
        caFile,
        logFile: logFile(what),
        mode: MODE,
        args: [
          ...OPERATOR_ARGS,
          // The local token service is the only host a credential may go to.
          "--allowed-authority-hosts",
          new URL(service.url).host,
          "--cluster-resource-namespace",
          CLUSTER_RESOURCE_NAMESPACE,
        ],
        nodeOptions: env.BENCH_OPERATOR_NODE_OPTIONS,
        main: env.BENCH_OPERATOR_MAIN,
        inspectPort: inspect,
      }).then((op) => (operators.push(op), op));

    // ---- 1a. The floor, on its own set of N requests and its own control plane (run before and
    // after the operator's).
    const token = await fetchOneToken(service, 0);
    result.tokenBytes = token.length;
    const measureFloor = (label: string): Promise<FloorRun> =>
      withPlane(n, `floor ${label}`, async ({ cp, t, access, serverCpu, ready }) => {
        const floorNs = namespaces("floor");
        await pool(floorNs.length, 20, async (j) => {
          await createNamespace(t, floorNs[j]!);
        });
        say(n, `floor (${label}): creating ${n} requests`);
        const reqs = await createRequests(t, "floor", n, (i) => requestSpec(i % m));
        await ready.until(() => ready.count("floor-") >= n, 600_000, "floor requests listed");
        const jobFile = join(work, "floor-job.json");
        const job: FloorJob = {
          kubeconfigPath: cp.kubeconfigPath,
          requests: reqs.map((r, i) => ({
            namespace: r.metadata.namespace!,
            name: r.metadata.name!,
            uid: r.metadata.uid!,
            generation: r.metadata.generation ?? 1,
            tenant: i % m,
          })),
          token,
          concurrency: CONCURRENCY,
          qps: KUBE_QPS,
          burst: KUBE_BURST,
          watch: env.BENCH_FLOOR_WATCH === "1",
        };
        writeFileSync(jobFile, JSON.stringify(job));
        const before = await scrapeRequestCounts(access);
        const cpu0 = serverCpu();
        say(
          n,
          `floor (${label}): ${2 * n} writes at concurrency ${CONCURRENCY}${job.watch ? ", watching requests and Secrets" : ""}`,
        );
        const child = spawn(
          process.execPath,
          ["--import", "tsx", join(ROOT, "bench/scale/floor-main.ts"), jobFile],
          {
            cwd: ROOT,
            stdio: ["ignore", "pipe", "inherit"],
          },
        );
        const watcher = new ProcWatcher(child.pid!, 250).start();
        let out = "";
        child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
        const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
        watcher.stop();
        if (code !== 0) throw new Error(`floor process exited with ${code}`);
        const run = JSON.parse(out) as FloorResult;
        await ready.until(() => ready.readyCount("floor-") >= n, 600_000, "floor requests Ready");
        const cpu1 = serverCpu();
        const allCounts = diffCounts(before, await scrapeRequestCounts(access));
        if (env.BENCH_DUMP_COUNTS === "1") say(n, `counts: ${JSON.stringify(Object.fromEntries(allCounts))}`);
        const writes = writesOf(allCounts, OPERATOR_RESOURCES);
        const ttr = reqs.map(
          (r) => ready.readyAt.get(`${r.metadata.namespace}/${r.metadata.name}`)! - run.startedAt,
        );
        const f: FloorRun = {
          label,
          ...(job.watch ? { watching: true } : {}),
          allReadyMs: Math.max(...ttr),
          writesDoneMs: run.endedAt - run.startedAt,
          p50Ms: percentile(ttr, 50),
          p99Ms: percentile(ttr, 99),
          writes: toObject(writes),
          writesTotal: total(writes),
          clientCpuSeconds: watcher.last?.cpuSeconds ?? Number.NaN,
          apiserverCpuSeconds: cpu1.apiserver - cpu0.apiserver,
          etcdCpuSeconds: cpu1.etcd - cpu0.etcd,
          writeMeanMs: run.writeMeanMs,
          serverWriteMeanMs: serverWriteMeanMs(allCounts),
          cdf: cdf(ttr),
        };
        say(
          n,
          `floor (${label}): all Ready in ${(f.allReadyMs / 1000).toFixed(1)} s; a write took ${f.writeMeanMs.toFixed(1)} ms on average ` +
            `(${f.serverWriteMeanMs.toFixed(1)} ms of it in the API server)`,
        );
        return f;
      });
    const floorRuns = env.BENCH_FLOOR === "0" ? 0 : env.BENCH_FLOOR === "once" ? 1 : 2;
    const floors: FloorRun[] = floorRuns > 0 ? [await measureFloor("before")] : [];

    await withPlane(n, "operator", async ({ cp, t, access, serverCpu, ready }) => {
      const benchNs = namespaces("bench");
      await pool(benchNs.length, 20, async (j) => {
        await createNamespace(t, benchNs[j]!);
      });
      // One ClusterAppRegistration for every request, its Secret in the cluster resource namespace.
      await createNamespace(t, CLUSTER_RESOURCE_NAMESPACE);
      await createSecret(t, CLUSTER_RESOURCE_NAMESPACE, CRED_SECRET, { "client-secret": CLIENT_SECRET });
      await createClusterObject(
        t,
        "/apis/apptoken.io/v1alpha1/clusterappregistrations",
        registrationManifest(service),
      );

      // ---- Memory baseline: the operator with no requests (same cluster, same flags).
      {
        const port = await freePort();
        const op = await startOperator(cp.kubeconfigPath, "baseline", port);
        await op.waitForLog("tokens read back; reconciling", 60_000);
        await sleep(2000);
        const mem = await settledMemory(op, port);
        result.baseline = mem;
        await op.stop();
        say(n, `baseline: RSS ${mb(mem.rssBytes)} MB, heap ${mb(mem.heapUsedBytes)} MB after GC`);
      }

      // ---- 1b. Cold start: N requests exist, then the operator starts.
      say(
        n,
        `creating ${n} requests over ${m} cache keys in ${NAMESPACES} namespaces, one ClusterAppRegistration`,
      );
      const createStart = Date.now();
      await createRequests(t, "bench", n, (i) => requestSpec(i % m));
      result.createSeconds = (Date.now() - createStart) / 1000;
      await ready.until(() => ready.count("bench-") >= n, 600_000, "requests listed");
      service.resetCounters();
      let op: OperatorProcess;
      let inspectPort: number | undefined;
      {
        const before = await scrapeRequestCounts(access);
        const cpu0 = serverCpu();
        say(n, "cold start: starting the operator");
        op = await startOperator(cp.kubeconfigPath, "cold");
        await ready.until(() => ready.readyCount("bench-") >= n, 3_600_000, "all requests Ready");
        const allReady = Date.now();
        const opMetrics = await op.metricsText().catch(() => "");
        await sleep(2000); // Events are fire-and-forget: let the last ones land before counting
        const cpu1 = serverCpu();
        const allCounts = diffCounts(before, await scrapeRequestCounts(access));
        if (env.BENCH_DUMP_COUNTS === "1") say(n, `counts: ${JSON.stringify(Object.fromEntries(allCounts))}`);
        const writes = writesOf(allCounts, OPERATOR_RESOURCES);
        const keys = [...ready.readyAt.keys()].filter((k) => k.startsWith("bench-"));
        const ttr = keys.map((k) => ready.readyAt.get(k)! - op.startedAt);
        const startedLog = op.logTime("apptoken-operator starting");
        const syncedLog = op.logTime("caches synced");
        const sample = op.watcher.sample();
        result.cold = {
          allReadyMs: allReady - op.startedAt,
          p50Ms: percentile(ttr, 50),
          p99Ms: percentile(ttr, 99),
          bootMs: startedLog ? startedLog - op.startedAt : Number.NaN,
          syncedMs: syncedLog ? syncedLog - op.startedAt : Number.NaN,
          tokenCalls: service.requests(),
          writes: toObject(writes),
          writesTotal: total(writes),
          peakRssBytes: Math.max(op.watcher.peakRssBytes, sample?.hwmBytes ?? 0),
          cpuSeconds: sample?.cpuSeconds ?? Number.NaN,
          apiserverCpuSeconds: cpu1.apiserver - cpu0.apiserver,
          etcdCpuSeconds: cpu1.etcd - cpu0.etcd,
          reconcileMeanMs:
            (1000 * sumMetric(opMetrics, "controller_runtime_reconcile_time_seconds_sum", REQUESTS)) /
            Math.max(1, sumMetric(opMetrics, "controller_runtime_reconcile_time_seconds_count", REQUESTS)),
          reconciles: sumMetric(opMetrics, "controller_runtime_reconcile_time_seconds_count", REQUESTS),
          tokenCallMeanMs:
            (1000 * sumMetric(opMetrics, "apptoken_token_request_duration_seconds_sum")) /
            Math.max(1, sumMetric(opMetrics, "apptoken_token_request_duration_seconds_count")),
          // The operator's own pauses: what GC took (all threads), and how late its event loop ran.
          gcSeconds: sumMetric(opMetrics, "nodejs_gc_duration_seconds_sum"),
          gcMajorSeconds: sumMetric(opMetrics, "nodejs_gc_duration_seconds_sum", { kind: "major" }),
          eventLoopLagP99Ms: 1000 * sumMetric(opMetrics, "nodejs_eventloop_lag_p99_seconds"),
          writeMeanMs: meanOfWrites(opMetrics),
          serverWriteMeanMs: serverWriteMeanMs(allCounts),
          cdf: cdf(ttr),
        };
        say(
          n,
          `cold start: all Ready in ${(result.cold.allReadyMs / 1000).toFixed(1)} s ` +
            `(floor before: ${((floors[0]?.allReadyMs ?? NaN) / 1000).toFixed(1)} s), ${result.cold.tokenCalls} token calls, ` +
            `${result.cold.writesTotal} writes; a reconcile took ${result.cold.reconcileMeanMs.toFixed(1)} ms ` +
            `and a token call ${result.cold.tokenCallMeanMs.toFixed(1)} ms on average; GC took ` +
            `${result.cold.gcSeconds.toFixed(1)} s (major ${result.cold.gcMajorSeconds.toFixed(1)} s), ` +
            `event-loop lag p99 ${result.cold.eventLoopLagP99Ms.toFixed(0)} ms; a write took ${result.cold.writeMeanMs.toFixed(1)} ms ` +
            `(${result.cold.serverWriteMeanMs.toFixed(1)} ms of it in the API server)`,
        );
      }

      await op.stop();

      // ---- 2. Restart with every token fresh.
      if (PHASES.has("restart") || PHASES.has("steady")) {
        service.resetCounters();
        const before = await scrapeRequestCounts(access);
        const port = await freePort();
        inspectPort = port;
        say(n, "restart: starting a new operator process");
        op = await startOperator(cp.kubeconfigPath, "restart", port);
        let hits = 0;
        let reverifiedAt = 0;
        const deadline = Date.now() + 1_800_000;
        while (Date.now() < deadline) {
          hits = await op.metric("apptoken_cache_hits_total").catch(() => 0);
          if (hits >= n) {
            reverifiedAt = Date.now();
            break;
          }
          await sleep(250);
        }
        await sleep(5000); // anything written late is counted too
        const allCounts = diffCounts(before, await scrapeRequestCounts(access));
        if (env.BENCH_DUMP_COUNTS === "1") say(n, `counts: ${JSON.stringify(Object.fromEntries(allCounts))}`);
        const writes = writesOf(allCounts, OPERATOR_RESOURCES);
        const sample = op.watcher.sample();
        result.restart = {
          reverifiedMs: reverifiedAt ? reverifiedAt - op.startedAt : Number.NaN,
          syncedMs: (op.logTime("caches synced") ?? Number.NaN) - op.startedAt,
          cacheHits: hits,
          tokenCalls: service.requests(),
          writes: toObject(writes),
          writesTotal: total(writes),
          peakRssBytes: Math.max(op.watcher.peakRssBytes, sample?.hwmBytes ?? 0),
          cpuSeconds: sample?.cpuSeconds ?? Number.NaN,
        };
        say(
          n,
          `restart: ${hits} re-verified in ${(result.restart.reverifiedMs / 1000).toFixed(1)} s, ` +
            `${result.restart.tokenCalls} token calls, ${result.restart.writesTotal} writes`,
        );
        // ---- 5. Memory: the settled operator after a forced GC.
        result.memory = await settledMemory(
          op,
          port,
          // A snapshot leaves native memory behind: only when no later RSS figure is taken, unless
          // asked for (BENCH_HEAP_SNAPSHOT=all: the later RSS figures are then not comparable).
          (env.BENCH_HEAP_SNAPSHOT === "1" && !PHASES.has("steady")) || env.BENCH_HEAP_SNAPSHOT === "all"
            ? join(OUT, "profiles", `${stamp}-scale${TAG}-n${n}.heapsnapshot`)
            : undefined,
        );
        say(
          n,
          `memory: RSS ${mb(result.memory.rssBytes)} MB, heap ${mb(result.memory.heapUsedBytes)} MB after GC`,
        );
      }

      // ---- 3 + 4. Steady refresh with short tokens, and a new request while a cohort is due.
      if (PHASES.has("steady")) {
        const secrets = new SecretWatcher(t);
        await secrets.start();
        service.setConfig({
          ...service.config,
          tokenLifetimeSeconds: tokenSeconds,
          refreshInSeconds: Math.floor(tokenSeconds / 2),
        });
        service.resetCounters();
        const before = await scrapeRequestCounts(access);
        // Writes are counted between two scrapes, refreshes between two store revisions, each read
        // right after its scrape: the writes made while the revision is read are left out of the
        // refreshes at the start and counted among them at the end, so the two edges cancel out.
        const rv0 = await currentRevision(t);
        const cpu0 = { ...serverCpu(), operator: op.watcher.sample()?.cpuSeconds ?? 0 };
        const start = Date.now();
        say(
          n,
          `steady: ${tokenSeconds} s tokens for ${steadySeconds} s; forcing one request per key (${m}) onto them`,
        );
        /** One request per key force-refreshed: its token, and so every request on the key, is new. */
        const forceEveryKey = (stampValue: string) =>
          pool(m, CREATE_CONCURRENCY, async (k) => {
            const ns = namespaceOf("bench", k, n);
            await withRetry("force-refresh", () =>
              t.request({
                method: "PATCH",
                path: `${collectionPath(APP_TOKEN_REQUESTS, ns)}/${requestName(k)}`,
                body: { metadata: { annotations: { "apptoken.io/force-refresh": stampValue } } },
                contentType: "application/merge-patch+json",
              }),
            );
          });
        await forceEveryKey(`bench-${start}`);
        const forcedAt = Date.now();
        // The forced cohort is due refresh_in (half the lifetime) after issue, minus up to 5 % jitter.
        const half = (tokenSeconds / 2) * 1000;
        const depthSamples: { t: number; depth: number }[] = [];
        const sampleDepth = async (): Promise<number> => {
          const text = await op.metricsText().catch(() => "");
          const depth = sumMetric(text, "workqueue_depth", QUEUE);
          depthSamples.push({ t: Date.now(), depth });
          return depth;
        };
        let createAt = forcedAt + half - 1000;
        if (steadySeconds * 1000 < half + 15_000) createAt = start + steadySeconds * 500; // too short for a cohort
        while (Date.now() < createAt) {
          if (Date.now() > forcedAt + half - 0.06 * tokenSeconds * 1000) await sampleDepth();
          await sleep(500);
        }
        const depthAtCreate = await sampleDepth();
        const dueAtCreate = secrets.refreshes.filter((r) => r.latenessMs >= 0).length;
        const newNs = namespaceOf("bench", 0, n);
        const newKey = `${newNs}/new-under-load`;
        const created = Date.now();
        await createRequest(t, newNs, "new-under-load", requestSpec(m));
        await ready.until(() => ready.readyAt.has(newKey), 600_000, "the new request Ready");
        const newReadyMs = ready.readyAt.get(newKey)! - created;
        const cohortEnd = forcedAt + half + 30_000;
        while (Date.now() < Math.min(cohortEnd, start + steadySeconds * 1000)) {
          await sampleDepth();
          await sleep(1000);
        }
        const end = start + steadySeconds * 1000;
        if (Date.now() < end) await sleep(end - Date.now());
        const cpu1 = { ...serverCpu(), operator: op.watcher.sample()?.cpuSeconds ?? 0 };
        const all = diffCounts(before, await scrapeRequestCounts(access));
        const rv1 = await currentRevision(t);
        const window = (Date.now() - start) / 1000;
        if (inspectPort) {
          // Memory in the thick of it: ~N/60 refreshes a second. The young generation V8 grows for
          // that allocation rate is in this figure (see the breakdown row).
          result.memoryUnderLoad = await settledMemory(op, inspectPort);
          say(
            n,
            `memory under the refresh load: RSS ${mb(result.memoryUnderLoad.rssBytes)} MB, heap ${mb(result.memoryUnderLoad.heapUsedBytes)} MB after GC`,
          );
          // Then the load passes: every token is replaced once more by a long-lived one, and the
          // operator settles. Every request has now been refreshed and its status written by this
          // process: the state it spends its life in with real (60-90 min) tokens.
          service.setConfig({ ...service.config, tokenLifetimeSeconds: 3600, refreshInSeconds: undefined });
          await forceEveryKey(`bench-${Date.now()}-long`);
          await pollUntil(
            (now) => secrets.soonestExpiry() > now + 30 * 60_000,
            (tokenSeconds + 120) * 1000,
            "every Secret on a long-lived token",
          );
          for (let quiet = 0; quiet < 3;) {
            quiet =
              sumMetric(await op.metricsText().catch(() => ""), "workqueue_depth", QUEUE) === 0
                ? quiet + 1
                : 0;
            await sleep(1000);
          }
          result.memorySteady = await settledMemory(
            op,
            inspectPort,
            env.BENCH_HEAP_SNAPSHOT === "1" || env.BENCH_HEAP_SNAPSHOT === "all"
              ? join(OUT, "profiles", `${stamp}-scale${TAG}-n${n}-steady.heapsnapshot`)
              : undefined,
          );
          say(
            n,
            `memory after refreshes, load passed: RSS ${mb(result.memorySteady.rssBytes)} MB, heap ${mb(result.memorySteady.heapUsedBytes)} MB after GC`,
          );
        }
        const opWrites = operatorWrites(all);
        // The operator goes on refreshing during what follows; the watcher catches up meanwhile.
        await secrets.stop();
        const refreshes = secrets.refreshes.filter((r) => r.rv > rv0 && r.rv <= rv1);
        const natural = refreshes.filter((r) => r.latenessMs >= 0).map((r) => r.latenessMs);
        // The new request's Secret is a create, not a refresh: leave its writes out of the ratio.
        const newRequestWrites = 3;
        result.steady = {
          windowSeconds: window,
          refreshes: refreshes.length,
          naturalRefreshes: natural.length,
          refreshesPerSecond: refreshes.length / window,
          tokenCalls: service.requests(),
          operatorWrites: toObject(opWrites),
          operatorWritesTotal: total(opWrites),
          writesPerRefresh: (total(opWrites) - newRequestWrites) / Math.max(1, refreshes.length),
          // The harness force-refreshes and creates requests; their status is the operator's.
          harnessWrites: toObject(
            new Map([...writesOf(all, ["apptokenrequests"])].filter(([k]) => !k.includes("/status"))),
          ),
          latenessP50Ms: percentile(natural, 50),
          latenessP99Ms: percentile(natural, 99),
          latenessMaxMs: natural.length ? Math.max(...natural) : Number.NaN,
          expiredSecretsObserved: secrets.expired.size,
          worstExpiredByMs: secrets.worstExpiredByMs,
          expiryChecks: secrets.checks,
          operatorCpuSeconds: cpu1.operator - cpu0.operator,
          apiserverCpuSeconds: cpu1.apiserver - cpu0.apiserver,
          etcdCpuSeconds: cpu1.etcd - cpu0.etcd,
          peakRssBytes: Math.max(op.watcher.peakRssBytes, op.watcher.last?.hwmBytes ?? 0),
        };
        result.newRequest = {
          readyMs: newReadyMs,
          createdAfterForceMs: created - forcedAt,
          queueDepthAtCreate: depthAtCreate,
          maxQueueDepth: Math.max(0, ...depthSamples.map((d) => d.depth)),
          refreshesDoneBeforeCreate: dueAtCreate,
          cohortSize: n,
        };
        say(
          n,
          `steady: ${refreshes.length} refreshes (${result.steady.refreshesPerSecond.toFixed(1)}/s), ` +
            `${result.steady.writesPerRefresh.toFixed(2)} writes/refresh, lateness p99 ` +
            `${(result.steady.latenessP99Ms / 1000).toFixed(1)} s, expired seen ${secrets.expired.size}; ` +
            `new request Ready in ${(newReadyMs / 1000).toFixed(2)} s (queue depth ${depthAtCreate})`,
        );
      }
      await op.stop();
    });

    if (floorRuns > 1) floors.push(await measureFloor("after"));
    // The faster floor is the reference: the ratio errs against the operator.
    result.floors = floors;
    result.floor = floors.reduce((a, b) => (b.allReadyMs < a.allReadyMs ? b : a), NO_FLOOR);
    say(n, `cold start / floor = ${(result.cold.allReadyMs / result.floor.allReadyMs).toFixed(2)}`);
  } finally {
    for (const o of operators) await o.stop(5_000).catch(() => undefined);
    await service.close();
    rmSync(work, { recursive: true, force: true });
  }
  return result;
}

async function createRequests(
  t: ReturnType<typeof harnessTransport>,
  prefix: string,
  n: number,
  spec: (i: number) => Record<string, unknown>,
): Promise<RawObject[]> {
  const out: RawObject[] = new Array<RawObject>(n);
  await pool(n, CREATE_CONCURRENCY, async (i) => {
    out[i] = await createRequest(t, namespaceOf(prefix, i, n), requestName(i), spec(i));
  });
  return out;
}

async function settledMemory(op: OperatorProcess, port: number, snapshotFile?: string): Promise<Memory> {
  const inspector = await Inspector.connect(port);
  try {
    // Two rounds: V8 gives pages back to the OS some time after a GC, not at once.
    await inspector.collectGarbage();
    await sleep(2000);
    await inspector.collectGarbage();
    await sleep(2000);
    const heap = await inspector.heapUsage();
    const breakdown = await inspector.heapBreakdown();
    const rssBytes = op.watcher.sample()?.rssBytes ?? Number.NaN;
    if (snapshotFile) {
      mkdirSync(dirname(snapshotFile), { recursive: true });
      await inspector.heapSnapshot(snapshotFile);
    }
    return { rssBytes, heapUsedBytes: heap.usedSize, heapTotalBytes: heap.totalSize, breakdown };
  } finally {
    inspector.close();
  }
}

/** Time-to-Ready distribution as up to 200 (ms, fraction) points, for the chart. */
function cdf(ms: number[]): [number, number][] {
  const sorted = [...ms].sort((a, b) => a - b);
  const step = Math.max(1, Math.floor(sorted.length / 200));
  const out: [number, number][] = [];
  for (let i = 0; i < sorted.length; i += step) out.push([sorted[i]!, (i + 1) / sorted.length]);
  if (sorted.length) out.push([sorted[sorted.length - 1]!, 1]);
  return out;
}

const mb = (b: number) => (b / 2 ** 20).toFixed(1);

async function main(): Promise<void> {
  checkBuild();
  const started = Date.now();
  const machine = machineInfo();
  const loadBefore = loadAverage();
  const results: ScaleResult[] = [];
  for (const n of SIZES) {
    const r = await runOne(n);
    results.push(r);
    process.stdout.write(
      JSON.stringify({
        bench: "scale",
        ...r,
        cold: { ...r.cold, cdf: undefined },
        floor: { ...r.floor, cdf: undefined },
      }) + "\n",
    );
  }
  const report: RunReport = {
    date: new Date().toISOString(),
    machine,
    loadAverage: { before: loadBefore, after: loadAverage() },
    operator: {
      mode: env.BENCH_OPERATOR_MAIN ? env.BENCH_OPERATOR_MAIN : MODE,
      args: OPERATOR_ARGS,
      nodeOptions: env.BENCH_OPERATOR_NODE_OPTIONS ?? "",
    },
    floorConcurrency: CONCURRENCY,
    durationSeconds: (Date.now() - started) / 1000,
    results,
  };
  const files = writeReport(OUT, report, TAG);
  process.stderr.write(
    `[bench-scale] done in ${report.durationSeconds.toFixed(0)} s; wrote ${files.join(", ")}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench-scale] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

/** Mean latency of the operator's Secret creates and status patches, from its own histogram. */
function meanOfWrites(metrics: string): number {
  const series = [
    { verb: "create", resource: "secrets" },
    { verb: "patch", resource: "apptokenrequests/status" },
  ];
  let seconds = 0;
  let count = 0;
  for (const labels of series) {
    seconds += sumMetric(metrics, "rest_client_request_duration_seconds_sum", labels);
    count += sumMetric(metrics, "rest_client_request_duration_seconds_count", labels);
  }
  return (1000 * seconds) / Math.max(1, count);
}
