import type { KubeObject } from "./types.js";

/** Index values for one object, e.g. the "ns/name" of the Secret a request reads its credential from. */
/** `key` is the store's key for `obj`: returning it (not an equal new string) shares one copy. */
export type IndexFunc<T> = (obj: T, key: string) => readonly string[];

/**
 * The informer's cache: objects by "namespace/name", a per-namespace key set (re-lists diff one
 * namespace at a time), and named secondary indexes maintained on every write.
 */
export class IndexedStore<T extends KubeObject> {
  private readonly objects = new Map<string, T>();
  private readonly byNamespace = new Map<string, Set<string>>();
  private readonly indexFuncs = new Map<string, IndexFunc<T>>();
  /**
   * Index name -> value -> the keys with that value: one key as a plain string (the usual case, e.g.
   * each request's own target Secret), a Set only from the second key on. A Set per value would
   * cost ~200 bytes per object at 10^5 objects for an index whose values are nearly all unique.
   */
  private readonly indices = new Map<string, Map<string, string | Set<string>>>();

  get size(): number {
    return this.objects.size;
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  keys(): IterableIterator<string> {
    return this.objects.keys();
  }

  values(): IterableIterator<T> {
    return this.objects.values();
  }

  entries(): IterableIterator<[string, T]> {
    return this.objects.entries();
  }

  keysInNamespace(namespace: string): ReadonlySet<string> {
    return this.byNamespace.get(namespace) ?? EMPTY;
  }

  addIndex(name: string, fn: IndexFunc<T>): void {
    if (this.indexFuncs.has(name)) throw new Error(`index ${name} already exists`);
    this.indexFuncs.set(name, fn);
    const index = new Map<string, string | Set<string>>();
    this.indices.set(name, index);
    for (const [key, obj] of this.objects) for (const v of fn(obj, key)) addToIndex(index, v, key);
  }

  /** Keys of the objects whose index `name` yields `value`. */
  indexKeys(name: string, value: string): readonly string[] {
    const index = this.indices.get(name);
    if (!index) throw new Error(`no index named ${name}`);
    const keys = index.get(value);
    return keys === undefined ? [] : typeof keys === "string" ? [keys] : [...keys];
  }

  set(key: string, obj: T): T | undefined {
    const old = this.objects.get(key);
    this.objects.set(key, obj);
    if (!old) addTo(this.byNamespace, obj.metadata.namespace ?? "", key);
    for (const [name, fn] of this.indexFuncs) {
      const index = this.indices.get(name)!;
      const before = old ? fn(old, key) : NONE;
      const after = fn(obj, key);
      if (sameValues(before, after)) continue;
      for (const v of before) removeFromIndex(index, v, key);
      for (const v of after) addToIndex(index, v, key);
    }
    return old;
  }

  delete(key: string): T | undefined {
    const old = this.objects.get(key);
    if (!old) return undefined;
    this.objects.delete(key);
    removeFrom(this.byNamespace, old.metadata.namespace ?? "", key);
    for (const [name, fn] of this.indexFuncs) {
      const index = this.indices.get(name)!;
      for (const v of fn(old, key)) removeFromIndex(index, v, key);
    }
    return old;
  }
}

const EMPTY: ReadonlySet<string> = new Set();
const NONE: readonly string[] = [];

function addTo(m: Map<string, Set<string>>, v: string, key: string): void {
  let s = m.get(v);
  if (!s) m.set(v, (s = new Set()));
  s.add(key);
}

function removeFrom(m: Map<string, Set<string>>, v: string, key: string): void {
  const s = m.get(v);
  if (!s) return;
  s.delete(key);
  if (s.size === 0) m.delete(v);
}

function addToIndex(m: Map<string, string | Set<string>>, v: string, key: string): void {
  const have = m.get(v);
  if (have === undefined) m.set(v, key);
  else if (typeof have !== "string") have.add(key);
  else if (have !== key) m.set(v, new Set([have, key]));
}

function removeFromIndex(m: Map<string, string | Set<string>>, v: string, key: string): void {
  const have = m.get(v);
  if (have === undefined) return;
  if (typeof have === "string") {
    if (have === key) m.delete(v);
    return;
  }
  have.delete(key);
  if (have.size === 1) m.set(v, have.values().next().value!);
  else if (have.size === 0) m.delete(v);
}

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
