/**
 * One chaos scenario: a namespace on a real control plane (the shared one, or a test's own when it
 * restarts the apiserver), the local token service with any number of tenants, the credential
 * Secrets, one AppRegistration per credential kind (app-clientsecret, app-certificate, app-pfx,
 * app-workloadidentity; tenant-agnostic, so that a request names its tenant), and real operator
 * processes that run as deploy/'s least-privilege ServiceAccount, each behind its own recording API
 * proxy, allowed to send credentials to the local token service and no other host. Everything the scenario produces is kept so that it can be
 * checked afterwards:
 *
 * - every version of every Secret in the namespace (a watch of its own, re-established across
 *   apiserver restarts): lost Secrets, tokens that expired while in a Secret, and every access
 *   token ever written (the strings the leak scan looks for);
 * - every request each replica made (the proxies): who wrote what, and when;
 * - everything each replica printed, every Event, every request's and registration's spec and
 *   status and the /metrics text: the leak scan greps all of it for the client secret, the PFX password, the private key, the access
 *   tokens, the replicas' own API tokens and anything shaped like a JWT.
 */
import { eventually } from "../../support/kube.js";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { stringify } from "yaml";
import {
  NAMESPACED_OVERLAY_DIR,
  relocate,
  renderKustomization,
  serviceAccountKubeconfig,
  toYaml,
  type Manifest,
} from "../../../hack/dev/deploy-manifests.js";
import type { IssuedCertificate } from "../../../hack/token-service/pki.js";
import { createClientCertificate, toPfx } from "../../../hack/token-service/pki.js";
import type { TokenService, TokenServiceOptions } from "../../../hack/token-service/server.js";
import { startTokenService } from "../../../hack/token-service/server.js";
import type { AppRegistrationInput } from "../../../hack/token-service/config.js";
import type { AppRegistrationStatus, AppTokenRequestStatus } from "../../../src/api/types.js";
import { createKubeTransport, isExpired, type KubeTransport } from "../../../src/kube/transport.js";
import type { KubeList, RawObject } from "../../../src/kube/types.js";
import { startOperator, type OperatorProcess, type StartOperatorOptions } from "../../support/operator.js";
import { startApiProxy, type ApiProxy } from "./api-proxy.js";

export const TENANT = "7d0c9a1e-5b2f-4c3d-8e9f-0a1b2c3d4e5f";
export const RESOURCE = "https://graph.microsoft.com";
export const SCOPE = `${RESOURCE}/.default`;
export const SECRET_APP = "11111111-aaaa-4bbb-8ccc-000000000001";
export const CERT_APP = "22222222-aaaa-4bbb-8ccc-000000000002";
export const WI_APP = "33333333-aaaa-4bbb-8ccc-000000000003";
export const CLIENT_SECRET = "Chaos~s3cret.Value-7f3a9c2e41d8b6";
export const PFX_PASSWORD = "chaos-pfx-pa55-91c2e7";
export const SA_ISSUER = "https://kubernetes.default.svc.cluster.local";
export const WORKLOAD_SA = "payments-app";
export const OPERATOR_SA = "apptoken-operator";

/** The i-th tenant's GUID (i = 0 is TENANT). */
export function tenantId(i: number): string {
  return i === 0 ? TENANT : `7d0c9a1e-5b2f-4c3d-8e9f-${i.toString(16).padStart(12, "0")}`;
}

/** Where the control plane is: the shared one (globalSetup) or a test's own. */
export interface ControlPlaneRef {
  kubeconfigPath: string;
  binDir: string;
}

export async function sharedControlPlane(): Promise<ControlPlaneRef> {
  const { inject } = await import("vitest");
  return { kubeconfigPath: inject("kubeconfigPath"), binDir: inject("binDir") };
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function kubectlAt(
  cp: ControlPlaneRef,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      join(cp.binDir, "kubectl"),
      ["--kubeconfig", cp.kubeconfigPath, ...args],
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ stdout, stderr, code: err ? (typeof err.code === "number" ? err.code : 1) : 0 });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Polls `probe` until it returns something other than undefined; fails with `what` at the deadline. */
export const until = eventually;

// ---- histories ---------------------------------------------------------------------------------

/**
 * Every event of one collection, from a list + watch that resumes from the last resourceVersion
 * across broken connections and apiserver restarts (and re-lists after 410).
 */
export class WatchHistory<T> {
  readonly items: T[] = [];
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;
  private synced = false;
  reconnects = 0;

  constructor(
    private readonly transport: KubeTransport,
    private readonly path: string,
    private readonly map: (type: "ADDED" | "MODIFIED" | "DELETED", obj: RawObject, at: number) => T,
  ) {}

  async start(): Promise<void> {
    this.loop = this.run();
    await until(() => (this.synced ? true : undefined), `the watch of ${this.path} to start`, 30_000);
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    let rv: string | undefined;
    while (!this.stop.signal.aborted) {
      try {
        if (rv === undefined) {
          const list = await this.transport.request<KubeList>({ path: this.path, signal: this.stop.signal });
          for (const item of list.items ?? []) this.items.push(this.map("ADDED", item, Date.now()));
          rv = list.metadata?.resourceVersion;
          this.synced = true;
        }
        await this.transport.watch(
          {
            path: this.path,
            query: { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 120 },
            signal: this.stop.signal,
            idleTimeoutMs: 150_000,
          },
          (ev) => {
            const obj = ev.object as RawObject;
            if (ev.type === "ERROR") {
              if ((obj as { code?: number }).code === 410) rv = undefined;
              return;
            }
            if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
            if (ev.type !== "BOOKMARK") this.items.push(this.map(ev.type, obj, Date.now()));
          },
        );
      } catch (err) {
        if (this.stop.signal.aborted) return;
        if (isExpired(err)) rv = undefined;
        this.reconnects++;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
}

export interface SecretVersion {
  name: string;
  type: "ADDED" | "MODIFIED" | "DELETED";
  /** Date.now() when the watch delivered the event. */
  at: number;
  resourceVersion: string;
  managed: boolean;
  accessToken?: string | undefined;
  expiresAt?: number | undefined;
  /** managedFields: who (field manager) wrote when, as the apiserver recorded it. */
  managers: { manager: string; operation: string; time: string }[];
  /** The whole object as the watch delivered it (for byte-for-byte comparisons). */
  object: RawObject;
}

/** Every version of every Secret in one namespace. */
export class SecretHistory extends WatchHistory<SecretVersion> {
  readonly tokens = new Set<string>();

  constructor(transport: KubeTransport, ns: string) {
    super(transport, `/api/v1/namespaces/${ns}/secrets`, (type, obj, at) => {
      const data = (obj.data ?? {}) as Record<string, string>;
      const dec = (k: string) =>
        data[k] === undefined ? undefined : Buffer.from(data[k], "base64").toString();
      const accessToken = dec("access_token");
      const expires = dec("expires_at");
      if (accessToken) this.tokens.add(accessToken);
      return {
        name: obj.metadata.name ?? "",
        type,
        at,
        resourceVersion: obj.metadata.resourceVersion ?? "",
        managed: obj.metadata.labels?.["app.kubernetes.io/managed-by"] === "apptoken-operator",
        accessToken,
        expiresAt: expires === undefined ? undefined : Date.parse(expires),
        managers: (
          (obj.metadata.managedFields ?? []) as { manager: string; operation: string; time: string }[]
        ).map((m) => ({ manager: m.manager, operation: m.operation, time: m.time })),
        object: obj,
      };
    });
  }

  get versions(): SecretVersion[] {
    return this.items;
  }

  of(name: string): SecretVersion[] {
    return this.items.filter((v) => v.name === name);
  }

  /** Managed Secrets that were deleted while the scenario ran (none may be: "no lost Secret"). */
  deletedManaged(): SecretVersion[] {
    return this.items.filter((v) => v.type === "DELETED" && v.managed);
  }

  /**
   * Every moment a managed Secret held an expired token, from its version history: a version must
   * be replaced before its expires_at, and the last one must still be valid at `untilMs`.
   */
  expiredWindows(untilMs = Date.now()): { name: string; expiredAt: string; replacedAt: string }[] {
    const out: { name: string; expiredAt: string; replacedAt: string }[] = [];
    const names = new Set(this.items.filter((v) => v.managed).map((v) => v.name));
    for (const name of names) {
      const vs = this.of(name).filter((v) => v.type !== "DELETED" && v.expiresAt !== undefined);
      for (let i = 0; i < vs.length; i++) {
        const v = vs[i]!;
        const end = vs[i + 1]?.at ?? untilMs;
        if (v.expiresAt! <= end)
          out.push({
            name,
            expiredAt: new Date(v.expiresAt!).toISOString(),
            replacedAt: new Date(end).toISOString(),
          });
      }
    }
    return out;
  }
}

export interface RequestVersion {
  name: string;
  type: "ADDED" | "MODIFIED" | "DELETED";
  at: number;
  ready: { status: string; reason: string; message: string } | undefined;
  status: AppTokenRequestStatus | undefined;
}

/** Every version of every AppTokenRequest in one namespace: the status a person saw, over time. */
export class RequestHistory extends WatchHistory<RequestVersion> {
  constructor(transport: KubeTransport, ns: string) {
    super(transport, `/apis/apptoken.io/v1alpha1/namespaces/${ns}/apptokenrequests`, (type, obj, at) => {
      const status = obj.status as AppTokenRequestStatus | undefined;
      const ready = status?.conditions?.find((c) => c.type === "Ready");
      return {
        name: obj.metadata.name ?? "",
        type,
        at,
        ready: ready ? { status: ready.status, reason: ready.reason, message: ready.message } : undefined,
        status,
      };
    });
  }

  of(name: string): RequestVersion[] {
    return this.items.filter((v) => v.name === name);
  }

  /** The sequence of distinct Ready reasons a request went through ("True:TokenIssued", ...). */
  readyPath(name: string): string[] {
    const out: string[] = [];
    for (const v of this.of(name)) {
      const r = v.ready ? `${v.ready.status}:${v.ready.reason}` : "none";
      if (out.at(-1) !== r) out.push(r);
    }
    return out;
  }

  /** Waits until some version of `name` satisfies `pred` (including versions already seen). */
  async seen(name: string, pred: (v: RequestVersion) => boolean, what: string, timeoutMs = 30_000) {
    try {
      return await until(() => this.of(name).find(pred), `${name}: ${what}`, timeoutMs, 50);
    } catch (e) {
      const trail = this.of(name)
        .slice(-6)
        .map(
          (v) =>
            `${new Date(v.at).toISOString()} ${v.ready?.status}:${v.ready?.reason} ${JSON.stringify(v.status?.throttle ?? {})}`,
        );
      throw new Error(`${(e as Error).message}; last versions:\n${trail.join("\n")}`);
    }
  }
}

// ---- least privilege -----------------------------------------------------------------------------

let overlay: Promise<Manifest[]> | undefined;

/**
 * deploy/'s namespaced install, moved into `ns`: the operator's ServiceAccount, its Role for a
 * watched namespace, its leader-election Role (the Lease lives in `ns` too), its Role in the
 * cluster resource namespace (`ns` too: ClusterAppRegistrations' credentials), and the read-only
 * ClusterRole for the cluster-scoped objects (ClusterAppRegistrations, namespaces) with its
 * binding, their names suffixed with `-<ns>` so that scenarios running at once never collide.
 * Exactly the rules deploy/ ships: nothing is added for the tests.
 */
export async function leastPrivilegeManifests(binDir: string, ns: string): Promise<Manifest[]> {
  overlay ??= renderKustomization(join(binDir, "kubectl"), NAMESPACED_OVERLAY_DIR);
  const all = await overlay;
  const watched = "team-a";
  const bindsOperator = (m: Manifest) =>
    ((m.subjects as { kind: string; name: string }[] | undefined) ?? []).some(
      (s) => s.kind === "ServiceAccount" && s.name === OPERATOR_SA,
    );
  const operatorClusterRoles = new Set(
    all
      .filter((m) => m.kind === "ClusterRoleBinding" && bindsOperator(m))
      .map((m) => (m.roleRef as { name: string }).name),
  );
  const picked = all.filter(
    (m) =>
      (["ServiceAccount", "Role", "RoleBinding"].includes(m.kind) &&
        (m.metadata.namespace === "apptoken-system" || m.metadata.namespace === watched)) ||
      (m.kind === "ClusterRoleBinding" && bindsOperator(m)) ||
      (m.kind === "ClusterRole" && operatorClusterRoles.has(m.metadata.name)),
  );
  return relocate(picked, { namespaces: { "apptoken-system": ns, [watched]: ns }, suffix: `-${ns}` });
}

// ---- scenario ------------------------------------------------------------------------------------

export interface ChaosScenarioOptions {
  prefix: string;
  controlPlane?: ControlPlaneRef;
  tenants?: number;
  tokenLifetimeSeconds?: number;
  refreshInSeconds?: number;
  /** Run the operator as deploy/'s ServiceAccount (default) or as the admin client certificate. */
  identity?: "least-privilege" | "admin";
  /** Put a recording proxy in front of the apiserver for each replica (default true). */
  proxy?: boolean;
  tokenServiceOptions?: TokenServiceOptions;
  /** Register only the client-secret app in tenants other than the first (load tests: 10^4 tenants). */
  secretAppOnlyBeyondFirstTenant?: boolean;
}

export interface Replica {
  name: string;
  op: OperatorProcess;
  proxy: ApiProxy | undefined;
}

export interface AppTokenRequestObject {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation: number;
    resourceVersion: string;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
  status?: AppTokenRequestStatus;
}

export type CredentialKind = "clientSecret" | "certificate" | "pfx" | "workloadIdentity";

export const CREDENTIAL_KIND_NAMES: readonly CredentialKind[] = [
  "clientSecret",
  "certificate",
  "pfx",
  "workloadIdentity",
];

/** The name of the scenario's AppRegistration for one credential kind (as test/support/scenario.ts names it). */
export function registrationName(kind: CredentialKind): string {
  return `app-${kind.toLowerCase()}`;
}

/** An AppRegistration or ClusterAppRegistration as the apiserver returns it. */
export interface RegistrationObject {
  apiVersion: string;
  kind: "AppRegistration" | "ClusterAppRegistration";
  metadata: { name: string; namespace?: string; uid: string; generation: number; resourceVersion: string };
  spec: Record<string, unknown>;
  status?: AppRegistrationStatus;
}

export class ChaosScenario {
  cp!: ControlPlaneRef;
  kc!: KubeConfig;
  core!: CoreV1Api;
  custom!: CustomObjectsApi;
  transport!: KubeTransport;
  ns!: string;
  service!: TokenService;
  cert!: IssuedCertificate;
  history!: SecretHistory;
  requests!: RequestHistory;
  dir!: string;
  caFile!: string;
  readonly replicas: Replica[] = [];
  /** Values that must never appear in logs, Events, status or metrics, by label. */
  private readonly sensitive = new Map<string, string>();
  private operatorKubeconfig: { tokenPath: string; caPem: string; server: string } | undefined;
  /** Cluster-scoped objects this scenario created (RBAC, ClusterAppRegistrations): deleted by stop(). */
  private readonly clusterScoped: { type: string; name: string }[] = [];
  private serverUrl!: string;
  private serverCaPem!: string;

  constructor(readonly o: ChaosScenarioOptions) {}

  async start(): Promise<this> {
    this.cp = this.o.controlPlane ?? (await sharedControlPlane());
    this.kc = new KubeConfig();
    this.kc.loadFromFile(this.cp.kubeconfigPath);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.transport = createKubeTransport(this.kc, { userAgent: "chaos-test" });
    const cluster = this.kc.getCurrentCluster()!;
    this.serverUrl = cluster.server;
    this.serverCaPem = Buffer.from(cluster.caData ?? "", "base64").toString();
    this.ns = `${this.o.prefix}-${randomBytes(3).toString("hex")}`.slice(0, 63);
    await this.core.createNamespace({
      body: { metadata: { name: this.ns, labels: { "apptoken.io/test": "chaos" } } },
    });
    this.dir = mkdtempSync(join(tmpdir(), "apptoken-chaos-"));
    this.cert = await createClientCertificate({ commonName: "apptoken chaos app" });
    const jwks = JSON.parse((await this.kubectl(["get", "--raw", "/openid/v1/jwks"])).stdout) as {
      keys: [];
    };
    const tenants = Array.from({ length: this.o.tenants ?? 1 }, (_, i) => tenantId(i));
    this.service = await startTokenService(
      {
        tenants: tenants.map((id, i) => ({ id, domains: i === 0 ? ["contoso.example"] : [] })),
        apps: tenants.flatMap((t, i): AppRegistrationInput[] =>
          i > 0 && this.o.secretAppOnlyBeyondFirstTenant
            ? [{ tenantId: t, clientId: SECRET_APP, secrets: [CLIENT_SECRET] }]
            : [
                { tenantId: t, clientId: SECRET_APP, secrets: [CLIENT_SECRET] },
                { tenantId: t, clientId: CERT_APP, certificates: [this.cert.certPem] },
                {
                  tenantId: t,
                  clientId: WI_APP,
                  federated: [
                    { issuer: SA_ISSUER, subject: `system:serviceaccount:${this.ns}:${WORKLOAD_SA}` },
                  ],
                },
              ],
        ),
        resources: [RESOURCE],
        jwks: { [SA_ISSUER]: jwks },
        tokenLifetimeSeconds: this.o.tokenLifetimeSeconds ?? 3599,
        ...(this.o.refreshInSeconds !== undefined ? { refreshInSeconds: this.o.refreshInSeconds } : {}),
      },
      this.o.tokenServiceOptions,
    );
    this.caFile = join(this.dir, "token-service-ca.pem");
    writeFileSync(this.caFile, this.service.caPem);
    await this.putSecret("app-cred", { "client-secret": CLIENT_SECRET });
    await this.putSecret(
      "app-cert",
      { "tls.crt": this.cert.certPem, "tls.key": this.cert.keyPem },
      "kubernetes.io/tls",
    );
    const pfx = toPfx([this.cert.certPem], this.cert.keyPem, PFX_PASSWORD);
    await this.putSecret("app-pfx", { "cert.pfx": pfx, password: PFX_PASSWORD });
    await this.core.createNamespacedServiceAccount({
      namespace: this.ns,
      body: { metadata: { name: WORKLOAD_SA } },
    });
    for (const kind of CREDENTIAL_KIND_NAMES)
      await this.createRegistration(registrationName(kind), this.registrationSpec(kind));
    this.markSensitive("client secret", CLIENT_SECRET);
    this.markSensitive("PFX password", PFX_PASSWORD);
    this.markSensitive("private key PEM", this.cert.keyPem);
    this.history = new SecretHistory(this.transport, this.ns);
    this.requests = new RequestHistory(this.transport, this.ns);
    await Promise.all([this.history.start(), this.requests.start()]);
    if ((this.o.identity ?? "least-privilege") === "least-privilege") await this.installLeastPrivilege();
    return this;
  }

  /** Something that must never be printed or stored outside its Secret; PEM bodies are split by line. */
  markSensitive(label: string, value: string): void {
    this.sensitive.set(label, value);
  }

  kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
    return kubectlAt(this.cp, args, opts);
  }

  /** The `host:port` of the local token service, as --allowed-authority-hosts takes it. */
  get authorityHostPort(): string {
    return new URL(this.service.url).host;
  }

  private async installLeastPrivilege(): Promise<void> {
    const manifests = await leastPrivilegeManifests(this.cp.binDir, this.ns);
    for (const m of manifests)
      if (m.metadata.namespace === undefined)
        this.clusterScoped.push({
          type: `${m.kind.toLowerCase()}.rbac.authorization.k8s.io`,
          name: m.metadata.name,
        });
    const r = await this.kubectl(["apply", "-f", "-"], { input: toYaml(manifests) });
    if (r.code !== 0) throw new Error(`applying deploy/ RBAC failed: ${r.stderr}`);
    const creds = await serviceAccountKubeconfig(this.kc, this.ns, OPERATOR_SA, join(this.dir, "sa"));
    this.operatorKubeconfig = {
      tokenPath: creds.tokenPath,
      caPem: readFileSync(creds.caPath, "utf8"),
      server: this.serverUrl,
    };
    this.markSensitive("operator ServiceAccount token", readFileSync(creds.tokenPath, "utf8"));
  }

  /** A kubeconfig for one replica: its API server (or proxy) and the operator's identity. */
  private kubeconfigFor(name: string, server: string, caPem: string): string {
    if (!this.operatorKubeconfig) {
      // Admin identity: the client certificate from the control plane's kubeconfig.
      if (server === this.serverUrl) return this.cp.kubeconfigPath;
      throw new Error("a proxy needs a bearer-token identity: use identity least-privilege");
    }
    const caPath = join(this.dir, `${name}-ca.pem`);
    writeFileSync(caPath, caPem);
    const path = join(this.dir, `${name}.kubeconfig`);
    const tokenPath = this.operatorKubeconfig.tokenPath;
    writeFileSync(
      path,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "cluster", cluster: { server, "certificate-authority": caPath } }],
        users: [{ name: OPERATOR_SA, user: { tokenFile: tokenPath, "token-file": tokenPath } }],
        contexts: [{ name: "sa", context: { cluster: "cluster", user: OPERATOR_SA, namespace: this.ns } }],
        "current-context": "sa",
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /**
   * Starts one operator replica, watching this namespace only, as the least-privilege identity,
   * behind its own recording proxy unless the scenario says otherwise. It may send credentials to
   * the local token service only (--allowed-authority-hosts), and this namespace is its cluster
   * resource namespace (ClusterAppRegistrations' credentials live here). `extra.args` come after
   * these: another --allowed-authority-hosts adds hosts (the flag is repeatable), another
   * --cluster-resource-namespace replaces this one.
   */
  async startReplica(
    name: string,
    extra: Partial<StartOperatorOptions> & { waitReady?: boolean } = {},
  ): Promise<Replica> {
    const useProxy = (this.o.proxy ?? true) && this.operatorKubeconfig !== undefined;
    const proxy = useProxy
      ? await startApiProxy({ replica: name, upstream: this.serverUrl, upstreamCaPem: this.serverCaPem })
      : undefined;
    const kubeconfigPath = proxy
      ? this.kubeconfigFor(name, proxy.url, proxy.caPem)
      : this.kubeconfigFor(name, this.serverUrl, this.serverCaPem);
    const op = await startOperator({
      kubeconfigPath,
      namespaces: [this.ns],
      caFile: this.caFile,
      logLevel: "debug",
      ...extra,
      args: [
        "--allowed-authority-hosts",
        this.authorityHostPort,
        "--cluster-resource-namespace",
        this.ns,
        ...(extra.args ?? []),
      ],
    });
    const replica = { name, op, proxy };
    this.replicas.push(replica);
    if (extra.waitReady ?? true) await op.waitReady(60_000);
    return replica;
  }

  async stop(): Promise<void> {
    for (const r of this.replicas) {
      if (r.op.child.signalCode === "SIGSTOP") r.op.child.kill("SIGCONT");
      await r.op.stop("SIGTERM", 15_000).catch(() => undefined);
      await r.proxy?.close();
    }
    await this.history?.close();
    await this.requests?.close();
    await this.service?.close();
    await this.core?.deleteNamespace({ name: this.ns }).catch(() => undefined);
    for (const o of this.clusterScoped.splice(0))
      await this.kubectl(["delete", o.type, o.name, "--ignore-not-found", "--wait=false"]);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  async putSecret(name: string, values: Record<string, string | Buffer>, type = "Opaque"): Promise<void> {
    const data = Object.fromEntries(
      Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
    );
    try {
      const cur = await this.core.readNamespacedSecret({ name, namespace: this.ns });
      await this.core.replaceNamespacedSecret({ name, namespace: this.ns, body: { ...cur, data } });
    } catch {
      await this.core.createNamespacedSecret({
        namespace: this.ns,
        body: { metadata: { name }, type, data },
      });
    }
  }

  /**
   * A valid AppRegistration spec for one credential kind, pointing at the local token service. It
   * allows any tenant and scope: the tenant is the request's (spec(kind, tenant)).
   */
  registrationSpec(kind: CredentialKind = "clientSecret"): Record<string, unknown> {
    const base = { authorityHost: this.service.url };
    switch (kind) {
      case "clientSecret":
        return {
          ...base,
          clientId: SECRET_APP,
          credential: { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" } } },
        };
      case "certificate":
        return {
          ...base,
          clientId: CERT_APP,
          credential: { certificate: { secretRef: { name: "app-cert" } } },
        };
      case "pfx":
        return {
          ...base,
          clientId: CERT_APP,
          credential: {
            certificate: { secretRef: { name: "app-pfx", pfxKey: "cert.pfx", passwordKey: "password" } },
          },
        };
      case "workloadIdentity":
        return {
          ...base,
          clientId: WI_APP,
          credential: { workloadIdentity: { serviceAccountName: WORKLOAD_SA } },
        };
    }
  }

  /** A valid request spec: the scenario's AppRegistration of one credential kind, for one tenant. */
  spec(kind: CredentialKind = "clientSecret", tenant = 0): Record<string, unknown> {
    return {
      appRef: { kind: "AppRegistration", name: registrationName(kind) },
      tenantId: tenantId(tenant),
      scope: SCOPE,
    };
  }

  /**
   * Creates AppRegistration `name` from `registration` (start from registrationSpec(kind) and
   * override, e.g. `{ ...s.registrationSpec(), authorityHost: other }`) and returns a request spec
   * naming it, for tenant `tenant` and the scenario's scope.
   */
  async specWithRegistration(
    name: string,
    registration: Record<string, unknown>,
    tenant = 0,
  ): Promise<Record<string, unknown>> {
    await this.createRegistration(name, registration);
    return { appRef: { kind: "AppRegistration", name }, tenantId: tenantId(tenant), scope: SCOPE };
  }

  async createRegistration(name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.createNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: this.ns,
      plural: "appregistrations",
      body: { apiVersion: "apptoken.io/v1alpha1", kind: "AppRegistration", metadata: { name }, spec },
    });
  }

  /**
   * Creates ClusterAppRegistration `name` (its credential Secrets and ServiceAccount are this
   * namespace's, the operators' cluster resource namespace); stop() deletes it. `spec` must carry
   * a namespaceSelector; `{}` selects every namespace.
   */
  async createClusterRegistration(name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.createClusterCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      plural: "clusterappregistrations",
      body: { apiVersion: "apptoken.io/v1alpha1", kind: "ClusterAppRegistration", metadata: { name }, spec },
    });
    this.clusterScoped.push({ type: "clusterappregistrations.apptoken.io", name });
  }

  async patchRegistration(name: string, patch: Record<string, unknown>): Promise<void> {
    const r = await this.kubectl([
      "patch",
      "appreg",
      name,
      "-n",
      this.ns,
      "--type=merge",
      "-p",
      JSON.stringify(patch),
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
  }

  async getRegistration(name: string): Promise<RegistrationObject> {
    return (await this.custom.getNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: this.ns,
      plural: "appregistrations",
      name,
    })) as RegistrationObject;
  }

  /** This namespace's AppRegistrations and the ClusterAppRegistrations this scenario created. */
  async listRegistrations(): Promise<RegistrationObject[]> {
    const list = await this.transport.request<{ items: RegistrationObject[] }>({
      path: `/apis/apptoken.io/v1alpha1/namespaces/${this.ns}/appregistrations`,
    });
    const own = new Set(
      this.clusterScoped.filter((o) => o.type === "clusterappregistrations.apptoken.io").map((o) => o.name),
    );
    const cluster =
      own.size === 0
        ? []
        : (
            await this.transport.request<{ items: RegistrationObject[] }>({
              path: "/apis/apptoken.io/v1alpha1/clusterappregistrations",
            })
          ).items.filter((o) => own.has(o.metadata.name));
    return [...list.items, ...cluster];
  }

  /** Waits until registration `name`'s Ready condition has `status` (and `reason`, when given). */
  async waitForRegistration(
    name: string,
    status: "True" | "False",
    reason?: string,
    timeoutMs = 30_000,
  ): Promise<RegistrationObject> {
    let last: unknown;
    try {
      return await until(
        async () => {
          const obj = await this.getRegistration(name);
          last = obj.status;
          const r = obj.status?.conditions?.find((c) => c.type === "Ready");
          return r?.status === status && (reason === undefined || r.reason === reason) ? obj : undefined;
        },
        `${this.ns}/${name} (AppRegistration) Ready=${status}${reason ? ` (${reason})` : ""}`,
        timeoutMs,
        200,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last)}`);
    }
  }

  async createRequest(name: string, spec: Record<string, unknown>, annotations?: Record<string, string>) {
    await this.custom.createNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: this.ns,
      plural: "apptokenrequests",
      body: {
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppTokenRequest",
        metadata: { name, ...(annotations ? { annotations } : {}) },
        spec,
      },
    });
  }

  /** Creates many requests through one `kubectl apply` per chunk (fast for hundreds or thousands). */
  async createRequests(items: { name: string; spec: Record<string, unknown> }[], chunk = 500): Promise<void> {
    for (let i = 0; i < items.length; i += chunk) {
      const docs = items.slice(i, i + chunk).map((it) => ({
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppTokenRequest",
        metadata: { name: it.name, namespace: this.ns },
        spec: it.spec,
      }));
      const r = await this.kubectl(["create", "-f", "-"], {
        input: JSON.stringify({ apiVersion: "v1", kind: "List", items: docs }),
        timeoutMs: 300_000,
      });
      if (r.code !== 0) throw new Error(`kubectl create failed: ${r.stderr.slice(0, 2000)}`);
    }
  }

  async getRequest(name: string): Promise<AppTokenRequestObject> {
    return (await this.custom.getNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: this.ns,
      plural: "apptokenrequests",
      name,
    })) as AppTokenRequestObject;
  }

  async listRequests(): Promise<AppTokenRequestObject[]> {
    const list = await this.transport.request<{ items: AppTokenRequestObject[] }>({
      path: `/apis/apptoken.io/v1alpha1/namespaces/${this.ns}/apptokenrequests`,
      timeoutMs: 120_000,
    });
    return list.items;
  }

  async patchRequest(name: string, patch: Record<string, unknown>): Promise<void> {
    const r = await this.kubectl([
      "patch",
      "atr",
      name,
      "-n",
      this.ns,
      "--type=merge",
      "-p",
      JSON.stringify(patch),
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
  }

  ready(status: AppTokenRequestStatus | undefined) {
    return status?.conditions?.find((c) => c.type === "Ready");
  }

  /** Waits until the request's Ready condition has `status` (and `reason`, when given). */
  async waitFor(
    name: string,
    status: "True" | "False",
    reason?: string,
    timeoutMs = 30_000,
  ): Promise<AppTokenRequestObject> {
    let last: unknown;
    try {
      return await until(
        async () => {
          const obj = await this.getRequest(name);
          last = obj.status;
          const r = this.ready(obj.status);
          return r?.status === status && (reason === undefined || r.reason === reason) ? obj : undefined;
        },
        `${this.ns}/${name} Ready=${status}${reason ? ` (${reason})` : ""}`,
        timeoutMs,
        200,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last)}`);
    }
  }

  async secret(name: string): Promise<V1Secret | undefined> {
    return this.core.readNamespacedSecret({ name, namespace: this.ns }).catch(() => undefined);
  }

  decoded(secret: V1Secret | undefined, key: string): string | undefined {
    const v = secret?.data?.[key];
    return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
  }

  // ---- leak scan ---------------------------------------------------------------------------------

  /**
   * Everything a person or a log pipeline can see: each replica's stdout/stderr, the namespace's
   * Events, every AppTokenRequest and every registration (spec and status) and each live
   * replica's /metrics.
   */
  async evidence(): Promise<{ source: string; text: string }[]> {
    const out: { source: string; text: string }[] = [];
    for (const r of this.replicas) {
      out.push({ source: `operator ${r.name} output`, text: r.op.output() });
      if (r.op.child.exitCode === null && r.op.child.signalCode === null) {
        const metrics = await r.op.metrics().catch(() => "");
        out.push({ source: `operator ${r.name} /metrics`, text: metrics });
      }
    }
    const events = await this.transport.request<unknown>({ path: `/api/v1/namespaces/${this.ns}/events` });
    out.push({ source: "Events", text: JSON.stringify(events) });
    const requests = await this.listRequests();
    out.push({ source: "AppTokenRequests (spec and status)", text: JSON.stringify(requests) });
    const registrations = await this.listRegistrations();
    out.push({
      source: "AppRegistrations and ClusterAppRegistrations (spec and status)",
      text: JSON.stringify(registrations),
    });
    return out;
  }

  /** The strings the scan looks for, by label: each sensitive value in the forms it could leak in. */
  needles(): { label: string; value: string }[] {
    const out: { label: string; value: string }[] = [];
    const add = (label: string, value: string) => {
      if (value.length >= 8) out.push({ label, value });
    };
    for (const [label, value] of this.sensitive) {
      if (value.includes("-----BEGIN")) {
        // A PEM: each base64 line of its body (logs escape the newlines), and the whole as base64.
        for (const line of value.split(/\r?\n/))
          if (!line.startsWith("-----") && line.length >= 40) add(label, line);
      } else {
        add(label, value);
        add(`${label} (JSON-escaped)`, JSON.stringify(value).slice(1, -1));
      }
      // As a Secret's data holds it; for a PEM, a slice from the key-specific middle.
      const b64 = Buffer.from(value).toString("base64");
      add(`${label} (base64)`, b64.length > 200 ? b64.slice(120, 180) : b64);
    }
    return out;
  }

  /**
   * Greps the evidence for every sensitive value, for every part of every access token ever
   * written to a Secret, and for anything shaped like a JWT (access tokens, client assertions and
   * service-account tokens are all JWTs); returns the findings (empty: nothing leaked).
   */
  async scanForLeaks(): Promise<LeakReport> {
    const evidence = await this.evidence();
    const needles = this.needles();
    // Token parts are matched as whole base64url runs (a Set lookup), so that thousands of tokens
    // do not make the scan quadratic.
    const tokenParts = new Set<string>();
    for (const token of this.history.tokens)
      for (const part of token.split(".").slice(1)) if (part.length >= 40) tokenParts.add(part);
    const findings: string[] = [];
    for (const { source, text } of evidence) {
      for (const n of needles) if (text.includes(n.value)) findings.push(`${n.label} found in ${source}`);
      for (const m of text.matchAll(BASE64URL_RUN))
        if (tokenParts.has(m[0])) findings.push(`part of an access token found in ${source}`);
      for (const m of text.matchAll(JWT_SHAPED)) {
        findings.push(`a JWT-shaped string (header ${describeJwtHeader(m[0])}) found in ${source}`);
      }
    }
    return {
      findings: [...new Set(findings)],
      sources: evidence.map((e) => `${e.source} (${e.text.length} chars)`),
      needles: needles.length + tokenParts.size,
      tokensWatched: this.history.tokens.size,
      bytesScanned: evidence.reduce((n, e) => n + e.text.length, 0),
    };
  }
}

export interface LeakReport {
  findings: string[];
  sources: string[];
  needles: number;
  tokensWatched: number;
  bytesScanned: number;
}

/** base64url header "eyJ" + payload + signature: an access token, an assertion or a service-account token. */
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g;
const BASE64URL_RUN = /[A-Za-z0-9_-]{40,}/g;

function describeJwtHeader(jwt: string): string {
  try {
    return Buffer.from(jwt.split(".")[0]!, "base64url").toString("utf8").slice(0, 120);
  } catch {
    return "(undecodable)";
  }
}

// ---- process probes ------------------------------------------------------------------------------

/** Resident set size of a process, in bytes, from /proc (Linux). */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export class RssSampler {
  readonly samples: { at: number; rss: number }[] = [];
  private timer: NodeJS.Timeout;
  constructor(pid: number, everyMs = 1_000) {
    const take = () => {
      const rss = rssBytes(pid);
      if (rss !== undefined) this.samples.push({ at: Date.now(), rss });
    };
    take();
    this.timer = setInterval(take, everyMs);
  }
  stop(): void {
    clearInterval(this.timer);
  }
  max(fromMs = 0): number {
    return Math.max(0, ...this.samples.filter((s) => s.at >= fromMs).map((s) => s.rss));
  }
}

/** Writes a JSON line to .cache/chaos-report.jsonl for docs/reliability.md (best effort). */
export function report(entry: Record<string, unknown>): void {
  try {
    const file = join(process.cwd(), ".cache", "chaos-report.jsonl");
    writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), ...entry }) + "\n", { flag: "a" });
  } catch {
    /* reporting is informational */
  }
}
