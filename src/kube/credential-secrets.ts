/**
 * Credential Secrets (client secrets, certificates) are read when a reconcile needs one and cached
 * by resourceVersion; the cache is kept honest, and referencing requests are re-queued, by one
 * metadata-only watch over the Secrets the operator does not manage.
 *
 * Why a metadata watch and not something else:
 * - A field or label selector cannot select a list of names, and users' Secrets carry no label we
 *   could ask for; a per-Secret watch would be 10^5 connections.
 * - Caching every Secret with its data (what an informer on all Secrets does) is the memory
 *   blow-up that sinks similar operators. PartialObjectMetadata events carry no data, and this
 *   module keeps no store for them at all: only the credentials actually read are cached.
 * - The selector `managed-by!=apptoken-operator` keeps the operator's own 10^5 target Secrets,
 *   rewritten at every refresh, out of this stream.
 * A change to any such Secret invalidates its cache entry and calls `onChange(namespace, name)`;
 * the controller looks the Secret up in CREDENTIAL_SECRET_INDEX and re-queues those requests.
 * After a re-list (410), cached entries are compared with the listed resourceVersions, so a
 * rotation that happened while disconnected is still noticed. Absent Secrets are cached too
 * (negative entries), so that a Secret created during a disconnect is noticed the same way.
 */
import type { Clock } from "../clock.js";
import { silentLogger, type KubeLogger } from "./log.js";
import { objectKey, splitObjectKey } from "./object-key.js";
import { Reflector, errorMessage, type ReflectorSink } from "./reflector.js";
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRETS, collectionPath, objectPath } from "./resources.js";
import type { TimerScheduler } from "./timers.js";
import { isNotFound, type KubeTransport } from "./transport.js";
import type { RawObject } from "./types.js";

export interface CredentialSecret {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  type: string | undefined;
  /** Values base64-encoded, as the API returns them. */
  data: Readonly<Record<string, string>>;
}

export interface CredentialSecretsOptions {
  transport: KubeTransport;
  /** Namespaces to watch; undefined or empty = all. */
  namespaces?: readonly string[];
  /**
   * A Secret that may be a credential changed (created, updated, deleted), or a re-list found a
   * cached one changed. Called for every non-managed Secret event: keep it cheap (an index lookup).
   */
  onChange: (namespace: string, name: string) => void;
  log?: KubeLogger;
  clock?: Clock;
  timers?: TimerScheduler;
  random?: () => number;
  minWatchTimeoutSeconds?: number;
  pageSize?: number;
}

interface CacheEntry {
  /** undefined: the Secret did not exist when read. */
  secret: CredentialSecret | undefined;
}

interface Flight {
  promise: Promise<CredentialSecret | undefined>;
  /** Set when the watch reported a change during the read: the answer is not cached. */
  invalidated: boolean;
}

export class CredentialSecrets {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Flight>();
  private readonly log: KubeLogger;
  private readonly scopes: (string | undefined)[];
  private readonly synced: boolean[];
  private abort: AbortController | undefined;
  private runs: Promise<void>[] = [];

  constructor(private readonly o: CredentialSecretsOptions) {
    this.log = o.log ?? silentLogger;
    const ns = o.namespaces ?? [];
    this.scopes = ns.length === 0 ? [undefined] : [...new Set(ns)];
    this.synced = this.scopes.map(() => false);
  }

  /** Starts the metadata watch. Until it runs, reads are not cached (nothing could invalidate them). */
  start(): void {
    if (this.abort) return;
    this.abort = new AbortController();
    this.scopes.forEach((namespace, i) => {
      const reflector = new Reflector(
        {
          name: `credential-secrets${namespace ? `/${namespace}` : ""}`,
          transport: this.o.transport,
          path: collectionPath(SECRETS, namespace),
          labelSelector: `${MANAGED_BY_LABEL}!=${MANAGED_BY_VALUE}`,
          metadataOnly: true,
          log: this.log,
          ...(this.o.pageSize !== undefined && { pageSize: this.o.pageSize }),
          ...(this.o.minWatchTimeoutSeconds !== undefined && {
            minWatchTimeoutSeconds: this.o.minWatchTimeoutSeconds,
          }),
          ...(this.o.clock && { clock: this.o.clock }),
          ...(this.o.timers && { timers: this.o.timers }),
          ...(this.o.random && { random: this.o.random }),
        },
        this.sinkFor(namespace, i),
      );
      this.runs.push(reflector.run(this.abort!.signal));
    });
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    await Promise.all(this.runs);
    this.runs = [];
    this.cache.clear();
  }

  hasSynced(): boolean {
    return this.synced.every(Boolean);
  }

  /** Cached credentials (positive and negative entries). */
  get size(): number {
    return this.cache.size;
  }

  /**
   * The Secret `namespace/name`, or undefined if it does not exist. Served from the cache while
   * the watch reports no change; concurrent reads of one Secret share one GET. Rejects (and caches
   * nothing) on API errors other than 404.
   */
  get(namespace: string, name: string): Promise<CredentialSecret | undefined> {
    const key = objectKey(namespace, name);
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit.secret);
    const running = this.inflight.get(key);
    if (running) return running.promise;
    const flight: Flight = { promise: Promise.resolve(undefined), invalidated: false };
    flight.promise = this.read(namespace, name)
      .then((secret) => {
        if (!flight.invalidated && this.abort && !this.abort.signal.aborted) this.cache.set(key, { secret });
        return secret;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, flight);
    return flight.promise;
  }

  /**
   * Drops the cached credentials `keep` says no (by "namespace/name"), e.g. those no registration
   * names any more: their data is a secret, and holds memory. Returns how many were dropped.
   */
  retain(keep: (key: string) => boolean): number {
    let dropped = 0;
    for (const key of [...this.cache.keys()]) {
      if (keep(key)) continue;
      this.cache.delete(key);
      dropped++;
    }
    return dropped;
  }

  private async read(namespace: string, name: string): Promise<CredentialSecret | undefined> {
    let raw: RawObject;
    try {
      raw = await this.o.transport.request<RawObject>({ path: objectPath(SECRETS, namespace, name) });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new Error(`reading credential Secret ${namespace}/${name}: ${errorMessage(err)}`, { cause: err });
    }
    const data = raw.data;
    return {
      namespace,
      name,
      uid: raw.metadata.uid ?? "",
      resourceVersion: raw.metadata.resourceVersion ?? "",
      type: typeof raw.type === "string" ? raw.type : undefined,
      data: typeof data === "object" && data !== null ? (data as Record<string, string>) : {},
    };
  }

  /** Forgets what we knew about `key` and tells the controller. */
  private changed(key: string, cacheStillCurrent = false): void {
    if (!cacheStillCurrent) {
      this.cache.delete(key);
      const flight = this.inflight.get(key);
      if (flight) flight.invalidated = true;
    }
    const { namespace, name } = splitObjectKey(key);
    try {
      this.o.onChange(namespace, name);
    } catch (err) {
      this.log.error({ secret: key, err: errorMessage(err) }, "credential onChange handler threw");
    }
  }

  private sinkFor(namespace: string | undefined, slot: number): ReflectorSink {
    // Cached keys seen in the current list.
    let seen: Set<string> | undefined;
    return {
      beginList: () => {
        seen = new Set();
      },
      listPage: (items) => {
        for (const raw of items) {
          const key = objectKey(raw.metadata.namespace, raw.metadata.name ?? "");
          const entry = this.cache.get(key);
          if (entry) {
            seen?.add(key);
            if (entry.secret?.resourceVersion !== raw.metadata.resourceVersion) this.changed(key);
          } else if (this.inflight.has(key)) {
            this.changed(key);
          }
        }
      },
      endList: () => {
        const gone: string[] = [];
        for (const [key, entry] of this.cache) {
          if (!entry.secret || seen?.has(key)) continue;
          if (namespace === undefined || entry.secret.namespace === namespace) gone.push(key);
        }
        seen = undefined;
        for (const key of gone) this.changed(key);
        this.synced[slot] = true;
      },
      event: (type, raw) => {
        const key = objectKey(raw.metadata.namespace, raw.metadata.name ?? "");
        const cached = this.cache.get(key)?.secret;
        // Our own GET may already hold this very version: keep it, but still notify.
        const current =
          type !== "DELETED" &&
          cached !== undefined &&
          cached.resourceVersion === raw.metadata.resourceVersion;
        this.changed(key, current);
      },
    };
  }
}
