/**
 * The operator as a separate, real process, as users run it: `node dist/main.js` (compiled, the
 * default: closest to production) or `node --import tsx src/main.ts` (BENCH_OPERATOR=tsx). Its
 * JSON logs go to a file (not through a pipe into this process, which would make the harness
 * part of the operator's I/O path). BENCH_OPERATOR_NODE_OPTIONS is put on its node command line
 * (not in NODE_OPTIONS, which refuses --cpu-prof), e.g. "--cpu-prof --cpu-prof-dir=DIR".
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../hack/control-plane/control-plane.js";
import { ProcWatcher } from "./proc.js";

export interface OperatorOptions {
  root: string;
  kubeconfigPath: string;
  caFile: string;
  logFile: string;
  mode: "dist" | "tsx";
  args: string[];
  nodeOptions?: string | undefined;
  /** Another build's entry point (BENCH_OPERATOR_MAIN), e.g. a "before" build for an A/B run. */
  main?: string | undefined;
  /** Opens the inspector on this port (for forced GC and heap snapshots, see inspector.ts). */
  inspectPort?: number | undefined;
}

export class OperatorProcess {
  readonly startedAt: number;
  readonly watcher: ProcWatcher;
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly metricsUrl: string,
    readonly healthUrl: string,
    readonly logFile: string,
    startedAt: number,
  ) {
    this.startedAt = startedAt;
    this.exited = new Promise((r) => child.once("exit", (code) => r(code)));
    this.watcher = new ProcWatcher(child.pid!, 250).start();
  }

  static async start(o: OperatorOptions): Promise<OperatorProcess> {
    const metricsPort = await freePort();
    const healthPort = await freePort();
    const entry = o.main
      ? [o.main]
      : o.mode === "dist"
        ? [join(o.root, "dist/main.js")]
        : ["--import", "tsx", join(o.root, "src/main.ts")];
    const args = [
      ...(o.nodeOptions ? o.nodeOptions.split(/\s+/).filter(Boolean) : []),
      ...(o.inspectPort ? [`--inspect=127.0.0.1:${o.inspectPort}`] : []),
      ...entry,
      "--kubeconfig",
      o.kubeconfigPath,
      "--metrics-bind-address",
      `127.0.0.1:${metricsPort}`,
      "--health-probe-bind-address",
      `127.0.0.1:${healthPort}`,
      "--authority-ca-file",
      o.caFile,
      "--log-format",
      "json",
      ...o.args,
    ];
    const out = openSync(o.logFile, "a");
    const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: "" };
    delete env.NODE_OPTIONS;
    const startedAt = Date.now();
    const child = spawn(process.execPath, args, { cwd: o.root, env, stdio: ["ignore", out, out] });
    closeSync(out);
    process.once("exit", () => child.kill("SIGKILL"));
    return new OperatorProcess(
      child,
      `http://127.0.0.1:${metricsPort}/metrics`,
      `http://127.0.0.1:${healthPort}`,
      o.logFile,
      startedAt,
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  async metricsText(): Promise<string> {
    return (await fetch(this.metricsUrl, { signal: AbortSignal.timeout(10_000) })).text();
  }

  /** One metric summed over every label set that matches `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await this.metricsText(), name, labels);
  }

  /** Epoch ms of the first log line whose msg is `msg`, if any. */
  logTime(msg: string): number | undefined {
    if (!existsSync(this.logFile)) return undefined;
    for (const line of readFileSync(this.logFile, "utf8").split("\n")) {
      if (!line.includes(`"msg":"${msg}"`)) continue;
      try {
        const t = (JSON.parse(line) as { time?: unknown }).time;
        if (typeof t === "number") return t;
        if (typeof t === "string") return Date.parse(t);
      } catch {
        /* not JSON */
      }
    }
    return undefined;
  }

  /** Waits for a log line with this msg (polling the file). */
  async waitForLog(msg: string, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = this.logTime(msg);
      if (t !== undefined) return t;
      if (this.child.exitCode !== null)
        throw new Error(`operator exited (${this.child.exitCode}); see ${this.logFile}`);
      if (Date.now() > deadline) throw new Error(`no "${msg}" in the operator's log after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGTERM, SIGKILL after `timeoutMs`. Resolves with the exit code. */
  async stop(timeoutMs = 30_000): Promise<number | null> {
    this.watcher.sample();
    this.watcher.stop();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = Object.fromEntries([...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => set[k] === v)) sum += Number(m[4]);
  }
  return sum;
}
