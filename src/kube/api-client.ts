/**
 * The writes (and the few direct reads) the controller makes, paced by one client-side token
 * bucket (--kube-api-qps / --kube-api-burst, as client-go's rest.Config QPS/Burst) and counted by
 * verb and resource for metrics and the benchmarks. Watches are not paced, as in client-go.
 */
import { performance } from "node:perf_hooks";
import type { Clock } from "../clock.js";
import { TokenBucket } from "../rate/token-bucket.js";
import {
  objectPath,
  collectionPath,
  APP_REGISTRATIONS,
  APP_TOKEN_REQUESTS,
  CLUSTER_APP_REGISTRATIONS,
  SECRETS,
} from "./resources.js";
import { sleep, systemTimers, type TimerScheduler } from "./timers.js";
import { KubeApiError, isNotFound, type KubeRequest, type KubeTransport } from "./transport.js";
import type { RawObject } from "./types.js";

export interface KubeApiClientOptions {
  transport: KubeTransport;
  clock: Clock;
  qps: number;
  burst: number;
  timers?: TimerScheduler;
  onWrite?: (verb: string, resource: string) => void;
  /** Each request's latency once answered (or failed), rate-limit wait excluded. */
  onAnswered?: (verb: string, resource: string, seconds: number) => void;
  /**
   * Asked right before each write is sent (after any rate-limit wait); false refuses the write
   * with WriteRefusedError. With leader election: whether the lease is still surely held.
   */
  mayWrite?: () => boolean;
}

/**
 * A status write for an object that is gone or was recreated under its name (its uid differs):
 * nothing to write; the new object's own reconcile writes its status.
 */
export class ReplacedError extends Error {
  constructor(resource: string, path: string, uid: string) {
    super(`${resource} at ${path} is no longer uid ${uid}: it was deleted, and maybe recreated`);
    this.name = "ReplacedError";
  }
}

/** A write refused before it was sent, because this replica may not write now (not the leader). */
export class WriteRefusedError extends Error {
  constructor(verb: string, resource: string) {
    super(`${verb} ${resource} refused: this replica does not hold the leader lease`);
    this.name = "WriteRefusedError";
  }
}

export class KubeApiClient {
  private readonly bucket: TokenBucket;
  private readonly timers: TimerScheduler;

  constructor(private readonly o: KubeApiClientOptions) {
    this.bucket = new TokenBucket({ ratePerSecond: o.qps, burst: o.burst, clock: o.clock });
    this.timers = o.timers ?? systemTimers;
  }

  private async paced<T>(req: KubeRequest, verb: string, resource: string): Promise<T> {
    const at = this.bucket.reserve();
    const wait = at - this.o.clock.now();
    if (wait > 0) await sleep(this.timers, wait, req.signal);
    if (verb !== "get" && verb !== "list") {
      if (this.o.mayWrite && !this.o.mayWrite()) throw new WriteRefusedError(verb, resource);
      this.o.onWrite?.(verb, resource);
    }
    const { onAnswered } = this.o;
    if (onAnswered === undefined) return this.o.transport.request<T>(req);
    const sent = performance.now();
    try {
      return await this.o.transport.request<T>(req);
    } finally {
      onAnswered(verb, resource, (performance.now() - sent) / 1000);
    }
  }

  getSecret(namespace: string, name: string, signal?: AbortSignal): Promise<RawObject> {
    return this.paced({ path: objectPath(SECRETS, namespace, name), signal }, "get", "secrets");
  }

  /**
   * A Secret's metadata only (PartialObjectMetadata): enough to tell whose it is without the
   * operator ever receiving the data of a Secret that is not its own.
   */
  getSecretMetadata(namespace: string, name: string, signal?: AbortSignal): Promise<RawObject> {
    return this.paced(
      { path: objectPath(SECRETS, namespace, name), accept: METADATA_OBJECT_ACCEPT, signal },
      "get",
      "secrets",
    );
  }

  createSecret(body: RawObject, signal?: AbortSignal): Promise<RawObject> {
    const ns = body.metadata.namespace ?? "";
    return this.paced(
      {
        method: "POST",
        path: collectionPath(SECRETS, ns),
        body,
        query: { fieldManager: FIELD_MANAGER },
        signal,
      },
      "create",
      "secrets",
    );
  }

  /** PUT with metadata.resourceVersion set: optimistic concurrency, 409 on a lost race. */
  replaceSecret(body: RawObject, signal?: AbortSignal): Promise<RawObject> {
    const { namespace = "", name = "" } = body.metadata;
    return this.paced(
      {
        method: "PUT",
        path: objectPath(SECRETS, namespace, name),
        body,
        query: { fieldManager: FIELD_MANAGER },
        signal,
      },
      "update",
      "secrets",
    );
  }

  /**
   * The status subresource of request `uid` (see statusWrite), in merge-patch form: `null` members
   * remove fields.
   */
  patchRequestStatus(
    namespace: string,
    name: string,
    uid: string | undefined,
    status: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<RawObject> {
    return this.writeStatus(
      objectPath(APP_TOKEN_REQUESTS, namespace, name),
      "apptokenrequests",
      uid,
      status,
      signal,
    );
  }

  /**
   * The status of an AppRegistration, or of a ClusterAppRegistration when `namespace` is
   * undefined, as patchRequestStatus writes it.
   */
  patchRegistrationStatus(
    namespace: string | undefined,
    name: string,
    uid: string | undefined,
    status: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<RawObject> {
    const resource = namespace === undefined ? CLUSTER_APP_REGISTRATIONS : APP_REGISTRATIONS;
    const base =
      namespace === undefined
        ? `${collectionPath(resource)}/${encodeURIComponent(name)}`
        : objectPath(resource, namespace, name);
    return this.writeStatus(base, resource.plural, uid, status, signal);
  }

  private async writeStatus(
    path: string,
    plural: string,
    uid: string | undefined,
    status: Record<string, unknown>,
    signal: AbortSignal | undefined,
  ): Promise<RawObject> {
    const write = statusWrite(uid, status);
    try {
      return await this.paced(
        { method: "PATCH", path: `${path}/status`, ...write, query: { fieldManager: FIELD_MANAGER }, signal },
        "patch",
        `${plural}/status`,
      );
    } catch (e) {
      // A failed `test` and a status the schema refuses both answer 422 Invalid: one GET tells them
      // apart, and only on this rare path.
      if (uid === undefined || !(e instanceof KubeApiError) || e.statusCode !== 422) throw e;
      const now = await this.paced<RawObject>({ path, signal }, "get", plural).catch((g: unknown) => {
        if (isNotFound(g)) return undefined;
        throw e;
      });
      if (now?.metadata.uid !== uid) throw new ReplacedError(plural, path, uid);
      throw e;
    }
  }

  /** TokenRequest API: a short-lived service-account token for one audience. */
  async createServiceAccountToken(
    namespace: string,
    serviceAccount: string,
    audience: string,
    expirationSeconds: number,
    signal?: AbortSignal,
  ): Promise<{ token: string; expiresAt: number }> {
    const res = await this.paced<{ status?: { token?: string; expirationTimestamp?: string } }>(
      {
        method: "POST",
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { audiences: [audience], expirationSeconds },
        },
        signal,
      },
      "create",
      "serviceaccounts/token",
    );
    const token = res.status?.token;
    if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
    const expiresAt =
      Date.parse(res.status?.expirationTimestamp ?? "") || this.o.clock.now() + expirationSeconds * 1000;
    return { token, expiresAt };
  }

  createEvent(namespace: string, event: RawObject, signal?: AbortSignal): Promise<RawObject> {
    return this.paced(
      {
        method: "POST",
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`,
        body: event,
        signal,
      },
      "create",
      "events",
    );
  }
}

export const FIELD_MANAGER = "apptoken-operator";

const METADATA_OBJECT_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/**
 * A status write for the object with this uid only. Writes go by name, and the informer a reconcile
 * read may still hold an object that was deleted and recreated under that name (a GitOps replace;
 * the two watches deliver in no agreed order). A merge patch cannot say "only this uid" (the status
 * subresource drops metadata from it), so with a uid the write is a JSON patch whose `test` makes
 * the API server refuse it instead of painting the old object's status on the new one. The status
 * is ours alone, so the patch replaces it whole: the merge form's `null` members (removals) are left
 * out.
 */
function statusWrite(
  uid: string | undefined,
  status: Record<string, unknown>,
): { body: unknown; contentType: string } {
  if (uid === undefined) return { body: { status }, contentType: "application/merge-patch+json" };
  return {
    body: [
      { op: "test", path: "/metadata/uid", value: uid },
      { op: "add", path: "/status", value: withoutNulls(status) },
    ],
    contentType: "application/json-patch+json",
  };
}

function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = withoutNulls(v);
  return out;
}
