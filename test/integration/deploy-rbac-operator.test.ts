/**
 * deploy/'s RBAC is sufficient, proven by running the real operator with nothing but the
 * ServiceAccount's token (in-cluster style: token file + CA, no admin key) through the main
 * scenario — every credential kind, leader election, a deleted Secret recreated — with no
 * "forbidden" anywhere in its logs.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEPLOY_DIR,
  OPERATOR_NAMESPACE,
  OPERATOR_SERVICE_ACCOUNT,
  rbacOnly,
  relocate,
  renderKustomization,
  serviceAccountKubeconfig,
  toYaml,
} from "../../hack/dev/deploy-manifests.js";
import { binDir, createTestNamespace, deleteTestNamespace, eventually, kubectl } from "../support/kube.js";
import { Scenario } from "../support/scenario.js";

describe("the operator running with only deploy/'s least-privilege identity", () => {
  const s = new Scenario({ prefix: "rbac-main", operator: false });
  let operatorNs: string;
  let tmp: string;
  let clusterScoped: { kind: string; name: string }[] = [];

  beforeAll(async () => {
    await s.start();
    tmp = mkdtempSync(join(tmpdir(), "rbac-operator-"));
    operatorNs = await createTestNamespace(s.kc, "rbac-operator");
    const install = rbacOnly(
      relocate(await renderKustomization(join(binDir(), "kubectl"), DEPLOY_DIR), {
        namespaces: { [OPERATOR_NAMESPACE]: operatorNs },
        suffix: `-${randomBytes(3).toString("hex")}`,
        dropKinds: ["CustomResourceDefinition", "Namespace"],
      }),
    );
    clusterScoped = install
      .filter((m) => m.kind === "ClusterRole" || m.kind === "ClusterRoleBinding")
      .map((m) => ({ kind: m.kind, name: m.metadata.name }));
    const applied = await kubectl(["apply", "-f", "-"], { input: toYaml(install) });
    expect(applied.code, applied.stderr).toBe(0);
    const sa = await serviceAccountKubeconfig(s.kc, operatorNs, OPERATOR_SERVICE_ACCOUNT, join(tmp, "sa"));
    await s.startOperator({
      kubeconfigPath: sa.kubeconfigPath,
      // With deploy/'s cluster-wide ClusterRole, but watching only this test's namespace: other
      // test files run their own operators on theirs, and two writers would disturb each other.
      namespaces: [s.ns],
      args: ["--leader-elect", "--leader-election-namespace", operatorNs],
    });
  }, 180_000);

  afterAll(async () => {
    await s.stop();
    for (const o of clusterScoped) await kubectl(["delete", o.kind, o.name, "--ignore-not-found"]);
    await deleteTestNamespace(s.kc, operatorNs);
    rmSync(tmp, { recursive: true, force: true });
  });

  it("gets every credential kind Ready, recreates a deleted Secret, and is never forbidden", async () => {
    const kinds = ["clientSecret", "certificate", "pfx", "workloadIdentity"] as const;
    await Promise.all(kinds.map((k) => s.createRequest(`rbac-${k.toLowerCase()}`, s.spec(k))));
    for (const k of kinds) await s.waitFor(`rbac-${k.toLowerCase()}`, "True", "TokenIssued", 60_000);

    const before = await s.secret("rbac-certificate");
    await s.core.deleteNamespacedSecret({ name: "rbac-certificate", namespace: s.ns });
    await eventually(async () => {
      const sec = await s.secret("rbac-certificate");
      return sec && sec.metadata?.uid !== before?.metadata?.uid ? true : undefined;
    }, "the Secret to be recreated");

    await eventually(async () => {
      const d = await kubectl([
        "get",
        "events",
        "-n",
        s.ns,
        "--field-selector",
        "reason=Issued",
        "-o",
        "name",
      ]);
      return d.stdout.trim().length > 0 ? true : undefined;
    }, "Issued events written with the operator's own identity");
    const lease = await kubectl([
      "get",
      "lease",
      "-n",
      operatorNs,
      "apptoken-operator",
      "-o",
      "jsonpath={.spec.holderIdentity}",
    ]);
    expect(lease.stdout.length).toBeGreaterThan(0);
    const log = s.operator!.output();
    // Cluster-wide, it also sees other tests' namespaces being deleted: "forbidden ... because it is
    // being terminated" is the apiserver refusing writes to a dying namespace, not RBAC.
    const denied = log
      .split("\n")
      .filter((l) => /forbidden|HTTP 403/i.test(l) && !/being terminated/.test(l));
    expect(denied).toEqual([]);
  }, 120_000);
});
