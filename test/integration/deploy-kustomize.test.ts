/**
 * deploy/ on the real apiserver: both installs pass `kubectl apply -k ... --dry-run=server`, the
 * samples too; and the RBAC is minimal, proven by installing it for real (moved to fresh
 * namespaces, cluster-scoped names suffixed, so that parallel tests never collide) and asking the
 * apiserver (SubjectAccessReviews, a sample of them put again through `kubectl auth can-i --as`,
 * and impersonated creates) what the operator's ServiceAccount can and cannot do, and what users
 * bound to the built-in view, edit and admin roles can do once deploy/'s aggregated roles are in.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthorizationV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEPLOY_DIR,
  EXAMPLE_WATCHED_NAMESPACES,
  isClusterScoped,
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
  eventually,
  kubectl,
  testKubeConfig,
} from "../support/kube.js";

const kc = testKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const authz = kc.makeApiClient(AuthorizationV1Api);
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
const id = (m: Manifest) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`;

/** The names `kubectl apply` printed for one resource type, e.g. "clusterrole.rbac.authorization.k8s.io". */
const applied = (out: string, type: string): string[] =>
  [...out.matchAll(new RegExp(`^${type.replace(/\./g, "\\.")}/(\\S+) `, "gm"))].map((m) => m[1]!).sort();

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

/** A role's rules as a sorted set of "group|resource|verb" strings. */
function permissions(rules: Rule[]): string[] {
  const out = new Set<string>();
  for (const r of rules)
    for (const g of r.apiGroups)
      for (const res of r.resources) for (const v of r.verbs) out.add(`${g}|${res}|${v}`);
  return [...out].sort();
}

const grants = (group: string, resources: string[], verbs: string[]): string[] =>
  resources.flatMap((r) => verbs.map((v) => `${group}|${r}|${v}`));

const OPERATOR_SUBJECT: Subject = {
  kind: "ServiceAccount",
  name: OPERATOR_SERVICE_ACCOUNT,
  namespace: OPERATOR_NAMESPACE,
};

/** The roles that a binding in `ms` gives the operator's ServiceAccount. */
function operatorRoles(ms: Manifest[]): Manifest[] {
  const refs = new Set<string>();
  for (const b of ms.filter((m) => m.kind === "RoleBinding" || m.kind === "ClusterRoleBinding")) {
    const subjects = (b.subjects as Subject[] | undefined) ?? [];
    if (!subjects.some((s) => s.kind === "ServiceAccount" && s.name === OPERATOR_SERVICE_ACCOUNT)) continue;
    const ref = b.roleRef as { kind: string; name: string };
    refs.add(
      ref.kind === "ClusterRole" ? `ClusterRole//${ref.name}` : `Role/${b.metadata.namespace}/${ref.name}`,
    );
  }
  return ms.filter((m) => refs.has(id(m)));
}

/**
 * What the operator does in a namespace it serves (src/kube, src/controller). Changing these lists
 * changes the trust model: docs/threat-model.md and docs/deploy.md say why each is there.
 */
const NAMESPACE_SCOPED_PERMISSIONS = [
  ...grants("apptoken.io", ["apptokenrequests"], ["get", "list", "watch"]),
  ...grants("apptoken.io", ["apptokenrequests/status"], ["patch", "update"]),
  ...grants("apptoken.io", ["apptokenrequests/finalizers"], ["update"]),
  ...grants("apptoken.io", ["appregistrations"], ["get", "list", "watch"]),
  ...grants("apptoken.io", ["appregistrations/status"], ["patch", "update"]),
  ...grants("", ["secrets"], ["get", "list", "watch", "create", "update"]),
  ...grants("", ["serviceaccounts/token"], ["create"]),
  ...grants("", ["events"], ["create", "patch"]),
  ...grants("events.k8s.io", ["events"], ["create", "patch"]),
].sort();

/** Cluster-scoped objects it reads: ClusterAppRegistrations and namespaces' labels. */
const CLUSTER_SCOPED_PERMISSIONS = [
  ...grants("apptoken.io", ["clusterappregistrations"], ["get", "list", "watch"]),
  ...grants("", ["namespaces"], ["get", "list", "watch"]),
].sort();

/**
 * ClusterAppRegistrations' status (Ready, credential, requests): written by a cluster-wide install
 * only, since one that serves some namespaces would count only their requests.
 */
const CLUSTER_STATUS_PERMISSIONS = grants(
  "apptoken.io",
  ["clusterappregistrations/status"],
  ["patch", "update"],
);

const OPERATOR_PERMISSIONS = [
  ...NAMESPACE_SCOPED_PERMISSIONS,
  ...CLUSTER_SCOPED_PERMISSIONS,
  ...CLUSTER_STATUS_PERMISSIONS,
].sort();

/** The namespaced install, in the cluster resource namespace: ClusterAppRegistrations' credentials, read only. */
const CLUSTER_RESOURCE_PERMISSIONS = [
  ...grants("", ["secrets"], ["get", "list", "watch"]),
  ...grants("", ["serviceaccounts/token"], ["create"]),
].sort();

const WRITE = ["create", "update", "patch", "delete", "deletecollection"];
const AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-";

/** deploy/base/rbac/aggregated-roles.yaml: rights for users, through the built-in roles. */
const USER_ROLES: Record<string, { aggregateTo: string[]; permissions: string[] }> = {
  "apptoken-operator-view": {
    aggregateTo: ["admin", "edit", "view"],
    permissions: grants(
      "apptoken.io",
      ["apptokenrequests", "appregistrations"],
      ["get", "list", "watch"],
    ).sort(),
  },
  "apptoken-operator-edit": {
    aggregateTo: ["admin", "edit"],
    permissions: grants("apptoken.io", ["apptokenrequests"], WRITE).sort(),
  },
  "apptoken-operator-admin": {
    aggregateTo: ["admin"],
    permissions: grants("apptoken.io", ["appregistrations"], WRITE).sort(),
  },
};

const CRD_FILES = [
  "apptoken.io_appregistrations.yaml",
  "apptoken.io_apptokenrequests.yaml",
  "apptoken.io_clusterappregistrations.yaml",
];
const CRD_NAMES = [
  "appregistrations.apptoken.io",
  "apptokenrequests.apptoken.io",
  "clusterappregistrations.apptoken.io",
];

/** What a registration's credential needs from its namespace: "Secret/name" or "ServiceAccount/name". */
function credentialObject(spec: any): string {
  const kinds = Object.keys(spec.credential);
  expect(kinds, "exactly one credential").toHaveLength(1);
  const c = spec.credential[kinds[0]!];
  return kinds[0] === "workloadIdentity"
    ? `ServiceAccount/${c.serviceAccountName}`
    : `Secret/${c.secretRef.name}`;
}

describe("deploy/ renders and passes the apiserver's dry run", () => {
  let cluster: Manifest[];
  let namespaced: Manifest[];

  beforeAll(async () => {
    cluster = await renderKustomization(kubectlPath(), DEPLOY_DIR);
    namespaced = await renderKustomization(kubectlPath(), NAMESPACED_OVERLAY_DIR);
  });

  it("ships every CRD byte for byte as crds/ has it", () => {
    const yamlIn = (dir: string) =>
      readdirSync(dir)
        .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
        .sort();
    expect(yamlIn(join(REPO_ROOT, "crds"))).toEqual(CRD_FILES);
    expect(yamlIn(join(DEPLOY_DIR, "base/crd"))).toEqual(CRD_FILES);
    const stale = CRD_FILES.filter(
      (f) =>
        readFileSync(join(REPO_ROOT, "crds", f), "utf8") !==
        readFileSync(join(DEPLOY_DIR, "base/crd", f), "utf8"),
    );
    expect(stale, "deploy/base/crd/ is out of date: cp crds/*.yaml deploy/base/crd/").toEqual([]);
    for (const install of [cluster, namespaced]) {
      expect(
        byKind(install, "CustomResourceDefinition")
          .map((m) => m.metadata.name)
          .sort(),
      ).toEqual(CRD_NAMES);
    }
  });

  it("kubectl apply -k deploy --dry-run=server", async () => {
    await ensureNamespace(OPERATOR_NAMESPACE); // a dry run cannot create the namespace it fills
    const out = await applyOk(["apply", "-k", DEPLOY_DIR, "--dry-run=server"]);
    for (const what of [
      ...CRD_NAMES.map((n) => `customresourcedefinition.apiextensions.k8s.io/${n}`),
      "serviceaccount/apptoken-operator",
      "clusterrolebinding.rbac.authorization.k8s.io/apptoken-operator",
      "role.rbac.authorization.k8s.io/apptoken-operator-leader-election",
      "rolebinding.rbac.authorization.k8s.io/apptoken-operator-leader-election",
      "deployment.apps/apptoken-operator",
      "service/apptoken-operator-metrics",
      "poddisruptionbudget.policy/apptoken-operator",
    ]) {
      expect(out).toContain(what);
    }
    expect(applied(out, "clusterrole.rbac.authorization.k8s.io")).toEqual(
      ["apptoken-operator", ...Object.keys(USER_ROLES)].sort(),
    );
  });

  it("kubectl apply -k deploy/overlays/namespaced --dry-run=server", async () => {
    await ensureNamespace(OPERATOR_NAMESPACE);
    for (const ns of EXAMPLE_WATCHED_NAMESPACES) await ensureNamespace(ns);
    const out = await applyOk(["apply", "-k", NAMESPACED_OVERLAY_DIR, "--dry-run=server"]);
    expect(out).toContain("deployment.apps/apptoken-operator");
    expect(out).toContain("role.rbac.authorization.k8s.io/apptoken-operator-cluster-resources");
    // The operator's only cluster-wide grant is cluster-scoped/; the rest are users' roles.
    expect(applied(out, "clusterrole.rbac.authorization.k8s.io")).toEqual(
      ["apptoken-operator-cluster-scoped", ...Object.keys(USER_ROLES)].sort(),
    );
    expect(applied(out, "clusterrolebinding.rbac.authorization.k8s.io")).toEqual([
      "apptoken-operator-cluster-scoped",
    ]);
  });

  it("the samples: a registration per credential kind with what it names, requests by appRef, and the CRDs accept them", async () => {
    const samples = await renderKustomization(kubectlPath(), join(DEPLOY_DIR, "samples"));
    const regs = byKind(samples, "AppRegistration");
    expect(regs.map((r) => Object.keys((r.spec as any).credential)[0]).sort()).toEqual([
      "certificate",
      "clientAssertion",
      "clientSecret",
      "workloadIdentity",
    ]);
    const here = new Set(samples.map((m) => `${m.kind}/${m.metadata.name}`));
    for (const r of regs) expect(here, r.metadata.name).toContain(credentialObject(r.spec));
    const requests = byKind(samples, "AppTokenRequest");
    for (const atr of requests) {
      const spec = atr.spec as any;
      expect(spec.appRef.kind).toBe("AppRegistration");
      expect(regs.map((r) => r.metadata.name)).toContain(spec.appRef.name);
      // A registration, a tenant, a scope: no app, authority or credential of its own.
      expect(
        Object.keys(spec).filter(
          (k) => !["appRef", "tenantId", "scope", "target", "refreshBefore"].includes(k),
        ),
        atr.metadata.name,
      ).toEqual([]);
      expect(spec).toMatchObject({ tenantId: expect.any(String), scope: expect.any(String) });
    }
    expect(new Set(requests.map((r) => (r.spec as any).appRef.name))).toEqual(
      new Set(regs.map((r) => r.metadata.name)),
    );
    for (const m of samples) expect(m.metadata.namespace, id(m)).toBeUndefined(); // kubectl apply -n picks it

    const ns = await createTestNamespace(kc, "deploy-samples");
    try {
      const out = await applyOk(["apply", "-n", ns, "-k", join(DEPLOY_DIR, "samples"), "--dry-run=server"]);
      for (const r of regs)
        expect(out).toContain(`appregistration.apptoken.io/${r.metadata.name} created (server dry run)`);
      for (const name of [
        "graph-client-secret",
        "graph-certificate",
        "graph-workload-identity",
        "graph-client-assertion",
      ]) {
        expect(out).toContain(`apptokenrequest.apptoken.io/${name} created (server dry run)`);
      }
      expect(out).toContain("secret/graph-app-certificate");
      expect(out).toContain("serviceaccount/payments-app");
    } finally {
      await deleteTestNamespace(kc, ns);
    }
  });

  it("the cluster sample: a ClusterAppRegistration for labelled namespaces, its Secret in apptoken-system, a request using it", async () => {
    const dir = join(DEPLOY_DIR, "samples/cluster");
    const ms = await renderKustomization(kubectlPath(), dir);
    expect(ms.map(id).sort()).toEqual(
      [
        "AppTokenRequest/demo/graph-tenant-tokens",
        "ClusterAppRegistration//tenant-tokens",
        `Secret/${OPERATOR_NAMESPACE}/tenant-tokens-credentials`,
      ].sort(),
    );
    const reg = one(ms, "ClusterAppRegistration") as any;
    expect(reg.spec.namespaceSelector).toEqual({ matchLabels: { "apptoken.io/tenant-tokens": "true" } });
    expect(credentialObject(reg.spec)).toBe("Secret/tenant-tokens-credentials");
    const secret = one(ms, "Secret") as any;
    expect(Object.keys(secret.stringData)).toEqual([reg.spec.credential.clientSecret.secretRef.key]);
    expect((one(ms, "AppTokenRequest") as any).spec.appRef).toEqual({
      kind: "ClusterAppRegistration",
      name: reg.metadata.name,
    });
    expect(readFileSync(join(dir, "kustomization.yaml"), "utf8")).toContain(
      "kubectl label namespace demo apptoken.io/tenant-tokens=true",
    );

    const resources = await createTestNamespace(kc, "deploy-cluster-sample");
    const demo = await createTestNamespace(kc, "deploy-cluster-sample-demo");
    try {
      const moved = relocate(ms, { namespaces: { [OPERATOR_NAMESPACE]: resources, demo }, suffix: "" });
      const out = await applyOk(["apply", "-f", "-", "--dry-run=server"], toYaml(moved));
      expect(out).toContain(`clusterappregistration.apptoken.io/tenant-tokens created (server dry run)`);
      expect(out).toContain(`apptokenrequest.apptoken.io/graph-tenant-tokens created (server dry run)`);
    } finally {
      await deleteTestNamespace(kc, resources);
      await deleteTestNamespace(kc, demo);
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
    // Credentials go only to the three clouds' token services and service-account tokens are
    // minted only for their exchange audiences (the flags' defaults); the cluster resource
    // namespace follows POD_NAMESPACE, where the namespaced overlay grants its Role.
    for (const flag of [
      "--allowed-authority-hosts",
      "--allowed-token-audiences",
      "--allow-insecure-loopback-authority",
      "--cluster-resource-namespace",
    ]) {
      expect(c.args.filter((a: string) => a.startsWith(flag))).toEqual([]);
    }
    expect((c.env as { name: string }[]).filter((e) => /^APPTOKEN_/.test(e.name))).toEqual([]);
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

  it("the operator's ClusterRole grants exactly what it uses: no wildcard, no delete, no patch of Secrets", () => {
    const roles = [
      ...byKind(cluster, "ClusterRole"),
      ...byKind(cluster, "Role"),
      ...byKind(namespaced, "ClusterRole"),
      ...byKind(namespaced, "Role"),
    ];
    for (const r of roles) {
      for (const rule of r.rules as Rule[]) {
        for (const field of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames ?? []]) {
          expect(field, `${r.kind} ${r.metadata.name}`).not.toContain("*");
        }
        expect(rule.nonResourceURLs).toBeUndefined();
      }
    }
    for (const r of [...operatorRoles(cluster), ...operatorRoles(namespaced)]) {
      for (const rule of r.rules as Rule[]) {
        expect(rule.verbs, id(r)).not.toContain("delete");
        expect(rule.verbs, id(r)).not.toContain("deletecollection");
      }
    }
    // Every binding deploy/ ships is the operator's; users' roles are bound by the built-in ones.
    for (const install of [cluster, namespaced]) {
      for (const b of [...byKind(install, "ClusterRoleBinding"), ...byKind(install, "RoleBinding")]) {
        expect((b as any).subjects, id(b)).toEqual([OPERATOR_SUBJECT]);
      }
    }
    expect(operatorRoles(cluster).map(id).sort()).toEqual([
      "ClusterRole//apptoken-operator",
      `Role/${OPERATOR_NAMESPACE}/apptoken-operator-leader-election`,
    ]);
    const clusterRole = one(cluster, "ClusterRole", "apptoken-operator");
    expect(permissions(clusterRole.rules as Rule[])).toEqual(OPERATOR_PERMISSIONS);
    expect((one(cluster, "ClusterRoleBinding", "apptoken-operator") as any).roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "apptoken-operator",
    });
    // Leases: a Role in the operator's namespace, never cluster-wide.
    const lease = one(cluster, "Role", "apptoken-operator-leader-election");
    expect(lease.metadata.namespace).toBe(OPERATOR_NAMESPACE);
    expect(permissions(lease.rules as Rule[])).toEqual([
      "coordination.k8s.io|leases|create",
      "coordination.k8s.io|leases|get",
      "coordination.k8s.io|leases|update",
    ]);
  });

  it("the users' roles aggregate into view, edit and admin, and none touches ClusterAppRegistrations or Secrets", () => {
    for (const install of [cluster, namespaced]) {
      const userRoles = byKind(install, "ClusterRole").filter((r) => r.metadata.name in USER_ROLES);
      expect(userRoles.map((r) => r.metadata.name).sort()).toEqual(Object.keys(USER_ROLES).sort());
      for (const r of userRoles) {
        const want = USER_ROLES[r.metadata.name]!;
        const labels = (r.metadata.labels ?? {}) as Record<string, string>;
        expect(
          Object.keys(labels)
            .filter((k) => k.startsWith(AGGREGATE))
            .sort(),
          r.metadata.name,
        ).toEqual(want.aggregateTo.map((to) => `${AGGREGATE}${to}`));
        for (const to of want.aggregateTo) expect(labels[`${AGGREGATE}${to}`]).toBe("true");
        expect(permissions(r.rules as Rule[]), r.metadata.name).toEqual(want.permissions);
        for (const p of permissions(r.rules as Rule[])) {
          // cluster-admin only; status is the operator's; tokens and credentials stay in Secrets.
          expect(p).not.toMatch(/clusterappregistrations|\/status|secrets|serviceaccounts/);
        }
        expect(r.aggregationRule).toBeUndefined();
      }
      // No other role of deploy/ aggregates anywhere.
      for (const r of [...byKind(install, "ClusterRole"), ...byKind(install, "Role")]) {
        if (r.metadata.name in USER_ROLES) continue;
        expect(
          Object.keys((r.metadata.labels ?? {}) as object).filter((k) => k.startsWith(AGGREGATE)),
        ).toEqual([]);
      }
    }
  });

  it("the namespaced overlay: a Role per watched namespace, a read-only Role in the cluster resource namespace, and cluster-wide only reads of ClusterAppRegistrations and namespaces", () => {
    const roles = operatorRoles(namespaced);
    expect(roles.map(id).sort()).toEqual(
      [
        "ClusterRole//apptoken-operator-cluster-scoped",
        `Role/${OPERATOR_NAMESPACE}/apptoken-operator-cluster-resources`,
        `Role/${OPERATOR_NAMESPACE}/apptoken-operator-leader-election`,
        ...EXAMPLE_WATCHED_NAMESPACES.map((ns) => `Role/${ns}/apptoken-operator`),
      ].sort(),
    );
    expect(byKind(namespaced, "ClusterRole").map((r) => r.metadata.name)).not.toContain("apptoken-operator");
    expect(byKind(namespaced, "ClusterRoleBinding").map((r) => r.metadata.name)).toEqual([
      "apptoken-operator-cluster-scoped",
    ]);
    const clusterWide = one(namespaced, "ClusterRole", "apptoken-operator-cluster-scoped");
    expect(permissions(clusterWide.rules as Rule[])).toEqual(CLUSTER_SCOPED_PERMISSIONS);
    const resources = one(namespaced, "Role", "apptoken-operator-cluster-resources");
    expect(permissions(resources.rules as Rule[])).toEqual(CLUSTER_RESOURCE_PERMISSIONS);
    const watchedRoles = byKind(namespaced, "Role").filter((r) => r.metadata.name === "apptoken-operator");
    expect(watchedRoles.map((r) => r.metadata.namespace).sort()).toEqual([...EXAMPLE_WATCHED_NAMESPACES]);
    for (const r of watchedRoles)
      expect(permissions(r.rules as Rule[])).toEqual(NAMESPACE_SCOPED_PERMISSIONS);
    // Together they are the ClusterRole's rules, cut where Kubernetes can cut them, less the
    // ClusterAppRegistrations' status, which this install leaves to a cluster-wide one.
    const clusterRole = one(cluster, "ClusterRole", "apptoken-operator");
    expect(
      [...NAMESPACE_SCOPED_PERMISSIONS, ...CLUSTER_SCOPED_PERMISSIONS, ...CLUSTER_STATUS_PERMISSIONS].sort(),
    ).toEqual(permissions(clusterRole.rules as Rule[]));
    // The operator is told the same list (APPTOKEN_NAMESPACES, read like --namespace).
    const cm = byKind(namespaced, "ConfigMap").find((m) =>
      m.metadata.name.startsWith("apptoken-operator-watch"),
    );
    expect((cm as any).data.APPTOKEN_NAMESPACES).toBe(EXAMPLE_WATCHED_NAMESPACES.join(","));
    const c = (one(namespaced, "Deployment") as any).spec.template.spec.containers[0];
    expect(c.envFrom).toEqual([{ configMapRef: { name: cm!.metadata.name } }]);
  });
});

/** Resource names as `kubectl api-resources -o name` prints them ("secrets", "leases.coordination.k8s.io") -> namespaced. */
let apiResources: Promise<Map<string, boolean>> | undefined;
function knownResources(): Promise<Map<string, boolean>> {
  apiResources ??= (async () => {
    const known = new Map<string, boolean>();
    for (const namespaced of [true, false]) {
      const r = await kubectl(["api-resources", "-o", "name", `--namespaced=${namespaced}`]);
      if (r.code !== 0) throw new Error(`kubectl api-resources: ${r.stderr}`);
      for (const name of r.stdout.split("\n").filter(Boolean)) known.set(name, namespaced);
    }
    // What the impersonate verb is checked on; RBAC knows them, discovery does not list them.
    known.set("users", false);
    known.set("groups", false);
    return known;
  })();
  return apiResources;
}

/**
 * The apiserver's authorizer asked, with a SubjectAccessReview, what `kubectl auth can-i --as=USER`
 * asks (a ServiceAccount with the groups its token carries): true, false. A review per check
 * instead of a kubectl process per check: this file makes several hundred.
 */
async function can(
  user: string,
  verb: string,
  resource: string,
  where: { ns?: string; all?: boolean; sub?: string },
) {
  const namespaced = (await knownResources()).get(resource);
  // A misspelt resource would answer "no" and make a "cannot" check pass for nothing.
  if (namespaced === undefined) throw new Error(`the server has no resource type ${resource}`);
  if (!namespaced && !where.all) throw new Error(`${resource} is cluster-scoped: check it with all: true`);
  const dot = resource.indexOf(".");
  const sa = /^system:serviceaccount:([^:]+):/.exec(user);
  const review = await authz.createSubjectAccessReview({
    body: {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user,
        groups: sa
          ? ["system:serviceaccounts", `system:serviceaccounts:${sa[1]}`, "system:authenticated"]
          : ["system:authenticated"],
        resourceAttributes: {
          verb,
          group: dot < 0 ? "" : resource.slice(dot + 1),
          resource: dot < 0 ? resource : resource.slice(0, dot),
          ...(where.sub ? { subresource: where.sub } : {}),
          namespace: where.all ? "" : (where.ns ?? "default"),
        },
      },
    },
  });
  return review.status?.allowed === true;
}

type Check = [verb: string, resource: string, where: { ns?: string; all?: boolean; sub?: string }];

/** The same question put by `kubectl auth can-i --as=USER`, which impersonates the user. */
async function kubectlCan(user: string, [verb, resource, where]: Check): Promise<boolean> {
  const args = ["auth", "can-i", verb, resource, `--as=${user}`];
  if (where.sub) args.push(`--subresource=${where.sub}`);
  if (where.all) args.push("--all-namespaces");
  else args.push("-n", where.ns ?? "default");
  const r = await kubectl(args);
  if (r.code !== 0 && r.code !== 1) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  if (/doesn't have a resource type|Warning/i.test(r.stderr))
    throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim() === "yes";
}

/** Each check answered alike by a review and by `kubectl auth can-i --as`, and as expected. */
async function expectKubectlAgrees(checks: [user: string, check: Check, expected: boolean][]): Promise<void> {
  const got = await Promise.all(
    checks.map(async ([user, check]) => [await can(user, ...check), await kubectlCan(user, check)]),
  );
  expect(got).toEqual(checks.map(([, , expected]) => [expected, expected]));
}

async function expectAll(user: string, checks: Check[], expected: boolean): Promise<void> {
  const got = await Promise.all(checks.map(([v, r, w]) => can(user, v, r, w)));
  const wrong = checks
    .map(([v, r, w], i) => ({
      check: `${v} ${r}${w.sub ? "/" + w.sub : ""} ${w.all ? "-A" : "-n " + w.ns}`,
      ok: got[i],
    }))
    .filter((x) => x.ok !== expected)
    .map((x) => x.check);
  expect(wrong, `${user}: ${expected ? "should be allowed" : "should be forbidden"}`).toEqual([]);
}

const ATR = "apptokenrequests.apptoken.io";
const APPREG = "appregistrations.apptoken.io";
const CAPPREG = "clusterappregistrations.apptoken.io";
const each = (verbs: string[], resource: string, where: Check[2]): Check[] =>
  verbs.map((v): Check => [v, resource, where]);

/** What the operator does in a namespace it serves. */
const servedChecks = (ns: string): Check[] => [
  ...each(["get", "list", "watch"], ATR, { ns }),
  ...each(["patch", "update"], ATR, { ns, sub: "status" }),
  ["update", ATR, { ns, sub: "finalizers" }],
  ...each(["get", "list", "watch"], APPREG, { ns }),
  ...each(["patch", "update"], APPREG, { ns, sub: "status" }),
  ...each(["get", "list", "watch", "create", "update"], "secrets", { ns }),
  ["create", "serviceaccounts", { ns, sub: "token" }],
  ...each(["create", "patch"], "events", { ns }),
  ...each(["create", "patch"], "events.events.k8s.io", { ns }),
];

/** Cluster-scoped reads: ClusterAppRegistrations, namespaces' labels. */
const clusterScopedChecks: Check[] = [
  ...each(["get", "list", "watch"], CAPPREG, { all: true }),
  ...each(["get", "list", "watch"], "namespaces", { all: true }),
];
/** ClusterAppRegistrations' status: only the cluster-wide install, which sees every request, writes it. */
const clusterStatusChecks: Check[] = each(["patch", "update"], CAPPREG, { all: true, sub: "status" });

/** In the cluster resource namespace: ClusterAppRegistrations' credentials, read only. */
const clusterResourceChecks = (ns: string): Check[] => [
  ...each(["get", "list", "watch"], "secrets", { ns }),
  ["create", "serviceaccounts", { ns, sub: "token" }],
];

/** What it must never do, in any namespace: no spec of anyone's, no delete of anything. */
const neverChecks = (ns: string, operatorNs: string): Check[] => [
  ...each(["patch", "delete", "deletecollection"], "secrets", { ns }),
  ...each(WRITE, ATR, { ns }),
  ...each(WRITE, APPREG, { ns }),
  ["update", APPREG, { ns, sub: "finalizers" }],
  ...each(WRITE, CAPPREG, { all: true }),
  ...each(WRITE, "namespaces", { all: true }),
  ...each(["get", "create", "delete"], "serviceaccounts", { ns }),
  ["get", "configmaps", { ns }],
  ...each(["get", "create", "delete"], "pods", { ns }),
  ["create", "pods", { ns, sub: "exec" }],
  ["create", "deployments.apps", { ns }],
  ["create", "rolebindings.rbac.authorization.k8s.io", { ns }],
  ...each(["get", "delete"], "events", { ns }),
  ["delete", "events.events.k8s.io", { ns }],
  ["create", "leases.coordination.k8s.io", { ns }],
  ...each(["list", "delete"], "leases.coordination.k8s.io", { ns: operatorNs }),
  ...each(["update", "delete"], "customresourcedefinitions.apiextensions.k8s.io", { all: true }),
  ...each(["create", "bind", "escalate"], "clusterroles.rbac.authorization.k8s.io", { all: true }),
  ["impersonate", "users", { all: true }],
  ["impersonate", "serviceaccounts", { ns }],
  ["get", "nodes", { all: true }],
  ["create", "tokenreviews.authentication.k8s.io", { all: true }],
];

const leaseChecks = (operatorNs: string): Check[] =>
  each(["get", "create", "update"], "leases.coordination.k8s.io", {
    ns: operatorNs,
  });

/** `kubectl auth can-i --list`: the verbs of every rule that applies to `user` in `ns`. */
async function listedVerbs(user: string, ns: string): Promise<string[]> {
  const r = await kubectl(["auth", "can-i", "--list", `--as=${user}`, "-n", ns]);
  expect(r.code, r.stderr).toBe(0);
  const verbs = new Set<string>();
  for (const line of r.stdout.split("\n").slice(1)) {
    const last = /\[([^\]]*)\]\s*$/.exec(line)?.[1];
    for (const v of last?.split(/\s+/) ?? []) if (v) verbs.add(v);
  }
  expect(verbs.size, r.stdout).toBeGreaterThan(0);
  return [...verbs].sort();
}

describe("deploy/'s RBAC, installed for real: sufficient and minimal", () => {
  const sfx = `-${randomBytes(3).toString("hex")}`;
  const clusterNs = `apptoken-system${sfx}`;
  const namespacedNs = `apptoken-system-ns${sfx}`;
  const clusterUser = `system:serviceaccount:${clusterNs}:${OPERATOR_SERVICE_ACCOUNT}`;
  const namespacedUser = `system:serviceaccount:${namespacedNs}:${OPERATOR_SERVICE_ACCOUNT}`;
  // People, impersonated: bound in usersNs to the built-in view, edit, admin; one to admin cluster-wide.
  const viewer = `apptoken-viewer${sfx}`;
  const editor = `apptoken-editor${sfx}`;
  const nsAdmin = `apptoken-ns-admin${sfx}`;
  const everywhereAdmin = `apptoken-admin-everywhere${sfx}`;
  const probe = `probe${sfx}`;
  let watchedA: string;
  let watchedB: string;
  let outside: string;
  let usersNs: string;
  let applied: Manifest[] = [];
  let userBindings: Manifest[] = [];
  let tmp: string;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "deploy-rbac-"));
    watchedA = await createTestNamespace(kc, "deploy-watched-a");
    watchedB = await createTestNamespace(kc, "deploy-watched-b");
    outside = await createTestNamespace(kc, "deploy-outside");
    usersNs = await createTestNamespace(kc, "deploy-users");
    const clusterInstall = relocate(await renderKustomization(kubectlPath(), DEPLOY_DIR), {
      namespaces: { [OPERATOR_NAMESPACE]: clusterNs },
      suffix: sfx,
      dropKinds: ["CustomResourceDefinition"], // the shared test cluster already has it
    });
    const inClusterInstall = new Set(clusterInstall.filter(isClusterScoped).map(id));
    const namespacedInstall = relocate(await renderKustomization(kubectlPath(), NAMESPACED_OVERLAY_DIR), {
      namespaces: { [OPERATOR_NAMESPACE]: namespacedNs, "team-a": watchedA, "team-b": watchedB },
      suffix: sfx,
      dropKinds: ["CustomResourceDefinition"],
    }).filter((m) => !inClusterInstall.has(id(m))); // the users' roles: once is enough
    // Everything but the CRD, for real: the Deployment too (no pods run: no scheduler), so that
    // the apiserver's admission sees it; the RBAC is what the checks below query.
    applied = [...clusterInstall, ...namespacedInstall];
    for (const install of [clusterInstall, namespacedInstall]) {
      const nsObjects = install.filter((m) => m.kind === "Namespace");
      await applyOk(["apply", "-f", "-"], toYaml(nsObjects));
      await applyOk(["apply", "-f", "-"], toYaml(install.filter((m) => m.kind !== "Namespace")));
    }
    const bind = (role: string, user: string, namespace?: string): Manifest => ({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: namespace ? "RoleBinding" : "ClusterRoleBinding",
      metadata: namespace ? { name: user, namespace } : { name: user },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
    });
    userBindings = [
      bind("view", viewer, usersNs),
      bind("edit", editor, usersNs),
      bind("admin", nsAdmin, usersNs),
      bind("admin", everywhereAdmin),
    ];
    await applyOk(["apply", "-f", "-"], toYaml(userBindings));
  });

  afterAll(async () => {
    const clusterScoped = [...applied, ...userBindings].filter(
      (m) => m.kind === "ClusterRole" || m.kind === "ClusterRoleBinding",
    );
    if (clusterScoped.length > 0) {
      await kubectl(["delete", "--ignore-not-found", "-f", "-"], { input: toYaml(clusterScoped) });
    }
    // Only there if a check below failed.
    await kubectl(["delete", "--ignore-not-found", CAPPREG, probe]);
    for (const ns of [clusterNs, namespacedNs, watchedA, watchedB, outside, usersNs]) {
      if (ns) await deleteTestNamespace(kc, ns);
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  it("the relocated install is what deploy/ says, moved (suffix on cluster-scoped names only)", () => {
    expect(rbacOnly(applied).map(id).sort()).toEqual(
      [
        `ClusterRole//apptoken-operator${sfx}`,
        `ClusterRole//apptoken-operator-cluster-scoped${sfx}`,
        ...Object.keys(USER_ROLES).map((r) => `ClusterRole//${r}${sfx}`),
        `ClusterRoleBinding//apptoken-operator${sfx}`,
        `ClusterRoleBinding//apptoken-operator-cluster-scoped${sfx}`,
        `Namespace//${clusterNs}`,
        `Namespace//${namespacedNs}`,
        `Role/${clusterNs}/apptoken-operator-leader-election`,
        `Role/${namespacedNs}/apptoken-operator-leader-election`,
        `Role/${namespacedNs}/apptoken-operator-cluster-resources`,
        `Role/${watchedA}/apptoken-operator`,
        `Role/${watchedB}/apptoken-operator`,
        `RoleBinding/${clusterNs}/apptoken-operator-leader-election`,
        `RoleBinding/${namespacedNs}/apptoken-operator-leader-election`,
        `RoleBinding/${namespacedNs}/apptoken-operator-cluster-resources`,
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
      [
        ...servedChecks(outside),
        ...servedChecks(watchedA),
        ...clusterScopedChecks,
        ...clusterStatusChecks,
        ...leaseChecks(clusterNs),
        ...each(["list", "watch"], "secrets", { all: true }),
        ...each(["list", "watch"], ATR, { all: true }),
        ...each(["list", "watch"], APPREG, { all: true }),
      ],
      true,
    );
  });

  it("cluster-wide install: writes no spec, deletes nothing, touches no pod, RBAC or other Lease", async () => {
    await expectAll(clusterUser, neverChecks(outside, clusterNs), false);
    // Its Lease permissions stop at its namespace.
    await expectAll(clusterUser, [["get", "leases.coordination.k8s.io", { ns: outside }]], false);
    // Not one rule that applies to it anywhere says delete.
    for (const ns of [outside, clusterNs]) {
      expect(
        (await listedVerbs(clusterUser, ns)).filter((v) => /^(delete|deletecollection|\*)$/.test(v)),
      ).toEqual([]);
    }
  });

  it("namespaced install: serves the watched namespaces, reads the cluster resource namespace, and nothing else", async () => {
    await expectAll(
      namespacedUser,
      [
        ...servedChecks(watchedA),
        ...servedChecks(watchedB),
        ...clusterResourceChecks(namespacedNs),
        ...clusterScopedChecks,
        ...leaseChecks(namespacedNs),
      ],
      true,
    );
    await expectAll(
      namespacedUser,
      [
        ...servedChecks(outside),
        ...clusterStatusChecks,
        ...neverChecks(watchedA, namespacedNs),
        ...each(["list", "watch"], "secrets", { all: true }),
        ...each(["list", "watch"], ATR, { all: true }),
        ...each(["list", "watch"], APPREG, { all: true }),
        ["get", "secrets", { ns: clusterNs }],
        // The cluster resource namespace: read its credentials, write nothing there.
        ...each(["create", "update", "patch", "delete"], "secrets", { ns: namespacedNs }),
        ...each(["get", "list"], ATR, { ns: namespacedNs }),
        ...each(["get", "list"], APPREG, { ns: namespacedNs }),
        ["create", "events", { ns: namespacedNs }],
      ],
      false,
    );
    await expectKubectlAgrees([
      [namespacedUser, ["get", "secrets", { ns: namespacedNs }], true],
      [namespacedUser, ["create", "secrets", { ns: namespacedNs }], false],
      [namespacedUser, ["list", CAPPREG, { all: true }], true],
      [namespacedUser, ["patch", CAPPREG, { all: true, sub: "status" }], false],
      [namespacedUser, ["patch", APPREG, { ns: watchedA, sub: "status" }], true],
      [clusterUser, ["update", APPREG, { ns: outside }], false],
      [clusterUser, ["delete", "secrets", { ns: outside }], false],
      [clusterUser, ["list", "namespaces", { all: true }], true],
    ]);
    for (const ns of [watchedA, namespacedNs, outside]) {
      expect(
        (await listedVerbs(namespacedUser, ns)).filter((v) => /^(delete|deletecollection|\*)$/.test(v)),
      ).toEqual([]);
    }
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
    const saCore = saKc.makeApiClient(CoreV1Api);
    expect((await saCore.listNamespacedSecret({ namespace: watchedB })).items).toBeDefined();
    expect((await saCore.listNamespacedSecret({ namespace: namespacedNs })).items).toBeDefined();
    await expect(saCore.listNamespacedSecret({ namespace: outside })).rejects.toThrow(/403/);
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
    for (const [args, input] of [
      [["get", "secrets", "-n", outside]],
      [["create", "-f", "-"], secret(outside)],
      [["create", "-f", "-"], secret(namespacedNs)],
      [["get", "secrets", "-A"]],
      [["get", "apptokenrequests", "-A"]],
      [["get", "appregistrations", "-A"]],
    ] as [string[], string?][]) {
      const r = await asOperator(args, input);
      expect(r.code, `${args.join(" ")} should be refused`).not.toBe(0);
      expect(r.stderr).toMatch(/forbidden/i);
    }
  });

  it("with deploy/'s aggregated roles: view reads, edit writes requests, admin registrations too, and nobody ClusterAppRegistrations", async () => {
    // kube-controller-manager's clusterrole-aggregation controller fills view/edit/admin a moment
    // after the labelled roles appear.
    await eventually(
      async () =>
        (
          await Promise.all([
            can(viewer, "list", APPREG, { ns: usersNs }),
            can(editor, "create", ATR, { ns: usersNs }),
            can(nsAdmin, "create", APPREG, { ns: usersNs }),
            can(everywhereAdmin, "create", APPREG, { ns: outside }),
          ])
        ).every(Boolean)
          ? true
          : undefined,
      "the built-in view, edit and admin to aggregate deploy/'s roles (is kube-controller-manager running clusterrole-aggregation?)",
      60_000,
      250,
    );
    const read = (ns: string): Check[] => [
      ...each(["get", "list", "watch"], ATR, { ns }),
      ...each(["get", "list", "watch"], APPREG, { ns }),
    ];
    const status = (ns: string): Check[] => [
      ...each(["patch", "update"], ATR, { ns, sub: "status" }),
      ...each(["patch", "update"], APPREG, { ns, sub: "status" }),
    ];
    const clusterRegistrations: Check[] = each(["get", "list", "watch", ...WRITE], CAPPREG, { all: true });

    await expectAll(viewer, read(usersNs), true);
    await expectAll(
      viewer,
      [
        ...each(WRITE, ATR, { ns: usersNs }),
        ...each(WRITE, APPREG, { ns: usersNs }),
        ...each(["get", "list", "watch"], "secrets", { ns: usersNs }),
        ...status(usersNs),
        ...clusterRegistrations,
        ...read(outside),
      ],
      false,
    );
    await expectAll(editor, [...read(usersNs), ...each(WRITE, ATR, { ns: usersNs })], true);
    await expectAll(
      editor,
      [...each(WRITE, APPREG, { ns: usersNs }), ...status(usersNs), ...clusterRegistrations],
      false,
    );
    await expectAll(
      nsAdmin,
      [...read(usersNs), ...each(WRITE, ATR, { ns: usersNs }), ...each(WRITE, APPREG, { ns: usersNs })],
      true,
    );
    await expectAll(
      nsAdmin,
      [...status(usersNs), ...clusterRegistrations, ...each(["create"], APPREG, { ns: outside })],
      false,
    );
    // Even admin bound cluster-wide gets nothing on ClusterAppRegistrations: cluster-admin only.
    await expectAll(everywhereAdmin, [...read(outside), ...each(WRITE, APPREG, { ns: outside })], true);
    await expectAll(everywhereAdmin, [...clusterRegistrations, ...status(outside)], false);

    await expectKubectlAgrees([
      [viewer, ["list", APPREG, { ns: usersNs }], true],
      [viewer, ["get", "secrets", { ns: usersNs }], false],
      [editor, ["create", ATR, { ns: usersNs }], true],
      [editor, ["create", APPREG, { ns: usersNs }], false],
      [nsAdmin, ["create", APPREG, { ns: usersNs }], true],
      [everywhereAdmin, ["create", CAPPREG, { all: true }], false],
    ]);

    // And for real, with the apiserver's answer to an impersonated create.
    const as = (user: string, args: string[], input?: string) =>
      kubectl([...args, `--as=${user}`], input === undefined ? {} : { input });
    const registration = JSON.stringify({
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppRegistration",
      metadata: { name: probe, namespace: usersNs },
      spec: {
        clientId: "00000000-0000-0000-0000-000000000000",
        credential: { clientSecret: { secretRef: { name: probe, key: "client-secret" } } },
      },
    });
    const clusterRegistration = JSON.stringify({
      apiVersion: "apptoken.io/v1alpha1",
      kind: "ClusterAppRegistration",
      metadata: { name: probe },
      spec: {
        clientId: "00000000-0000-0000-0000-000000000000",
        credential: { clientSecret: { secretRef: { name: probe, key: "client-secret" } } },
        namespaceSelector: {},
      },
    });
    const request = JSON.stringify({
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { name: probe, namespace: usersNs },
      spec: {
        appRef: { kind: "AppRegistration", name: probe },
        tenantId: "contoso.onmicrosoft.com",
        scope: "https://graph.microsoft.com/.default",
      },
    });
    const refused = async (user: string, manifest: string) => {
      const r = await as(user, ["create", "-f", "-"], manifest);
      expect(r.code, `${user} should be refused: ${r.stdout}`).not.toBe(0);
      expect(r.stderr).toMatch(/forbidden/i);
    };
    const accepted = async (user: string, manifest: string) => {
      const r = await as(user, ["create", "-f", "-"], manifest);
      expect(r.code, `${user}: ${r.stderr}`).toBe(0);
    };
    await refused(editor, registration);
    await refused(editor, clusterRegistration);
    await accepted(editor, request);
    await accepted(nsAdmin, registration);
    await refused(nsAdmin, clusterRegistration);
    await refused(everywhereAdmin, clusterRegistration);
    const seen = await as(viewer, ["get", "apptokenrequests,appregistrations", "-n", usersNs, "-o", "name"]);
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.stdout.split("\n").filter(Boolean).sort()).toEqual([
      `appregistration.apptoken.io/${probe}`,
      `apptokenrequest.apptoken.io/${probe}`,
    ]);
    const secrets = await as(viewer, ["get", "secrets", "-n", usersNs]);
    expect(secrets.code).not.toBe(0);
    expect(secrets.stderr).toMatch(/forbidden/i);
  });
});
