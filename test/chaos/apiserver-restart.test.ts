/**
 * The Kubernetes API going away under the operator, on a control plane of this file's own (the
 * apiserver is killed and restarted, etcd stopped and started: the shared one must not notice).
 * Short-lived tokens keep refreshes due the whole time. The operator connects straight to the
 * apiserver (no proxy: connection refused is what it must see), as deploy/'s ServiceAccount.
 *
 * After each fault: the operator process is still running, its watches resumed (a request created
 * afterwards is served), every Secret still exists and never held an expired token, refreshes go
 * on, and requests that were Ready are Ready.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../../hack/control-plane/control-plane.js";
import { installCrds } from "../support/crds.js";
import { ChaosScenario, report, until } from "./support/chaos.js";
import { KubeConfig } from "@kubernetes/client-node";

describe("apiserver restarted and etcd stopped mid-run", () => {
  let plane: ControlPlane;
  let s: ChaosScenario;
  beforeAll(async () => {
    plane = await startControlPlane({
      log: (l) => process.stderr.write(`[chaos control plane] ${l}\n`),
      beforeControllerManager: async (path) => {
        const kc = new KubeConfig();
        kc.loadFromFile(path);
        await installCrds(kc);
      },
    });
    // 90 s tokens, refresh_in 10 s: refreshes are always coming due.
    s = new ChaosScenario({
      prefix: "chaos-apiserver",
      controlPlane: { kubeconfigPath: plane.kubeconfigPath, binDir: plane.binDir },
      tokenLifetimeSeconds: 90,
      refreshInSeconds: 10,
      proxy: false,
    });
    await s.start();
    await s.startReplica("a");
  }, 240_000);
  afterAll(async () => {
    await s?.stop();
    await plane?.stop();
  });

  const names = ["secret", "cert", "wi"];
  const kinds = ["clientSecret", "certificate", "workloadIdentity"] as const;

  /** Waits until every Secret got a new version after `since`: refreshing goes on. */
  const refreshedSince = (since: number, what: string) =>
    until(
      () =>
        names.every((n) => s.history.of(n).some((v) => v.at > since && v.type === "MODIFIED"))
          ? true
          : undefined,
      what,
      60_000,
    );

  it("survives the apiserver being restarted while refreshes are due", async () => {
    await Promise.all(names.map((n, i) => s.createRequest(n, s.spec(kinds[i]))));
    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));
    const restartedFrom = Date.now();
    await plane.restartApiServer();
    const restartedAt = Date.now();
    expect(s.replicas[0]!.op.child.exitCode).toBeNull();
    // The watches resumed: a request created now is served, and refreshes continue.
    await s.createRequest("after-restart", s.spec("pfx"));
    await s.waitFor("after-restart", "True", "TokenIssued", 60_000);
    await refreshedSince(restartedAt, "refreshes to continue after the restart");
    for (const n of names) await s.waitFor(n, "True", undefined, 30_000);
    report({
      suite: "apiserver-restart",
      fault: "kube-apiserver killed and restarted",
      downSeconds: Math.round((restartedAt - restartedFrom) / 1000),
      historyReconnects: s.history.reconnects,
    });
  }, 180_000);

  it("survives etcd being stopped and started while refreshes are due", async () => {
    await plane.stopEtcd();
    const stoppedAt = Date.now();
    // Long enough for refreshes (every ~10 s) to come due and fail against the dead storage.
    await until(
      async () => {
        const res = await s.transport.request<unknown>({ path: "/readyz", timeoutMs: 2_000 }).then(
          () => "ready",
          () => "not ready",
        );
        return res === "not ready" && Date.now() - stoppedAt > 15_000 ? true : undefined;
      },
      "the apiserver to report itself not ready without etcd, for 15 s",
      60_000,
      500,
    );
    await plane.startEtcd();
    const startedAt = Date.now();
    expect(s.replicas[0]!.op.child.exitCode).toBeNull();
    await s.createRequest("after-etcd", s.spec("clientSecret"));
    await s.waitFor("after-etcd", "True", "TokenIssued", 90_000);
    await refreshedSince(startedAt, "refreshes to continue after etcd came back");
    for (const n of [...names, "after-restart"]) await s.waitFor(n, "True", undefined, 30_000);
    expect(s.history.deletedManaged()).toEqual([]);
    expect(s.history.expiredWindows()).toEqual([]);
    report({
      suite: "apiserver-restart",
      fault: "etcd stopped and started",
      downSeconds: Math.round((startedAt - stoppedAt) / 1000),
      operatorErrorsLogged: s.replicas[0]!.op.logs().filter((l) =>
        ["warn", "error", "fatal"].includes(String(l.level)),
      ).length,
    });
  }, 180_000);

  it("leaked nothing", async () => {
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  });
});
