/**
 * The credential-Secret reader and its metadata-only watch against the real kube-apiserver: what it
 * reads and caches, when the watch invalidates the cache, what it notices after a re-list, and the
 * controller wiring (a rotated credential re-queues every registration that names it, and through
 * each registration every request that uses it).
 *
 * Each test has a namespace of its own and watches only it, so the tests run concurrently. The wire
 * is tapped (test/support/tapped-transport.ts) to count the GETs that reach the server, to hold an
 * answer back, and to cut and expire the watch.
 */
import { CoreV1Api, CustomObjectsApi, type V1Secret } from "@kubernetes/client-node";
import { afterAll, describe, it } from "vitest";
import { CredentialSecrets } from "../../src/kube/credential-secrets.js";
import {
  createAppTokenRequestInformer,
  createRegistrationInformer,
} from "../../src/kube/operator-informers.js";
import {
  APP_REF_INDEX,
  CREDENTIAL_SECRET_INDEX,
  registrationRefKey,
} from "../../src/kube/request-indexes.js";
import { createKubeTransport } from "../../src/kube/transport.js";
import { WorkQueue } from "../../src/kube/work-queue.js";
import { createTestNamespace, deleteTestNamespace, eventually, testKubeConfig } from "../support/kube.js";
import { TappedTransport } from "../support/tapped-transport.js";

const kc = testKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

const namespaces: string[] = [];
afterAll(async () => {
  await Promise.all(namespaces.map((ns) => deleteTestNamespace(kc, ns)));
});

function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<true> {
  return eventually(async () => (condition() ? true : undefined), what, timeoutMs, 20);
}

interface Setup {
  ns: string;
  transport: TappedTransport;
  creds: CredentialSecrets;
  /** onChange calls, as "name" (every test stays in its own namespace). */
  changes: string[];
  /** GETs of `name` that reached the server. */
  gets(name: string): number;
}

async function setup(onTestFinished: (fn: () => Promise<void>) => void): Promise<Setup> {
  const ns = await createTestNamespace(kc, "kube-cred");
  namespaces.push(ns);
  const transport = new TappedTransport(createKubeTransport(kc));
  const changes: string[] = [];
  const creds = new CredentialSecrets({
    transport,
    namespaces: [ns],
    onChange: (namespace, name) => changes.push(namespace === ns ? name : `${namespace}/${name}`),
    random: () => 0,
  });
  onTestFinished(() => creds.stop());
  return { ns, transport, creds, changes, gets: (name) => transport.calls("get", `/secrets/${name}`).length };
}

async function started(s: Setup): Promise<Setup> {
  s.creds.start();
  await until("the credential watch to sync", () => s.creds.hasSynced());
  await until("the credential watch to open", () => s.transport.openWatches() === 1);
  return s;
}

const MANAGED = { "app.kubernetes.io/managed-by": "apptoken-operator" };

function putSecret(
  ns: string,
  name: string,
  data: Record<string, string>,
  labels?: Record<string, string>,
): Promise<V1Secret> {
  return core.createNamespacedSecret({ namespace: ns, body: { metadata: { name, labels }, data } });
}

function rotate(ns: string, name: string, data: Record<string, string>): Promise<V1Secret> {
  return core.replaceNamespacedSecret({ name, namespace: ns, body: { metadata: { name }, data } });
}

describe.concurrent("CredentialSecrets on a real API server", () => {
  it("watches metadata only, and not the operator's own Secrets", async ({ expect, onTestFinished }) => {
    const s = await started(await setup(onTestFinished));
    await putSecret(s.ns, "token", { access_token: "dG9rZW4=" }, MANAGED);
    await putSecret(s.ns, "app-cred", { "client-secret": "c2VjcmV0" });
    await until("the change of app-cred", () => s.changes.includes("app-cred"));
    // Events arrive in resourceVersion order: had the managed Secret been watched, it would be here.
    expect(s.changes).toEqual(["app-cred"]);

    const selector = "app.kubernetes.io/managed-by!=apptoken-operator";
    const [list] = s.transport.lists();
    const [watch] = s.transport.watches;
    expect(list!.query.labelSelector).toBe(selector);
    expect(watch!.query.labelSelector).toBe(selector);
    expect((list!.answer as { kind: string }).kind).toBe("PartialObjectMetadataList");
    const added = watch!.events.find((e) => e.type === "ADDED")!.object as Record<string, unknown>;
    expect(added.kind).toBe("PartialObjectMetadata");
    expect(Object.keys(added).sort()).toEqual(["apiVersion", "kind", "metadata"]);
    expect(JSON.stringify(watch!.events)).not.toContain("c2VjcmV0");
  });

  it("reads a credential once and serves it from the cache while it is unchanged", async ({
    expect,
    onTestFinished,
  }) => {
    const s = await started(await setup(onTestFinished));
    await putSecret(s.ns, "app-cred", { "client-secret": "czE=" });
    await until("the watch to see app-cred", () => s.changes.includes("app-cred"));

    const [a, b] = await Promise.all([s.creds.get(s.ns, "app-cred"), s.creds.get(s.ns, "app-cred")]);
    expect(a?.data["client-secret"]).toBe("czE=");
    expect(b).toBe(a);
    expect(await s.creds.get(s.ns, "app-cred")).toBe(a);
    expect(s.gets("app-cred")).toBe(1);
    expect(s.creds.size).toBe(1);
  });

  it("on rotation, notifies at once and serves the new value on the next read", async ({
    expect,
    onTestFinished,
  }) => {
    const s = await started(await setup(onTestFinished));
    await putSecret(s.ns, "app-cred", { "client-secret": "czE=" });
    await until("the watch to see app-cred", () => s.changes.includes("app-cred"));
    expect((await s.creds.get(s.ns, "app-cred"))?.data["client-secret"]).toBe("czE=");
    s.changes.length = 0;

    await rotate(s.ns, "app-cred", { "client-secret": "czI=" });
    await until("the rotation to be noticed", () => s.changes.length > 0);
    expect(s.changes).toEqual(["app-cred"]);
    expect((await s.creds.get(s.ns, "app-cred"))?.data["client-secret"]).toBe("czI=");
    expect(s.gets("app-cred")).toBe(2);
  });

  it("lets go of the credentials no registration names any more, and reads them again if asked", async ({
    expect,
    onTestFinished,
  }) => {
    const s = await started(await setup(onTestFinished));
    await putSecret(s.ns, "kept", { k: "a2VwdA==" });
    await putSecret(s.ns, "dropped", { k: "ZHJvcHBlZA==" });
    await s.creds.get(s.ns, "kept");
    await s.creds.get(s.ns, "dropped");
    expect(s.creds.size).toBe(2);

    expect(s.creds.retain((key) => key === `${s.ns}/kept`)).toBe(1);
    expect(s.creds.size).toBe(1);
    await s.creds.get(s.ns, "kept");
    expect(s.gets("kept")).toBe(1);
    expect((await s.creds.get(s.ns, "dropped"))?.data.k).toBe("ZHJvcHBlZA==");
    expect(s.gets("dropped")).toBe(2);
  });

  it("remembers a missing Secret and notices when it is created", async ({ expect, onTestFinished }) => {
    const s = await started(await setup(onTestFinished));
    expect(await s.creds.get(s.ns, "later")).toBeUndefined();
    expect(await s.creds.get(s.ns, "later")).toBeUndefined();
    expect(s.gets("later")).toBe(1);

    await putSecret(s.ns, "later", { k: "dg==" });
    await until("the creation to be noticed", () => s.changes.includes("later"));
    expect((await s.creds.get(s.ns, "later"))?.data.k).toBe("dg==");
    expect(s.gets("later")).toBe(2);
  });

  it("does not cache a read that raced with a change", async ({ expect, onTestFinished }) => {
    const s = await started(await setup(onTestFinished));
    await putSecret(s.ns, "c", { k: "MQ==" });
    await until("the watch to see c", () => s.changes.includes("c"));
    s.changes.length = 0;

    // The server answers the GET with the old value, and the answer is held on the wire until the
    // watch has reported a change made in the meantime.
    let answered!: () => void;
    const heldAnswer = new Promise<void>((r) => (answered = r));
    let deliver!: () => void;
    const delivered = new Promise<void>((r) => (deliver = r));
    s.transport.beforeAnswer = async (r) => {
      if (r.verb !== "get") return;
      answered();
      await delivered;
    };
    const pending = s.creds.get(s.ns, "c");
    await heldAnswer;
    await rotate(s.ns, "c", { k: "Mg==" });
    await until("the watch to report the change", () => s.changes.includes("c"));
    s.transport.beforeAnswer = undefined;
    deliver();

    expect((await pending)?.data.k).toBe("MQ==");
    expect((await s.creds.get(s.ns, "c"))?.data.k).toBe("Mg==");
    expect(s.gets("c")).toBe(2);
  });

  it("after a re-list, notifies for cached credentials that changed, vanished or appeared while disconnected", async ({
    expect,
    onTestFinished,
  }) => {
    const s = await started(await setup(onTestFinished));
    for (const n of ["same", "rotated", "deleted"]) await putSecret(s.ns, n, { k: "YQ==" });
    await until("the watch to see them", () => s.changes.length === 3);
    for (const n of ["same", "rotated", "deleted", "absent"]) await s.creds.get(s.ns, n);
    expect(s.creds.size).toBe(4);

    s.transport.disconnect();
    s.changes.length = 0;
    await rotate(s.ns, "rotated", { k: "Yg==" });
    await core.deleteNamespacedSecret({ name: "deleted", namespace: s.ns });
    await putSecret(s.ns, "absent", { k: "Yw==" });
    await putSecret(s.ns, "unrelated", { k: "ZA==" });
    // The reconnect is answered 410 Gone (kube-apiserver's ERROR event, injected on the wire: a Secret
    // watch cannot be made to expire on demand, see ExpiredAnswer). Only a re-list can tell what changed.
    s.transport.reconnect("410-event");

    await until("the re-list", () => s.transport.lists().length === 2 && s.changes.length >= 3);
    expect(s.changes.sort()).toEqual(["absent", "deleted", "rotated"]);
    expect((await s.creds.get(s.ns, "rotated"))?.data.k).toBe("Yg==");
    expect(await s.creds.get(s.ns, "deleted")).toBeUndefined();
    expect((await s.creds.get(s.ns, "absent"))?.data.k).toBe("Yw==");
    expect((await s.creds.get(s.ns, "same"))?.data.k).toBe("YQ==");
    expect(s.gets("same")).toBe(1);
  });

  it("caches nothing before the watch runs (nothing could invalidate it)", async ({
    expect,
    onTestFinished,
  }) => {
    const s = await setup(onTestFinished);
    await putSecret(s.ns, "c", { k: "MQ==" });
    await s.creds.get(s.ns, "c");
    await s.creds.get(s.ns, "c");
    expect(s.gets("c")).toBe(2);
    expect(s.creds.size).toBe(0);
  });

  it("with the registration and request informers and the work queue, re-queues every request whose registration names a rotated credential within seconds", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await createTestNamespace(kc, "kube-cred");
    namespaces.push(ns);
    await putSecret(ns, "app-cred", { "client-secret": "b2xk" });
    await putSecret(ns, "other-cred", { "client-secret": "eA==" });
    // Two registrations: "app" reads app-cred, "other" reads other-cred.
    for (const [name, cred] of [
      ["app", "app-cred"],
      ["other", "other-cred"],
    ] as const) {
      await custom.createNamespacedCustomObject({
        group: "apptoken.io",
        version: "v1alpha1",
        namespace: ns,
        plural: "appregistrations",
        body: {
          apiVersion: "apptoken.io/v1alpha1",
          kind: "AppRegistration",
          metadata: { name },
          spec: {
            clientId: "00000000-0000-0000-0000-000000000001",
            credential: { clientSecret: { secretRef: { name: cred, key: "client-secret" } } },
          },
        },
      });
    }
    for (const [name, app] of [
      ["graph", "app"],
      ["vault", "app"],
      ["unrelated", "other"],
    ] as const) {
      await custom.createNamespacedCustomObject({
        group: "apptoken.io",
        version: "v1alpha1",
        namespace: ns,
        plural: "apptokenrequests",
        body: {
          apiVersion: "apptoken.io/v1alpha1",
          kind: "AppTokenRequest",
          metadata: { name },
          spec: {
            appRef: { kind: "AppRegistration", name: app },
            tenantId: "contoso.onmicrosoft.com",
            scope: "https://graph.microsoft.com/.default",
          },
        },
      });
    }

    const transport = new TappedTransport(createKubeTransport(kc));
    const registrations = createRegistrationInformer("AppRegistration", {
      transport,
      namespaces: [ns],
      clusterResourceNamespace: ns,
    });
    const requests = createAppTokenRequestInformer({ transport, namespaces: [ns] });
    const queue = new WorkQueue();
    const processed: { key: string; at: number }[] = [];
    queue.run(async (key) => void processed.push({ key, at: Date.now() }), { concurrency: 2 });
    const credentials = new CredentialSecrets({
      transport,
      namespaces: [ns],
      onChange: (namespace, name) => {
        for (const registration of registrations.indexKeys(CREDENTIAL_SECRET_INDEX, `${namespace}/${name}`)) {
          const { namespace: regNs, name: regName } = registrations.getByKey(registration)!.metadata;
          const ref = registrationRefKey("AppRegistration", regNs, regName ?? "");
          for (const key of requests.indexKeys(APP_REF_INDEX, ref)) queue.add(key, "high");
        }
      },
    });
    registrations.start();
    requests.start();
    credentials.start();
    onTestFinished(async () => {
      await Promise.all([
        registrations.stop(),
        requests.stop(),
        credentials.stop(),
        queue.shutDown({ drainTimeoutMs: 1000 }),
      ]);
    });
    expect(await registrations.waitForSync(AbortSignal.timeout(10_000))).toBe(true);
    expect(await requests.waitForSync(AbortSignal.timeout(10_000))).toBe(true);
    await until("the credential watch to sync", () => credentials.hasSynced());

    expect((await credentials.get(ns, "app-cred"))?.data["client-secret"]).toBe("b2xk");
    processed.length = 0;
    const rotatedAt = Date.now();
    await rotate(ns, "app-cred", { "client-secret": "bmV3" });

    await until("the requests to be re-queued", () => processed.length >= 2);
    expect(processed.map((p) => p.key).sort()).toEqual([`${ns}/graph`, `${ns}/vault`]);
    expect(Math.max(...processed.map((p) => p.at)) - rotatedAt).toBeLessThan(5_000);
    expect((await credentials.get(ns, "app-cred"))?.data["client-secret"]).toBe("bmV3");
  });
});
