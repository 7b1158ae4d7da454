/**
 * `make dev` (hack/dev.sh): the product working on a laptop with no cluster and no Azure tenant.
 *
 *   1. a local control plane (real kube-apiserver + etcd + garbage collector) in $DEV_DIR/cp;
 *   2. the local token service (Entra ID v2.0 stand-in) with one tenant and one app that has a
 *      client secret and a registered certificate, its CA in $DEV_DIR/token-service/ca.pem;
 *   3. the three CRDs and the demo objects (demo.ts): the cluster resource namespace
 *      apptoken-system with the client secret, ClusterAppRegistration demo-app offered to the
 *      labelled namespaces demo and demo-b, AppRegistration demo-app-certificate in demo, both
 *      pointing at the token service (spec.authorityHost), and three AppTokenRequests;
 *   4. the operator, from source, trusting the token service's CA, allowed to send credentials to
 *      that token service only (--allowed-authority-hosts 127.0.0.1:PORT), reading cluster
 *      credentials from apptoken-system (--cluster-resource-namespace);
 *   5. once every registration and request is Ready (and each registration counts its requests):
 *      `kubectl get cappreg,appreg,atr -A`, the target Secrets' keys (names and sizes, expires_at;
 *      never a token), and how to point kubectl at it; then it keeps running,
 *      showing the operator's logs, until Ctrl-C, which stops the operator, the token service
 *      and the control plane, in that order.
 *
 * Environment:
 *   DEV_DIR                      state and logs (default .cache/dev); one `make dev` per DEV_DIR
 *   DEV_ONCE=1                   exit 0 once everything is Ready; non-zero (with the operator's
 *                                last log lines) if they are not within the timeout
 *   DEV_READY_TIMEOUT_SECONDS    default 90
 *   APPTOKEN_DEV_OPERATOR_CMD    how to start the operator (default `node --import tsx src/main.ts`);
 *                                run by bash with the operator's flags appended
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  createWriteStream,
} from "node:fs";
import { join, resolve } from "node:path";
import { execFile } from "node:child_process";
import {
  ControlPlaneError,
  freePort,
  startControlPlane,
  type ControlPlane,
} from "../control-plane/control-plane.js";
import { REPO_ROOT, parseManifests, toYaml } from "./deploy-manifests.js";
import {
  DEMO_CLUSTER_REGISTRATION,
  DEMO_CLUSTER_RESOURCE_NAMESPACE,
  DEMO_NAMESPACE,
  DEMO_NAMESPACE_B,
  DEMO_NAMESPACE_LABEL,
  DEMO_REGISTRATIONS,
  DEMO_REQUESTS,
  createDemoCredentials,
  demoManifests,
  tokenServiceConfig,
} from "./demo.js";
import { LineTail, startChild, type Child } from "./processes.js";

const DEFAULT_OPERATOR_CMD = "node --import tsx src/main.ts";
const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes)$/i.test(v);

const env = process.env;
const devDir = resolve(REPO_ROOT, env.DEV_DIR ?? ".cache/dev");
const once = truthy(env.DEV_ONCE);
const readyTimeoutMs = Number(env.DEV_READY_TIMEOUT_SECONDS ?? "90") * 1000;
const operatorCmd = env.APPTOKEN_DEV_OPERATOR_CMD?.trim() || DEFAULT_OPERATOR_CMD;
/** A person at a terminal: the operator writes straight to it (pretty logs). */
const interactive = !once && process.stdout.isTTY === true;

const say = (line = "") => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`[dev] ${line}\n`);

class DevError extends Error {}

let plane: ControlPlane | undefined;
let tokenService: Child | undefined;
let operator: Child | undefined;
const operatorTail = new LineTail(400);
let shuttingDown: Promise<void> | undefined;

function shutdown(): Promise<void> {
  shuttingDown ??= (async () => {
    if (operator) {
      note("stopping the operator");
      await operator.stop(10_000);
    }
    if (tokenService) {
      note("stopping the token service");
      await tokenService.stop(5_000);
    }
    if (plane) {
      note("stopping the control plane");
      await plane.stop();
    }
    rmSync(join(devDir, "dev.pid"), { force: true });
  })();
  return shuttingDown;
}

function kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!plane) throw new Error("no control plane");
  const bin = join(plane.binDir, "kubectl");
  const kubeconfig = plane.kubeconfigPath;
  return new Promise((resolveRun) => {
    const child = execFile(
      bin,
      ["--kubeconfig", kubeconfig, ...args],
      { maxBuffer: 16 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolveRun({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input ?? "");
  });
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input);
  if (r.code !== 0) throw new DevError(`kubectl ${args.join(" ")} failed:\n${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Polls the CRD's Established condition. (`kubectl wait --for=condition=Established` fails at once
 * when it reads the CRD before the apiserver has written any condition.)
 */
async function waitEstablished(crd: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await kubectl([
      "get",
      "customresourcedefinition",
      crd,
      "-o",
      'jsonpath={.status.conditions[?(@.type=="Established")].status}',
    ]);
    if (r.code === 0 && r.stdout.trim() === "True") return;
    if (Date.now() > deadline) throw new DevError(`CRD ${crd} not Established after ${timeoutMs / 1000} s`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Refuses to share DEV_DIR with a running `make dev`; clears what a killed one left. */
function takeDevDir(): void {
  mkdirSync(devDir, { recursive: true });
  const lock = join(devDir, "dev.pid");
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, "utf8"));
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = pid !== process.pid;
    } catch {
      /* gone */
    }
    if (alive) {
      throw new DevError(
        `make dev is already running (pid ${pid}) with DEV_DIR=${devDir}; stop it, or use another DEV_DIR`,
      );
    }
  }
  writeFileSync(lock, String(process.pid));
  // A fresh cluster each time: etcd data from a previous run would hold objects signed by old keys.
  rmSync(join(devDir, "cp"), { recursive: true, force: true });
  rmSync(join(devDir, "logs"), { recursive: true, force: true });
  mkdirSync(join(devDir, "logs"), { recursive: true });
}

async function startTokenService(config: object): Promise<{ url: string; caFile: string }> {
  const out = join(devDir, "token-service");
  mkdirSync(out, { recursive: true });
  rmSync(join(out, "url"), { force: true });
  const configFile = join(out, "config.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
  const log = join(devDir, "logs", "token-service.log");
  const logStream = createWriteStream(log, { flags: "a" });
  tokenService = startChild(
    "token service",
    process.execPath,
    ["--import", "tsx", "hack/token-service/main.ts", "--config", configFile, "--out", out],
    { cwd: REPO_ROOT, env: { ...env, NODE_ENV: "development" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const stderrTail = new LineTail(50);
  tokenService.proc.stdout!.pipe(logStream);
  tokenService.proc.stderr!.on("data", (d: Buffer) => {
    stderrTail.push(d);
    logStream.write(d);
  });
  const urlFile = join(out, "url");
  const deadline = Date.now() + 30_000;
  while (!existsSync(urlFile)) {
    if (tokenService.proc.exitCode !== null) {
      throw new DevError(
        `the token service exited (${tokenService.proc.exitCode}):\n${stderrTail.last(20).join("\n")}`,
      );
    }
    if (Date.now() > deadline) throw new DevError(`the token service did not start in 30 s; see ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: readFileSync(urlFile, "utf8").trim(), caFile: join(out, "ca.pem") };
}

function startOperator(args: string[], extraEnv: NodeJS.ProcessEnv): Child {
  const logFile = join(devDir, "logs", "operator.log");
  const child = startChild("operator", "bash", ["-c", `${operatorCmd} "$@"`, "apptoken-operator", ...args], {
    cwd: REPO_ROOT,
    env: { ...env, ...extraEnv },
    stdio: interactive ? ["ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"],
  });
  if (!interactive) {
    const file = createWriteStream(logFile, { flags: "a" });
    for (const stream of [child.proc.stdout!, child.proc.stderr!]) {
      stream.on("data", (d: Buffer) => {
        operatorTail.push(d);
        file.write(d);
        process.stdout.write(d);
      });
    }
  }
  return child;
}

/** One object's Ready condition, and a registration's request count. */
interface ObjectState {
  kind: string;
  namespace: string;
  name: string;
  ready: string;
  reason: string;
  message: string;
  requests: string;
}

const stateKey = (kind: string, namespace: string | undefined, name: string) =>
  `${kind} ${namespace ? `${namespace}/` : ""}${name}`;
const describeState = (s: ObjectState) => stateKey(s.kind, s.namespace, s.name);

/**
 * The Ready condition (and status.requests) of every registration and request, in one kubectl call
 * (it runs every 500 ms, beside the rest of a busy machine).
 */
async function demoStates(): Promise<ObjectState[]> {
  const ready = '.status.conditions[?(@.type=="Ready")]';
  const jsonpath =
    `{range .items[*]}{.kind}{"\\t"}{.metadata.namespace}{"\\t"}{.metadata.name}{"\\t"}{${ready}.status}{"\\t"}` +
    `{${ready}.reason}{"\\t"}{.status.requests}{"\\t"}{${ready}.message}{"\\n"}{end}`;
  const r = await kubectl([
    "get",
    "clusterappregistrations.apptoken.io,appregistrations.apptoken.io,apptokenrequests.apptoken.io",
    "-A",
    "-o",
    `jsonpath=${jsonpath}`,
  ]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [kind = "", namespace = "", name = "", ready = "", reason = "", requests = "", ...message] =
        line.split("\t");
      return { kind, namespace, name, ready, reason, message: message.join(" "), requests };
    });
}

/** What must be Ready: every demo registration (counting its requests) and every demo request. */
function expectedStates(): { key: string; ok: (s: ObjectState | undefined) => boolean }[] {
  return [
    ...DEMO_REGISTRATIONS.map((reg) => ({
      key: stateKey(reg.kind, reg.namespace, reg.name),
      ok: (s: ObjectState | undefined) => s?.ready === "True" && s.requests === String(reg.requests),
    })),
    ...DEMO_REQUESTS.map((req) => ({
      key: stateKey("AppTokenRequest", req.namespace, req.name),
      ok: (s: ObjectState | undefined) => s?.ready === "True",
    })),
  ];
}

/** Resolves "ready", "timeout" or "exited" (the operator stopped first), with what is not Ready yet. */
async function waitReady(): Promise<{
  outcome: "ready" | "timeout" | "exited";
  states: ObjectState[];
  pending: string[];
}> {
  const deadline = Date.now() + readyTimeoutMs;
  const expected = expectedStates();
  for (;;) {
    const states = await demoStates();
    const byKey = new Map(states.map((s) => [describeState(s), s]));
    const pending = expected.filter((e) => !e.ok(byKey.get(e.key))).map((e) => e.key);
    if (pending.length === 0) return { outcome: "ready", states, pending };
    if (operator?.proc.exitCode !== null || operator?.proc.signalCode !== null)
      return { outcome: "exited", states, pending };
    if (Date.now() > deadline) return { outcome: "timeout", states, pending };
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A target Secret's keys: sizes only, except expires_at. The token is never printed. */
async function describeSecret(namespace: string, name: string): Promise<string[]> {
  const secret = JSON.parse(await kubectlOk(["get", "secret", name, "-n", namespace, "-o", "json"])) as {
    type?: string;
    data?: Record<string, string>;
  };
  const lines = [`Secret ${namespace}/${name} (${secret.type ?? "Opaque"}):`];
  const data = secret.data ?? {};
  const width = Math.max(...Object.keys(data).map((k) => k.length), 10);
  for (const key of Object.keys(data).sort()) {
    const value = Buffer.from(data[key]!, "base64");
    const shown = key === "expires_at" ? value.toString("utf8") : `${value.length} bytes (not shown)`;
    lines.push(`  ${key.padEnd(width)}  ${shown}`);
  }
  return lines;
}

/** The names of the CRDs in crds/ (all of them are installed). */
function crdNames(): string[] {
  const dir = join(REPO_ROOT, "crds");
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => parseManifests(readFileSync(join(dir, f), "utf8")))
    .filter((m) => m.kind === "CustomResourceDefinition")
    .map((m) => m.metadata.name);
}

async function main(): Promise<number> {
  takeDevDir();
  const started = Date.now();

  note(`starting the local control plane in ${join(devDir, "cp")}`);
  plane = await startControlPlane({ dir: join(devDir, "cp"), mode: "attached", log: note });
  writeFileSync(join(devDir, "cp", "bin-dir"), plane.binDir);

  note("starting the local token service");
  const creds = await createDemoCredentials();
  const ts = await startTokenService(tokenServiceConfig(creds));
  // 127.0.0.1:PORT: the one host the operator may send a credential to.
  const tokenServiceHost = new URL(ts.url).host;
  note(`token service at ${ts.url} (request log: ${join(devDir, "logs", "token-service.log")})`);

  const crds = crdNames();
  note(`installing the CRDs (${crds.join(", ")})`);
  await kubectlOk(["apply", "--server-side", "--field-manager=make-dev", "-f", join(REPO_ROOT, "crds")]);
  await Promise.all(crds.map((crd) => waitEstablished(crd, 30_000)));
  note(
    `installing the demo objects (cluster resource namespace ${DEMO_CLUSTER_RESOURCE_NAMESPACE}, ` +
      `namespaces ${DEMO_NAMESPACE} and ${DEMO_NAMESPACE_B})`,
  );
  await kubectlOk(["apply", "-f", "-"], toYaml(demoManifests(creds, ts.url)));

  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const operatorArgs = [
    `--kubeconfig=${plane.kubeconfigPath}`,
    `--authority-ca-file=${ts.caFile}`,
    `--allowed-authority-hosts=${tokenServiceHost}`,
    `--cluster-resource-namespace=${DEMO_CLUSTER_RESOURCE_NAMESPACE}`,
    `--metrics-bind-address=127.0.0.1:${metricsPort}`,
    `--health-probe-bind-address=127.0.0.1:${healthPort}`,
    "--log-format=auto",
  ];
  note(`starting the operator: ${operatorCmd} ${operatorArgs.join(" ")}`);
  operator = startOperator(operatorArgs, {
    KUBECONFIG: plane.kubeconfigPath,
    DEV_DIR: devDir,
    DEV_TOKEN_SERVICE_URL: ts.url,
  });

  const { outcome, states, pending } = await waitReady();
  if (outcome !== "ready") {
    const why =
      outcome === "exited"
        ? `the operator exited (${await operator.exited}) before everything was Ready`
        : `the registrations and requests are not Ready after ${readyTimeoutMs / 1000} s`;
    const byKey = new Map(states.map((s) => [describeState(s), s]));
    const table = pending
      .map((key) => {
        const s = byKey.get(key);
        if (!s) return `  ${key}: not found`;
        if (!s.ready && s.requests === "") return `  ${key}: (no status yet)`;
        const requests = s.kind === "AppTokenRequest" ? "" : ` Requests=${s.requests || "?"}`;
        return `  ${key}: Ready=${s.ready || "?"}${requests} ${s.reason} ${s.message}`.trimEnd();
      })
      .join("\n");
    const tail = interactive ? "" : `\nthe operator's last log lines:\n${operatorTail.last(40).join("\n")}`;
    if (once || outcome === "exited") throw new DevError(`${why}:\n${table}${tail}`);
    note(`${why}; still waiting for you to look (Ctrl-C stops everything):\n${table}`);
  } else {
    note(
      `${DEMO_REGISTRATIONS.length} registrations and ${DEMO_REQUESTS.length} AppTokenRequests are Ready, ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s after start`,
    );
  }

  const table = (
    await kubectl(["get", "clusterappregistrations,appregistrations,apptokenrequests", "-A"])
  ).stdout.trimEnd();
  const secrets: string[] = [];
  if (outcome === "ready")
    for (const r of DEMO_REQUESTS) secrets.push(...(await describeSecret(r.namespace, r.name)), "");
  const kubectlPath = join(plane.binDir, "kubectl");
  say();
  say("$ kubectl get cappreg,appreg,atr -A");
  say(table);
  say();
  for (const line of secrets) say(line);
  say("Point kubectl at it (any recent kubectl, or the one matching this server):");
  say(`  export KUBECONFIG=${plane.kubeconfigPath}`);
  say(`  ${kubectlPath} get cappreg,appreg,atr -A`);
  say(`  kubectl describe cappreg ${DEMO_CLUSTER_REGISTRATION}`);
  say(`  kubectl describe atr -n ${DEMO_NAMESPACE_B} graph-client-secret`);
  say(
    `  kubectl label namespace NAME ${Object.entries(DEMO_NAMESPACE_LABEL)
      .map(([k, v]) => `${k}=${v}`)
      .join(",")}   # offer ${DEMO_CLUSTER_REGISTRATION} to another namespace`,
  );
  say(
    `Operator: http://127.0.0.1:${healthPort}/readyz  http://127.0.0.1:${metricsPort}/metrics` +
      (interactive ? "" : `   logs: ${join(devDir, "logs", "operator.log")}`),
  );
  say(`Token service: ${ts.url}   requests: ${join(devDir, "logs", "token-service.log")}`);

  if (once) {
    note("DEV_ONCE: done");
    return 0;
  }
  say("Ctrl-C stops the operator, the token service and the control plane.");
  say();
  const code = await operator.exited;
  if (shuttingDown) return 0;
  throw new DevError(
    `the operator exited (${code})${interactive ? "" : `:\n${operatorTail.last(40).join("\n")}`}`,
  );
}

let signalled = 0;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    signalled += 1;
    if (signalled > 1) {
      note("second signal: killing everything now");
      for (const c of [operator, tokenService]) {
        if (c?.proc.pid === undefined) continue;
        try {
          process.kill(-c.proc.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      process.exit(130);
    }
    note(`${sig}: shutting down`);
    void shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

main().then(
  async (code) => {
    await shutdown();
    process.exit(code);
  },
  async (e: unknown) => {
    if (shuttingDown) {
      await shuttingDown;
      process.exit(0);
    }
    process.stderr.write(`\n[dev] ${e instanceof Error ? e.message : String(e)}\n`);
    const expected = e instanceof DevError || e instanceof ControlPlaneError;
    if (!expected && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    await shutdown().catch(() => undefined);
    process.exit(1);
  },
);
