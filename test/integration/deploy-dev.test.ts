/**
 * `make dev` (hack/dev.sh), non-interactively, each run in its own DEV_DIR with its own control
 * plane and token service, so it runs beside the other integration files:
 * - with the real operator (src/main.ts): DEV_ONCE=1 exits 0 and prints both requests Ready;
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
      env: { ...process.env, DEV_DIR: devDir, ...env },
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
    }, opts.timeoutMs ?? 170_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr, devDir });
    });
  });
}

/** The table `kubectl get atr -A` printed: both demo requests, Ready True. */
function expectReadyTable(out: string): void {
  const table = out.slice(out.indexOf("$ kubectl get atr -A"));
  expect(table).toMatch(/NAMESPACE\s+NAME\s+TENANT\s+SCOPE\s+READY/);
  for (const name of ["graph-client-secret", "graph-certificate"]) {
    expect(table).toMatch(
      new RegExp(
        `demo\\s+${name}\\s+contoso\\.onmicrosoft\\.com\\s+https://graph\\.microsoft\\.com/\\.default\\s+True`,
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
    "DEV_ONCE=1 with the real operator: both samples Ready, the table printed, exit 0",
    async () => {
      const run = await runDev({ DEV_ONCE: "1" });
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      expectReadyTable(run.stdout);
      expectNoTokenPrinted(run);
      // The template key of the client-secret sample, rendered by the real controller.
      expect(run.stdout).toMatch(/authorization\s+\d+ bytes \(not shown\)/);
      expect(run.stdout).toContain(`export KUBECONFIG=${join(run.devDir, "cp", "kubeconfig")}`);
      expectNothingLeft(run.devDir);
    },
    180_000,
  );

  it("DEV_ONCE=1 with the stand-in operator: both samples Ready, the table printed, exit 0", async () => {
    const run = await runDev({ DEV_ONCE: "1", APPTOKEN_DEV_OPERATOR_CMD: STAND_IN });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expectReadyTable(run.stdout);
    expectNoTokenPrinted(run);
    expect(run.stdout).toContain(`export KUBECONFIG=${join(run.devDir, "cp", "kubeconfig")}`);
    // The operator was given the token service's CA and loopback-only ports.
    expect(run.stderr).toContain(`--authority-ca-file=${join(run.devDir, "token-service", "ca.pem")}`);
    expect(run.stderr).toMatch(
      /--metrics-bind-address=127\.0\.0\.1:\d+ --health-probe-bind-address=127\.0\.0\.1:\d+/,
    );
    // Both credentials reached the token service; its log holds no secret.
    const tsLog = readFileSync(join(run.devDir, "logs", "token-service.log"), "utf8");
    expect(tsLog).toContain('"credential":"secret","status":200');
    expect(tsLog).toContain('"credential":"certificate","status":200');
    const config = JSON.parse(readFileSync(join(run.devDir, "token-service", "config.json"), "utf8"));
    expect(tsLog).not.toContain(config.apps[0].secrets[0]);
    expectNothingLeft(run.devDir);
  }, 180_000);

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
  }, 180_000);

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
    expect(run.stderr).toContain("the requests are not Ready after 3 s");
    expect(run.stderr).toContain("the operator's last log lines:");
    expect(run.stderr).toContain("fake operator: last words");
    expect(run.stderr).toMatch(/fake operator started with 5 flags/);
    expectNothingLeft(run.devDir);
  }, 180_000);
});
