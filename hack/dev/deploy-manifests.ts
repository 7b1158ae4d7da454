/**
 * deploy/ as objects, for tests and scripts that install it into a shared cluster (the integration
 * control plane) without colliding with anything else: render a kustomization with the pinned
 * kubectl, move it to other namespaces and give its cluster-scoped objects a suffix, and act as
 * the operator's ServiceAccount the way a pod would (a TokenRequest token file + the cluster CA).
 *
 * Used by test/integration/deploy-kustomize.test.ts (RBAC minimality) and meant for the RBAC-proof
 * test that runs the operator with only deploy/'s permissions.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DEPLOY_DIR = join(REPO_ROOT, "deploy");
export const NAMESPACED_OVERLAY_DIR = join(DEPLOY_DIR, "overlays/namespaced");

/** The namespace, ServiceAccount and example watched namespaces that deploy/ names. */
export const OPERATOR_NAMESPACE = "apptoken-system";
export const OPERATOR_SERVICE_ACCOUNT = "apptoken-operator";
export const EXAMPLE_WATCHED_NAMESPACES = ["team-a", "team-b"] as const;

/** A Kubernetes object as plain JSON. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PriorityClass",
  "ValidatingWebhookConfiguration",
  "MutatingWebhookConfiguration",
]);

export function isClusterScoped(m: Manifest): boolean {
  return CLUSTER_SCOPED.has(m.kind);
}

/** `kubectl kustomize DIR` with the given kubectl, parsed. */
export function renderKustomization(kubectlPath: string, dir: string): Promise<Manifest[]> {
  return new Promise((resolveDocs, reject) => {
    execFile(kubectlPath, ["kustomize", dir], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`kubectl kustomize ${dir} failed: ${stderr || err.message}`));
        return;
      }
      try {
        resolveDocs(parseManifests(stdout));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`bad YAML: ${d.errors[0]!.message}`);
      return d.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null && typeof m === "object");
}

export function toYaml(manifests: Manifest[]): string {
  return manifests.map((m) => stringify(m, { lineWidth: 0 })).join("---\n");
}

export interface RelocateOptions {
  /** Old namespace name -> new one, e.g. {"apptoken-system": "apptoken-system-3f2a1c"}. */
  namespaces: Record<string, string>;
  /** Appended to the names of cluster-scoped objects (and to roleRefs naming a ClusterRole). */
  suffix: string;
  /** Leave these kinds out, e.g. CustomResourceDefinition (the test cluster already has it). */
  dropKinds?: string[];
}

/**
 * Moves a rendered install to other namespaces: object namespaces, Namespace objects, RoleBinding
 * and ClusterRoleBinding subjects, and the APPTOKEN_NAMESPACES list of the namespaced overlay; and
 * suffixes cluster-scoped names so that two installs can live in one cluster. Returns copies.
 */
export function relocate(manifests: Manifest[], o: RelocateOptions): Manifest[] {
  const ns = (n: string): string => o.namespaces[n] ?? n;
  const drop = new Set(o.dropKinds ?? []);
  return manifests
    .filter((m) => !drop.has(m.kind))
    .map((orig) => {
      const m = structuredClone(orig);
      if (m.kind === "Namespace") m.metadata.name = ns(m.metadata.name);
      else if (isClusterScoped(m)) m.metadata.name = `${m.metadata.name}${o.suffix}`;
      if (m.metadata.namespace !== undefined) m.metadata.namespace = ns(m.metadata.namespace);
      if (m.kind === "RoleBinding" || m.kind === "ClusterRoleBinding") {
        const roleRef = m.roleRef as { kind: string; name: string };
        if (roleRef.kind === "ClusterRole") roleRef.name = `${roleRef.name}${o.suffix}`;
        for (const s of (m.subjects as { kind: string; namespace?: string }[] | undefined) ?? []) {
          if (s.namespace !== undefined) s.namespace = ns(s.namespace);
        }
      }
      if (m.kind === "ConfigMap") {
        const data = m.data as Record<string, string> | undefined;
        if (data?.APPTOKEN_NAMESPACES !== undefined) {
          data.APPTOKEN_NAMESPACES = data.APPTOKEN_NAMESPACES.split(",")
            .map((n) => ns(n.trim()))
            .join(",");
        }
      }
      return m;
    });
}

/** Objects whose apply needs nothing but RBAC-free admission: the identity and its permissions. */
export function rbacOnly(manifests: Manifest[]): Manifest[] {
  const kinds = new Set([
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
  ]);
  return manifests.filter((m) => kinds.has(m.kind));
}

export interface ServiceAccountCredentials {
  /** A kubeconfig with only the ServiceAccount's token (token-file) and the cluster CA: no admin key. */
  kubeconfigPath: string;
  tokenPath: string;
  caPath: string;
  /** system:serviceaccount:NS:NAME */
  username: string;
}

/**
 * Mints a token for a ServiceAccount with the TokenRequest API (what the kubelet does for a pod's
 * projected volume) and writes an in-cluster-style kubeconfig beside it in `dir`: server + CA file
 * + token file. The operator started with `--kubeconfig` on it has exactly the account's rights.
 */
export async function serviceAccountKubeconfig(
  admin: KubeConfig,
  namespace: string,
  serviceAccount: string,
  dir: string,
  expirationSeconds = 3600,
): Promise<ServiceAccountCredentials> {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error("the admin kubeconfig has no current cluster");
  const caPem =
    cluster.caData !== undefined
      ? Buffer.from(cluster.caData, "base64").toString("utf8")
      : cluster.caFile !== undefined
        ? await readFile(cluster.caFile, "utf8")
        : undefined;
  if (caPem === undefined) throw new Error("the admin kubeconfig names no cluster CA");
  const res = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = res.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
  await mkdir(dir, { recursive: true });
  const tokenPath = join(dir, "token");
  const caPath = join(dir, "ca.crt");
  const kubeconfigPath = join(dir, "kubeconfig");
  await writeFile(tokenPath, token, { mode: 0o600 });
  await writeFile(caPath, caPem);
  await writeFile(
    kubeconfigPath,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "cluster", cluster: { server: cluster.server, "certificate-authority": caPath } }],
      // kubectl reads tokenFile, @kubernetes/client-node reads token-file: write both.
      users: [{ name: serviceAccount, user: { tokenFile: tokenPath, "token-file": tokenPath } }],
      contexts: [{ name: "sa", context: { cluster: "cluster", user: serviceAccount, namespace } }],
      "current-context": "sa",
    }),
    { mode: 0o600 },
  );
  return {
    kubeconfigPath,
    tokenPath,
    caPath,
    username: `system:serviceaccount:${namespace}:${serviceAccount}`,
  };
}
