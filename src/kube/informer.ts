/**
 * An informer: a store kept in step with the API server by one reflector per watched namespace (or
 * one for all namespaces), with add/update/delete handlers, secondary indexes, hasSynced and a
 * periodic resync. What it stores is whatever `transform` returns, so callers keep only the fields
 * they need (see projections.ts); at 10^5 objects that is most of the memory.
 *
 * After a re-list (the watch's resourceVersion expired) the store is diffed against the listed
 * snapshot: new objects are adds, changed ones updates, and objects no longer listed are deletes
 * flagged `finalStateUnknown` (client-go's DeletedFinalStateUnknown): the handler sees the last
 * state the store had, since the real final state was never observed.
 *
 * Why not client-node's makeInformer/ListWatch: see reflector.ts.
 */
import type { Clock } from "../clock.js";
import { systemClock } from "../clock.js";
import { silentLogger, type KubeLogger } from "./log.js";
import { objectKey } from "./object-key.js";
import { Reflector, errorMessage, type ReflectorOptions, type ReflectorSink } from "./reflector.js";
import { collectionPath, type ResourceRef } from "./resources.js";
import { IndexedStore, type IndexFunc } from "./store.js";
import { systemTimers, type CancelTimer, type TimerScheduler } from "./timers.js";
import type { KubeTransport } from "./transport.js";
import type { KubeObject, ObjectMeta, RawObject } from "./types.js";

/**
 * Handlers get the object's store key ("namespace/name") in `ctx.key`: keeping that string, rather
 * than building an equal one, means one copy per object however many maps hold it.
 */
export interface InformerHandlers<T> {
  /** `initialList` is true for objects delivered by the first list (controller-runtime's IsInInitialList). */
  onAdd?(obj: T, ctx: { initialList: boolean; key: string }): void;
  /** `resync` is true for the periodic re-delivery, where `oldObj === newObj`. */
  onUpdate?(oldObj: T, newObj: T, ctx: { resync: boolean; key: string }): void;
  /** `finalStateUnknown`: the delete was inferred from a re-list and `obj` is the last state seen. */
  onDelete?(obj: T, ctx: { finalStateUnknown: boolean; key: string }): void;
}

export interface InformerOptions<T extends KubeObject> {
  /** For logs, e.g. "apptokenrequests". */
  name: string;
  transport: KubeTransport;
  resource: ResourceRef;
  /** Namespaces to watch; undefined or empty = all namespaces (one cluster-wide watch). */
  namespaces?: readonly string[];
  labelSelector?: string;
  fieldSelector?: string;
  /** List and watch PartialObjectMetadata (metadata only) instead of full objects. */
  metadataOnly?: boolean;
  /** Projects each decoded object to what the store keeps. May return its argument. Should not throw. */
  transform: (raw: RawObject) => T;
  /** Re-deliver every stored object as an update this often; 0 (default) disables. */
  resyncPeriodMs?: number;
  pageSize?: number;
  minWatchTimeoutSeconds?: number;
  clock?: Clock;
  timers?: TimerScheduler;
  random?: () => number;
  log?: KubeLogger;
}

/** Objects delivered between event-loop yields during a resync, so a 10^5 resync never blocks. */
const RESYNC_CHUNK = 1000;

export class Informer<T extends KubeObject> {
  private readonly store = new IndexedStore<T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private readonly log: KubeLogger;
  private readonly timers: TimerScheduler;
  private readonly scopes: (string | undefined)[];
  private readonly synced: boolean[];
  private syncWaiters: (() => void)[] = [];
  private abort: AbortController | undefined;
  private runs: Promise<void>[] = [];
  private cancelResync: CancelTimer | undefined;
  private readonly reflectors: Reflector[] = [];

  constructor(private readonly options: InformerOptions<T>) {
    this.log = options.log ?? silentLogger;
    this.timers = options.timers ?? systemTimers;
    const ns = options.namespaces ?? [];
    this.scopes = ns.length === 0 ? [undefined] : [...new Set(ns)];
    this.synced = this.scopes.map(() => false);
  }

  /** Registers handlers. Registered after objects arrived, it is first called with an add for each. */
  addEventHandler(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
    if (handlers.onAdd)
      for (const [key, obj] of this.store.entries())
        this.call(() => handlers.onAdd!(obj, { initialList: true, key }));
  }

  /** Adds a secondary index; query it with `byIndex`/`indexKeys`. */
  addIndex(name: string, fn: IndexFunc<T>): void {
    this.store.addIndex(name, fn);
  }

  /** Starts listing and watching in the background. */
  start(): void {
    if (this.abort) return;
    this.abort = new AbortController();
    const o = this.options;
    this.scopes.forEach((namespace, i) => {
      const reflectorOptions: ReflectorOptions = {
        name: `${o.name}${namespace ? `/${namespace}` : ""}`,
        transport: o.transport,
        path: collectionPath(o.resource, namespace),
        ...(o.labelSelector !== undefined && { labelSelector: o.labelSelector }),
        ...(o.fieldSelector !== undefined && { fieldSelector: o.fieldSelector }),
        metadataOnly: o.metadataOnly ?? false,
        ...(o.pageSize !== undefined && { pageSize: o.pageSize }),
        ...(o.minWatchTimeoutSeconds !== undefined && { minWatchTimeoutSeconds: o.minWatchTimeoutSeconds }),
        clock: o.clock ?? systemClock,
        timers: this.timers,
        ...(o.random && { random: o.random }),
        log: this.log,
      };
      const reflector = new Reflector(reflectorOptions, this.sinkFor(namespace, i));
      this.reflectors.push(reflector);
      this.runs.push(reflector.run(this.abort!.signal));
    });
    this.armResync();
  }

  /** Stops every watch; resolves when the reflectors have returned. The store keeps its contents. */
  async stop(): Promise<void> {
    this.abort?.abort();
    this.cancelResync?.();
    this.cancelResync = undefined;
    await Promise.all(this.runs);
    this.runs = [];
  }

  /** True once every namespace's first list has been applied. */
  hasSynced(): boolean {
    return this.synced.every(Boolean);
  }

  /** Resolves true when synced, false if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.hasSynced()) return Promise.resolve(true);
    // An abort listener added after the abort never fires: answer now, or wait forever.
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = (): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      };
      const onAbort = (): void => {
        this.syncWaiters = this.syncWaiters.filter((w) => w !== waiter);
        resolve(false);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.syncWaiters.push(waiter);
    });
  }

  get(namespace: string, name: string): T | undefined {
    return this.store.get(objectKey(namespace, name));
  }

  getByKey(key: string): T | undefined {
    return this.store.get(key);
  }

  get size(): number {
    return this.store.size;
  }

  keys(): IterableIterator<string> {
    return this.store.keys();
  }

  /** Every stored object, or those of one namespace. Copies into an array: avoid in hot paths at 10^5. */
  list(namespace?: string): T[] {
    if (namespace === undefined) return [...this.store.values()];
    const out: T[] = [];
    for (const k of this.store.keysInNamespace(namespace)) {
      const obj = this.store.get(k);
      if (obj) out.push(obj);
    }
    return out;
  }

  indexKeys(indexName: string, value: string): readonly string[] {
    return this.store.indexKeys(indexName, value);
  }

  byIndex(indexName: string, value: string): T[] {
    const out: T[] = [];
    for (const k of this.store.indexKeys(indexName, value)) {
      const obj = this.store.get(k);
      if (obj) out.push(obj);
    }
    return out;
  }

  /** The resourceVersion each reflector resumes from (diagnostics). */
  resourceVersions(): string[] {
    return this.reflectors.map((r) => r.lastSyncResourceVersion());
  }

  private sinkFor(namespace: string | undefined, slot: number): ReflectorSink {
    // Keys of the objects listed so far in the current list; undefined between lists.
    let seen: Set<string> | undefined;
    return {
      beginList: () => {
        seen = new Set();
      },
      listPage: (items) => {
        const initialList = !this.synced[slot];
        for (const raw of items) {
          const key = objectKey(raw.metadata.namespace, raw.metadata.name ?? "");
          // Marked seen even if the transform fails, so that a bad object is not reported deleted.
          seen?.add(key);
          const obj = this.transform(raw);
          if (obj) this.upsert(key, obj, initialList);
        }
      },
      endList: () => {
        const gone: string[] = [];
        const keys = namespace === undefined ? this.store.keys() : this.store.keysInNamespace(namespace);
        for (const k of keys) if (!seen?.has(k)) gone.push(k);
        seen = undefined;
        for (const k of gone) this.remove(k, undefined, true);
        if (!this.synced[slot]) {
          this.synced[slot] = true;
          if (this.hasSynced()) {
            const waiters = this.syncWaiters;
            this.syncWaiters = [];
            for (const w of waiters) w();
          }
        }
      },
      event: (type, raw) => {
        const key = objectKey(raw.metadata.namespace, raw.metadata.name ?? "");
        const obj = this.transform(raw);
        if (!obj) return;
        if (type === "DELETED") this.remove(key, obj, false);
        else this.upsert(key, obj, false);
      },
    };
  }

  private transform(raw: RawObject): T | undefined {
    try {
      return this.options.transform(raw);
    } catch (err) {
      this.log.error(
        {
          informer: this.options.name,
          object: objectKey(raw.metadata.namespace, raw.metadata.name ?? ""),
          err: errorMessage(err),
        },
        "transform failed; object skipped",
      );
      return undefined;
    }
  }

  private upsert(key: string, obj: T, initialList: boolean): void {
    const old = this.store.get(key);
    const rv = obj.metadata.resourceVersion;
    // A re-list re-delivers unchanged objects: same resourceVersion means no event.
    if (old && rv !== undefined && old.metadata.resourceVersion === rv) return;
    if (old) keepIdentityStrings(old.metadata, obj.metadata);
    this.store.set(key, obj);
    if (!old) {
      for (const h of this.handlers) if (h.onAdd) this.call(() => h.onAdd!(obj, { initialList, key }));
    } else {
      for (const h of this.handlers)
        if (h.onUpdate) this.call(() => h.onUpdate!(old, obj, { resync: false, key }));
    }
  }

  private remove(key: string, finalObj: T | undefined, finalStateUnknown: boolean): void {
    const old = this.store.delete(key);
    if (!old) return;
    const obj = finalObj ?? old;
    for (const h of this.handlers)
      if (h.onDelete) this.call(() => h.onDelete!(obj, { finalStateUnknown, key }));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ informer: this.options.name, err: errorMessage(err) }, "event handler threw");
    }
  }

  private armResync(): void {
    const period = this.options.resyncPeriodMs ?? 0;
    if (!(period > 0) || this.abort?.signal.aborted) return;
    this.cancelResync = this.timers.schedule(() => {
      void this.resync().finally(() => this.armResync());
    }, period);
  }

  private async resync(): Promise<void> {
    if (!this.hasSynced()) return;
    const keys = [...this.store.keys()];
    for (let i = 0; i < keys.length; i++) {
      if (this.abort?.signal.aborted) return;
      if (i > 0 && i % RESYNC_CHUNK === 0) await new Promise((r) => setImmediate(r));
      const key = keys[i]!;
      const obj = this.store.get(key);
      if (!obj) continue;
      for (const h of this.handlers)
        if (h.onUpdate) this.call(() => h.onUpdate!(obj, obj, { resync: true, key }));
    }
  }
}

/**
 * An update is decoded into new strings; where the name, uid and creation time are unchanged, the
 * new object takes the old one's. Whatever kept the old ones (owner references in other caches,
 * per-request memos) then shares a single copy for the object's whole life, instead of holding on
 * to one more copy from every version it saw.
 */
function keepIdentityStrings(old: ObjectMeta, next: ObjectMeta): void {
  // Only fields both have: assigning even `undefined` to an absent one would add a property (and,
  // past the object's in-object slots, a 40-byte out-of-object property array).
  if (old.name !== undefined && next.name === old.name) next.name = old.name;
  if (old.uid !== undefined && next.uid === old.uid) next.uid = old.uid;
  if (old.creationTimestamp !== undefined && next.creationTimestamp === old.creationTimestamp)
    next.creationTimestamp = old.creationTimestamp;
}
