/**
 * A stand-in for the operator, to test `make dev` on its own (test/integration/deploy-dev.test.ts):
 *
 *   APPTOKEN_DEV_OPERATOR_CMD="node --import tsx hack/dev/stand-in-operator.ts" bash hack/dev.sh
 *
 * It is not the product. It takes the operator's flags, and makes each AppTokenRequest that uses a
 * client secret or a certificate Ready once: it acquires a token from the request's authority with
 * the identity module (src/identity, the code the controller uses), writes the target Secret and
 * patches the status. So a failure of `make dev` with it is in the script, the token service's
 * configuration or the demo objects; a failure with the real operator and not with it is in the
 * controller. No refresh, no cache, no watch (it polls), no leader election.
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
  certificateCredential,
  clientSecretCredential,
  tokenEndpointFor,
  type ClientCredential,
} from "../../src/identity/index.js";

const GROUP = "apptoken.io";
const VERSION = "v1alpha1";
const PLURAL = "apptokenrequests";

interface Request {
  metadata: { name: string; namespace: string; uid: string; generation?: number };
  spec: {
    tenantId: string;
    clientId: string;
    scope: string;
    cloud?: "AzurePublic" | "AzureChina" | "AzureUSGovernment";
    authorityHost?: string;
    credential: {
      clientSecret?: { secretRef: { name: string; key: string } };
      certificate?: { secretRef: { name: string; certKey?: string; keyKey?: string }; sendX5C?: boolean };
      workloadIdentity?: unknown;
    };
    target?: { name?: string };
  };
}

const log = (msg: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), name: "stand-in-operator", msg, ...fields })}\n`,
  );

const { values } = parseArgs({
  strict: false,
  options: { kubeconfig: { type: "string" }, "authority-ca-file": { type: "string" } },
});
const kc = new KubeConfig();
const kubeconfig = typeof values.kubeconfig === "string" ? values.kubeconfig : process.env.KUBECONFIG;
if (kubeconfig) kc.loadFromFile(kubeconfig);
else kc.loadFromDefault();
const caFile = values["authority-ca-file"];
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const tokens = new TokenClient({
  clock: systemClock,
  caBundle: typeof caFile === "string" ? readFileSync(caFile, "utf8") : undefined,
});
const done = new Set<string>();

async function credentialFor(r: Request): Promise<ClientCredential> {
  const ns = r.metadata.namespace;
  const read = async (name: string) => (await core.readNamespacedSecret({ name, namespace: ns })).data ?? {};
  const text = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64").toString("utf8");
  const c = r.spec.credential;
  if (c.clientSecret) {
    const data = await read(c.clientSecret.secretRef.name);
    return clientSecretCredential(text(data[c.clientSecret.secretRef.key]));
  }
  if (c.certificate) {
    const ref = c.certificate.secretRef;
    const data = await read(ref.name);
    return certificateCredential(
      {
        certPem: text(data[ref.certKey ?? "tls.crt"]),
        keyPem: text(data[ref.keyKey ?? "tls.key"]),
        sendX5C: c.certificate.sendX5C,
      },
      systemClock,
    );
  }
  throw new Error("the stand-in handles clientSecret and certificate credentials only");
}

async function patchStatus(r: Request, status: Record<string, unknown>): Promise<void> {
  await custom.patchNamespacedCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: r.metadata.namespace,
      name: r.metadata.name,
      body: { status },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

async function serve(r: Request): Promise<void> {
  const now = new Date().toISOString();
  const condition = (status: "True" | "False", reason: string, message: string) => ({
    type: "Ready",
    status,
    reason,
    message,
    lastTransitionTime: now,
    observedGeneration: r.metadata.generation ?? 1,
  });
  try {
    const endpoint = tokenEndpointFor(
      { cloud: r.spec.cloud, authorityHost: r.spec.authorityHost, tenantId: r.spec.tenantId },
      { allowInsecureLoopback: false },
    );
    const token = await tokens.requestToken({
      endpoint,
      clientId: r.spec.clientId,
      scope: r.spec.scope,
      credential: await credentialFor(r),
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
      conditions: [condition("True", "TokenIssued", `stand-in: token in Secret ${secretName}`)],
      secretName,
      expiresAt,
      lastRefreshTime: now,
      tokenSource: "IdentityProvider",
    });
    log("token issued", { request: `${r.metadata.namespace}/${r.metadata.name}`, expiresAt });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    log("failed", { request: `${r.metadata.namespace}/${r.metadata.name}`, error: message });
    await patchStatus(r, { conditions: [condition("False", "StandInFailed", message.slice(0, 1000))] }).catch(
      () => undefined,
    );
  }
}

let stopping = false;
async function loop(): Promise<void> {
  log("stand-in operator started", { kubeconfig: kubeconfig ?? "(default)" });
  while (!stopping) {
    try {
      const list = (await custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
      })) as {
        items: Request[];
      };
      for (const r of list.items) {
        if (done.has(r.metadata.uid)) continue;
        done.add(r.metadata.uid);
        await serve(r);
      }
    } catch (e) {
      log("list failed", { error: e instanceof Error ? e.message : String(e) });
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
