/**
 * IndexedStore: the informer's cache. Its secondary indexes keep a value's single key as a plain
 * string and switch to a Set only from the second key on (and back when it shrinks), so these tests
 * walk values through zero, one, two and more keys, and compare every index with one recomputed
 * from scratch after random writes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IndexedStore } from "../../../src/kube/store.js";
import type { KubeObject } from "../../../src/kube/types.js";

/** An object that names the Secrets it reads, as a request names its credential Secret. */
interface Reader extends KubeObject {
  metadata: { namespace: string; name: string };
  reads: string[];
}

function reader(key: string, ...reads: string[]): Reader {
  const [namespace, name] = key.split("/") as [string, string];
  return { metadata: { namespace, name }, reads };
}

const byReads = (o: Reader): readonly string[] => o.reads;

function storeWithReadsIndex(): IndexedStore<Reader> {
  const store = new IndexedStore<Reader>();
  store.addIndex("reads", byReads);
  return store;
}

const sorted = (keys: Iterable<string>): string[] => [...keys].sort();

describe("IndexedStore", () => {
  it("follows a value from no key to one, two, back to one, and to none", () => {
    const store = storeWithReadsIndex();
    expect(store.indexKeys("reads", "payments/app-cred")).toEqual([]);

    store.set("payments/a", reader("payments/a", "payments/app-cred"));
    expect(store.indexKeys("reads", "payments/app-cred")).toEqual(["payments/a"]);

    store.set("payments/b", reader("payments/b", "payments/app-cred"));
    expect(sorted(store.indexKeys("reads", "payments/app-cred"))).toEqual(["payments/a", "payments/b"]);

    store.set("payments/c", reader("payments/c", "payments/app-cred"));
    expect(sorted(store.indexKeys("reads", "payments/app-cred"))).toEqual([
      "payments/a",
      "payments/b",
      "payments/c",
    ]);

    store.delete("payments/a");
    store.set("payments/c", reader("payments/c", "payments/other"));
    expect(store.indexKeys("reads", "payments/app-cred")).toEqual(["payments/b"]);

    // Back at one key: a second one joins again.
    store.set("payments/d", reader("payments/d", "payments/app-cred"));
    expect(sorted(store.indexKeys("reads", "payments/app-cred"))).toEqual(["payments/b", "payments/d"]);
    store.delete("payments/d");

    store.set("payments/b", reader("payments/b"));
    expect(store.indexKeys("reads", "payments/app-cred")).toEqual([]);
    expect(store.indexKeys("reads", "payments/other")).toEqual(["payments/c"]);
  });

  it("leaves the index intact when an object is set again with the same index values", () => {
    const store = storeWithReadsIndex();
    store.set("ns/a", reader("ns/a", "ns/x", "ns/y"));
    store.set("ns/b", reader("ns/b", "ns/x"));

    const replacement = reader("ns/a", "ns/x", "ns/y");
    expect(store.set("ns/a", replacement)).toEqual(reader("ns/a", "ns/x", "ns/y"));
    store.set("ns/b", reader("ns/b", "ns/x"));

    expect(store.get("ns/a")).toBe(replacement);
    expect(sorted(store.indexKeys("reads", "ns/x"))).toEqual(["ns/a", "ns/b"]);
    expect(store.indexKeys("reads", "ns/y")).toEqual(["ns/a"]);
    expect(store.size).toBe(2);
  });

  it("re-indexes an object whose values are the same but in another order", () => {
    const store = storeWithReadsIndex();
    store.set("ns/a", reader("ns/a", "ns/x", "ns/y"));
    store.set("ns/a", reader("ns/a", "ns/y", "ns/x"));
    expect(store.indexKeys("reads", "ns/x")).toEqual(["ns/a"]);
    expect(store.indexKeys("reads", "ns/y")).toEqual(["ns/a"]);
  });

  it("lists a key once for a value its object yields twice, and forgets it when the object goes", () => {
    const store = storeWithReadsIndex();
    store.set("ns/a", reader("ns/a", "ns/x", "ns/x"));
    expect(store.indexKeys("reads", "ns/x")).toEqual(["ns/a"]);
    store.set("ns/b", reader("ns/b", "ns/x"));
    store.delete("ns/a");
    expect(store.indexKeys("reads", "ns/x")).toEqual(["ns/b"]);
  });

  it("hands out a fresh list of keys: changing it does not change the index", () => {
    const store = storeWithReadsIndex();
    store.set("ns/a", reader("ns/a", "ns/x"));
    (store.indexKeys("reads", "ns/x") as string[]).push("ns/intruder");
    store.set("ns/b", reader("ns/b", "ns/x"));
    (store.indexKeys("reads", "ns/x") as string[]).length = 0;
    expect(sorted(store.indexKeys("reads", "ns/x"))).toEqual(["ns/a", "ns/b"]);
  });

  it("indexes the objects already held when an index is added, values shared or not", () => {
    const store = new IndexedStore<Reader>();
    store.set("ns/a", reader("ns/a", "ns/shared", "ns/only-a"));
    store.set("ns/b", reader("ns/b", "ns/shared"));
    store.set("other/c", reader("other/c"));
    store.addIndex("reads", byReads);
    store.addIndex("namespace", (o) => [o.metadata.namespace]);

    expect(sorted(store.indexKeys("reads", "ns/shared"))).toEqual(["ns/a", "ns/b"]);
    expect(store.indexKeys("reads", "ns/only-a")).toEqual(["ns/a"]);
    expect(sorted(store.indexKeys("namespace", "ns"))).toEqual(["ns/a", "ns/b"]);
    expect(store.indexKeys("namespace", "other")).toEqual(["other/c"]);

    store.delete("ns/a");
    expect(store.indexKeys("reads", "ns/shared")).toEqual(["ns/b"]);
    expect(store.indexKeys("reads", "ns/only-a")).toEqual([]);
  });

  it("refuses a second index of the same name, and a lookup in an index it does not have", () => {
    const store = storeWithReadsIndex();
    expect(() => store.addIndex("reads", () => [])).toThrow(/index reads already exists/);
    expect(() => store.indexKeys("owner", "x")).toThrow(/no index named owner/);
  });

  it("returns the previous object from set and delete, and nothing for a key it does not hold", () => {
    const store = storeWithReadsIndex();
    const first = reader("ns/a", "ns/x");
    expect(store.set("ns/a", first)).toBeUndefined();
    expect(store.set("ns/a", reader("ns/a"))).toBe(first);
    expect(store.delete("ns/missing")).toBeUndefined();
    expect(store.delete("ns/a")).toEqual(reader("ns/a"));
    expect(store.size).toBe(0);
  });

  it("passes an object's store key to the index functions, on every write and when an index is added", () => {
    const store = new IndexedStore<Reader>();
    store.set("ns/early", reader("ns/early"));
    const seen: string[] = [];
    // An index whose value is the key itself, as a Secret named after its request is indexed.
    store.addIndex("self", (_o, key) => {
      seen.push(key);
      return [key];
    });
    store.set("ns/a", reader("ns/a"));
    store.set("ns/a", reader("ns/a", "ns/x"));
    store.delete("ns/a");
    expect(seen).toEqual(["ns/early", "ns/a", "ns/a", "ns/a", "ns/a"]);
    expect(store.indexKeys("self", "ns/early")).toEqual(["ns/early"]);
    expect(store.indexKeys("self", "ns/a")).toEqual([]);
  });

  it("lists its entries as key and object", () => {
    const store = new IndexedStore<Reader>();
    const a = reader("ns/a");
    const b = reader("other/b");
    store.set("ns/a", a);
    store.set("other/b", b);
    store.delete("ns/a");
    store.set("ns/a", a);
    expect(new Map(store.entries())).toEqual(
      new Map([
        ["ns/a", a],
        ["other/b", b],
      ]),
    );
    expect([...store.entries()].every(([k, o]) => store.get(k) === o)).toBe(true);
  });

  it("lists keys per namespace, cluster-scoped objects under the empty namespace", () => {
    const store = new IndexedStore<KubeObject>();
    store.set("ns/a", { metadata: { namespace: "ns", name: "a" } });
    store.set("ns/b", { metadata: { namespace: "ns", name: "b" } });
    store.set("node-1", { metadata: { name: "node-1" } });
    expect(sorted(store.keysInNamespace("ns"))).toEqual(["ns/a", "ns/b"]);
    expect(sorted(store.keysInNamespace(""))).toEqual(["node-1"]);
    expect(store.keysInNamespace("absent").size).toBe(0);

    store.set("ns/a", { metadata: { namespace: "ns", name: "a", resourceVersion: "2" } });
    store.delete("ns/b");
    expect(sorted(store.keysInNamespace("ns"))).toEqual(["ns/a"]);
    store.delete("ns/a");
    expect(store.keysInNamespace("ns").size).toBe(0);
  });
});

// Model-based: random writes, then every index compared with one computed from the objects alone.

const NAMESPACES = ["payments", "billing"] as const;
const NAMES = ["a", "b", "c", "d", "e", "f"] as const;
/** A small pool, so that values are shared by several objects as often as held by one. */
const POOL = ["payments/cred-1", "payments/cred-2", "billing/cred-1", "billing/cert", "shared"] as const;

type Op = { op: "set"; key: string; reads: string[] } | { op: "delete"; key: string } | { op: "addIndex" };

const key = fc
  .tuple(fc.constantFrom(...NAMESPACES), fc.constantFrom(...NAMES))
  .map(([ns, n]) => `${ns}/${n}`);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("set" as const),
      key,
      // 0..3 values, repeats allowed (an object may yield the same value twice).
      reads: fc.array(fc.constantFrom(...POOL), { maxLength: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
  { weight: 1, arbitrary: fc.constant({ op: "addIndex" as const }) },
);

/** Index values -> keys, from the objects alone. */
function expectedIndex(
  objects: Map<string, Reader>,
  fn: (o: Reader) => readonly string[],
): Map<string, string[]> {
  const index = new Map<string, Set<string>>();
  for (const [k, o] of objects) {
    for (const v of fn(o)) {
      let keys = index.get(v);
      if (!keys) index.set(v, (keys = new Set()));
      keys.add(k);
    }
  }
  return new Map([...index].map(([v, keys]) => [v, sorted(keys)]));
}

/** The late index: the namespaces of the Secrets an object reads (shared, repeated, or none). */
const byReadNamespace = (o: Reader): readonly string[] => o.reads.map((r) => r.split("/")[0]!);
const READ_NAMESPACES = ["payments", "billing", "shared"] as const;

/** What the store answers, in one comparable shape: one `toEqual` per step keeps runs fast. */
function observe(store: IndexedStore<Reader>, hasLateIndex: boolean) {
  return {
    size: store.size,
    keys: sorted(store.keys()),
    reads: POOL.map((v) => sorted(store.indexKeys("reads", v))),
    readNamespaces: hasLateIndex
      ? READ_NAMESPACES.map((ns) => sorted(store.indexKeys("read-namespace", ns)))
      : [],
    byNamespace: NAMESPACES.map((ns) => sorted(store.keysInNamespace(ns))),
  };
}

function model(objects: Map<string, Reader>, hasLateIndex: boolean): ReturnType<typeof observe> {
  const reads = expectedIndex(objects, byReads);
  const readNamespaces = expectedIndex(objects, byReadNamespace);
  return {
    size: objects.size,
    keys: sorted(objects.keys()),
    // Every value of the pool, held or not: a value left behind with no keys shows as a stale key.
    reads: POOL.map((v) => reads.get(v) ?? []),
    readNamespaces: hasLateIndex ? READ_NAMESPACES.map((ns) => readNamespaces.get(ns) ?? []) : [],
    byNamespace: NAMESPACES.map((ns) => sorted([...objects.keys()].filter((k) => k.startsWith(`${ns}/`)))),
  };
}

/**
 * Runs `script` on a store with the "reads" index (and the late index once an addIndex op comes)
 * and returns the first step after which its answers differ from the model's, or undefined. JSON
 * comparison, not `expect`, per step: shrinking a failure reruns it thousands of times.
 */
function disagreement(script: Op[]): string | undefined {
  const store = storeWithReadsIndex();
  const objects = new Map<string, Reader>();
  let hasLateIndex = false;
  for (const [step, o] of script.entries()) {
    switch (o.op) {
      case "set": {
        const obj = reader(o.key, ...o.reads);
        if (store.set(o.key, obj) !== objects.get(o.key)) return `step ${step}: set returned another object`;
        objects.set(o.key, obj);
        break;
      }
      case "delete":
        if (store.delete(o.key) !== objects.get(o.key)) return `step ${step}: delete returned another object`;
        objects.delete(o.key);
        break;
      case "addIndex":
        // Once, at a random point: later writes must keep the late index as well.
        if (!hasLateIndex) store.addIndex("read-namespace", byReadNamespace);
        hasLateIndex = true;
        break;
    }
    const actual = JSON.stringify(observe(store, hasLateIndex));
    const expected = JSON.stringify(model(objects, hasLateIndex));
    if (actual !== expected)
      return `after step ${step} (${JSON.stringify(o)}): store ${actual}, model ${expected}`;
  }
  for (const [k, o] of objects) if (store.get(k) !== o) return `at the end: get(${k}) is another object`;
  return undefined;
}

describe("IndexedStore against a model recomputed from scratch", () => {
  it("answers every index lookup and namespace listing as the objects it holds dictate", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120, size: "max" }), (script) => {
        expect(disagreement(script)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });
});
