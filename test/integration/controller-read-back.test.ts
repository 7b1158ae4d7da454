/**
 * Hydration against the real kube-apiserver: what a new leader reads back from the managed Secrets
 * before its first reconcile. Only Secrets an AppTokenRequest controls, holding a usable token, and
 * only in the namespaces served; one entry per namespace and cache key (the newest); every page of a
 * paged list; and a list the server refuses costs a warning, not the start.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PersistedTokens } from "../../src/cache/hydration.js";
import { readTokensBack } from "../../src/controller/read-back.js";
import { createKubeTransport } from "../../src/kube/transport.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestNamespace, deleteTestNamespace, testKubeConfig } from "../support/kube.js";

const kc = testKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

const HOUR = 3_600_000;
const NOW = Date.parse("2026-12-03T12:00:00Z");
const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);
const MANAGED = { "app.kubernetes.io/managed-by": "apptoken-operator" };

interface Warned {
  fields: Record<string, unknown>;
  msg: string;
}

function recordingLog(warned: Warned[]) {
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (fields: Record<string, unknown>, msg: string) => warned.push({ fields, msg }),
    error: () => undefined,
  };
}

/** An AppTokenRequest, so that the Secrets it controls are not garbage-collected as orphans. */
async function createRequest(namespace: string, name: string): Promise<string> {
  const created = (await custom.createNamespacedCustomObject({
    group: "apptoken.io",
    version: "v1alpha1",
    namespace,
    plural: "apptokenrequests",
    body: {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { name },
      spec: {
        appRef: { kind: "ClusterAppRegistration", name: "read-back-test" },
        tenantId: "7d0c9a1e-5b2f-4c3d-8e9f-0a1b2c3d4e5f",
        scope: "https://graph.microsoft.com/.default",
      },
    },
  })) as { metadata: { uid: string } };
  return created.metadata.uid;
}

interface TokenSecret {
  name: string;
  keyHash: string;
  accessToken: string;
  issuedAt: number;
  expiresAt: number;
  /** Controlled by this request (created first); none: a bare label. */
  owner?: { name: string; uid: string };
  labels?: Record<string, string>;
}

async function putTokenSecret(namespace: string, s: TokenSecret): Promise<void> {
  const iso = (ms: number) => new Date(ms).toISOString();
  const b64 = (v: string) => Buffer.from(v).toString("base64");
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: {
        name: s.name,
        labels: s.labels ?? MANAGED,
        annotations: {
          "apptoken.io/cache-key-hash": s.keyHash,
          "apptoken.io/issued-at": iso(s.issuedAt),
          "apptoken.io/expires-at": iso(s.expiresAt),
          "apptoken.io/refresh-at": iso(s.expiresAt - HOUR / 2),
        },
        ownerReferences: s.owner
          ? [
              {
                apiVersion: "apptoken.io/v1alpha1",
                kind: "AppTokenRequest",
                name: s.owner.name,
                uid: s.owner.uid,
                controller: true,
              },
            ]
          : undefined,
      },
      data: {
        access_token: b64(s.accessToken),
        token_type: b64("Bearer"),
        expires_at: b64(iso(s.expiresAt)),
      },
    },
  });
}

describe("reading tokens back from the managed Secrets (hydration)", () => {
  let served: string;
  let alsoServed: string;
  let notServed: string;

  beforeAll(async () => {
    [served, alsoServed, notServed] = await Promise.all([
      createTestNamespace(kc, "read-back"),
      createTestNamespace(kc, "read-back"),
      createTestNamespace(kc, "read-back"),
    ]);
    const fresh = { issuedAt: NOW - HOUR / 2, expiresAt: NOW + HOUR / 2 };
    const own = async (ns: string, name: string) => ({ name, uid: await createRequest(ns, name) });
    // Two requests on key A in `served`: the newer token is the one kept.
    await putTokenSecret(served, {
      name: "a-old",
      keyHash: HASH_A,
      accessToken: "token-a-old",
      ...fresh,
      owner: await own(served, "a-old"),
    });
    await putTokenSecret(served, {
      name: "a-new",
      keyHash: HASH_A,
      accessToken: "token-a-new",
      issuedAt: NOW - HOUR / 4,
      expiresAt: NOW + HOUR,
      owner: await own(served, "a-new"),
    });
    await putTokenSecret(served, {
      name: "b",
      keyHash: HASH_B,
      accessToken: "token-b",
      ...fresh,
      owner: await own(served, "b"),
    });
    // Expired: nothing to seed.
    await putTokenSecret(served, {
      name: "expired",
      keyHash: HASH_B,
      accessToken: "token-expired",
      issuedAt: NOW - 2 * HOUR,
      expiresAt: NOW - HOUR,
      owner: await own(served, "expired"),
    });
    // The label without a controller: anyone who may create Secrets here could have planted it.
    await putTokenSecret(served, {
      name: "planted",
      keyHash: HASH_B,
      accessToken: "token-planted",
      issuedAt: NOW,
      expiresAt: NOW + 2 * HOUR,
    });
    // Controlled, but without the label: not a managed Secret, not listed.
    await putTokenSecret(served, {
      name: "unlabelled",
      keyHash: HASH_B,
      accessToken: "token-unlabelled",
      issuedAt: NOW,
      expiresAt: NOW + 2 * HOUR,
      owner: await own(served, "unlabelled"),
      labels: {},
    });
    // Key A in another served namespace: an entry of its own, never mixed with `served`'s.
    await putTokenSecret(alsoServed, {
      name: "a",
      keyHash: HASH_A,
      accessToken: "token-a-other",
      ...fresh,
      owner: await own(alsoServed, "a"),
    });
    await putTokenSecret(notServed, {
      name: "a",
      keyHash: HASH_A,
      accessToken: "token-a-unserved",
      ...fresh,
      owner: await own(notServed, "a"),
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([served, alsoServed, notServed].map((ns) => deleteTestNamespace(kc, ns)));
  });

  it("keeps the newest usable token per namespace and key, from controlled Secrets of the served namespaces", async () => {
    const into = new PersistedTokens();
    const warned: Warned[] = [];
    const report = await readTokensBack(
      {
        transport: createKubeTransport(kc),
        namespaces: [served, alsoServed],
        clock: new FakeClock(NOW),
        log: recordingLog(warned),
        pageSize: 2, // six managed Secrets: three pages in `served`
      },
      into,
      new AbortController().signal,
    );
    expect(warned).toEqual([]);
    expect(report).toEqual({ secrets: 6, tokens: 4, complete: true });
    expect(into.size).toBe(3);
    expect(into.take(served, HASH_A)?.accessToken).toBe("token-a-new");
    expect(into.take(served, HASH_B)?.accessToken).toBe("token-b");
    expect(into.take(alsoServed, HASH_A)?.accessToken).toBe("token-a-other");
    expect(into.take(notServed, HASH_A)).toBeUndefined();
  });

  it("reads every namespace with one cluster-wide list when it serves them all", async () => {
    const into = new PersistedTokens();
    const report = await readTokensBack(
      {
        transport: createKubeTransport(kc),
        namespaces: undefined,
        clock: new FakeClock(NOW),
        log: recordingLog([]),
      },
      into,
      new AbortController().signal,
    );
    expect(report.complete).toBe(true);
    expect(into.take(notServed, HASH_A)?.accessToken).toBe("token-a-unserved");
    expect(into.take(served, HASH_A)?.accessToken).toBe("token-a-new");
  });

  it("warns and goes on without the tokens when the server refuses the list", async () => {
    // A user with no right to list Secrets, through impersonation.
    const denied = new KubeConfig();
    denied.loadFromOptions({
      clusters: kc.clusters,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
      users: kc.users.map((u) => ({ ...u, impersonateUser: "read-back-nobody" })),
    });
    const warned: Warned[] = [];
    const into = new PersistedTokens();
    const report = await readTokensBack(
      {
        transport: createKubeTransport(denied),
        namespaces: [served],
        clock: new FakeClock(NOW),
        log: recordingLog(warned),
      },
      into,
      new AbortController().signal,
    );
    expect(report).toEqual({ secrets: 0, tokens: 0, complete: false });
    expect(into.size).toBe(0);
    expect(warned).toHaveLength(1);
    expect(warned[0]!.msg).toContain("could not read tokens back");
    expect(String(warned[0]!.fields.err)).toMatch(/forbidden/i);
  });
});
