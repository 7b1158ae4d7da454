/**
 * The Reconciler over its ports: the informers' stores, the token cache and the clock are the real
 * ones; the Kubernetes writes, the credential, the registration directory and the token service are
 * small in-memory implementations of the narrow interfaces the Reconciler takes. The Kubernetes API
 * itself is exercised by the integration tests.
 */
import pino from "pino";
import { beforeEach, describe, expect, it } from "vitest";
import { TokenCache } from "../../../src/cache/index.js";
import { PersistedTokens } from "../../../src/cache/hydration.js";
import { unlimited } from "../../../src/rate/token-bucket.js";
import type { ClientCredential, TokenResponse } from "../../../src/identity/index.js";
import { ThrottledError } from "../../../src/identity/index.js";
import type { Verdict } from "../../../src/controller/registrations/app-ref-checks.js";
import type { UsableRegistration } from "../../../src/controller/registrations/directory.js";
import { USABLE_REGISTRATION } from "./support.js";
import { Reconciler } from "../../../src/controller/reconcile.js";
import { ANNOTATION } from "../../../src/controller/target-secret.js";
import { objectKey } from "../../../src/kube/object-key.js";
import { projectSecret, type SecretProjection } from "../../../src/kube/projections.js";
import { TARGET_SECRET_INDEX, targetSecretKeys } from "../../../src/kube/request-indexes.js";
import { IndexedStore } from "../../../src/kube/store.js";
import { KubeApiError } from "../../../src/kube/transport.js";
import { ReplacedError } from "../../../src/kube/api-client.js";
import type { RawObject } from "../../../src/kube/types.js";
import { secretDataDigest } from "../../../src/controller/target-secret.js";
import { Metrics } from "../../../src/observability/metrics.js";

const T0 = Date.parse("2026-03-01T10:00:00Z");
const HOUR = 3_600_000;
const KEY = "payments/graph";

const REGISTRATION = USABLE_REGISTRATION;

const CREDENTIAL: ClientCredential = {
  kind: "clientSecret",
  fingerprint: "sha256:credential-1",
  formFields: () => Promise.resolve({ client_secret: "not-used-here" }),
};

function request(annotations?: Record<string, string>): RawObject {
  return {
    apiVersion: "apptoken.io/v1alpha1",
    kind: "AppTokenRequest",
    metadata: {
      name: "graph",
      namespace: "payments",
      uid: "uid-graph",
      generation: 1,
      resourceVersion: "1",
      creationTimestamp: new Date(T0 - HOUR).toISOString(),
      ...(annotations ? { annotations } : {}),
    },
    spec: {
      appRef: { kind: "ClusterAppRegistration", name: "saas-app" },
      tenantId: "contoso.onmicrosoft.com",
      scope: "https://graph.microsoft.com/.default",
    },
  };
}

/** The Kubernetes writes the Reconciler makes, kept in memory and recorded in order. */
class KubeWrites {
  readonly secrets = new Map<string, RawObject>();
  readonly log: string[] = [];
  readonly statuses: Record<string, unknown>[] = [];
  private rv = 100;
  /** The next status write lands, but its answer is lost on the way back. */
  loseNextStatusAnswer = false;

  createSecret(body: RawObject): Promise<RawObject> {
    const key = objectKey(body.metadata.namespace, body.metadata.name ?? "");
    this.log.push(`create ${key}`);
    if (this.secrets.has(key)) return Promise.reject(status(409, "AlreadyExists"));
    return Promise.resolve(this.store(key, body));
  }

  replaceSecret(body: RawObject): Promise<RawObject> {
    const key = objectKey(body.metadata.namespace, body.metadata.name ?? "");
    this.log.push(`replace ${key}`);
    const current = this.secrets.get(key);
    if (!current) return Promise.reject(status(404, "NotFound"));
    if (current.metadata.resourceVersion !== body.metadata.resourceVersion)
      return Promise.reject(status(409, "Conflict"));
    return Promise.resolve(this.store(key, body));
  }

  getSecret(namespace: string, name: string): Promise<RawObject> {
    this.log.push(`get ${namespace}/${name}`);
    const s = this.secrets.get(objectKey(namespace, name));
    return s ? Promise.resolve(structuredClone(s)) : Promise.reject(status(404, "NotFound"));
  }

  getSecretMetadata(namespace: string, name: string): Promise<RawObject> {
    this.log.push(`getMetadata ${namespace}/${name}`);
    const s = this.secrets.get(objectKey(namespace, name));
    return s
      ? Promise.resolve({ metadata: structuredClone(s.metadata) })
      : Promise.reject(status(404, "NotFound"));
  }

  /** The uid of the request the API server holds under each name (set when a test applies one). */
  readonly requestUids = new Map<string, string>();

  patchRequestStatus(
    namespace: string,
    name: string,
    uid: string | undefined,
    patch: Record<string, unknown>,
  ): Promise<RawObject> {
    const held = this.requestUids.get(objectKey(namespace, name));
    if (uid !== undefined && held !== undefined && held !== uid) {
      // As KubeApiClient reports a status write whose uid test the API server refused.
      this.log.push(`status refused ${namespace}/${name}`);
      return Promise.reject(new ReplacedError("apptokenrequests", `${namespace}/${name}`, uid));
    }
    this.log.push(`status ${namespace}/${name}`);
    this.statuses.push(patch);
    if (this.loseNextStatusAnswer) {
      this.loseNextStatusAnswer = false;
      return Promise.reject(new Error("socket hang up"));
    }
    return Promise.resolve({ metadata: { namespace, name, resourceVersion: String(++this.rv) } });
  }

  lastRv(): number {
    return this.rv;
  }

  writes(): string[] {
    return this.log.filter((l) => !l.startsWith("get"));
  }

  private store(key: string, body: RawObject): RawObject {
    const stored = {
      ...structuredClone(body),
      metadata: { ...structuredClone(body.metadata), resourceVersion: String(++this.rv) },
    };
    this.secrets.set(key, stored);
    return structuredClone(stored);
  }
}

function status(code: number, reason: string): KubeApiError {
  return new KubeApiError("TEST", "/api", code, { reason, message: reason });
}

function decode(secret: RawObject | undefined, k: string): string | undefined {
  const v = (secret?.data as Record<string, string> | undefined)?.[k];
  return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
}

class Harness {
  now = T0;
  readonly clock = { now: () => this.now };
  readonly requests = new IndexedStore<RawObject>();
  readonly managedSecrets = new IndexedStore<SecretProjection>();
  readonly kube = new KubeWrites();
  readonly events: { reason: string; type: string }[] = [];
  /** What each Event is about when its recorder must not write it twice (EventRecorder's `sameAs`). */
  readonly eventFacts: (string | undefined)[] = [];
  readonly enqueued: string[] = [];
  tokenCalls = 0;
  lookup: { ok: true; registration: UsableRegistration } | { ok: false; verdict: Verdict } = {
    ok: true,
    registration: REGISTRATION,
  };
  answer: () => Promise<TokenResponse> = () => {
    const issuedAt = this.now;
    return Promise.resolve({
      accessToken: `token-${this.tokenCalls}`,
      tokenType: "Bearer",
      issuedAt,
      expiresAt: issuedAt + HOUR,
    });
  };
  readonly cache = new TokenCache({ clock: this.clock, limiter: unlimited, random: () => 0.5 });
  readonly reconciler: Reconciler;

  constructor() {
    this.requests.addIndex(TARGET_SECRET_INDEX, targetSecretKeys);
    this.reconciler = new Reconciler({
      clock: this.clock,
      requests: { getByKey: (k) => this.requests.get(k), indexKeys: (i, v) => this.requests.indexKeys(i, v) },
      managedSecrets: { getByKey: (k) => this.managedSecrets.get(k) },
      credentials: { resolve: () => Promise.resolve(CREDENTIAL) },
      registrations: { lookup: () => this.lookup },
      cache: this.cache,
      tokenClient: {
        requestToken: () => {
          this.tokenCalls++;
          return this.answer();
        },
      },
      api: this.kube,
      events: {
        record: (_target, type, reason, _message, sameAs) => {
          this.events.push({ type, reason });
          this.eventFacts.push(sameAs);
        },
        forget: () => undefined,
      },
      metrics: new Metrics(),
      log: pino({ level: "silent" }),
      authority: { allowInsecureLoopback: false, allowedHosts: new Set(["login.microsoftonline.com:443"]) },
      persisted: new PersistedTokens(),
      enqueue: (k) => this.enqueued.push(k),
    });
  }

  apply(obj: RawObject): void {
    const key = objectKey(obj.metadata.namespace, obj.metadata.name ?? "");
    this.requests.set(key, obj);
    if (obj.metadata.uid) this.kube.requestUids.set(key, obj.metadata.uid);
  }

  /** The Secret informer delivers what the API holds, as its transform projects it. */
  secretsObserved(): void {
    for (const [key, raw] of this.kube.secrets) {
      const projection = projectSecret(raw);
      projection.dataDigest = secretDataDigest(raw.data);
      this.managedSecrets.set(key, projection);
    }
  }

  /** The request informer delivers `obj` carrying the status the API now holds (our last write). */
  statusDelivered(obj: RawObject): RawObject {
    const rv = String(Number(this.kube.lastRv()));
    const patch = this.kube.statuses.at(-1) ?? {};
    const merged = Object.fromEntries(
      Object.entries({ ...(obj as { status?: object }).status, ...patch }).filter(([, v]) => v !== null),
    );
    const delivered = { ...obj, metadata: { ...obj.metadata, resourceVersion: rv }, status: merged };
    this.apply(delivered);
    return delivered;
  }

  reconcile(key = KEY) {
    return this.reconciler.reconcile(key, new AbortController().signal);
  }

  lastStatus(): { conditions?: { type: string; status: string; reason: string }[]; [k: string]: unknown } {
    return (this.kube.statuses.at(-1) ?? {}) as never;
  }

  ready() {
    return this.lastStatus().conditions?.find((c) => c.type === "Ready");
  }
}

let h: Harness;
beforeEach(() => {
  h = new Harness();
});

describe("Reconciler", () => {
  it("creates the Secret for a new request and reports Ready=True with an Issued Event", async () => {
    h.apply(request());
    const result = await h.reconcile();

    expect(h.tokenCalls).toBe(1);
    expect(h.kube.writes()).toEqual([`create ${KEY}`, `status ${KEY}`]);
    const secret = h.kube.secrets.get(KEY);
    expect(decode(secret, "access_token")).toBe("token-1");
    expect(secret?.metadata.ownerReferences?.[0]).toMatchObject({
      kind: "AppTokenRequest",
      uid: "uid-graph",
      controller: true,
    });
    expect(h.ready()).toMatchObject({ status: "True", reason: "TokenIssued" });
    expect(h.lastStatus()).toMatchObject({ secretName: "graph", tokenSource: "IdentityProvider" });
    expect(h.events).toEqual([{ type: "Normal", reason: "Issued" }]);
    // Looked at again when the token is due for refresh: about half its lifetime, never past expiry.
    expect(result?.requeueAfterMs).toBeGreaterThan(0);
    expect(result?.requeueAfterMs).toBeLessThan(HOUR);
  });

  it("records Issued when the status write landed but its answer was lost, and not again on the retry", async () => {
    h.apply(request());
    h.kube.loseNextStatusAnswer = true;
    await expect(h.reconcile()).rejects.toThrow("socket hang up");
    expect(h.events).toEqual([{ type: "Normal", reason: "Issued" }]);
    // The retry reads the status that landed: not the first token any more, and nothing changed.
    h.secretsObserved();
    h.statusDelivered(request());
    await h.reconcile();
    expect(h.events).toEqual([{ type: "Normal", reason: "Issued" }]);
  });

  it("names the same token on an Issued Event recorded again after a failed status write", async () => {
    h.apply(request());
    h.kube.loseNextStatusAnswer = true;
    await expect(h.reconcile()).rejects.toThrow();
    h.kube.statuses.length = 0; // this time the write did not land
    h.secretsObserved();
    await h.reconcile();
    expect(h.events.map((e) => e.reason)).toEqual(["Issued", "Issued"]);
    // The recorder writes one Event per fact: both name the token the Secret holds.
    expect(h.eventFacts[0]).toBeDefined();
    expect(h.eventFacts[1]).toBe(h.eventFacts[0]);
    expect(h.tokenCalls).toBe(1);
  });

  it("writes nothing on a cache hit that changes nothing", async () => {
    h.apply(request());
    await h.reconcile();
    h.secretsObserved();
    const before = h.kube.log.length;
    h.now += 60_000;

    await h.reconcile();

    expect(h.tokenCalls).toBe(1);
    expect(h.kube.log.slice(before)).toEqual([]);
  });

  it("gives the token of a shared cache key to a second request without a call, and fans a new token out", async () => {
    h.apply(request());
    const other = request();
    other.metadata = { ...other.metadata, namespace: "billing", uid: "uid-billing" };
    h.apply(other);
    await h.reconcile();
    expect(h.enqueued).toEqual([]);
    await h.reconcile("billing/graph");

    expect(h.tokenCalls).toBe(1);
    expect(decode(h.kube.secrets.get("billing/graph"), "access_token")).toBe("token-1");
  });

  it("writes only status when a check refuses", async () => {
    h.lookup = {
      ok: false,
      verdict: { reason: "TenantNotAllowed", message: "tenant contoso is not allowed" },
    };
    h.apply(request());

    const result = await h.reconcile();

    expect(h.tokenCalls).toBe(0);
    expect(h.kube.writes()).toEqual([`status ${KEY}`]);
    expect(h.ready()).toMatchObject({ status: "False", reason: "TenantNotAllowed" });
    expect(h.events).toEqual([{ type: "Warning", reason: "TenantNotAllowed" }]);
    expect(result).toEqual({ requeueAfterMs: 5 * 60_000 });
  });

  it("refuses an invalid spec without looking anything up", async () => {
    const bad = request();
    (bad.spec as { scope: string }).scope = "https://graph.microsoft.com/User.Read";
    h.apply(bad);

    const result = await h.reconcile();

    expect(h.tokenCalls).toBe(0);
    expect(h.ready()).toMatchObject({ status: "False", reason: "InvalidSpec" });
    expect(result).toBeUndefined();
  });

  it("never overwrites a Secret of that name it does not own, and never reads its data", async () => {
    h.kube.secrets.set(KEY, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "graph", namespace: "payments", resourceVersion: "7" },
      data: { password: Buffer.from("someone else's").toString("base64") },
    });
    h.apply(request());

    const result = await h.reconcile();

    expect(h.kube.log).toEqual([`create ${KEY}`, `getMetadata ${KEY}`, `status ${KEY}`]);
    expect(h.ready()).toMatchObject({ status: "False", reason: "SecretConflict" });
    expect(decode(h.kube.secrets.get(KEY), "password")).toBe("someone else's");
    expect(result).toEqual({ requeueAfterMs: 5 * 60_000 });
  });

  it("looks again at the time Retry-After names when the token service throttles", async () => {
    const retryAt = T0 + 120_000;
    h.answer = () =>
      Promise.reject(
        new ThrottledError("AADSTS50196: loop detected", { reason: "Throttled", aadsts: "50196", retryAt }),
      );
    h.apply(request());

    const result = await h.reconcile();

    expect(h.tokenCalls).toBe(1);
    expect(h.kube.writes()).toEqual([`status ${KEY}`]);
    expect(h.ready()).toMatchObject({ status: "False", reason: "Throttled" });
    expect(h.lastStatus().throttle).toMatchObject({
      state: "Throttled",
      retryAfter: new Date(retryAt).toISOString(),
    });
    expect(result).toEqual({ requeueAfterMs: 120_000 });

    h.now = retryAt - 1;
    await h.reconcile();
    expect(h.tokenCalls).toBe(1);
  });

  it("fetches a new token for a new force-refresh value, records it on the Secret, and acts on it once", async () => {
    h.apply(request());
    await h.reconcile();
    h.secretsObserved();
    h.now += 60_000;

    h.apply(request({ [ANNOTATION.forceRefresh]: "2026-03-01T10:01:00Z" }));
    await h.reconcile();

    expect(h.tokenCalls).toBe(2);
    const secret = h.kube.secrets.get(KEY);
    expect(decode(secret, "access_token")).toBe("token-2");
    expect(secret?.metadata.annotations?.[ANNOTATION.forceRefresh]).toBe("2026-03-01T10:01:00Z");

    h.secretsObserved();
    h.now += 60_000;
    await h.reconcile();
    expect(h.tokenCalls).toBe(2);
  });

  it("records the recovery Event even when the informer delivers its last status write mid-reconcile", async () => {
    h.apply(request());
    await h.reconcile();
    h.secretsObserved();
    const issued = h.statusDelivered(request());
    h.now += 60_000;
    // A forced refresh is throttled: Ready stays True, reason RefreshThrottled.
    const retryAt = h.now + 8_000;
    h.answer = () =>
      Promise.reject(new ThrottledError("HTTP 429", { reason: "Throttled", aadsts: undefined, retryAt }));
    const forced = { ...request({ [ANNOTATION.forceRefresh]: "now" }), status: issued.status };
    h.apply(forced);
    await h.reconcile();
    expect(h.ready()).toMatchObject({ status: "True", reason: "RefreshThrottled" });
    // The reconcile at retryAt starts from the informer's copy, which does not hold that write yet;
    // the watch delivers it while the token call is in flight.
    h.now = retryAt;
    h.answer = () => {
      h.statusDelivered(forced);
      return Promise.resolve({
        accessToken: "token-recovered",
        tokenType: "Bearer",
        issuedAt: h.now,
        expiresAt: h.now + HOUR,
      });
    };
    h.events.length = 0;
    await h.reconcile();
    expect(h.ready()).toMatchObject({ status: "True", reason: "TokenIssued" });
    expect(h.events).toEqual([{ type: "Normal", reason: "TokenIssued" }]);
  });

  it("coalesces a storm of force-refresh values into one forced call per interval", async () => {
    h.apply(request());
    await h.reconcile();
    h.secretsObserved();
    h.now += 60_000;
    const firstForceAt = h.now;

    // 25 values in 2 s: the first forces a call, the rest wait for the interval's end (30 s).
    let result: Awaited<ReturnType<typeof h.reconcile>> = undefined;
    for (let i = 1; i <= 25; i++) {
      h.apply(request({ [ANNOTATION.forceRefresh]: `v${i}` }));
      result = await h.reconcile();
      h.secretsObserved();
      if (i < 25) h.now += 80;
    }
    expect(h.tokenCalls).toBe(2);
    const waiting = h.kube.secrets.get(KEY);
    expect(decode(waiting, "access_token")).toBe("token-2");
    expect(waiting?.metadata.annotations?.[ANNOTATION.forceRefresh]).toBe("v1");
    const until = firstForceAt + 30_000;
    expect(result).toEqual({ requeueAfterMs: until - h.now });
    expect((h.ready() as { message?: string } | undefined)?.message).toContain(
      `force-refresh "v25" waits for the next forced call at ${new Date(until).toISOString()}`,
    );

    h.now = until - 1;
    await h.reconcile();
    expect(h.tokenCalls).toBe(2);

    // At the interval's end one call satisfies the last value (and every value before it).
    h.now = until;
    await h.reconcile();
    h.secretsObserved();
    expect(h.tokenCalls).toBe(3);
    const handled = h.kube.secrets.get(KEY);
    expect(decode(handled, "access_token")).toBe("token-3");
    expect(handled?.metadata.annotations?.[ANNOTATION.forceRefresh]).toBe("v25");
    h.now += 60_000;
    await h.reconcile();
    expect(h.tokenCalls).toBe(3);
  });

  it("puts back a Secret deleted right after its creation, before any reconcile looked at it", async () => {
    h.apply(request());
    await h.reconcile();
    h.secretsObserved();
    h.kube.secrets.delete(KEY);
    h.managedSecrets.delete(KEY);

    await h.reconcile();

    expect(h.kube.writes().filter((w) => w === `create ${KEY}`)).toHaveLength(2);
    expect(decode(h.kube.secrets.get(KEY), "access_token")).toBe("token-1");
    expect(h.tokenCalls).toBe(1);
  });

  it("never writes a deleted request's status onto a new request that took its name", async () => {
    h.apply(request());
    await h.reconcile();
    h.secretsObserved();
    h.statusDelivered(request());
    const accepted = h.kube.statuses.length;
    // A GitOps replace: the API server holds a new request under the name and the garbage collector
    // deleted the old one's Secret; the Secret watch delivered that, the request watch not yet.
    h.kube.requestUids.set(KEY, "uid-graph-2");
    h.kube.secrets.delete(KEY);
    h.managedSecrets.delete(KEY);

    // Nothing to look at again for the old request: the new one's creation queues the name.
    await expect(h.reconcile()).resolves.toBeUndefined();

    expect(h.kube.log).toContain(`status refused ${KEY}`);
    expect(h.kube.statuses).toHaveLength(accepted);
  });

  it("lets go of a deleted request's cache key only after the grace period", async () => {
    h.apply(request());
    await h.reconcile();
    h.requests.delete(KEY);
    await h.reconcile();

    expect(h.reconciler.releaseForgotten()).toBe(0);
    h.now += 5 * 60_000;
    expect(h.reconciler.releaseForgotten()).toBe(1);
  });

  it("tidies the cache on one timer: a deleted request's key after the grace, idle keys at most hourly", async () => {
    h.apply(request());
    await h.reconcile();
    h.requests.delete(KEY);
    await h.reconcile();
    h.reconciler.tidy();
    expect(h.cache.stats()).toMatchObject({ keys: 1, holders: 1 });
    h.now += 5 * 60_000;
    h.reconciler.tidy();
    expect(h.cache.stats()).toMatchObject({ keys: 0, holders: 0, evictions: 1 });

    // A key nobody holds (the cache seeded from a Secret no request claimed) goes with the hourly sweep.
    const token = { accessToken: "t", tokenType: "Bearer", issuedAt: h.now, expiresAt: h.now + 48 * HOUR };
    h.cache.seed([{ keyId: "orphan", token: { ...token, refreshAt: Number.NaN } }]);
    h.now += 25 * HOUR;
    h.reconciler.tidy();
    expect(h.cache.stats()).toMatchObject({ keys: 0, evictions: 2 });
  });
});
