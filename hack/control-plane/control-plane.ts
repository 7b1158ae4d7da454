/**
 * A real kube-apiserver + etcd (+ kube-controller-manager running only the garbage collector,
 * namespace and ClusterRole aggregation controllers) on 127.0.0.1 with random ports, the way
 * controller-runtime's envtest runs them: secure serving, RBAC, service-account signing keys (so
 * the TokenRequest API works) and an admin client certificate. Used by vitest's globalSetup, by
 * `make dev` and, through cli.ts, by hack/control-plane.sh.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createCa, issueCertificate, serviceAccountKeyPair } from "./pki.js";

const HACK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface ControlPlaneOptions {
  /** Directory for certs, etcd data, logs and the kubeconfig; a fresh temp dir when omitted. */
  dir?: string;
  /** Directory holding kube-apiserver, kube-controller-manager, kubectl, etcd; found or built when omitted. */
  binDir?: string;
  /**
   * "attached": children die with this process (tests). "detached": children outlive it
   * (hack/control-plane.sh up); stop them with stopDetached(dir).
   */
  mode?: "attached" | "detached";
  readyTimeoutMs?: number;
  log?: (line: string) => void;
  /**
   * Runs once the API server is ready and before kube-controller-manager starts: install CRDs here,
   * so that its garbage collector knows their kinds from its first discovery. Installed later, it
   * finds them only at its next discovery resync (every 30 s), and until then does not collect the
   * dependents of their objects.
   */
  beforeControllerManager?: (kubeconfigPath: string) => Promise<void>;
}

export interface ControlPlane {
  dir: string;
  binDir: string;
  kubeconfigPath: string;
  serverUrl: string;
  etcdUrl: string;
  /** Paths a test can use to act as an in-cluster client or to talk to the apiserver directly. */
  caCertPath: string;
  adminCertPath: string;
  adminKeyPath: string;
  stop(): Promise<void>;
  /** Kill and restart the apiserver process only (etcd keeps its data): for fault tests. */
  restartApiServer(): Promise<void>;
  /** Stop or start etcd (the apiserver stays up): for fault tests. */
  stopEtcd(): Promise<void>;
  startEtcd(): Promise<void>;
}

export class ControlPlaneError extends Error {}

/** Runs hack/binaries.sh, which finds or builds the pinned binaries and prints their dir. */
export function resolveBinDir(log: (line: string) => void = () => {}): string {
  try {
    const out = execFileSync("bash", [join(HACK_DIR, "binaries.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 64 * 1024 * 1024,
    });
    return out.trim().split("\n").at(-1) ?? "";
  } catch (e) {
    const err = e as { status?: number; stderr?: string };
    const stderr = (err.stderr ?? "").toString();
    const tail = stderr
      .split("\n")
      .filter((l) => !l.startsWith("go: downloading"))
      .slice(-25);
    log(tail.join("\n"));
    throw new ControlPlaneError(
      `could not find or build the control-plane binaries (hack/binaries.sh exited ${err.status}):\n${tail.join("\n")}`,
    );
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

interface Proc {
  name: string;
  args: string[];
  child?: ChildProcess;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  const mode = opts.mode ?? "attached";
  const binDir = opts.binDir ?? resolveBinDir(log);
  for (const b of ["kube-apiserver", "kube-controller-manager", "kubectl", "etcd"]) {
    if (!existsSync(join(binDir, b))) throw new ControlPlaneError(`${b} not found in ${binDir}`);
  }
  const dir = opts.dir ?? join(tmpdir(), `apptoken-cp-${process.pid}-${Date.now().toString(36)}`);
  const ownsDir = opts.dir === undefined;
  mkdirSync(join(dir, "logs"), { recursive: true });
  mkdirSync(join(dir, "pki"), { recursive: true });

  const ca = createCa("apptoken-local-ca");
  const serving = issueCertificate(ca, {
    commonName: "kube-apiserver",
    dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    ipAddresses: ["127.0.0.1", "10.0.0.1"],
    usage: "server",
  });
  const admin = issueCertificate(ca, {
    commonName: "admin",
    organizations: ["system:masters"],
    usage: "client",
  });
  const sa = serviceAccountKeyPair();
  const pki = (f: string) => join(dir, "pki", f);
  writeFileSync(pki("ca.crt"), ca.certPem);
  writeFileSync(pki("ca.key"), ca.keyPem, { mode: 0o600 });
  writeFileSync(pki("apiserver.crt"), serving.certPem);
  writeFileSync(pki("apiserver.key"), serving.keyPem, { mode: 0o600 });
  writeFileSync(pki("admin.crt"), admin.certPem);
  writeFileSync(pki("admin.key"), admin.keyPem, { mode: 0o600 });
  writeFileSync(pki("sa.key"), sa.privatePem, { mode: 0o600 });
  writeFileSync(pki("sa.pub"), sa.publicPem);

  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const serverUrl = `https://127.0.0.1:${apiPort}`;
  const kubeconfigPath = join(dir, "kubeconfig");
  writeFileSync(kubeconfigPath, kubeconfigYaml(serverUrl, ca.certPem, admin.certPem, admin.keyPem), {
    mode: 0o600,
  });

  const etcd: Proc = {
    name: "etcd",
    args: [
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
      "--name=default",
      // A test database: durability across a power cut is not worth the fsync latency.
      "--unsafe-no-fsync",
      "--quota-backend-bytes=8589934592",
      "--log-level=warn",
    ],
  };
  const apiserver: Proc = {
    name: "kube-apiserver",
    args: [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "pki")}`,
      `--tls-cert-file=${pki("apiserver.crt")}`,
      `--tls-private-key-file=${pki("apiserver.key")}`,
      `--client-ca-file=${pki("ca.crt")}`,
      "--authorization-mode=RBAC",
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      // No ServiceAccount controller runs to create default accounts for pods (as in envtest).
      "--disable-admission-plugins=ServiceAccount",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki("sa.pub")}`,
      `--service-account-signing-key-file=${pki("sa.key")}`,
      "--api-audiences=https://kubernetes.default.svc.cluster.local",
      // Benchmarks create 10^5 objects: do not let the test server's flow control be the bottleneck.
      "--max-requests-inflight=1000",
      "--max-mutating-requests-inflight=500",
      "--v=0",
    ],
  };
  const controllerManager: Proc = {
    name: "kube-controller-manager",
    args: [
      `--kubeconfig=${kubeconfigPath}`,
      // Only what tests need: ownerReferences really collected, deleted namespaces really emptied,
      // and labelled ClusterRoles aggregated into view/edit/admin (deploy/'s roles for users).
      "--controllers=garbagecollector,namespace,clusterrole-aggregation",
      "--leader-elect=false",
      "--secure-port=0",
      "--kube-api-qps=200",
      "--kube-api-burst=400",
      "--v=0",
    ],
  };
  const procs = [etcd, apiserver, controllerManager];

  const launch = (p: Proc): void => {
    const out = openSync(join(dir, "logs", `${p.name}.log`), "a");
    const child = spawn(join(binDir, p.name), p.args, {
      stdio: ["ignore", out, out],
      detached: true, // own process group, so stop() can kill it whole
    });
    closeSync(out);
    child.on("error", (e) => log(`${p.name}: ${e.message}`));
    if (mode === "detached") child.unref();
    p.child = child;
    writeFileSync(join(dir, `${p.name}.pid`), String(child.pid));
  };

  const killProc = async (p: Proc, signal: NodeJS.Signals = "SIGTERM"): Promise<void> => {
    const child = p.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    try {
      process.kill(-child.pid!, signal);
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, 5_000);
    await exited;
    clearTimeout(timer);
  };

  const stopAllSync = (): void => {
    for (const p of procs) {
      if (p.child?.pid && p.child.exitCode === null) {
        try {
          process.kill(-p.child.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
    }
    if (ownsDir) rmSync(dir, { recursive: true, force: true });
  };

  let watchdog: ChildProcess | undefined;
  if (mode === "attached") {
    // A normal exit or Ctrl-C runs this; a SIGKILLed test runner is covered by the watchdog.
    process.once("exit", stopAllSync);
  }

  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  try {
    launch(etcd);
    await waitFor(() => httpOk(`${etcdUrl}/health`), readyTimeoutMs, "etcd /health", dir, "etcd");
    launch(apiserver);
    const tls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    await waitFor(
      () => httpsOk(`${serverUrl}/readyz`, tls),
      readyTimeoutMs,
      "kube-apiserver /readyz",
      dir,
      "kube-apiserver",
    );
    await opts.beforeControllerManager?.(kubeconfigPath);
    launch(controllerManager);
    if (mode === "attached") watchdog = startWatchdog(dir, procs, ownsDir);
  } catch (e) {
    stopAllSync();
    throw e;
  }
  log(`control plane ready at ${serverUrl} (kubeconfig ${kubeconfigPath})`);

  return {
    dir,
    binDir,
    kubeconfigPath,
    serverUrl,
    etcdUrl,
    caCertPath: pki("ca.crt"),
    adminCertPath: pki("admin.crt"),
    adminKeyPath: pki("admin.key"),
    async stop() {
      process.removeListener("exit", stopAllSync);
      for (const p of [...procs].reverse()) await killProc(p);
      if (watchdog?.pid) {
        try {
          process.kill(watchdog.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      if (ownsDir) rmSync(dir, { recursive: true, force: true });
    },
    async restartApiServer() {
      await killProc(apiserver);
      launch(apiserver);
      const tls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
      await waitFor(
        () => httpsOk(`${serverUrl}/readyz`, tls),
        readyTimeoutMs,
        "kube-apiserver /readyz",
        dir,
        "kube-apiserver",
      );
    },
    async stopEtcd() {
      await killProc(etcd);
    },
    async startEtcd() {
      launch(etcd);
      await waitFor(() => httpOk(`${etcdUrl}/health`), readyTimeoutMs, "etcd /health", dir, "etcd");
    },
  };
}

/**
 * A detached shell that kills the control plane and removes its dir when the process that started
 * it disappears (an interrupted or SIGKILLed test run), so no etcd is left behind holding ports.
 */
function startWatchdog(dir: string, procs: Proc[], removeDir: boolean): ChildProcess {
  const pids = procs.map((p) => p.child?.pid).filter((p): p is number => p !== undefined);
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
    ...pids.map((pid) => `kill -9 -${pid} 2>/dev/null`),
    removeDir ? `rm -rf '${dir}'` : "true",
  ].join("\n");
  const child = spawn("bash", ["-c", script], { stdio: "ignore", detached: true });
  child.unref();
  return child;
}

/** Stops a control plane started in "detached" mode, from its pid files. */
export function stopDetached(dir: string): void {
  for (const name of ["kube-controller-manager", "kube-apiserver", "etcd"]) {
    const pidFile = join(dir, `${name}.pid`);
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, "utf8"));
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + 10_000;
  for (const name of ["kube-controller-manager", "kube-apiserver", "etcd"]) {
    const pidFile = join(dir, `${name}.pid`);
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, "utf8"));
    while (Date.now() < deadline && alive(pid)) execFileSync("sleep", ["0.1"]);
    if (alive(pid)) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function kubeconfigYaml(server: string, caPem: string, certPem: string, keyPem: string): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: apptoken-local
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(caPem)}
users:
- name: admin
  user:
    client-certificate-data: ${b64(certPem)}
    client-key-data: ${b64(keyPem)}
contexts:
- name: apptoken-local
  context: {cluster: apptoken-local, user: admin, namespace: default}
current-context: apptoken-local
`;
}

function httpOk(url: string): Promise<boolean> {
  return fetch(url, { signal: AbortSignal.timeout(2_000) })
    .then((r) => r.ok)
    .catch(() => false);
}

function httpsOk(url: string, tls: { ca: string; cert: string; key: string }): Promise<boolean> {
  return new Promise((resolveOk) => {
    const req = request(url, { ...tls, timeout: 2_000 }, (res) => {
      res.resume();
      resolveOk(res.statusCode === 200);
    });
    req.on("error", () => resolveOk(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

async function waitFor(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  dir: string,
  logName: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  let tail = "";
  try {
    tail = readFileSync(join(dir, "logs", `${logName}.log`), "utf8")
      .split("\n")
      .slice(-30)
      .join("\n");
  } catch {
    /* no log */
  }
  throw new ControlPlaneError(
    `${what} not ready after ${timeoutMs} ms; last lines of ${logName}.log:\n${tail}`,
  );
}
