/**
 * Informers against the real kube-apiserver: the paginated list and its snapshot, the watch that
 * follows it, resuming after the server ends a watch or the connection breaks, bookmarks, re-lists
 * after 410 Gone, list retries, namespace scoping, resync, handlers, the AppTokenRequest
 * informer's trimming and indexes, and the registration informers' credential-Secret index.
 *
 * Each test has namespaces of its own, and its informer watches only those, so the tests run
 * concurrently. The wire between informer and server is tapped (test/support/tapped-transport.ts):
 * to observe requests and events, and to cut, hold back or expire watches. The server is always
 * the real one. Timings are real too: short periods and watch timeouts, and deadline-bound waits
 * on what the server sends.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Secret,
} from "@kubernetes/client-node";
import { afterAll, describe, it } from "vitest";
import { Informer, type InformerOptions } from "../../src/kube/informer.js";
import {
  createAppTokenRequestInformer,
  createManagedSecretInformer,
  createRegistrationInformer,
} from "../../src/kube/operator-informers.js";
import { projectSecret, type SecretProjection } from "../../src/kube/projections.js";
import {
  APP_REF_INDEX,
  CREDENTIAL_SECRET_INDEX,
  TARGET_SECRET_INDEX,
} from "../../src/kube/request-indexes.js";
import { SECRETS } from "../../src/kube/resources.js";
import { createKubeTransport } from "../../src/kube/transport.js";
import type { KubeList, KubeObject, RawObject, WatchEvent } from "../../src/kube/types.js";
import {
  createTestNamespace,
  deleteTestNamespace,
  eventually,
  kubectl,
  testKubeConfig,
} from "../support/kube.js";
import { TappedTransport, type TappedWatch } from "../support/tapped-transport.js";

const kc = testKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

const namespaces: string[] = [];
afterAll(async () => {
  await Promise.all(namespaces.map((ns) => deleteTestNamespace(kc, ns)));
});

async function namespace(prefix = "kube-inf"): Promise<string> {
  const ns = await createTestNamespace(kc, prefix);
  namespaces.push(ns);
  return ns;
}

function tapped(config: KubeConfig = kc): TappedTransport {
  return new TappedTransport(createKubeTransport(config));
}

/** Waits (deadline-bound) until `condition` holds. */
function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<true> {
  return eventually(async () => (condition() ? true : undefined), what, timeoutMs, 20);
}

/** Records what an informer's handlers see, as "add s0 (initial)", "update s0 (resync)", "delete s1". */
function record<T extends KubeObject>(
  informer: Informer<T>,
  label: (o: T) => string = (o) => o.metadata.name ?? "",
): string[] {
  const events: string[] = [];
  informer.addEventHandler({
    onAdd: (o, { initialList }) => events.push(`add ${label(o)}${initialList ? " (initial)" : ""}`),
    onUpdate: (_old, o, { resync }) => events.push(`update ${label(o)}${resync ? " (resync)" : ""}`),
    onDelete: (o, { finalStateUnknown }) =>
      events.push(`delete ${label(o)}${finalStateUnknown ? " (final state unknown)" : ""}`),
  });
  return events;
}

/** Starts an informer for the length of the current test. */
function run<T extends KubeObject>(
  informer: Informer<T>,
  onTestFinished: (fn: () => Promise<void>) => void,
): Informer<T> {
  informer.start();
  onTestFinished(() => informer.stop());
  return informer;
}

/** All Secrets of the given namespaces, projected, in pages of 2, with random() = 0 (no jitter). */
function secretInformer(
  scope: string | string[],
  transport: TappedTransport,
  extra: Partial<InformerOptions<SecretProjection>> = {},
): Informer<SecretProjection> {
  return new Informer<SecretProjection>({
    name: "secrets",
    transport,
    resource: SECRETS,
    namespaces: typeof scope === "string" ? [scope] : scope,
    transform: projectSecret,
    pageSize: 2,
    random: () => 0,
    ...extra,
  });
}

const MANAGED = { "app.kubernetes.io/managed-by": "apptoken-operator" };

function createSecret(
  ns: string,
  name: string,
  o: { labels?: Record<string, string>; data?: Record<string, string> } = {},
): Promise<V1Secret> {
  return core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name, labels: o.labels }, type: "Opaque", data: o.data ?? { k: "dg==" } },
  });
}

function annotate(ns: string, name: string, annotations: Record<string, string>): Promise<V1Secret> {
  return core.patchNamespacedSecret({
    name,
    namespace: ns,
    body: [{ op: "add", path: "/metadata/annotations", value: annotations }],
  });
}

async function deleteSecret(ns: string, name: string): Promise<void> {
  await core.deleteNamespacedSecret({ name, namespace: ns });
}

async function serverSecretNames(ns: string, labelSelector?: string): Promise<string[]> {
  const list = await core.listNamespacedSecret({ namespace: ns, labelSelector });
  return list.items.map((s) => s.metadata!.name!).sort();
}

const names = (objs: KubeObject[]): string[] => objs.map((o) => o.metadata.name ?? "").sort();
const listRv = (answer: unknown): string | undefined => (answer as KubeList).metadata?.resourceVersion;
const eventRv = (e: WatchEvent): string | undefined =>
  (e.object as KubeObject | undefined)?.metadata.resourceVersion;
/** The last resourceVersion a watch delivered (object or bookmark), if any. */
const lastRvOf = (w: TappedWatch): string | undefined =>
  w.events
    .map(eventRv)
    .filter((rv) => rv !== undefined)
    .at(-1);

describe.concurrent("Informer on a real API server", () => {
  it("lists page by page from one snapshot, reports synced, then follows the watch from the list's resourceVersion", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace();
    for (let i = 0; i < 5; i++) await createSecret(ns, `s${i}`);
    const transport = tapped();
    // s5 is created while the first page is on its way: the later pages must not show it (they
    // are read from the first page's snapshot), and the watch must deliver it.
    let createdMidList = false;
    transport.beforeAnswer = async (r) => {
      if (r.verb === "list" && !createdMidList) {
        createdMidList = true;
        await createSecret(ns, "s5");
      }
    };
    const informer = secretInformer(ns, transport);
    const events = record(informer);
    run(informer, onTestFinished);

    expect(await informer.waitForSync(AbortSignal.timeout(10_000))).toBe(true);
    const pages = transport.calls("list");
    expect(pages.map((p) => [p.query.limit, typeof p.query.continue])).toEqual([
      [2, "undefined"],
      [2, "string"],
      [2, "string"],
    ]);
    const snapshot = listRv(pages[0]!.answer);
    expect(pages.map((p) => listRv(p.answer))).toEqual([snapshot, snapshot, snapshot]);
    expect(events).toEqual([0, 1, 2, 3, 4].map((i) => `add s${i} (initial)`));

    await until("the watch to deliver s5", () => events.length === 6);
    expect(transport.watches[0]!.query).toMatchObject({
      resourceVersion: snapshot,
      allowWatchBookmarks: true,
    });
    await annotate(ns, "s0", { changed: "yes" });
    await deleteSecret(ns, "s1");
    await until("the update and the delete", () => events.length === 8);
    expect(events.slice(5)).toEqual(["add s5", "update s0", "delete s1"]);
    expect(informer.get(ns, "s0")?.metadata.annotations).toEqual({ changed: "yes" });
    expect(informer.get(ns, "s1")).toBeUndefined();
    expect(names(informer.list())).toEqual(await serverSecretNames(ns));
    expect(transport.lists()).toHaveLength(1);
  });

  it("keeps only the projection of a managed Secret, never its data, and ignores unmanaged Secrets", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace();
    await createSecret(ns, "token-a", { labels: MANAGED, data: { access_token: "dG9rZW4=" } });
    await createSecret(ns, "user-secret");
    const transport = tapped();
    const informer = createManagedSecretInformer({ transport, namespaces: [ns] });
    const events = record(informer);
    run(informer, onTestFinished);
    expect(await informer.waitForSync(AbortSignal.timeout(10_000))).toBe(true);

    // The wire carries the data (restart hydration reads it in a transform)...
    const listed = (transport.lists()[0]!.answer as KubeList).items!;
    expect(listed.map((s) => s.data)).toEqual([{ access_token: "dG9rZW4=" }]);
    // ...the store does not.
    const stored = informer.get(ns, "token-a")!;
    // At most a digest of the data (to notice someone else rewriting it), never the data.
    expect(
      Object.keys(stored)
        .filter((k) => k !== "dataDigest")
        .sort(),
    ).toEqual(["metadata", "type"]);
    expect(stored.type).toBe("Opaque");
    expect(stored.metadata.labels).toEqual(MANAGED);
    expect(JSON.stringify(stored)).not.toContain("dG9rZW4=");

    await annotate(ns, "token-a", { "apptoken.io/expires-at": "2026-11-24T12:00:00Z" });
    await annotate(ns, "user-secret", { ignored: "yes" });
    await deleteSecret(ns, "token-a");
    await until("the delete of token-a", () => events.includes("delete token-a"));
    expect(events).toEqual(["add token-a (initial)", "update token-a", "delete token-a"]);
    expect(informer.get(ns, "user-secret")).toBeUndefined();
  });

  it("resumes a watch the server ended (timeoutSeconds) from the last resourceVersion it applied, without re-listing or losing events", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace();
    await createSecret(ns, "before");
    const transport = tapped();
    // random() = 0: every watch asks for timeoutSeconds = 2, and the server ends it then.
    const informer = secretInformer(ns, transport, { minWatchTimeoutSeconds: 2 });
    const events = record(informer);
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));
    await until("the first watch", () => transport.watches.length === 1);
    const first = transport.watches[0]!;
    expect(first.query.timeoutSeconds).toBe(2);

    transport.holdReconnects();
    await until("the server to end the watch", () => first.end !== undefined);
    expect(first.end).toBe("server");
    const resumePoint = informer.resourceVersions()[0];
    expect(resumePoint).toBe(lastRvOf(first) ?? first.query.resourceVersion);
    // Made while no watch is open.
    await createSecret(ns, "during");
    await deleteSecret(ns, "before");
    transport.reconnect();

    await until("the changes made between watches", () => events.length === 3);
    expect(events).toEqual(["add before (initial)", "add during", "delete before"]);
    expect(transport.watches[1]!.query.resourceVersion).toBe(resumePoint);
    expect(transport.lists()).toHaveLength(1);
  });

  it("resumes a cut watch from its resourceVersion and loses no event made while disconnected", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace();
    await createSecret(ns, "before");
    const transport = tapped();
    const informer = secretInformer(ns, transport);
    const events = record(informer);
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));
    await until("the first watch", () => transport.openWatches() === 1);

    transport.disconnect();
    await createSecret(ns, "during");
    await deleteSecret(ns, "before");
    transport.reconnect();

    await until("the changes made while disconnected", () => events.length === 3);
    expect(events).toEqual(["add before (initial)", "add during", "delete before"]);
    const [cut, resumed] = transport.watches;
    expect(cut!.end).toBe("cut");
    expect(resumed!.query.resourceVersion).toBe(lastRvOf(cut!) ?? cut!.query.resourceVersion);
    expect(transport.lists()).toHaveLength(1);
    expect(names(informer.list())).toEqual(await serverSecretNames(ns));
  });

  it("moves its resume point forward on the server's bookmarks", async ({ expect, onTestFinished }) => {
    const ns = await namespace();
    await createSecret(ns, "a", { labels: MANAGED });
    const transport = tapped();
    // timeoutSeconds = 3: the server sends a bookmark 2 s before it ends the watch.
    const informer = secretInformer(ns, transport, {
      labelSelector: "app.kubernetes.io/managed-by=apptoken-operator",
      minWatchTimeoutSeconds: 3,
    });
    const events = record(informer);
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));
    const snapshot = listRv(transport.lists()[0]!.answer);
    await until("the first watch", () => transport.openWatches() === 1);
    const first = transport.watches[0]!;

    // A write this watch does not select: no event for it, but the resourceVersion of Secrets moves
    // past the watch's, so the server's bookmark carries a newer one.
    await createSecret(ns, "unselected");
    await until("the watch to end", () => first.end !== undefined);
    await until("the next watch", () => transport.watches.length === 2);

    expect(first.end).toBe("server");
    expect(first.events.length).toBeGreaterThan(0);
    expect(first.events.map((e) => e.type)).toEqual(first.events.map(() => "BOOKMARK"));
    const bookmark = lastRvOf(first)!;
    expect(bookmark).not.toBe(snapshot);
    // The next watch starts from the bookmark, not from the list it would otherwise replay from.
    expect(transport.watches[1]!.query.resourceVersion).toBe(bookmark);
    expect(events).toEqual(["add a (initial)"]);
    expect(transport.lists()).toHaveLength(1);
  });

  for (const form of ["410-event", "410-status"] as const) {
    // The real server's own refusal is specified with AppTokenRequests below: for Secrets it cannot be
    // had on demand (see ExpiredAnswer), so the 410 is injected on the wire, in either form.
    it(`re-lists after 410 Gone (${form === "410-event" ? "ERROR event" : "HTTP status"}) and emits the differences, including a delete missed while disconnected`, async ({
      expect,
      onTestFinished,
    }) => {
      const ns = await namespace();
      for (const n of ["change", "keep", "remove"]) await createSecret(ns, n);
      const transport = tapped();
      const informer = secretInformer(ns, transport);
      const events = record(informer);
      run(informer, onTestFinished);
      await informer.waitForSync(AbortSignal.timeout(10_000));
      await until("the first watch", () => transport.openWatches() === 1);

      transport.disconnect();
      await annotate(ns, "change", { changed: "yes" });
      await deleteSecret(ns, "remove");
      await createSecret(ns, "new");
      transport.reconnect(form);

      await until("the re-list", () => transport.lists().length === 2 && events.length === 6);
      expect(events.slice(3)).toEqual(["update change", "add new", "delete remove (final state unknown)"]);
      expect(informer.get(ns, "change")?.metadata.annotations).toEqual({ changed: "yes" });
      expect(names(informer.list())).toEqual(await serverSecretNames(ns));

      // And it watches again, from the new list.
      await createSecret(ns, "after");
      await until("the add after the re-list", () => events.at(-1) === "add after");
      expect(transport.watches.at(-1)!.query.resourceVersion).toBe(listRv(transport.lists()[1]!.answer));
    });
  }

  it("retries a list the server refuses, backing off exponentially, until it succeeds", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace();
    await createSecret(ns, "a");
    // The informer runs as a user who may not list Secrets yet, as an operator does whose
    // RoleBinding has not been applied: the real server answers 403 until it is.
    const user = `informer-${ns}`;
    const transport = tapped(impersonating(user));
    const informer = secretInformer(ns, transport);
    run(informer, onTestFinished);

    await until("two refused lists", () => transport.lists().length >= 2);
    expect(informer.hasSynced()).toBe(false);
    await grantSecretReader(ns, user);
    expect(await informer.waitForSync(AbortSignal.timeout(15_000))).toBe(true);
    expect(informer.get(ns, "a")).toBeDefined();

    const attempts = transport.lists();
    const refused = attempts.slice(0, -1);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    for (const r of refused) expect(r.error).toMatchObject({ statusCode: 403, reason: "Forbidden" });
    expect(attempts.at(-1)!.answer).toBeDefined();
    // 800 ms, then doubling (client-go's reflector backoff; random() = 0 takes the jitter out).
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(800 * 2 ** i - 5);
      expect(gap).toBeLessThan(800 * 2 ** i + 1000);
    });
  });

  it("watches only the given namespaces, and a re-list in one of them leaves the others alone", async ({
    expect,
    onTestFinished,
  }) => {
    const [a, b, c] = await Promise.all([
      namespace("kube-inf-a"),
      namespace("kube-inf-b"),
      namespace("kube-inf-c"),
    ]);
    const alias: Record<string, string> = { [a]: "a", [b]: "b", [c]: "c" };
    await Promise.all([createSecret(a, "x"), createSecret(b, "y"), createSecret(c, "z")]);
    const transport = tapped();
    const informer = secretInformer([a, b], transport);
    const key = (o: KubeObject): string => `${alias[o.metadata.namespace!]}/${o.metadata.name}`;
    const events = record(informer, key);
    run(informer, onTestFinished);
    expect(await informer.waitForSync(AbortSignal.timeout(10_000))).toBe(true);

    expect(informer.list().map(key).sort()).toEqual(["a/x", "b/y"]);
    expect(informer.list(a).map(key)).toEqual(["a/x"]);
    await until("a watch per namespace", () => transport.openWatches() === 2);
    // One list and one watch per namespace: nothing cluster-wide, nothing in c.
    const paths = [a, b].map((ns) => `/api/v1/namespaces/${ns}/secrets`).sort();
    expect(
      transport
        .lists()
        .map((r) => r.path)
        .sort(),
    ).toEqual(paths);
    expect(transport.watches.map((w) => w.path).sort()).toEqual(paths);

    // a's watch is cut and expires, so a misses a delete and re-lists; b keeps watching throughout.
    transport.disconnect(`/namespaces/${a}/`);
    await deleteSecret(a, "x");
    await createSecret(b, "y2");
    await createSecret(c, "ignored");
    transport.reconnect("410-event");

    await until(
      "a's re-list",
      () => transport.lists(`/namespaces/${a}/`).length === 2 && events.length === 4,
    );
    expect(events.slice(0, 2).sort()).toEqual(["add a/x (initial)", "add b/y (initial)"]);
    expect(events.slice(2).sort()).toEqual(["add b/y2", "delete a/x (final state unknown)"]);
    expect(transport.lists(`/namespaces/${b}/`)).toHaveLength(1);
    expect(informer.list().map(key).sort()).toEqual(["b/y", "b/y2"]);
  });

  it("re-delivers every stored object as an update at each resync period, from its store, without asking the server", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace();
    await createSecret(ns, "a");
    await createSecret(ns, "b");
    const transport = tapped();
    const informer = secretInformer(ns, transport, { resyncPeriodMs: 250 });
    const events = record(informer);
    const sameObject: boolean[] = [];
    informer.addEventHandler({ onUpdate: (old, obj, { resync }) => resync && sameObject.push(old === obj) });
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));

    const resyncs = (name: string): number => events.filter((e) => e === `update ${name} (resync)`).length;
    await until("two resyncs of each object", () => resyncs("a") >= 2 && resyncs("b") >= 2);
    expect(events.slice(0, 2)).toEqual(["add a (initial)", "add b (initial)"]);
    expect(events.slice(2).every((e) => e.endsWith("(resync)"))).toBe(true);
    expect(sameObject.every(Boolean)).toBe(true);
    expect(transport.lists()).toHaveLength(1);
    expect(transport.watches).toHaveLength(1);
    expect(transport.calls("get")).toHaveLength(0);
  });

  it("replays the objects it holds to a handler registered late, then keeps it informed", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace();
    await createSecret(ns, "a");
    const informer = secretInformer(ns, tapped());
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));

    const late = record(informer);
    expect(late).toEqual(["add a (initial)"]);
    await createSecret(ns, "b");
    await until("the add of b", () => late.length === 2);
    expect(late).toEqual(["add a (initial)", "add b"]);
  });

  it("keeps going when a handler throws", async ({ expect, onTestFinished }) => {
    const ns = await namespace();
    await createSecret(ns, "a");
    const informer = secretInformer(ns, tapped());
    let thrown = 0;
    const bug = (): never => {
      thrown++;
      throw new Error("handler bug");
    };
    informer.addEventHandler({ onAdd: bug, onUpdate: bug, onDelete: bug });
    const events = record(informer);
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));

    await createSecret(ns, "b");
    await annotate(ns, "a", { changed: "yes" });
    await deleteSecret(ns, "b");
    await until("every event", () => events.length === 4);
    expect(events).toEqual(["add a (initial)", "add b", "update a", "delete b"]);
    expect(thrown).toBe(4);
    expect(names(informer.list())).toEqual(["a"]);
  });
});

describe.concurrent("AppTokenRequest informer on a real API server", () => {
  /** A request through AppRegistration `app` of its own namespace (or ClusterAppRegistration `app`). */
  function request(
    name: string,
    app: string,
    target?: string,
    kind: "AppRegistration" | "ClusterAppRegistration" = "AppRegistration",
  ): RawObject {
    return {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { name },
      spec: {
        appRef: { kind, name: app },
        tenantId: "contoso.onmicrosoft.com",
        scope: "https://graph.microsoft.com/.default",
        ...(target && { target: { name: target } }),
      },
    };
  }
  const crd = { group: "apptoken.io", version: "v1alpha1", plural: "apptokenrequests" };

  it("indexes requests by the registration they name and by target Secret, through updates and deletes", async ({
    expect,
    onTestFinished,
  }) => {
    const [payments, billing] = await Promise.all([namespace("kube-req-pay"), namespace("kube-req-bill")]);
    for (const [ns, body] of [
      [payments, request("graph", "app")],
      [payments, request("vault", "app", "vault-token")],
      [billing, request("graph", "app")],
      [billing, request("shared", "shared-app", undefined, "ClusterAppRegistration")],
    ] as const) {
      await custom.createNamespacedCustomObject({ ...crd, namespace: ns, body });
    }
    const informer = createAppTokenRequestInformer({ transport: tapped(), namespaces: [payments, billing] });
    run(informer, onTestFinished);
    expect(await informer.waitForSync(AbortSignal.timeout(10_000))).toBe(true);

    // An AppRegistration is named in the request's own namespace: "app" in payments is not billing's.
    const registration = (ns: string, name: string): string[] =>
      [...informer.indexKeys(APP_REF_INDEX, `AppRegistration:${ns}/${name}`)].sort();
    const target = (ns: string, name: string): string[] =>
      [...informer.indexKeys(TARGET_SECRET_INDEX, `${ns}/${name}`)].sort();
    expect(registration(payments, "app")).toEqual([`${payments}/graph`, `${payments}/vault`]);
    expect(registration(billing, "app")).toEqual([`${billing}/graph`]);
    expect(informer.indexKeys(APP_REF_INDEX, "ClusterAppRegistration:shared-app")).toEqual([
      `${billing}/shared`,
    ]);
    expect(target(payments, "vault-token")).toEqual([`${payments}/vault`]);
    expect(target(payments, "graph")).toEqual([`${payments}/graph`]);

    // vault moves to another registration; payments/graph is deleted.
    await custom.patchNamespacedCustomObject({
      ...crd,
      namespace: payments,
      name: "vault",
      body: [{ op: "replace", path: "/spec/appRef/name", value: "other-app" }],
    });
    await custom.deleteNamespacedCustomObject({ ...crd, namespace: payments, name: "graph" });
    await until(
      "the indexes to follow",
      () => registration(payments, "app").length === 0 && registration(payments, "other-app").length === 1,
    );
    expect(registration(payments, "other-app")).toEqual([`${payments}/vault`]);
    expect(target(payments, "graph")).toEqual([]);
    expect(target(payments, "vault-token")).toEqual([`${payments}/vault`]);
    expect(
      informer.byIndex(APP_REF_INDEX, `AppRegistration:${billing}/app`).map((o) => o.metadata.name),
    ).toEqual(["graph"]);
  });

  it("re-lists when the real server refuses to resume from a resourceVersion older than its watch cache, and emits what changed meanwhile", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace("kube-req");
    for (const n of ["change", "keep", "remove"]) {
      await custom.createNamespacedCustomObject({ ...crd, namespace: ns, body: request(n, "app") });
    }
    const transport = tapped();
    const informer = createAppTokenRequestInformer({ transport, namespaces: [ns], random: () => 0 });
    const events = record(informer);
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));
    await until("the first watch", () => transport.openWatches() === 1);

    transport.disconnect();
    await custom.patchNamespacedCustomObject({
      ...crd,
      namespace: ns,
      name: "change",
      body: [{ op: "replace", path: "/spec/appRef/name", value: "other-app" }],
    });
    await custom.deleteNamespacedCustomObject({ ...crd, namespace: ns, name: "remove" });
    await custom.createNamespacedCustomObject({ ...crd, namespace: ns, body: request("new", "app") });
    // The reconnect asks for resourceVersion "1": long gone from the server's watch cache.
    transport.reconnect("ancient-rv");

    await until("the re-list", () => transport.lists().length === 2 && events.length === 6);
    const refused = transport.watches[1]!;
    // (What the client asked for; the wire sent "1" instead.)
    const cut = transport.watches[0]!;
    expect(refused.query.resourceVersion).toBe(lastRvOf(cut) ?? cut.query.resourceVersion);
    expect(refused.events).toHaveLength(1);
    expect(refused.events[0]).toMatchObject({
      type: "ERROR",
      object: {
        kind: "Status",
        code: 410,
        reason: "Expired",
        message: expect.stringMatching(/^too old resource version: 1 \(\d+\)$/),
      },
    });
    expect(events.slice(3)).toEqual(["update change", "add new", "delete remove (final state unknown)"]);
    expect(informer.indexKeys(APP_REF_INDEX, `AppRegistration:${ns}/other-app`)).toEqual([`${ns}/change`]);
    expect([...informer.indexKeys(APP_REF_INDEX, `AppRegistration:${ns}/app`)].sort()).toEqual([
      `${ns}/keep`,
      `${ns}/new`,
    ]);
  });

  it("stores requests without managedFields and kubectl's last-applied annotation, from the list and from the watch", async ({
    expect,
    onTestFinished,
  }) => {
    const ns = await namespace("kube-req");
    const apply = async (annotations: Record<string, string>): Promise<void> => {
      const manifest = request("applied", "app");
      manifest.metadata = { name: "applied", namespace: ns, annotations };
      const res = await kubectl(["apply", "-f", "-"], { input: JSON.stringify(manifest) });
      expect(res.code, res.stderr).toBe(0);
    };
    await apply({ keep: "me" });
    const transport = tapped();
    const informer = createAppTokenRequestInformer({ transport, namespaces: [ns] });
    run(informer, onTestFinished);
    await informer.waitForSync(AbortSignal.timeout(10_000));

    // What the server sent has both...
    const sent = (transport.lists()[0]!.answer as KubeList).items![0]!;
    expect(sent.metadata.managedFields?.length).toBeGreaterThan(0);
    expect(Object.keys(sent.metadata.annotations!).sort()).toEqual([
      "keep",
      "kubectl.kubernetes.io/last-applied-configuration",
    ]);
    // ...the store has neither.
    const listed = informer.get(ns, "applied")!;
    expect(listed.metadata.managedFields).toBeUndefined();
    expect(listed.metadata.annotations).toEqual({ keep: "me" });
    expect(listed.spec).toEqual(sent.spec);

    await apply({ keep: "me too" });
    await until("the update", () => informer.get(ns, "applied")?.metadata.annotations?.keep === "me too");
    const watched = informer.get(ns, "applied")!;
    expect(watched.metadata.managedFields).toBeUndefined();
    expect(watched.metadata.annotations).toEqual({ keep: "me too" });
  });
});

describe.concurrent("registration informers on a real API server", () => {
  const crd = { group: "apptoken.io", version: "v1alpha1" };
  const clientSecret = (secret: string) => ({
    clientId: "00000000-0000-0000-0000-000000000001",
    credential: { clientSecret: { secretRef: { name: secret, key: "client-secret" } } },
  });

  it("index registrations by the credential Secret they read: an AppRegistration's in its own namespace, a ClusterAppRegistration's in the cluster resource namespace", async ({
    expect,
    onTestFinished,
  }) => {
    const [team, operatorNs] = await Promise.all([namespace("kube-reg-team"), namespace("kube-reg-op")]);
    const cluster = `${operatorNs}-shared`;
    onTestFinished(async () => {
      await custom
        .deleteClusterCustomObject({ ...crd, plural: "clusterappregistrations", name: cluster })
        .catch(() => undefined);
    });
    for (const [name, body] of [
      ["app", clientSecret("app-cred")],
      [
        "cert-app",
        { ...clientSecret("unused"), credential: { certificate: { secretRef: { name: "app-cert" } } } },
      ],
    ] as const) {
      await custom.createNamespacedCustomObject({
        ...crd,
        plural: "appregistrations",
        namespace: team,
        body: { apiVersion: "apptoken.io/v1alpha1", kind: "AppRegistration", metadata: { name }, spec: body },
      });
    }
    await custom.createClusterCustomObject({
      ...crd,
      plural: "clusterappregistrations",
      body: {
        apiVersion: "apptoken.io/v1alpha1",
        kind: "ClusterAppRegistration",
        metadata: { name: cluster },
        spec: { ...clientSecret("app-cred"), namespaceSelector: {} },
      },
    });
    const transport = tapped();
    const namespaced = createRegistrationInformer("AppRegistration", {
      transport,
      namespaces: [team],
      clusterResourceNamespace: operatorNs,
    });
    const clusterScoped = createRegistrationInformer("ClusterAppRegistration", {
      transport,
      namespaces: [team],
      clusterResourceNamespace: operatorNs,
    });
    run(namespaced, onTestFinished);
    run(clusterScoped, onTestFinished);
    expect(await namespaced.waitForSync(AbortSignal.timeout(10_000))).toBe(true);
    expect(await clusterScoped.waitForSync(AbortSignal.timeout(10_000))).toBe(true);

    const readers = (informer: Informer<RawObject>, secret: string): string[] =>
      [...informer.indexKeys(CREDENTIAL_SECRET_INDEX, secret)].sort();
    expect(readers(namespaced, `${team}/app-cred`)).toEqual([`${team}/app`]);
    expect(readers(namespaced, `${team}/app-cert`)).toEqual([`${team}/cert-app`]);
    // Both are named "app-cred", but the cluster-scoped one's lives in the cluster resource namespace.
    expect(readers(clusterScoped, `${operatorNs}/app-cred`)).toEqual([cluster]);
    expect(readers(clusterScoped, `${team}/app-cred`)).toEqual([]);
    // A cluster-scoped informer lists cluster-wide, whatever namespaces it is given.
    expect(transport.lists().map((l) => l.path)).toEqual(
      expect.arrayContaining([
        `/apis/apptoken.io/v1alpha1/namespaces/${team}/appregistrations`,
        "/apis/apptoken.io/v1alpha1/clusterappregistrations",
      ]),
    );

    // The registration moves to another Secret: the index follows.
    await custom.patchNamespacedCustomObject({
      ...crd,
      plural: "appregistrations",
      namespace: team,
      name: "app",
      body: [{ op: "replace", path: "/spec/credential/clientSecret/secretRef/name", value: "rotated-cred" }],
    });
    await until("the index to follow", () => readers(namespaced, `${team}/rotated-cred`).length === 1);
    expect(readers(namespaced, `${team}/app-cred`)).toEqual([]);
    expect(readers(namespaced, `${team}/rotated-cred`)).toEqual([`${team}/app`]);
  });
});

/** The test kubeconfig, acting as `user` (impersonation: the admin credentials, the user's permissions). */
function impersonating(user: string): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: kc.clusters,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
    users: kc.users.map((u) => ({ ...u, impersonateUser: user })),
  });
  return config;
}

async function grantSecretReader(ns: string, user: string): Promise<void> {
  await rbac.createNamespacedRole({
    namespace: ns,
    body: {
      metadata: { name: "secret-reader" },
      rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch"] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name: "secret-reader" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "secret-reader" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
    },
  });
}
