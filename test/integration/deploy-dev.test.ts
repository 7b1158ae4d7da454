/**
 * `make dev` (hack/dev.sh), non-interactively, each run in its own DEV_DIR with its own control
 * plane and token service, so it runs beside the other integration files:
 * - with the real operator (src/main.ts): DEV_ONCE=1 exits 0 and prints the ClusterAppRegistration
 *   serving two namespaces (Requests 2), the AppRegistration, and all three requests Ready;
 * - with hack/dev/stand-in-operator.ts: the same, which proves the script, the token service's
 *   configuration and the demo objects apart from the controller; and Ctrl-C stops everything;
 * - with an operator that never makes them Ready: exits non-zero with its last log lines.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../hack/dev/deploy-manifests.js";

const STAND_IN = "node --import tsx hack/dev/stand-in-operator.ts";
const dirs: string[] = [];

interface DevRun {
  code: number | null;
  stdout: string;
  stderr: string;
  devDir: string;
}

/**
 * Runs `bash hack/dev.sh` in a fresh DEV_DIR. `interruptWhen`: send SIGINT once stdout contains it.
 * The process group is killed if the run outlives `timeoutMs`.
 */
function runDev(
  env: Record<string, string>,
  opts: { interruptWhen?: string; timeoutMs?: number } = {},
): Promise<DevRun> {
  const devDir = mkdtempSync(join(tmpdir(), "apptoken-dev-"));
  dirs.push(devDir);
  return new Promise((resolveRun) => {
    const child = spawn("bash", ["hack/dev.sh"], {
      cwd: REPO_ROOT,
      // A longer wait for Ready than make dev's 90 s: four runs, each with its own control plane,
      // share the machine with the other integration files.
      env: { ...process.env, DEV_DIR: devDir, DEV_READY_TIMEOUT_SECONDS: "150", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let interrupted = false;
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (opts.interruptWhen && !interrupted && stdout.includes(opts.interruptWhen)) {
        interrupted = true;
        child.kill("SIGINT"); // what a terminal's Ctrl-C delivers to make's foreground job
      }
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += "\n[test] timed out: killing the process group\n";
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
    }, opts.timeoutMs ?? 230_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr, devDir });
    });
  });
}

const CLIENT_ID = "8d2e4f6a-3b5c-4d7e-9f1a-2b3c4d5e6f70";
const TENANT = "contoso\\.onmicrosoft\\.com";
const SCOPE = "https://graph\\.microsoft\\.com/\\.default";

/**
 * What `kubectl get cappreg,appreg,atr -A` printed: ClusterAppRegistration demo-app Ready with
 * Requests 2 (one request in demo, one in demo-b), AppRegistration demo/demo-app-certificate Ready
 * with Requests 1, and the three requests Ready, each naming its registration in the App column.
 */
function expectReadyTable(out: string): void {
  const start = out.indexOf("$ kubectl get cappreg,appreg,atr -A");
  expect(start, out).toBeGreaterThanOrEqual(0);
  const table = out.slice(start, out.indexOf("Point kubectl at it", start));
  // A cluster-scoped kind has no NAMESPACE column; the namespaced ones do.
  expect(table).toMatch(/^NAME\s+CLIENT\s+CLOUD\s+CREDENTIAL\s+CRED-EXPIRES\s+READY\s+REQUESTS\s+AGE$/m);
  expect(table).toMatch(
    /^NAMESPACE\s+NAME\s+CLIENT\s+CLOUD\s+CREDENTIAL\s+CRED-EXPIRES\s+READY\s+REQUESTS\s+AGE$/m,
  );
  expect(table).toMatch(
    new RegExp(
      `^clusterappregistration\\.apptoken\\.io/demo-app\\s+${CLIENT_ID}\\s+AzurePublic\\s+ClientSecret\\s+True\\s+2\\s+\\S+$`,
      "m",
    ),
  );
  // The certificate's notAfter is its Cred-Expires.
  expect(table).toMatch(
    new RegExp(
      `^demo\\s+appregistration\\.apptoken\\.io/demo-app-certificate\\s+${CLIENT_ID}\\s+AzurePublic\\s+Certificate\\s+(\\d{4}-\\d{2}-\\d{2}T\\S+\\s+)?True\\s+1\\s+\\S+$`,
      "m",
    ),
  );
  expect(table).toMatch(/^NAMESPACE\s+NAME\s+APP\s+TENANT\s+SCOPE\s+READY\s/m);
  for (const [ns, name, app] of [
    ["demo", "graph-client-secret", "demo-app"],
    ["demo-b", "graph-client-secret", "demo-app"],
    ["demo", "graph-certificate", "demo-app-certificate"],
  ]) {
    expect(table).toMatch(
      new RegExp(
        `^${ns}\\s+apptokenrequest\\.apptoken\\.io/${name}\\s+${app}\\s+${TENANT}\\s+${SCOPE}\\s+True\\s`,
        "m",
      ),
    );
  }
}

/** Token sizes and expiry are shown; no JWT is (a JWT starts with base64url of `{"`). */
function expectNoTokenPrinted(run: DevRun): void {
  expect(run.stdout).toMatch(/access_token\s+\d+ bytes \(not shown\)/);
  expect(run.stdout).toMatch(/expires_at\s+\d{4}-\d{2}-\d{2}T/);
  expect(run.stdout + run.stderr).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
}

/** Every process the run started is gone: control plane (pid files) and token service. */
function expectNothingLeft(devDir: string): void {
  const cp = join(devDir, "cp");
  const pids = existsSync(cp)
    ? readdirSync(cp)
        .filter((f) => f.endsWith(".pid"))
        .map((f) => Number(readFileSync(join(cp, f), "utf8")))
    : [];
  for (const pid of pids) {
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    expect(alive, `pid ${pid} still running`).toBe(false);
  }
  expect(existsSync(join(devDir, "dev.pid"))).toBe(false);
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe.concurrent("make dev", () => {
  it.skipIf(!existsSync(join(REPO_ROOT, "src/main.ts")))(
    "DEV_ONCE=1 with the real operator: the registrations and requests Ready, the table printed, exit 0",
    async () => {
      const run = await runDev({ DEV_ONCE: "1" });
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      expectReadyTable(run.stdout);
      expectNoTokenPrinted(run);
      // The certificate's notAfter, read by the real controller, is the registration's Cred-Expires.
      expect(run.stdout).toMatch(
        /^demo\s+appregistration\.apptoken\.io\/demo-app-certificate\s+\S+\s+AzurePublic\s+Certificate\s+\d{4}-\d{2}-\d{2}T\S+\s+True\s/m,
      );
      // The template key of the client-secret sample, rendered by the real controller.
      expect(run.stdout).toMatch(/authorization\s+\d+ bytes \(not shown\)/);
      expect(run.stdout).toContain(`export KUBECONFIG=${join(run.devDir, "cp", "kubeconfig")}`);
      expectNothingLeft(run.devDir);
    },
    240_000,
  );

  it("DEV_ONCE=1 with the stand-in operator: the registrations and requests Ready, the table printed, exit 0", async () => {
    const run = await runDev({ DEV_ONCE: "1", APPTOKEN_DEV_OPERATOR_CMD: STAND_IN });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expectReadyTable(run.stdout);
    expectNoTokenPrinted(run);
    expect(run.stdout).toContain(`export KUBECONFIG=${join(run.devDir, "cp", "kubeconfig")}`);
    // The operator was given the token service's CA, that token service as the only host a
    // credential may go to, the cluster resource namespace, and loopback-only ports.
    expect(run.stderr).toContain(`--authority-ca-file=${join(run.devDir, "token-service", "ca.pem")}`);
    const tokenServiceHost = new URL(readFileSync(join(run.devDir, "token-service", "url"), "utf8").trim())
      .host;
    expect(tokenServiceHost).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(run.stderr).toContain(`--allowed-authority-hosts=${tokenServiceHost} `);
    expect(run.stderr).toContain("--cluster-resource-namespace=apptoken-system ");
    expect(run.stderr).toMatch(
      /--metrics-bind-address=127\.0\.0\.1:\d+ --health-probe-bind-address=127\.0\.0\.1:\d+/,
    );
    // Both credentials reached the token service, the client secret from apptoken-system through
    // the ClusterAppRegistration; its log holds no secret.
    const tsLog = readFileSync(join(run.devDir, "logs", "token-service.log"), "utf8");
    expect(tsLog).toContain('"credential":"secret","status":200');
    expect(tsLog).toContain('"credential":"certificate","status":200');
    const config = JSON.parse(readFileSync(join(run.devDir, "token-service", "config.json"), "utf8"));
    expect(tsLog).not.toContain(config.apps[0].secrets[0]);
    expectNothingLeft(run.devDir);
  }, 240_000);

  it("keeps running until Ctrl-C, then stops the operator, the token service and the control plane", async () => {
    const run = await runDev({ APPTOKEN_DEV_OPERATOR_CMD: STAND_IN }, { interruptWhen: "Ctrl-C stops" });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expectReadyTable(run.stdout);
    const order = [
      "SIGINT: shutting down",
      "stopping the operator",
      "stopping the token service",
      "stopping the control plane",
    ];
    const at = order.map((s) => run.stderr.indexOf(s));
    expect(
      at.every((i) => i >= 0),
      run.stderr,
    ).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(run.stdout).toContain("SIGTERM: stopping"); // the stand-in was told to stop, not killed
    expectNothingLeft(run.devDir);
  }, 240_000);

  it("DEV_ONCE=1 with an operator that never makes them Ready: non-zero, with its last log lines", async () => {
    const fake = join(mkdtempSync(join(tmpdir(), "apptoken-fake-op-")), "operator.sh");
    dirs.push(join(fake, ".."));
    writeFileSync(
      fake,
      'echo "fake operator started with $# flags"\necho "fake operator: last words"\nexec sleep 600\n',
    );
    const run = await runDev({
      DEV_ONCE: "1",
      DEV_READY_TIMEOUT_SECONDS: "3",
      APPTOKEN_DEV_OPERATOR_CMD: `bash ${fake}`,
    });
    expect(run.code).not.toBe(0);
    expect(run.code).not.toBeNull();
    expect(run.stderr).toContain("the registrations and requests are not Ready after 3 s");
    // What is not Ready is named, registrations and requests alike.
    expect(run.stderr).toContain("ClusterAppRegistration demo-app: (no status yet)");
    expect(run.stderr).toContain("AppTokenRequest demo-b/graph-client-secret: (no status yet)");
    expect(run.stderr).toContain("the operator's last log lines:");
    expect(run.stderr).toContain("fake operator: last words");
    expect(run.stderr).toMatch(/fake operator started with 7 flags/);
    expectNothingLeft(run.devDir);
  }, 240_000);
});
