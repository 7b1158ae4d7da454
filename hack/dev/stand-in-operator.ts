/**
 * A stand-in for the operator, to test `make dev` on its own (test/integration/deploy-dev.test.ts):
 *
 *   APPTOKEN_DEV_OPERATOR_CMD="node --import tsx hack/dev/stand-in-operator.ts" bash hack/dev.sh
 *
 * It is not the product. It takes the operator's flags, and makes each AppTokenRequest whose
 * registration uses a client secret or a certificate Ready once: it resolves the request's appRef
 * (an AppRegistration of its namespace, or a ClusterAppRegistration whose namespaceSelector's
 * matchLabels select the namespace, its credential read from --cluster-resource-namespace),
 * acquires a token from the registration's authority with the identity module (src/identity, the
 * code the controller uses, held to --allowed-authority-hosts), writes the target Secret and
 * patches the status. It marks each registration Ready with the number of requests naming it. So
 * a failure of `make dev` with it is in the script, the token service's configuration or the demo
 * objects; a failure with the real operator and not with it is in the controller. No refresh, no
 * cache, no watch (it polls), no leader election, no allowedTenants/allowedScopes check.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
} from "@kubernetes/client-node";
import { systemClock } from "../../src/clock.js";
import {
  TokenClient,
  allowedHostSet,
  certificateCredential,
  clientSecretCredential,
  tokenEndpointFor,
  type ClientCredential,
} from "../../src/identity/index.js";

const GROUP = "apptoken.io";
const VERSION = "v1alpha1";

interface Credential {
  clientSecret?: { secretRef: { name: string; key: string } };
  certificate?: { secretRef: { name: string; certKey?: string; keyKey?: string }; sendX5C?: boolean };
  workloadIdentity?: unknown;
  clientAssertion?: unknown;
}

interface Registration {
  kind: "AppRegistration" | "ClusterAppRegistration";
  metadata: { name: string; namespace?: string; uid: string; generation?: number };
  spec: {
    clientId: string;
    cloud?: "AzurePublic" | "AzureChina" | "AzureUSGovernment";
    authorityHost?: string;
    credential: Credential;
    namespaceSelector?: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] };
  };
}

interface Request {
  metadata: { name: string; namespace: string; uid: string; generation?: number };
  spec: {
    appRef: { kind: "AppRegistration" | "ClusterAppRegistration"; name: string };
    tenantId: string;
    scope: string;
    target?: { name?: string };
  };
}

const log = (msg: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), name: "stand-in-operator", msg, ...fields })}\n`,
  );

const { values } = parseArgs({
  strict: false,
  options: {
    kubeconfig: { type: "string" },
    "authority-ca-file": { type: "string" },
    "allowed-authority-hosts": { type: "string", multiple: true },
    "cluster-resource-namespace": { type: "string" },
  },
});
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const kc = new KubeConfig();
const kubeconfig = str(values.kubeconfig) ?? process.env.KUBECONFIG;
if (kubeconfig) kc.loadFromFile(kubeconfig);
else kc.loadFromDefault();
const caFile = str(values["authority-ca-file"]);
const hostFlags = (values["allowed-authority-hosts"] as unknown[] | undefined) ?? [];
const allowedHosts = allowedHostSet(
  hostFlags
    .flatMap((v) => (typeof v === "string" ? v.split(",") : []))
    .map((h) => h.trim())
    .filter(Boolean),
);
if (allowedHosts.size === 0) {
  // The real operator defaults to the Entra clouds; the stand-in only ever talks to a local service.
  process.stderr.write("stand-in-operator: --allowed-authority-hosts is required\n");
  process.exit(2);
}
const clusterResourceNamespace =
  str(values["cluster-resource-namespace"]) ?? process.env.POD_NAMESPACE ?? "apptoken-system";
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const tokens = new TokenClient({
  clock: systemClock,
  caBundle: caFile !== undefined ? readFileSync(caFile, "utf8") : undefined,
  allowedAuthorityHosts: allowedHosts,
});
const done = new Set<string>();
/** Per registration uid: the status last written, so that it is patched only when it changes. */
const registrationStatus = new Map<string, string>();

async function list<T>(plural: string): Promise<T[]> {
  const res = (await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as {
    items: T[];
  };
  return res.items;
}

async function credentialFor(credential: Credential, namespace: string): Promise<ClientCredential> {
  const read = async (name: string) => (await core.readNamespacedSecret({ name, namespace })).data ?? {};
  const text = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64").toString("utf8");
  if (credential.clientSecret) {
    const data = await read(credential.clientSecret.secretRef.name);
    return clientSecretCredential(text(data[credential.clientSecret.secretRef.key]));
  }
  if (credential.certificate) {
    const ref = credential.certificate.secretRef;
    const data = await read(ref.name);
    return certificateCredential(
      {
        certPem: text(data[ref.certKey ?? "tls.crt"]),
        keyPem: text(data[ref.keyKey ?? "tls.key"]),
        sendX5C: credential.certificate.sendX5C,
      },
      systemClock,
    );
  }
  throw new Error("the stand-in handles clientSecret and certificate credentials only");
}

/** Where a registration's credential Secret lives. */
const credentialNamespace = (reg: Registration) =>
  reg.kind === "ClusterAppRegistration" ? clusterResourceNamespace : reg.metadata.namespace!;

function findRegistration(r: Request, registrations: Registration[]): Registration | undefined {
  return registrations.find(
    (reg) =>
      reg.kind === r.spec.appRef.kind &&
      reg.metadata.name === r.spec.appRef.name &&
      (reg.kind === "ClusterAppRegistration" || reg.metadata.namespace === r.metadata.namespace),
  );
}

/** Why `namespace` may not use `reg`, or undefined. The stand-in reads matchLabels only. */
function refusal(reg: Registration, labels: Record<string, string>): string | undefined {
  if (reg.kind !== "ClusterAppRegistration") return undefined;
  const selector = reg.spec.namespaceSelector;
  if (selector === undefined) return "the ClusterAppRegistration has no namespaceSelector";
  if ((selector.matchExpressions ?? []).length > 0) return "the stand-in reads matchLabels only";
  const ok = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return ok ? undefined : "its namespaceSelector does not select the namespace";
}

async function patchStatus(r: Request, status: Record<string, unknown>): Promise<void> {
  await custom.patchNamespacedCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      plural: "apptokenrequests",
      namespace: r.metadata.namespace,
      name: r.metadata.name,
      body: { status },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

const condition = (
  status: "True" | "False",
  reason: string,
  message: string,
  generation: number | undefined,
) => ({
  type: "Ready",
  status,
  reason,
  message,
  lastTransitionTime: new Date().toISOString(),
  observedGeneration: generation ?? 1,
});

async function serve(
  r: Request,
  reg: Registration | undefined,
  labels: Record<string, string>,
): Promise<void> {
  const now = new Date().toISOString();
  const id = `${r.metadata.namespace}/${r.metadata.name}`;
  try {
    if (reg === undefined) throw new Error(`${r.spec.appRef.kind} ${r.spec.appRef.name} does not exist`);
    const refused = refusal(reg, labels);
    if (refused !== undefined) throw new Error(`${r.spec.appRef.kind} ${r.spec.appRef.name}: ${refused}`);
    const endpoint = tokenEndpointFor(
      { cloud: reg.spec.cloud, authorityHost: reg.spec.authorityHost, tenantId: r.spec.tenantId },
      { allowInsecureLoopback: false, allowedHosts },
    );
    const token = await tokens.requestToken({
      endpoint,
      clientId: reg.spec.clientId,
      scope: r.spec.scope,
      credential: await credentialFor(reg.spec.credential, credentialNamespace(reg)),
    });
    const secretName = r.spec.target?.name ?? r.metadata.name;
    const expiresAt = new Date(token.expiresAt).toISOString();
    const secret: V1Secret = {
      metadata: {
        name: secretName,
        namespace: r.metadata.namespace,
        labels: { "app.kubernetes.io/managed-by": "apptoken-operator" },
        ownerReferences: [
          {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: "AppTokenRequest",
            name: r.metadata.name,
            uid: r.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      type: "Opaque",
      stringData: { access_token: token.accessToken, token_type: token.tokenType, expires_at: expiresAt },
    };
    await core.createNamespacedSecret({ namespace: r.metadata.namespace, body: secret });
    await patchStatus(r, {
      observedGeneration: r.metadata.generation ?? 1,
      conditions: [
        condition("True", "TokenIssued", `stand-in: token in Secret ${secretName}`, r.metadata.generation),
      ],
      secretName,
      expiresAt,
      lastRefreshTime: now,
      tokenSource: "IdentityProvider",
    });
    log("token issued", { request: id, registration: `${reg.kind}/${reg.metadata.name}`, expiresAt });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    log("failed", { request: id, error: message });
    await patchStatus(r, {
      conditions: [condition("False", "StandInFailed", message.slice(0, 1000), r.metadata.generation)],
    }).catch(() => undefined);
  }
}

/** Ready with its request count, when its credential Secret exists; patched only on change. */
async function reportRegistration(reg: Registration, requests: number): Promise<void> {
  const kind = reg.spec.credential.clientSecret
    ? "ClientSecret"
    : reg.spec.credential.certificate
      ? "Certificate"
      : undefined;
  const secretName =
    reg.spec.credential.clientSecret?.secretRef.name ?? reg.spec.credential.certificate?.secretRef.name;
  let ready: ReturnType<typeof condition>;
  if (kind === undefined || secretName === undefined) {
    ready = condition(
      "False",
      "StandInUnsupported",
      "the stand-in handles clientSecret and certificate credentials only",
      reg.metadata.generation,
    );
  } else {
    const found = await core
      .readNamespacedSecret({ name: secretName, namespace: credentialNamespace(reg) })
      .then(() => true)
      .catch(() => false);
    ready = found
      ? condition(
          "True",
          "CredentialLoaded",
          "stand-in: the credential Secret exists",
          reg.metadata.generation,
        )
      : condition(
          "False",
          "CredentialNotFound",
          `Secret ${credentialNamespace(reg)}/${secretName} not found`,
          reg.metadata.generation,
        );
  }
  const key = JSON.stringify([ready.status, ready.reason, requests]);
  if (registrationStatus.get(reg.metadata.uid) === key) return;
  const status = {
    observedGeneration: reg.metadata.generation ?? 1,
    conditions: [ready],
    ...(kind ? { credential: { kind } } : {}),
    requests,
  };
  const options = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  if (reg.kind === "ClusterAppRegistration") {
    await custom.patchClusterCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: "clusterappregistrations",
        name: reg.metadata.name,
        body: { status },
      },
      options,
    );
  } else {
    await custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: "appregistrations",
        namespace: reg.metadata.namespace!,
        name: reg.metadata.name,
        body: { status },
      },
      options,
    );
  }
  registrationStatus.set(reg.metadata.uid, key);
  log("registration status", {
    registration: `${reg.kind}/${reg.metadata.name}`,
    ready: ready.status,
    requests,
  });
}

async function pass(): Promise<void> {
  const [requests, appRegs, clusterRegs, namespaces] = await Promise.all([
    list<Request>("apptokenrequests"),
    list<Registration>("appregistrations"),
    list<Registration>("clusterappregistrations"),
    core.listNamespace(),
  ]);
  const registrations = [
    ...appRegs.map((r): Registration => ({ ...r, kind: "AppRegistration" })),
    ...clusterRegs.map((r): Registration => ({ ...r, kind: "ClusterAppRegistration" })),
  ];
  const labels = new Map(namespaces.items.map((n) => [n.metadata?.name ?? "", n.metadata?.labels ?? {}]));
  for (const r of requests) {
    if (done.has(r.metadata.uid)) continue;
    done.add(r.metadata.uid);
    await serve(r, findRegistration(r, registrations), labels.get(r.metadata.namespace) ?? {});
  }
  for (const reg of registrations) {
    const count = requests.filter((r) => findRegistration(r, [reg]) !== undefined).length;
    await reportRegistration(reg, count);
  }
}

let stopping = false;
async function loop(): Promise<void> {
  log("stand-in operator started", {
    kubeconfig: kubeconfig ?? "(default)",
    allowedAuthorityHosts: [...allowedHosts],
    clusterResourceNamespace,
  });
  while (!stopping) {
    try {
      await pass();
    } catch (e) {
      log("pass failed", { error: e instanceof Error ? e.message : String(e) });
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    stopping = true;
    log(`${sig}: stopping`);
    void tokens.close().then(() => process.exit(0));
  });
}
void loop();
