/**
 * What integration tests share: the kubeconfig of the control plane that globalSetup started, a
 * namespace per test for isolation, the pinned kubectl, and a deadline-bound wait.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { inject } from "vitest";

export { installCrds } from "./crds.js";

export function kubeconfigPath(): string {
  return inject("kubeconfigPath");
}

export function binDir(): string {
  return inject("binDir");
}

export function testKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath());
  return kc;
}

/** Creates a namespace with a random suffix; tests never share one. */
export async function createTestNamespace(kc: KubeConfig, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`.toLowerCase().slice(0, 63);
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name, labels: { "apptoken.io/test": "true" } } } });
  return name;
}

export async function deleteTestNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc
    .makeApiClient(CoreV1Api)
    .deleteNamespace({ name })
    .catch(() => undefined);
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs the pinned kubectl (never whatever is on PATH) against the test control plane. */
export function kubectl(
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      join(binDir(), "kubectl"),
      ["--kubeconfig", kubeconfigPath(), ...args],
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Polls `probe` until it returns a value other than undefined, or fails with `what` at the deadline. */
export async function eventually<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Polls `get` until the object's Ready condition has `status` (and `reason`, when given); on
 * timeout the error carries the last status seen.
 */
export async function waitForReady<T extends { status?: unknown }>(
  get: () => Promise<T>,
  what: string,
  status: "True" | "False",
  reason: string | undefined,
  timeoutMs: number,
): Promise<T> {
  let last: unknown;
  try {
    return await eventually(
      async () => {
        const obj = await get();
        last = obj.status;
        const conditions = (obj.status as { conditions?: { type: string; status: string; reason: string }[] })
          ?.conditions;
        const r = conditions?.find((c) => c.type === "Ready");
        return r?.status === status && (reason === undefined || r.reason === reason) ? obj : undefined;
      },
      `${what} Ready=${status}${reason ? ` (${reason})` : ""}`,
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last)}`);
  }
}
