/**
 * deploy/ on the real apiserver: both installs pass `kubectl apply -k ... --dry-run=server`, the
 * samples and the kind e2e manifests too; and the RBAC is minimal, proven by installing it for real
 * (moved to fresh namespaces, cluster-scoped names suffixed, so that parallel tests never collide)
 * and asking the apiserver what the operator's ServiceAccount can and cannot do.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEPLOY_DIR,
  EXAMPLE_WATCHED_NAMESPACES,
  NAMESPACED_OVERLAY_DIR,
  OPERATOR_NAMESPACE,
  OPERATOR_SERVICE_ACCOUNT,
  REPO_ROOT,
  rbacOnly,
  relocate,
  renderKustomization,
  serviceAccountKubeconfig,
  toYaml,
  type Manifest,
} from "../../hack/dev/deploy-manifests.js";
import {
  binDir,
  createTestNamespace,
  deleteTestNamespace,
  kubectl,
  testKubeConfig,
} from "../support/kube.js";

const kc = testKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const kubectlPath = () => join(binDir(), "kubectl");

/** Creates a namespace with a fixed name unless it exists; never deleted (other files may use it). */
async function ensureNamespace(name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name } } }).catch((e: unknown) => {
    if ((e as { code?: number }).code !== 409) throw e;
  });
}

async function applyOk(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input === undefined ? {} : { input });
  expect(r.stderr.replace(/^Warning: .*$/gm, "").trim(), `kubectl ${args.join(" ")}`).toBe("");
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

const byKind = (ms: Manifest[], kind: string) => ms.filter((m) => m.kind === kind);
const one = (ms: Manifest[], kind: string, name?: string): Manifest => {
  const found = ms.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  expect(found, `${kind} ${name ?? ""}`).toHaveLength(1);
  return found[0]!;
};

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** A role's rules as a sorted set of "group|resource|verb" strings. */
function permissions(rules: Rule[]): string[] {
  const out = new Set<string>();
  for (const r of rules)
    for (const g of r.apiGroups)
      for (const res of r.resources) for (const v of r.verbs) out.add(`${g}|${res}|${v}`);
  return [...out].sort();
}

/** Exactly what the operator does (DESIGN.md §3.5, src/kube). Changing this list is a design change. */
const OPERATOR_PERMISSIONS = [
  "apptoken.io|apptokenrequests|get",
  "apptoken.io|apptokenrequests|list",
  "apptoken.io|apptokenrequests|watch",
  "apptoken.io|apptokenrequests/status|patch",
  "apptoken.io|apptokenrequests/status|update",
  "apptoken.io|apptokenrequests/finalizers|update",
  "|secrets|get",
  "|secrets|list",
  "|secrets|watch",
  "|secrets|create",
  "|secrets|update",
  "|serviceaccounts/token|create",
  "|events|create",
  "|events|patch",
  "events.k8s.io|events|create",
  "events.k8s.io|events|patch",
].sort();

describe("deploy/ renders and passes the apiserver's dry run", () => {
  let cluster: Manifest[];
  let namespaced: Manifest[];

  beforeAll(async () => {
    cluster = await renderKustomization(kubectlPath(), DEPLOY_DIR);
    namespaced = await renderKustomization(kubectlPath(), NAMESPACED_OVERLAY_DIR);
  });

  it("ships the CRD byte for byte as crds/ has it", () => {
    const source = readFileSync(join(REPO_ROOT, "crds/apptoken.io_apptokenrequests.yaml"), "utf8");
    const copy = readFileSync(join(DEPLOY_DIR, "base/crd/apptoken.io_apptokenrequests.yaml"), "utf8");
    expect(
      copy === source,
      "deploy/base/crd/ is out of date: cp crds/apptoken.io_apptokenrequests.yaml deploy/base/crd/",
    ).toBe(true);
    expect(one(cluster, "CustomResourceDefinition").metadata.name).toBe("apptokenrequests.apptoken.io");
  });

  it("kubectl apply -k deploy --dry-run=server", async () => {
    await ensureNamespace(OPERATOR_NAMESPACE); // a dry run cannot create the namespace it fills
    const out = await applyOk(["apply", "-k", DEPLOY_DIR, "--dry-run=server"]);
    for (const what of [
      "customresourcedefinition.apiextensions.k8s.io/apptokenrequests.apptoken.io",
      "serviceaccount/apptoken-operator",
      "clusterrole.rbac.authorization.k8s.io/apptoken-operator",
      "clusterrolebinding.rbac.authorization.k8s.io/apptoken-operator",
      "role.rbac.authorization.k8s.io/apptoken-operator-leader-election",
      "rolebinding.rbac.authorization.k8s.io/apptoken-operator-leader-election",
      "deployment.apps/apptoken-operator",
      "service/apptoken-operator-metrics",
      "poddisruptionbudget.policy/apptoken-operator",
    ]) {
      expect(out).toContain(what);
    }
  });

  it("kubectl apply -k deploy/overlays/namespaced --dry-run=server", async () => {
    await ensureNamespace(OPERATOR_NAMESPACE);
    for (const ns of EXAMPLE_WATCHED_NAMESPACES) await ensureNamespace(ns);
    const out = await applyOk(["apply", "-k", NAMESPACED_OVERLAY_DIR, "--dry-run=server"]);
    expect(out).toContain("deployment.apps/apptoken-operator");
    expect(out).not.toContain("clusterrole");
  });

  it("the samples pass the CRD's validation: kubectl apply -n NS -k deploy/samples --dry-run=server", async () => {
    const ns = await createTestNamespace(kc, "deploy-samples");
    try {
      const out = await applyOk(["apply", "-n", ns, "-k", join(DEPLOY_DIR, "samples"), "--dry-run=server"]);
      for (const name of ["graph-client-secret", "graph-certificate", "graph-workload-identity"]) {
        expect(out).toContain(`apptokenrequest.apptoken.io/${name} created (server dry run)`);
      }
      expect(out).toContain("secret/graph-app-certificate");
      expect(out).toContain("serviceaccount/payments-app");
    } finally {
      await deleteTestNamespace(kc, ns);
    }
  });

  it("the Deployment is hardened, probed, spread and elects a leader", () => {
    const d = one(cluster, "Deployment", "apptoken-operator") as any;
    expect(d.metadata.namespace).toBe(OPERATOR_NAMESPACE);
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(pod.containers).toHaveLength(1);
    expect(c.image).toBe("ghcr.io/apptoken/apptoken-operator:dev");
    expect(c.imagePullPolicy).toBe("IfNotPresent"); // kind load docker-image
    expect(c.args).toContain("--leader-elect");
    expect(c.args).toContain("--metrics-bind-address=:8080");
    expect(c.args).toContain("--health-probe-bind-address=:8081");
    expect(c.env).toContainEqual({
      name: "POD_NAMESPACE",
      valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } },
    });
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
    expect(c.ports).toContainEqual({ name: "health", containerPort: 8081, protocol: "TCP" });
    expect(c.ports).toContainEqual({ name: "metrics", containerPort: 8080, protocol: "TCP" });
    expect(c.resources.requests.cpu).toBeTruthy();
    expect(c.resources.requests.memory).toBeTruthy();
    expect(c.resources.limits.memory).toBeTruthy();
    // V8 would size its heap from the whole limit: its old space is held to about 3/4 of it.
    const oldSpaceMiB = Number(
      /--max-old-space-size=(\d+)/.exec(
        (c.env as { name: string; value?: string }[]).find((e) => e.name === "NODE_OPTIONS")?.value ?? "",
      )?.[1],
    );
    const limitMiB = Number(/^(\d+)Mi$/.exec(c.resources.limits.memory)?.[1]);
    expect(oldSpaceMiB).toBeGreaterThan(0);
    expect(oldSpaceMiB).toBeLessThanOrEqual(limitMiB * 0.75);
    expect(pod.serviceAccountName).toBe(OPERATOR_SERVICE_ACCOUNT);
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c.securityContext.privileged ?? false).toBe(false);
    expect(c.securityContext.capabilities.add ?? []).toEqual([]);
    const keys = pod.topologySpreadConstraints.map((t: any) => t.topologyKey);
    expect(keys).toEqual(["kubernetes.io/hostname", "topology.kubernetes.io/zone"]);
    for (const t of pod.topologySpreadConstraints) {
      expect(t.labelSelector.matchLabels).toEqual(d.spec.selector.matchLabels);
    }
    // The PDB and the metrics Service select exactly these pods.
    const podLabels = d.spec.template.metadata.labels;
    const pdb = one(cluster, "PodDisruptionBudget") as any;
    expect(pdb.spec.minAvailable).toBe(1);
    expect(podLabels).toMatchObject(pdb.spec.selector.matchLabels);
    const svc = one(cluster, "Service", "apptoken-operator-metrics") as any;
    expect(podLabels).toMatchObject(svc.spec.selector);
    expect(svc.spec.ports).toEqual([{ name: "metrics", port: 8080, targetPort: "metrics", protocol: "TCP" }]);
    // The namespace enforces the restricted Pod Security Standard, which the pod meets.
    const ns = one(cluster, "Namespace") as any;
    expect(ns.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });

  it("the ClusterRole grants exactly what the operator uses: no wildcard, no delete, no patch of Secrets", () => {
    const roles = [
      ...byKind(cluster, "ClusterRole"),
      ...byKind(cluster, "Role"),
      ...byKind(namespaced, "Role"),
    ];
    for (const r of roles) {
      for (const rule of r.rules as Rule[]) {
        for (const field of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames ?? []]) {
          expect(field, `${r.kind} ${r.metadata.name}`).not.toContain("*");
        }
        expect(rule.nonResourceURLs).toBeUndefined();
        expect(rule.verbs).not.toContain("delete");
        expect(rule.verbs).not.toContain("deletecollection");
      }
    }
    const clusterRole = one(cluster, "ClusterRole", "apptoken-operator");
    expect(permissions(clusterRole.rules as Rule[])).toEqual(OPERATOR_PERMISSIONS);
    const binding = one(cluster, "ClusterRoleBinding", "apptoken-operator") as any;
    expect(binding.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "apptoken-operator",
    });
    expect(binding.subjects).toEqual([
      { kind: "ServiceAccount", name: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE },
    ]);
    // Leases: a Role in the operator's namespace, never cluster-wide.
    const lease = one(cluster, "Role", "apptoken-operator-leader-election");
    expect(lease.metadata.namespace).toBe(OPERATOR_NAMESPACE);
    expect(permissions(lease.rules as Rule[])).toEqual([
      "coordination.k8s.io|leases|create",
      "coordination.k8s.io|leases|get",
      "coordination.k8s.io|leases|update",
    ]);
  });

  it("the namespaced overlay has no cluster-wide grant, and the ClusterRole's rules as a Role per watched namespace", () => {
    expect(byKind(namespaced, "ClusterRole")).toEqual([]);
    expect(byKind(namespaced, "ClusterRoleBinding")).toEqual([]);
    const watchedRoles = byKind(namespaced, "Role").filter((r) => r.metadata.name === "apptoken-operator");
    expect(watchedRoles.map((r) => r.metadata.namespace).sort()).toEqual([...EXAMPLE_WATCHED_NAMESPACES]);
    for (const r of watchedRoles) expect(permissions(r.rules as Rule[])).toEqual(OPERATOR_PERMISSIONS);
    for (const b of byKind(namespaced, "RoleBinding").filter(
      (x) => x.metadata.name === "apptoken-operator",
    )) {
      expect((b as any).subjects).toEqual([
        { kind: "ServiceAccount", name: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE },
      ]);
    }
    // The operator is told the same list (APPTOKEN_NAMESPACES, read like --namespace).
    const cm = byKind(namespaced, "ConfigMap").find((m) =>
      m.metadata.name.startsWith("apptoken-operator-watch"),
    );
    expect((cm as any).data.APPTOKEN_NAMESPACES).toBe(EXAMPLE_WATCHED_NAMESPACES.join(","));
    const c = (one(namespaced, "Deployment") as any).spec.template.spec.containers[0];
    expect(c.envFrom).toEqual([{ configMapRef: { name: cm!.metadata.name } }]);
  });
});

/** `kubectl auth can-i` as the ServiceAccount (impersonated by the admin): true, false. */
async function can(
  user: string,
  verb: string,
  resource: string,
  where: { ns?: string; all?: boolean; sub?: string },
) {
  const args = ["auth", "can-i", verb, resource, `--as=${user}`];
  if (where.sub) args.push(`--subresource=${where.sub}`);
  if (where.all) args.push("--all-namespaces");
  else args.push("-n", where.ns ?? "default");
  const r = await kubectl(args);
  if (r.code !== 0 && r.code !== 1) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  // A misspelt resource would answer "no" and make a "cannot" check pass for nothing.
  if (/doesn't have a resource type|Warning/i.test(r.stderr))
    throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim() === "yes";
}

type Check = [verb: string, resource: string, where: { ns?: string; all?: boolean; sub?: string }];

async function expectAll(user: string, checks: Check[], expected: boolean): Promise<void> {
  const got = await Promise.all(checks.map(([v, r, w]) => can(user, v, r, w)));
  const wrong = checks
    .map(([v, r, w], i) => ({
      check: `${v} ${r}${w.sub ? "/" + w.sub : ""} ${w.all ? "-A" : "-n " + w.ns}`,
      ok: got[i],
    }))
    .filter((x) => x.ok !== expected)
    .map((x) => x.check);
  expect(wrong, expected ? "should be allowed" : "should be forbidden").toEqual([]);
}

/** What the operator does in a namespace it serves. */
const servedChecks = (ns: string): Check[] => [
  ["get", "apptokenrequests.apptoken.io", { ns }],
  ["list", "apptokenrequests.apptoken.io", { ns }],
  ["watch", "apptokenrequests.apptoken.io", { ns }],
  ["patch", "apptokenrequests.apptoken.io", { ns, sub: "status" }],
  ["update", "apptokenrequests.apptoken.io", { ns, sub: "status" }],
  ["update", "apptokenrequests.apptoken.io", { ns, sub: "finalizers" }],
  ["get", "secrets", { ns }],
  ["list", "secrets", { ns }],
  ["watch", "secrets", { ns }],
  ["create", "secrets", { ns }],
  ["update", "secrets", { ns }],
  ["create", "serviceaccounts", { ns, sub: "token" }],
  ["create", "events", { ns }],
  ["patch", "events", { ns }],
  ["create", "events.events.k8s.io", { ns }],
  ["patch", "events.events.k8s.io", { ns }],
];

/** What it must never do, in any namespace. */
const neverChecks = (ns: string, operatorNs: string): Check[] => [
  ["delete", "secrets", { ns }],
  ["deletecollection", "secrets", { ns }],
  ["patch", "secrets", { ns }],
  ["create", "apptokenrequests.apptoken.io", { ns }],
  ["update", "apptokenrequests.apptoken.io", { ns }],
  ["patch", "apptokenrequests.apptoken.io", { ns }],
  ["delete", "apptokenrequests.apptoken.io", { ns }],
  ["get", "serviceaccounts", { ns }],
  ["create", "serviceaccounts", { ns }],
  ["get", "configmaps", { ns }],
  ["create", "pods", { ns }],
  ["get", "pods", { ns }],
  ["create", "pods", { ns, sub: "exec" }],
  ["create", "deployments.apps", { ns }],
  ["create", "rolebindings.rbac.authorization.k8s.io", { ns }],
  ["get", "events", { ns }],
  ["create", "leases.coordination.k8s.io", { ns }],
  ["delete", "leases.coordination.k8s.io", { ns: operatorNs }],
  ["list", "leases.coordination.k8s.io", { ns: operatorNs }],
  ["delete", "customresourcedefinitions.apiextensions.k8s.io", { all: true }],
  ["update", "customresourcedefinitions.apiextensions.k8s.io", { all: true }],
  ["create", "clusterroles.rbac.authorization.k8s.io", { all: true }],
  ["bind", "clusterroles.rbac.authorization.k8s.io", { all: true }],
  ["escalate", "clusterroles.rbac.authorization.k8s.io", { all: true }],
  ["impersonate", "users", { all: true }],
  ["impersonate", "serviceaccounts", { ns }],
  ["get", "nodes", { all: true }],
  ["list", "namespaces", { all: true }],
  ["create", "tokenreviews.authentication.k8s.io", { all: true }],
];

const leaseChecks = (operatorNs: string): Check[] => [
  ["get", "leases.coordination.k8s.io", { ns: operatorNs }],
  ["create", "leases.coordination.k8s.io", { ns: operatorNs }],
  ["update", "leases.coordination.k8s.io", { ns: operatorNs }],
];

describe("deploy/'s RBAC, installed for real: sufficient and minimal", () => {
  const sfx = `-${randomBytes(3).toString("hex")}`;
  const clusterNs = `apptoken-system${sfx}`;
  const namespacedNs = `apptoken-system-ns${sfx}`;
  const clusterUser = `system:serviceaccount:${clusterNs}:${OPERATOR_SERVICE_ACCOUNT}`;
  const namespacedUser = `system:serviceaccount:${namespacedNs}:${OPERATOR_SERVICE_ACCOUNT}`;
  let watchedA: string;
  let watchedB: string;
  let outside: string;
  let applied: Manifest[] = [];
  let tmp: string;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "deploy-rbac-"));
    watchedA = await createTestNamespace(kc, "deploy-watched-a");
    watchedB = await createTestNamespace(kc, "deploy-watched-b");
    outside = await createTestNamespace(kc, "deploy-outside");
    const clusterInstall = relocate(await renderKustomization(kubectlPath(), DEPLOY_DIR), {
      namespaces: { [OPERATOR_NAMESPACE]: clusterNs },
      suffix: sfx,
      dropKinds: ["CustomResourceDefinition"], // the shared test cluster already has it
    });
    const namespacedInstall = relocate(await renderKustomization(kubectlPath(), NAMESPACED_OVERLAY_DIR), {
      namespaces: { [OPERATOR_NAMESPACE]: namespacedNs, "team-a": watchedA, "team-b": watchedB },
      suffix: sfx,
      dropKinds: ["CustomResourceDefinition"],
    });
    // Everything but the CRD, for real: the Deployment too (no pods run: no scheduler), so that
    // the apiserver's admission sees it; the RBAC is what the checks below query.
    applied = [...clusterInstall, ...namespacedInstall];
    for (const install of [clusterInstall, namespacedInstall]) {
      const nsObjects = install.filter((m) => m.kind === "Namespace");
      await applyOk(["apply", "-f", "-"], toYaml(nsObjects));
      await applyOk(["apply", "-f", "-"], toYaml(install.filter((m) => m.kind !== "Namespace")));
    }
  });

  afterAll(async () => {
    const clusterScoped = applied.filter((m) => m.kind === "ClusterRole" || m.kind === "ClusterRoleBinding");
    if (clusterScoped.length > 0) {
      await kubectl(["delete", "--ignore-not-found", "-f", "-"], { input: toYaml(clusterScoped) });
    }
    for (const ns of [clusterNs, namespacedNs, watchedA, watchedB, outside]) {
      if (ns) await deleteTestNamespace(kc, ns);
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  it("the relocated install is what deploy/ says, moved (suffix on cluster-scoped names only)", () => {
    expect(
      rbacOnly(applied)
        .map((m) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`)
        .sort(),
    ).toEqual(
      [
        `ClusterRole//apptoken-operator${sfx}`,
        `ClusterRoleBinding//apptoken-operator${sfx}`,
        `Namespace//${clusterNs}`,
        `Namespace//${namespacedNs}`,
        `Role/${clusterNs}/apptoken-operator-leader-election`,
        `Role/${namespacedNs}/apptoken-operator-leader-election`,
        `Role/${watchedA}/apptoken-operator`,
        `Role/${watchedB}/apptoken-operator`,
        `RoleBinding/${clusterNs}/apptoken-operator-leader-election`,
        `RoleBinding/${namespacedNs}/apptoken-operator-leader-election`,
        `RoleBinding/${watchedA}/apptoken-operator`,
        `RoleBinding/${watchedB}/apptoken-operator`,
        `ServiceAccount/${clusterNs}/apptoken-operator`,
        `ServiceAccount/${namespacedNs}/apptoken-operator`,
      ].sort(),
    );
  });

  it("cluster-wide install: can do every needed verb in any namespace, list/watch across all", async () => {
    await expectAll(
      clusterUser,
      [...servedChecks(outside), ...servedChecks(watchedA), ...leaseChecks(clusterNs)],
      true,
    );
    await expectAll(
      clusterUser,
      [
        ["list", "secrets", { all: true }],
        ["watch", "secrets", { all: true }],
        ["list", "apptokenrequests.apptoken.io", { all: true }],
        ["watch", "apptokenrequests.apptoken.io", { all: true }],
      ],
      true,
    );
  });

  it("cluster-wide install: cannot delete Secrets or CRDs, touch specs, pods, RBAC, or other Leases", async () => {
    await expectAll(clusterUser, neverChecks(outside, clusterNs), false);
    // Its Lease permissions stop at its namespace.
    await expectAll(clusterUser, [["get", "leases.coordination.k8s.io", { ns: outside }]], false);
  });

  it("namespaced install: serves the watched namespaces, and nothing outside them", async () => {
    await expectAll(
      namespacedUser,
      [...servedChecks(watchedA), ...servedChecks(watchedB), ...leaseChecks(namespacedNs)],
      true,
    );
    const outsideChecks = servedChecks(outside);
    await expectAll(
      namespacedUser,
      [
        ...outsideChecks,
        ...neverChecks(watchedA, namespacedNs),
        ["list", "secrets", { all: true }],
        ["watch", "secrets", { all: true }],
        ["list", "apptokenrequests.apptoken.io", { all: true }],
        ["get", "secrets", { ns: clusterNs }],
      ],
      false,
    );
  });

  it("with the ServiceAccount's own token (as in a pod): writes a Secret where it serves, is refused elsewhere", async () => {
    const sa = await serviceAccountKubeconfig(kc, namespacedNs, OPERATOR_SERVICE_ACCOUNT, join(tmp, "sa"));
    const asOperator = (args: string[], input?: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolveRun) => {
        // Not the test helper kubectl(): that one adds the admin kubeconfig.
        const child = execFile(
          kubectlPath(),
          ["--kubeconfig", sa.kubeconfigPath, ...args],
          (err, stdout, stderr) =>
            resolveRun({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.on("error", () => undefined);
        child.stdin?.end(input ?? ""); // never a prompt
      });
    expect((await asOperator(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])).stdout).toBe(
      sa.username,
    );
    // @kubernetes/client-node (what the operator uses) reads the same kubeconfig.
    const saKc = new KubeConfig();
    saKc.loadFromFile(sa.kubeconfigPath);
    const listed = await saKc.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: watchedB });
    expect(listed.items).toBeDefined();
    await expect(saKc.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: outside })).rejects.toThrow(
      /403/,
    );
    const secret = (ns: string) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "rbac-probe", namespace: ns },
        stringData: { access_token: "x" },
      });
    const created = await asOperator(["create", "-f", "-"], secret(watchedA));
    expect(created.code, created.stderr).toBe(0);
    const replaced = await asOperator(["replace", "-f", "-"], secret(watchedA));
    expect(replaced.code, replaced.stderr).toBe(0);
    const del = await asOperator(["delete", "secret", "rbac-probe", "-n", watchedA]);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(/forbidden/i);
    for (const args of [
      ["get", "secrets", "-n", outside],
      ["create", "-f", "-"],
      ["get", "secrets", "-A"],
      ["get", "apptokenrequests", "-A"],
    ]) {
      const r = await asOperator(args, args[1] === "-f" ? secret(outside) : undefined);
      expect(r.code, `${args.join(" ")} should be refused`).not.toBe(0);
      expect(r.stderr).toMatch(/forbidden/i);
    }
  });
});
