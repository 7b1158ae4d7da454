/**
 * One controller scenario: a namespace on the real control plane, the local token service with a
 * tenant and one app per credential kind, the credential Secrets, one AppRegistration per kind
 * (app-clientsecret, app-certificate, app-pfx, app-workloadidentity) pointing at the local token
 * service, and the real operator process watching that namespace only, allowed to call that
 * token service and no other host.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import type { IssuedCertificate } from "../../hack/token-service/pki.js";
import { createClientCertificate, toPfx } from "../../hack/token-service/pki.js";
import type { TokenService } from "../../hack/token-service/server.js";
import { startTokenService } from "../../hack/token-service/server.js";
import type { AppRegistrationStatus, AppTokenRequestStatus } from "../../src/api/types.js";
import { TOKEN_EXCHANGE_AUDIENCES } from "../../src/api/types.js";
import {
  createTestNamespace,
  deleteTestNamespace,
  kubectl,
  kubeconfigPath,
  testKubeConfig,
  waitForReady,
} from "./kube.js";
import { startOperator, type OperatorProcess, type StartOperatorOptions } from "./operator.js";

export const TENANT = "7d0c9a1e-5b2f-4c3d-8e9f-0a1b2c3d4e5f";
export const DOMAIN = "contoso.example";
export const RESOURCE = "https://graph.microsoft.com";
export const SCOPE = `${RESOURCE}/.default`;
export const SECRET_APP = "11111111-aaaa-4bbb-8ccc-000000000001";
export const CERT_APP = "22222222-aaaa-4bbb-8ccc-000000000002";
export const WI_APP = "33333333-aaaa-4bbb-8ccc-000000000003";
export const CLIENT_SECRET = "Q8r~s3cret.value-for-tests-only";
export const PFX_PASSWORD = "pfx-pass-1";
export const SA_ISSUER = "https://kubernetes.default.svc.cluster.local";
export const SERVICE_ACCOUNT = "payments-app";

export interface ScenarioOptions {
  prefix: string;
  tokenLifetimeSeconds?: number;
  refreshInSeconds?: number;
  operator?: Partial<StartOperatorOptions> | false;
}

export type CredentialKindName = "clientSecret" | "certificate" | "pfx" | "workloadIdentity";

export interface AppTokenRequestObject {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation: number;
    annotations?: Record<string, string>;
    resourceVersion?: string;
  };
  spec: Record<string, unknown>;
  status?: AppTokenRequestStatus;
}

/** An AppRegistration or ClusterAppRegistration as the apiserver returns it. */
export interface RegistrationObject {
  metadata: { name: string; namespace?: string; uid: string; generation: number; resourceVersion?: string };
  spec: Record<string, unknown>;
  status?: AppRegistrationStatus;
}

const GROUP_VERSION = { group: "apptoken.io", version: "v1alpha1" } as const;

export class Scenario {
  kc!: KubeConfig;
  core!: CoreV1Api;
  custom!: CustomObjectsApi;
  ns!: string;
  service!: TokenService;
  cert!: IssuedCertificate;
  operator: OperatorProcess | undefined;
  private dir!: string;
  caFile!: string;

  constructor(private readonly o: ScenarioOptions) {}

  async start(): Promise<this> {
    this.kc = testKubeConfig();
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.ns = await createTestNamespace(this.kc, this.o.prefix);
    this.dir = mkdtempSync(join(tmpdir(), "apptoken-scenario-"));
    this.cert = await createClientCertificate({ commonName: "apptoken test app" });
    const jwks = JSON.parse((await kubectl(["get", "--raw", "/openid/v1/jwks"])).stdout) as {
      keys: unknown[];
    };
    this.service = await startTokenService({
      tenants: [{ id: TENANT, domains: [DOMAIN] }],
      apps: [
        { tenantId: TENANT, clientId: SECRET_APP, secrets: [CLIENT_SECRET] },
        { tenantId: TENANT, clientId: CERT_APP, certificates: [this.cert.certPem] },
        {
          tenantId: TENANT,
          clientId: WI_APP,
          federated: [{ issuer: SA_ISSUER, subject: `system:serviceaccount:${this.ns}:${SERVICE_ACCOUNT}` }],
        },
      ],
      resources: [RESOURCE],
      jwks: { [SA_ISSUER]: jwks as { keys: [] } },
      tokenLifetimeSeconds: this.o.tokenLifetimeSeconds ?? 3599,
      ...(this.o.refreshInSeconds !== undefined ? { refreshInSeconds: this.o.refreshInSeconds } : {}),
    });
    this.caFile = join(this.dir, "ca.pem");
    writeFileSync(this.caFile, this.service.caPem);
    await this.putSecret("app-cred", { "client-secret": CLIENT_SECRET });
    await this.putSecret(
      "app-cert",
      { "tls.crt": this.cert.certPem, "tls.key": this.cert.keyPem },
      "kubernetes.io/tls",
    );
    const pfx = toPfx([this.cert.certPem], this.cert.keyPem, PFX_PASSWORD);
    await this.core.createNamespacedSecret({
      namespace: this.ns,
      body: {
        metadata: { name: "app-pfx" },
        data: {
          "cert.pfx": Buffer.from(pfx).toString("base64"),
          password: Buffer.from(PFX_PASSWORD).toString("base64"),
        },
      },
    });
    await this.core.createNamespacedServiceAccount({
      namespace: this.ns,
      body: { metadata: { name: SERVICE_ACCOUNT } },
    });
    for (const kind of ["clientSecret", "certificate", "pfx", "workloadIdentity"] as const)
      await this.createRegistration(registrationName(kind), this.registrationSpec(kind));
    if (this.o.operator !== false) await this.startOperator(this.o.operator ?? {});
    return this;
  }

  /** The `host:port` of the local token service, as --allowed-authority-hosts takes it. */
  get authorityHostPort(): string {
    return new URL(this.service.url).host;
  }

  async startOperator(extra: Partial<StartOperatorOptions> = {}): Promise<OperatorProcess> {
    this.operator = await startOperator({
      kubeconfigPath: kubeconfigPath(),
      namespaces: [this.ns],
      caFile: this.caFile,
      ...extra,
      args: [
        "--allowed-authority-hosts",
        this.authorityHostPort,
        "--cluster-resource-namespace",
        this.ns,
        ...(extra.args ?? []),
      ],
    });
    await this.operator.waitReady();
    return this.operator;
  }

  async stop(): Promise<void> {
    await this.operator?.stop();
    await this.service?.close();
    await deleteTestNamespace(this.kc, this.ns);
    rmSync(this.dir, { recursive: true, force: true });
  }

  async putSecret(name: string, values: Record<string, string>, type = "Opaque"): Promise<void> {
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

  /** A valid AppRegistration spec for one credential kind, pointing at the local token service. */
  registrationSpec(kind: CredentialKindName = "clientSecret"): Record<string, unknown> {
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
          credential: { workloadIdentity: { serviceAccountName: SERVICE_ACCOUNT } },
        };
    }
  }

  /** A valid request spec naming the scenario's AppRegistration of one credential kind. */
  spec(kind: CredentialKindName = "clientSecret"): Record<string, unknown> {
    return {
      appRef: { kind: "AppRegistration", name: registrationName(kind) },
      tenantId: TENANT,
      scope: SCOPE,
    };
  }

  /**
   * Creates AppRegistration `name` from `registration` (start from registrationSpec(kind) and
   * override, e.g. `{ ...s.registrationSpec(), clientId: other }`) and returns a request spec naming
   * it, for the scenario's tenant and scope.
   */
  async specWithRegistration(
    name: string,
    registration: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    await this.createRegistration(name, registration);
    return { appRef: { kind: "AppRegistration", name }, tenantId: TENANT, scope: SCOPE };
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

  async patchRegistration(name: string, patch: Record<string, unknown>): Promise<void> {
    const r = await kubectl([
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

  /** Waits until AppRegistration `name`'s Ready condition has `status` (and `reason`, if given). */
  async waitForRegistration(
    name: string,
    status: "True" | "False",
    reason?: string,
    timeoutMs = 30_000,
  ): Promise<RegistrationObject> {
    return waitForReady(
      () => this.getRegistration(name),
      `AppRegistration ${this.ns}/${name}`,
      status,
      reason,
      timeoutMs,
    );
  }

  /**
   * Creates ClusterAppRegistration `name`. It is cluster-scoped, so it outlives the scenario's
   * namespace: name it after the namespace and delete it in afterAll (deleteClusterRegistration).
   */
  async createClusterRegistration(name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.createClusterCustomObject({
      ...GROUP_VERSION,
      plural: "clusterappregistrations",
      body: { apiVersion: "apptoken.io/v1alpha1", kind: "ClusterAppRegistration", metadata: { name }, spec },
    });
  }

  async getClusterRegistration(name: string): Promise<RegistrationObject> {
    return (await this.custom.getClusterCustomObject({
      ...GROUP_VERSION,
      plural: "clusterappregistrations",
      name,
    })) as RegistrationObject;
  }

  /** Deletes ClusterAppRegistration `name`; one already gone is fine. */
  async deleteClusterRegistration(name: string): Promise<void> {
    await this.custom
      .deleteClusterCustomObject({ ...GROUP_VERSION, plural: "clusterappregistrations", name })
      .catch(() => undefined);
  }

  /** A request spec naming ClusterAppRegistration `name`, for the scenario's tenant and scope. */
  clusterSpec(name: string): Record<string, unknown> {
    return { appRef: { kind: "ClusterAppRegistration", name }, tenantId: TENANT, scope: SCOPE };
  }

  /**
   * A service-account token of the scenario's ServiceAccount, minted by the control plane
   * (`kubectl create token`) for `audience`: the workload-identity app trusts that issuer and
   * subject, so with the token-exchange audience it is a valid client assertion for WI_APP.
   */
  async mintServiceAccountToken(
    audience: string = TOKEN_EXCHANGE_AUDIENCES.AzurePublic,
    durationSeconds = 3600,
  ): Promise<string> {
    const r = await kubectl([
      "create",
      "token",
      SERVICE_ACCOUNT,
      "-n",
      this.ns,
      "--audience",
      audience,
      "--duration",
      `${durationSeconds}s`,
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout.trim();
  }

  /**
   * A registration spec for WI_APP whose credential is the client assertion (a JWT) held in
   * Secret `secretName` under `key`, as a system that keeps one fresh would write it.
   */
  clientAssertionRegistrationSpec(secretName: string, key = "assertion"): Record<string, unknown> {
    return {
      authorityHost: this.service.url,
      clientId: WI_APP,
      credential: { clientAssertion: { secretRef: { name: secretName, key } } },
    };
  }

  /** Creates a request in another namespace the operator watches. */
  async createRequestIn(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.createNamespacedCustomObject({
      ...GROUP_VERSION,
      namespace,
      plural: "apptokenrequests",
      body: { apiVersion: "apptoken.io/v1alpha1", kind: "AppTokenRequest", metadata: { name }, spec },
    });
  }

  async getRequestIn(namespace: string, name: string): Promise<AppTokenRequestObject> {
    return (await this.custom.getNamespacedCustomObject({
      ...GROUP_VERSION,
      namespace,
      plural: "apptokenrequests",
      name,
    })) as AppTokenRequestObject;
  }

  /** waitFor, for a request in another namespace the operator watches. */
  async waitForIn(
    namespace: string,
    name: string,
    status: "True" | "False",
    reason?: string,
    timeoutMs = 30_000,
  ): Promise<AppTokenRequestObject> {
    return waitForReady(
      () => this.getRequestIn(namespace, name),
      `${namespace}/${name}`,
      status,
      reason,
      timeoutMs,
    );
  }

  async secretIn(namespace: string, name: string): Promise<V1Secret | undefined> {
    return this.core.readNamespacedSecret({ name, namespace }).catch(() => undefined);
  }

  async createRequest(
    name: string,
    spec: Record<string, unknown>,
    annotations?: Record<string, string>,
  ): Promise<void> {
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

  async getRequest(name: string): Promise<AppTokenRequestObject> {
    return (await this.custom.getNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: this.ns,
      plural: "apptokenrequests",
      name,
    })) as AppTokenRequestObject;
  }

  async patchRequest(name: string, patch: Record<string, unknown>): Promise<void> {
    await kubectl(["patch", "atr", name, "-n", this.ns, "--type=merge", "-p", JSON.stringify(patch)]).then(
      (r) => {
        if (r.code !== 0) throw new Error(r.stderr);
      },
    );
  }

  async deleteRequest(name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: this.ns,
      plural: "apptokenrequests",
      name,
    });
  }

  ready(
    status: AppTokenRequestStatus | undefined,
  ): { status: string; reason: string; message: string } | undefined {
    return status?.conditions?.find((c) => c.type === "Ready");
  }

  /** Waits until the request's Ready condition has `status` (and `reason`, if given). */
  async waitFor(
    name: string,
    status: "True" | "False",
    reason?: string,
    timeoutMs = 30_000,
  ): Promise<AppTokenRequestObject> {
    return waitForReady(() => this.getRequest(name), `${this.ns}/${name}`, status, reason, timeoutMs);
  }

  /** "Type Reason" of each Event recorded for request `name`, oldest first (to the second). */
  async events(name: string): Promise<string[]> {
    const list = await this.core.listNamespacedEvent({
      namespace: this.ns,
      fieldSelector: `involvedObject.kind=AppTokenRequest,involvedObject.name=${name}`,
    });
    return list.items
      .sort(
        (a, b) =>
          (a.metadata.creationTimestamp?.getTime() ?? 0) - (b.metadata.creationTimestamp?.getTime() ?? 0),
      )
      .map((e) => `${e.type} ${e.reason}`);
  }

  /**
   * The operator's log lines about request `name` and about Events: what a failed assertion on
   * Events needs to say why.
   */
  operatorLinesAbout(name: string): string {
    const request = `${this.ns}/${name}`;
    return (this.operator?.logs() ?? [])
      .filter((l) => l.request === request || /Event/.test(String(l.msg)))
      .map((l) => JSON.stringify(l))
      .join("\n");
  }

  async secret(name: string): Promise<V1Secret | undefined> {
    return this.core.readNamespacedSecret({ name, namespace: this.ns }).catch(() => undefined);
  }

  decoded(secret: V1Secret | undefined, key: string): string | undefined {
    const v = secret?.data?.[key];
    return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
  }
}

/** The name of the scenario's AppRegistration for one credential kind. */
export function registrationName(kind: CredentialKindName): string {
  return `app-${kind.toLowerCase()}`;
}
