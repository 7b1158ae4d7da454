/**
 * The harness's own Kubernetes client: the operator's KubeTransport (same HTTP stack, keep-alive
 * connections, plain JSON), plus a bounded-concurrency pool for creating 10^4–10^5 objects fast.
 */
import { KubeConfig } from "@kubernetes/client-node";
import { APP_TOKEN_REQUESTS, SECRETS, collectionPath } from "../../src/kube/resources.js";
import { createKubeTransport, isConflict, type KubeTransport } from "../../src/kube/transport.js";
import type { RawObject } from "../../src/kube/types.js";

export function kubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export function harnessTransport(kc: KubeConfig): KubeTransport {
  return createKubeTransport(kc, { userAgent: "apptoken-bench", defaultTimeoutMs: 120_000 });
}

/** Runs `work(i)` for i in [0, n) with at most `concurrency` in flight; resolves with each one's end time. */
export async function pool(
  n: number,
  concurrency: number,
  work: (i: number) => Promise<void>,
): Promise<Float64Array> {
  const doneAt = new Float64Array(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) {
      await work(i);
      doneAt[i] = Date.now();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return doneAt;
}

/** Resolves once `done(now)` holds (checked twice a second); rejects after `timeoutMs`. */
export async function pollUntil(
  done: (now: number) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done(Date.now())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Retries transient failures (the API server under load may time out or answer 429/5xx). */
export async function withRetry<T>(what: string, fn: () => Promise<T>, attempts = 8): Promise<T> {
  let delay = 200;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      const retriable = code === undefined || code === 429 || code >= 500;
      if (!retriable || i >= attempts) throw new Error(`${what}: ${(e as Error).message}`, { cause: e });
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(5_000, delay * 2);
    }
  }
}

export async function createNamespace(t: KubeTransport, name: string): Promise<void> {
  await t
    .request({
      method: "POST",
      path: "/api/v1/namespaces",
      body: {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name, labels: { "apptoken.io/bench": "true" } },
      },
    })
    .catch((e: unknown) => {
      if (!isConflict(e)) throw e;
    });
}

export async function createSecret(
  t: KubeTransport,
  namespace: string,
  name: string,
  values: Record<string, string>,
): Promise<void> {
  const data = Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
  );
  await t
    .request({
      method: "POST",
      path: collectionPath(SECRETS, namespace),
      body: { apiVersion: "v1", kind: "Secret", metadata: { name, namespace }, type: "Opaque", data },
    })
    .catch((e: unknown) => {
      if (!isConflict(e)) throw e;
    });
}

export async function createRequest(
  t: KubeTransport,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<RawObject> {
  return withRetry(`create ${namespace}/${name}`, () =>
    t.request<RawObject>({
      method: "POST",
      path: collectionPath(APP_TOKEN_REQUESTS, namespace),
      body: {
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppTokenRequest",
        metadata: { name, namespace },
        spec,
      },
    }),
  ).catch(async (e: unknown) => {
    // A retried create whose first attempt landed: read it back.
    if (!isConflict((e as { cause?: unknown }).cause)) throw e;
    return t.request<RawObject>({ path: `${collectionPath(APP_TOKEN_REQUESTS, namespace)}/${name}` });
  });
}

/**
 * The store's current revision, from a consistent one-item list. The local control plane stores in
 * etcd, whose resourceVersions are revisions: comparable across objects, so a write with a higher
 * one happened later. (Opaque to clients in general; fine for this harness's own control plane.)
 */
export async function currentRevision(t: KubeTransport): Promise<number> {
  const list = await t.request<{ metadata?: { resourceVersion?: string } }>({
    path: "/api/v1/namespaces",
    query: { limit: 1 },
  });
  return Number(list.metadata?.resourceVersion);
}

/** Creates a cluster-scoped object (a ClusterAppRegistration) by its collection path. */
export async function createClusterObject(
  t: KubeTransport,
  path: string,
  body: Record<string, unknown>,
): Promise<void> {
  await t.request({ method: "POST", path, body }).catch((e: unknown) => {
    if (!isConflict(e)) throw e;
  });
}
