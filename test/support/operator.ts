/**
 * Runs the real operator as a separate process (node + tsx on src/main.ts, or node on a built
 * bundle such as dist/main.js) against the test control plane, the way a user runs it: flags, a
 * kubeconfig, stdout JSON logs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../hack/control-plane/control-plane.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export interface OperatorProcess {
  child: ChildProcess;
  metricsUrl: string;
  healthUrl: string;
  /** Every line the operator printed so far (JSON logs). */
  output(): string;
  /** Parsed JSON log lines. */
  logs(): Record<string, unknown>[];
  metrics(): Promise<string>;
  /** One metric's value summed over the label sets that match `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  waitReady(timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartOperatorOptions {
  kubeconfigPath: string;
  namespaces?: string[];
  caFile?: string;
  args?: string[];
  env?: Record<string, string>;
  logLevel?: string;
  /**
   * A built JavaScript entry point (e.g. a bundled dist/main.js) to run with plain `node`, as the
   * image does; default: `node --import tsx src/main.ts`.
   */
  entry?: string;
  /** The operator's working directory; default the repository root. */
  cwd?: string;
}

export async function startOperator(o: StartOperatorOptions): Promise<OperatorProcess> {
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const args = [
    ...(o.entry ? [resolve(ROOT, o.entry)] : ["--import", "tsx", join(ROOT, "src/main.ts")]),
    "--kubeconfig",
    o.kubeconfigPath,
    "--metrics-bind-address",
    `127.0.0.1:${metricsPort}`,
    "--health-probe-bind-address",
    `127.0.0.1:${healthPort}`,
    "--log-format",
    "json",
    "--log-level",
    o.logLevel ?? "debug",
    ...(o.caFile ? ["--authority-ca-file", o.caFile] : []),
    ...(o.namespaces ?? []).flatMap((n) => ["--namespace", n]),
    ...(o.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: o.cwd ?? ROOT,
    env: { ...process.env, KUBECONFIG: "", ...o.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  const self: OperatorProcess = {
    child,
    metricsUrl,
    healthUrl,
    exited,
    output: () => out,
    logs: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    metrics: async () => (await fetch(metricsUrl)).text(),
    metric: async (name, labels = {}) => {
      const text = await self.metrics();
      let sum = 0;
      for (const line of text.split("\n")) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-zA-Z_:]+)(\{(.*)\})? (\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const set = Object.fromEntries(
          [...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
        );
        if (Object.entries(labels).every(([k, v]) => set[k] === v)) sum += Number(m[4]);
      }
      return sum;
    },
    waitReady: async (timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (child.exitCode !== null)
          throw new Error(`operator exited with ${child.exitCode}:\n${out.slice(-3000)}`);
        const ok = await fetch(`${healthUrl}/readyz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`operator not ready after ${timeoutMs} ms:\n${out.slice(-3000)}`);
    },
    stop: async (signal = "SIGTERM", timeoutMs = 30_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  // Never outlive the test run; the listener goes with the child, so long runs that start many
  // operators (bench-fleet, chaos) do not pile them up.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  child.once("exit", () => process.removeListener("exit", killOnExit));
  return self;
}
