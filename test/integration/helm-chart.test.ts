/**
 * charts/apptoken-operator with the real helm (hack/tools.sh) and the real control plane: it lints
 * clean; it renders exactly deploy/'s objects (cluster-wide and namespaced) for the same settings,
 * compared object by object after removing only Helm's own labels and kustomize's ConfigMap hash;
 * its rendering passes the apiserver's dry run; the heap follows the memory limit; and a real
 * `helm install`, the documented CRD step, `helm upgrade` and `helm uninstall` do what the chart's
 * README says.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1Deployment } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  DEPLOY_DIR,
  EXAMPLE_WATCHED_NAMESPACES,
  NAMESPACED_OVERLAY_DIR,
  OPERATOR_NAMESPACE,
  parseManifests,
  REPO_ROOT,
  renderKustomization,
  type Manifest,
} from "../../hack/dev/deploy-manifests.js";
import {
  binDir,
  createTestNamespace,
  deleteTestNamespace,
  kubeconfigPath,
  kubectl,
  testKubeConfig,
} from "../support/kube.js";

const CHART_DIR = join(REPO_ROOT, "charts/apptoken-operator");
const RULES_SOURCE = join(REPO_ROOT, "deploy/components/monitoring/apptoken.rules.yaml");
/** helm template checks Chart.yaml's kubeVersion against this (the control plane's minor). */
const KUBE_VERSION = "v1.34.0";
/** What deploy/ sets that the chart's defaults leave to Helm: its namespace object and the dev tag. */
const AS_DEPLOY = ["--set", "namespace.create=true", "--set", "image.tag=dev"];
const NAMESPACED = ["--set", `namespaces={${EXAMPLE_WATCHED_NAMESPACES.join(",")}}`];
/** Labels Helm adds to say which release and chart an object came from; deploy/ has none of them. */
const HELM_LABELS = [
  "helm.sh/chart",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/version",
  "app.kubernetes.io/managed-by",
];
/** kustomize's configMapGenerator suffix and the chart's: both hash the content, differently. */
const WATCH_CONFIGMAP = /^(apptoken-operator-watch)-[a-z0-9]{10}$/;

const kc = testKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

let helmPath = "";
let helmHome = "";

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The pinned helm, with its own config/cache dirs and the test control plane's kubeconfig. */
function helm(args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      helmPath,
      args,
      {
        timeout: 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: helmHome,
          HELM_CACHE_HOME: join(helmHome, "cache"),
          HELM_CONFIG_HOME: join(helmHome, "config"),
          HELM_DATA_HOME: join(helmHome, "data"),
          KUBECONFIG: kubeconfigPath(),
        },
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

async function helmOk(args: string[]): Promise<string> {
  const r = await helm(args);
  expect(r.code, `helm ${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** `helm template` as deploy/'s namespace would install it, CRDs included, parsed. */
async function template(args: string[] = []): Promise<Manifest[]> {
  const out = await helmOk([
    "template",
    "apptoken-operator",
    CHART_DIR,
    "--namespace",
    OPERATOR_NAMESPACE,
    "--kube-version",
    KUBE_VERSION,
    "--include-crds",
    ...args,
  ]);
  return parseManifests(out);
}

/** The fleet tier on, its key and Redis password from Secrets. */
const SHARED_CACHE = [
  "--set",
  "sharedCache.url=rediss://redis.fleet.example:6380",
  "--set",
  "sharedCache.keySecret.name=apptoken-fleet-key",
  "--set",
  "sharedCache.passwordSecret.name=apptoken-redis",
];

async function templateFails(args: string[]): Promise<string> {
  const r = await helm(["template", "x", CHART_DIR, "--kube-version", KUBE_VERSION, ...args]);
  expect(r.code, `helm template ${args.join(" ")} should fail`).not.toBe(0);
  return r.stderr;
}

const id = (m: Manifest) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`;
const one = (ms: Manifest[], kind: string): Manifest => {
  const found = ms.filter((m) => m.kind === kind);
  expect(found.map(id), kind).toHaveLength(1);
  return found[0]!;
};
const operatorContainer = (ms: Manifest[]) => (one(ms, "Deployment") as any).spec.template.spec.containers[0];
const envValue = (ms: Manifest[], name: string): string | undefined =>
  (operatorContainer(ms).env as { name: string; value?: string }[]).find((e) => e.name === name)?.value;

/**
 * Only what legitimately differs between a Helm release and deploy/: Helm's release labels, and the
 * hash suffix of the watched-namespaces ConfigMap (and the Deployment's reference to it).
 */
function normalise(ms: Manifest[]): Map<string, Manifest> {
  const byId = new Map<string, Manifest>();
  for (const orig of ms) {
    const m = structuredClone(orig);
    const labels = m.metadata.labels as Record<string, string> | undefined;
    if (labels) {
      for (const l of HELM_LABELS) delete labels[l];
      if (Object.keys(labels).length === 0) delete m.metadata.labels;
    }
    if (m.kind === "ConfigMap") m.metadata.name = m.metadata.name.replace(WATCH_CONFIGMAP, "$1-HASH");
    if (m.kind === "Deployment") {
      for (const c of (m as any).spec.template.spec.containers)
        for (const from of c.envFrom ?? [])
          if (from.configMapRef)
            from.configMapRef.name = from.configMapRef.name.replace(WATCH_CONFIGMAP, "$1-HASH");
    }
    expect(byId.has(id(m)), `${id(m)} rendered twice`).toBe(false);
    byId.set(id(m), m);
  }
  return byId;
}

/** The objects whose normalised form differs (or that only one side has), by id. */
function differences(chart: Manifest[], deploy: Manifest[]): string[] {
  const a = normalise(chart);
  const b = normalise(deploy);
  const ids = [...new Set([...a.keys(), ...b.keys()])].sort();
  return ids.filter((k) => JSON.stringify(sortKeys(a.get(k))) !== JSON.stringify(sortKeys(b.get(k))));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** Asserts equality object by object, so that a failure names the object and shows its diff. */
function expectSameObjects(chart: Manifest[], deploy: Manifest[]): void {
  const a = normalise(chart);
  const b = normalise(deploy);
  expect([...a.keys()].sort(), "the same objects").toEqual([...b.keys()].sort());
  for (const [k, m] of b) expect(a.get(k), k).toEqual(m);
}

async function ensureNamespace(name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name } } }).catch((e: unknown) => {
    if ((e as { code?: number }).code !== 409) throw e;
  });
}

/** Every leaf key path of values.yaml ("image.repository"); maps and lists are leaves when empty. */
function valueKeys(v: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(v).flatMap(([k, child]) =>
    child && typeof child === "object" && !Array.isArray(child) && Object.keys(child).length > 0
      ? valueKeys(child as Record<string, unknown>, `${prefix}${k}.`)
      : [`${prefix}${k}`],
  );
}

beforeAll(() => {
  // Never skipped: a missing helm fails here, with hack/tools.sh's reason on stderr.
  helmPath = execFileSync("bash", [join(REPO_ROOT, "hack/tools.sh"), "helm"], { encoding: "utf8" }).trim();
  helmHome = mkdtempSync(join(tmpdir(), "helm-chart-test-"));
}, 120_000);

afterAll(() => {
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

describe("the chart's files", () => {
  it("carries crds/ and the alert rules byte for byte (make sync-chart)", () => {
    const crds = readdirSync(join(REPO_ROOT, "crds")).filter((f) => f.endsWith(".yaml"));
    expect(readdirSync(join(CHART_DIR, "crds")).sort()).toEqual(crds.sort());
    const stale = crds.filter(
      (f) =>
        readFileSync(join(REPO_ROOT, "crds", f), "utf8") !== readFileSync(join(CHART_DIR, "crds", f), "utf8"),
    );
    expect(stale, "charts/apptoken-operator/crds/ is out of date: make sync-chart").toEqual([]);
    expect(
      readFileSync(join(CHART_DIR, "files/apptoken.rules.yaml"), "utf8"),
      "charts/apptoken-operator/files/apptoken.rules.yaml is out of date: make sync-chart",
    ).toBe(readFileSync(RULES_SOURCE, "utf8"));
  });

  it("Chart.yaml: apiVersion v2, appVersion is package.json's version, a kubeVersion, Apache-2.0", () => {
    const chart = parse(readFileSync(join(CHART_DIR, "Chart.yaml"), "utf8"));
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
    expect(chart.apiVersion).toBe("v2");
    expect(chart.appVersion).toBe(pkg.version);
    expect(chart.kubeVersion).toMatch(/^>=1\.\d+/);
    expect(chart.annotations["artifacthub.io/license"]).toBe(pkg.license);
  });

  it("the README documents every key of values.yaml, and no key values.yaml lacks", () => {
    const keys = valueKeys(parse(readFileSync(join(CHART_DIR, "values.yaml"), "utf8")));
    const readme = readFileSync(join(CHART_DIR, "README.md"), "utf8");
    const documented = [...readme.matchAll(/^\| `([A-Za-z0-9_.]+)` \|/gm)].map((m) => m[1]!);
    // A key whose children are listed one by one, or a map documented as a whole, both count.
    const covered = (k: string) => documented.some((d) => k === d || k.startsWith(`${d}.`));
    expect(
      keys.filter((k) => !covered(k)),
      "values.yaml keys missing from the README's table",
    ).toEqual([]);
    expect(
      documented.filter((d) => !keys.some((k) => k === d || k.startsWith(`${d}.`))),
      "README keys that values.yaml does not have",
    ).toEqual([]);
  });
});

describe("helm lint and helm template", () => {
  it("helm lint --strict passes for the default, namespaced and monitoring values", async () => {
    for (const args of [
      [],
      NAMESPACED,
      ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"],
    ]) {
      const out = await helmOk(["lint", "--strict", CHART_DIR, "--kube-version", KUBE_VERSION, ...args]);
      expect(out, args.join(" ")).toContain("1 chart(s) linted, 0 chart(s) failed");
      expect(out).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  });

  it("renders the very objects of `kubectl kustomize deploy` for the same settings", async () => {
    const deploy = await renderKustomization(join(binDir(), "kubectl"), DEPLOY_DIR);
    expectSameObjects(await template(AS_DEPLOY), deploy);
  });

  it("renders the very objects of deploy/overlays/namespaced for its namespaces", async () => {
    const deploy = await renderKustomization(join(binDir(), "kubectl"), NAMESPACED_OVERLAY_DIR);
    expectSameObjects(await template([...AS_DEPLOY, ...NAMESPACED]), deploy);
  });

  it("the comparison sees a changed argument, rule or object", async () => {
    const deploy = await renderKustomization(join(binDir(), "kubectl"), DEPLOY_DIR);
    expect(differences(await template([...AS_DEPLOY, "--set", "logLevel=debug"]), deploy)).toEqual([
      "Deployment/apptoken-system/apptoken-operator",
    ]);
    expect(differences(await template([...AS_DEPLOY, "--set", "userRoles.enabled=false"]), deploy)).toEqual([
      "ClusterRole//apptoken-operator-admin",
      "ClusterRole//apptoken-operator-edit",
      "ClusterRole//apptoken-operator-view",
    ]);
    const tampered = deploy.map((m) => {
      if (m.kind !== "ClusterRole" || m.metadata.name !== "apptoken-operator") return m;
      const c = structuredClone(m) as any;
      c.rules[0].verbs.push("delete");
      return c as Manifest;
    });
    expect(differences(await template(AS_DEPLOY), tampered)).toEqual(["ClusterRole//apptoken-operator"]);
  });

  it("names the watched-namespaces ConfigMap after its content, so a new list rolls the pods", async () => {
    const names = async (list: string) =>
      one(await template(["--set", `namespaces={${list}}`]), "ConfigMap").metadata.name;
    const ab = await names("team-a,team-b");
    expect(ab).toMatch(WATCH_CONFIGMAP);
    expect(await names("team-a,team-b")).toBe(ab);
    expect(await names("team-a,team-c")).not.toBe(ab);
  });

  it("passes the apiserver's dry run, cluster-wide, namespaced and with the fleet tier", async () => {
    await ensureNamespace(OPERATOR_NAMESPACE); // a dry run cannot create the namespace it fills
    for (const ns of EXAMPLE_WATCHED_NAMESPACES) await ensureNamespace(ns);
    for (const args of [AS_DEPLOY, [...AS_DEPLOY, ...NAMESPACED], [...AS_DEPLOY, ...SHARED_CACHE]]) {
      const out = await helmOk([
        "template",
        "apptoken-operator",
        CHART_DIR,
        "-n",
        OPERATOR_NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "--include-crds",
        ...args,
      ]);
      const r = await kubectl(["apply", "--dry-run=server", "-f", "-"], { input: out });
      expect(r.stderr.replace(/^Warning: .*$/gm, "").trim(), args.join(" ")).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("deployment.apps/apptoken-operator");
    }
  });
});

describe("values", () => {
  it("holds V8's heap to three quarters of the memory limit, or to heapMaxMiB within it", async () => {
    expect(envValue(await template(), "NODE_OPTIONS")).toBe("--max-old-space-size=384");
    expect(envValue(await template(["--set", "resources.limits.memory=1Gi"]), "NODE_OPTIONS")).toBe(
      "--max-old-space-size=768",
    );
    expect(envValue(await template(["--set", "resources.limits.memory=1G"]), "NODE_OPTIONS")).toBe(
      "--max-old-space-size=715",
    );
    expect(
      envValue(
        await template([
          "--set",
          "resources.limits.memory=1Gi",
          "--set",
          "heapMaxMiB=600",
          "--set",
          "nodeOptions=--enable-source-maps",
        ]),
        "NODE_OPTIONS",
      ),
    ).toBe("--max-old-space-size=600 --enable-source-maps");
    expect(
      await templateFails(["--set", "resources.limits.memory=1Gi", "--set", "heapMaxMiB=800"]),
    ).toContain("heapMaxMiB: 800 exceeds three quarters of resources.limits.memory 1Gi (768 MiB)");
    expect(
      await templateFails(["--set", "extraEnv[0].name=NODE_OPTIONS", "--set", "extraEnv[0].value=x"]),
    ).toContain("extraEnv: NODE_OPTIONS is set by the chart");
    expect(await templateFails(["--set", "resources.limits.memory=lots"])).toContain(
      '"lots" is not a memory quantity',
    );
    // No limit: nothing to hold the heap to unless asked.
    expect(envValue(await template(["--set", "resources.limits=null"]), "NODE_OPTIONS")).toBeUndefined();
  });

  it("passes the flags only when set, so that an image without the newer ones still starts", async () => {
    const defaults = operatorContainer(await template()).args as string[];
    for (const flag of [
      "--force-refresh-min-interval",
      "--credential-expiry-warning",
      "--per-request-metrics",
      "--log-level",
      "--allowed-authority-hosts",
      "--allowed-token-audiences",
      "--cluster-resource-namespace",
      "--leader-election-namespace",
      "--leader-election-id",
    ])
      expect(
        defaults.filter((a) => a.startsWith(flag)),
        flag,
      ).toEqual([]);
    const set = await template([
      "--set",
      "forceRefreshMinInterval=45s",
      "--set",
      "credentialExpiryWarning=720h",
      "--set",
      "perRequestMetrics=true",
      "--set",
      "logLevel=debug",
      "--set",
      "allowedAuthorityHosts={login.microsoftonline.com,sts.example.internal:8443}",
      "--set",
      "allowedTokenAudiences={api://AzureADTokenExchange}",
      "--set",
      "clusterResourceNamespace=credentials",
      "--set",
      "leaderElection.namespace=leases",
      "--set",
      "leaderElection.id=apptoken-a",
      "--set",
      "extraArgs={--kube-api-qps=200}",
      "--set",
      "extraEnv[0].name=TZ",
      "--set",
      "extraEnv[0].value=UTC",
    ]);
    const c = operatorContainer(set);
    expect(c.args).toEqual([
      "--leader-elect",
      "--leader-election-namespace=leases",
      "--leader-election-id=apptoken-a",
      "--metrics-bind-address=:8080",
      "--health-probe-bind-address=:8081",
      "--log-format=json",
      "--log-level=debug",
      "--cluster-resource-namespace=credentials",
      "--allowed-authority-hosts=login.microsoftonline.com,sts.example.internal:8443",
      "--allowed-token-audiences=api://AzureADTokenExchange",
      "--force-refresh-min-interval=45s",
      "--credential-expiry-warning=720h",
      "--per-request-metrics",
      "--kube-api-qps=200",
    ]);
    expect(c.env).toContainEqual({ name: "TZ", value: "UTC" });
    // The Lease's Role follows the Lease.
    const leaseRole = set.find(
      (m) => m.kind === "Role" && m.metadata.name === "apptoken-operator-leader-election",
    );
    expect(leaseRole?.metadata.namespace).toBe("leases");
    // 0 turns coalescing off: a value, not "unset".
    const off = operatorContainer(await template(["--set", "forceRefreshMinInterval=0"])).args as string[];
    expect(off).toContain("--force-refresh-min-interval=0");
  });

  it("sharedCache: the fleet tier's URL as a flag, its key and password as mounted Secret files", async () => {
    const off = await template();
    expect((operatorContainer(off).args as string[]).filter((a) => a.startsWith("--shared-cache"))).toEqual(
      [],
    );
    const on = await template(SHARED_CACHE);
    const c = operatorContainer(on);
    expect((c.args as string[]).filter((a) => a.startsWith("--shared-cache"))).toEqual([
      "--shared-cache-url=rediss://redis.fleet.example:6380",
      "--shared-cache-key-file=/etc/apptoken/shared-cache-key/key",
      "--shared-cache-password-file=/etc/apptoken/shared-cache-password/password",
    ]);
    expect(c.volumeMounts).toContainEqual({
      name: "shared-cache-key",
      mountPath: "/etc/apptoken/shared-cache-key",
      readOnly: true,
    });
    const volumes = (one(on, "Deployment") as any).spec.template.spec.volumes as unknown[];
    expect(volumes).toContainEqual({
      name: "shared-cache-key",
      secret: { secretName: "apptoken-fleet-key", defaultMode: 0o444 },
    });
    expect(volumes).toContainEqual({
      name: "shared-cache-password",
      secret: {
        secretName: "apptoken-redis",
        defaultMode: 0o444,
        items: [{ key: "password", path: "password" }],
      },
    });
    expect(await templateFails(["--set", "sharedCache.url=redis://redis:6379"])).toContain(
      "sharedCache.keySecret.name",
    );
    expect(
      await templateFails([
        "--set",
        "sharedCache.url=redis://:hunter2@redis:6379",
        "--set",
        "sharedCache.keySecret.name=k",
      ]),
    ).toContain("holds a password");
    expect(
      await templateFails([
        "--set",
        "sharedCache.url=http://redis:6379",
        "--set",
        "sharedCache.keySecret.name=k",
      ]),
    ).toContain("redis:// or rediss://");
  });

  it("a namespaced install with a cluster resource namespace grants its read-only Role there", async () => {
    const ms = await template([...NAMESPACED, "--set", "clusterResourceNamespace=credentials"]);
    const role = ms.find(
      (m) => m.kind === "Role" && m.metadata.name === "apptoken-operator-cluster-resources",
    );
    expect(role?.metadata.namespace).toBe("credentials");
    expect(operatorContainer(ms).args).toContain("--cluster-resource-namespace=credentials");
  });

  it("image: the appVersion by default, a tag, or a digest; pull secrets; scheduling", async () => {
    const chart = parse(readFileSync(join(CHART_DIR, "Chart.yaml"), "utf8"));
    expect(operatorContainer(await template()).image).toBe(
      `ghcr.io/apptoken/apptoken-operator:${chart.appVersion}`,
    );
    const digest = `sha256:${"a".repeat(64)}`;
    const ms = await template([
      "--set",
      `image.digest=${digest}`,
      "--set",
      "image.pullSecrets={regcred}",
      "--set",
      "priorityClassName=system-cluster-critical",
      "--set",
      "nodeSelector.kubernetes\\.io/os=linux",
      "--set",
      "tolerations[0].key=dedicated",
      "--set",
      "tolerations[0].operator=Exists",
    ]);
    const pod = (one(ms, "Deployment") as any).spec.template.spec;
    expect(pod.containers[0].image).toBe(`ghcr.io/apptoken/apptoken-operator@${digest}`);
    expect(pod.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod.priorityClassName).toBe("system-cluster-critical");
    expect(pod.nodeSelector).toEqual({ "kubernetes.io/os": "linux" });
    expect(pod.tolerations).toEqual([{ key: "dedicated", operator: "Exists" }]);
    expect(await templateFails(["--set", "leaderElection.enabled=false"])).toContain(
      "without leaderElection.enabled would all write",
    );
    const single = await template(["--set", "leaderElection.enabled=false", "--set", "replicas=1"]);
    expect(operatorContainer(single).args).not.toContain("--leader-elect");
    expect(
      single.filter((m) => m.kind === "PodDisruptionBudget" || m.metadata.name.endsWith("-leader-election")),
    ).toEqual([]);
  });

  it("serviceMonitor scrapes the metrics Service; prometheusRule carries files/apptoken.rules.yaml", async () => {
    const ms = await template([
      "--set",
      "serviceMonitor.enabled=true",
      "--set",
      "serviceMonitor.labels.release=prom",
      "--set",
      "serviceMonitor.interval=30s",
      "--set",
      "prometheusRule.enabled=true",
      "--set",
      "prometheusRule.labels.release=prom",
    ]);
    const sm = one(ms, "ServiceMonitor") as any;
    const svc = one(ms, "Service") as any;
    expect(sm.metadata.labels.release).toBe("prom");
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: [OPERATOR_NAMESPACE] });
    expect(sm.spec.endpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "30s" }]);
    const rule = one(ms, "PrometheusRule") as any;
    expect(rule.metadata.labels.release).toBe("prom");
    expect(rule.spec.groups).toEqual(parse(readFileSync(RULES_SOURCE, "utf8")).groups);
    expect(rule.spec.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert))).toContain(
      "AppTokenOperatorDown",
    );
    const plain = await template();
    expect(plain.filter((m) => m.kind === "ServiceMonitor" || m.kind === "PrometheusRule")).toEqual([]);
    expect(
      await templateFails(["--set", "serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false"]),
    ).toContain("serviceMonitor.enabled needs metrics.service.enabled");
  });
});

describe("helm install, upgrade and uninstall on the real control plane", () => {
  const suffix = randomBytes(3).toString("hex");
  // Cluster-scoped names get a suffix so that this release never meets another file's objects.
  const fullname = `apptoken-operator-helm-${suffix}`;
  const release = `apptoken-${suffix}`;
  let ns = "";

  beforeAll(async () => {
    ns = await createTestNamespace(kc, "helm-chart");
  });

  afterAll(async () => {
    if (ns) {
      await helm(["uninstall", release, "-n", ns]);
      await deleteTestNamespace(kc, ns);
    }
  });

  const readDeployment = (): Promise<V1Deployment> =>
    apps.readNamespacedDeployment({ name: fullname, namespace: ns });

  it("installs, takes the documented CRD step, upgrades one value, and uninstalls leaving the CRDs", async () => {
    const base = ["-n", ns, "--set", `fullnameOverride=${fullname}`];
    // Why namespace.create is off for helm install: Helm will not take over a namespace it did not create.
    const adopt = await helm(["install", release, CHART_DIR, ...base, "--set", "namespace.create=true"]);
    expect(adopt.code).not.toBe(0);
    expect(adopt.stderr).toContain("exists and cannot be imported into the current release");
    const installed = await helmOk(["install", release, CHART_DIR, ...base]);
    expect(installed).toContain("STATUS: deployed");
    expect(installed).toContain(`It watches every namespace (ClusterRole ${fullname})`);
    const before = await readDeployment();
    expect(before.spec?.replicas).toBe(2);
    expect(before.spec?.template.spec?.containers[0]?.args).not.toContain("--log-level=debug");
    expect(before.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("Helm");
    const binding = await rbac.readClusterRoleBinding({ name: fullname });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: fullname, namespace: ns }]);
    await rbac.readNamespacedRole({ name: `${fullname}-leader-election`, namespace: ns });

    // The README's upgrade, as written there (and in NOTES.txt): CRDs first, since Helm never
    // upgrades crds/, then the release.
    const step = /^kubectl (apply --server-side .*)$/m.exec(
      readFileSync(join(CHART_DIR, "README.md"), "utf8"),
    );
    expect(step, "the chart README's CRD upgrade command").not.toBeNull();
    expect(readFileSync(join(CHART_DIR, "templates/NOTES.txt"), "utf8")).toContain(step![0]);
    const crds = await kubectl(
      step![1]!.split(" ").map((a) => (a.startsWith("charts/") ? join(REPO_ROOT, a) : a)),
    );
    expect(crds.code, crds.stderr).toBe(0);
    expect(crds.stdout).toContain(
      "customresourcedefinition.apiextensions.k8s.io/apptokenrequests.apptoken.io",
    );
    const upgraded = await helmOk(["upgrade", release, CHART_DIR, ...base, "--set", "logLevel=debug"]);
    expect(upgraded).toContain("REVISION: 2");
    const after = await readDeployment();
    expect(after.spec?.template.spec?.containers[0]?.args).toContain("--log-level=debug");
    expect(after.metadata?.generation).toBeGreaterThan(before.metadata?.generation ?? 0);
    expect(after.metadata?.uid).toBe(before.metadata?.uid);

    await helmOk(["uninstall", release, "-n", ns]);
    await expect(readDeployment()).rejects.toMatchObject({ code: 404 });
    await expect(rbac.readClusterRoleBinding({ name: fullname })).rejects.toMatchObject({ code: 404 });
    // CRDs outlive the release: deleting one would delete every request and its token Secret.
    const left = await kubectl(["get", "crd", "apptokenrequests.apptoken.io", "-o", "name"]);
    expect(left.stdout.trim()).toBe(
      "customresourcedefinition.apiextensions.k8s.io/apptokenrequests.apptoken.io",
    );
  });
});
