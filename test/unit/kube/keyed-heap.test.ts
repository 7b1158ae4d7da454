/**
 * KeyedMinHeap: the work queue's delayed requeues and the reconciler's Secret expiries. Stored as
 * parallel arrays (keys, values, due times in a Float64Array that starts at 64 slots) plus a
 * key -> position map, so these tests reach every path that keeps those four in step: insert,
 * reschedule earlier and later, delete of the last and of a middle slot, pop, clear, and growth.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KeyedMinHeap, type HeapEntry } from "../../../src/kube/keyed-heap.js";

/**
 * Pops as many entries as the heap says it holds, in the order it gives them (bounded, so that a
 * heap that never empties fails a test instead of hanging it).
 */
function drain<V>(heap: KeyedMinHeap<V>): HeapEntry<V>[] {
  const out: HeapEntry<V>[] = [];
  for (let n = heap.size; n > 0; n--) {
    const e = heap.pop();
    if (e === undefined) break;
    out.push(e);
  }
  return out;
}

function heapOf(entries: [key: string, due: number][]): KeyedMinHeap<string> {
  const heap = new KeyedMinHeap<string>();
  for (const [key, due] of entries) heap.set(key, due, `value of ${key}`);
  return heap;
}

describe("KeyedMinHeap", () => {
  it("is empty at first: no head, nothing to pop, no entry for any key", () => {
    const heap = new KeyedMinHeap<string>();
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
    expect(heap.pop()).toBeUndefined();
    expect(heap.get("ns/a")).toBeUndefined();
    expect(heap.delete("ns/a")).toBe(false);
  });

  it("pops keys soonest first, whatever the order they were set in", () => {
    const heap = heapOf([
      ["c", 30],
      ["a", 10],
      ["e", 50],
      ["b", 20],
      ["d", 40],
    ]);
    expect(heap.peek()).toEqual({ key: "a", due: 10, value: "value of a" });
    expect(drain(heap).map((e) => [e.key, e.due, e.value])).toEqual([
      ["a", 10, "value of a"],
      ["b", 20, "value of b"],
      ["c", 30, "value of c"],
      ["d", 40, "value of d"],
      ["e", 50, "value of e"],
    ]);
    expect(heap.size).toBe(0);
  });

  it("keeps a key once: setting it again moves it and replaces its value", () => {
    const heap = heapOf([
      ["a", 10],
      ["b", 20],
      ["c", 30],
    ]);
    heap.set("c", 5, "sooner");
    expect(heap.size).toBe(3);
    expect(heap.peek()).toEqual({ key: "c", due: 5, value: "sooner" });

    heap.set("c", 25, "later");
    expect(heap.get("c")).toEqual({ key: "c", due: 25, value: "later" });
    expect(drain(heap).map((e) => e.key)).toEqual(["a", "b", "c"]);
  });

  it("moves the head behind the others when it is rescheduled later", () => {
    const heap = heapOf([
      ["a", 10],
      ["b", 20],
      ["c", 30],
      ["d", 40],
    ]);
    heap.set("a", 35, "later");
    expect(heap.peek()?.key).toBe("b");
    expect(drain(heap).map((e) => e.key)).toEqual(["b", "c", "a", "d"]);
  });

  it("replaces the value of a key set again at the same due time", () => {
    const heap = heapOf([
      ["a", 10],
      ["b", 10],
    ]);
    heap.set("b", 10, "new");
    expect(heap.get("b")).toEqual({ key: "b", due: 10, value: "new" });
    expect(heap.get("a")).toEqual({ key: "a", due: 10, value: "value of a" });
  });

  it("hands out snapshots: an entry got before a reschedule keeps the old due time and value", () => {
    const heap = heapOf([["a", 10]]);
    const before = heap.get("a");
    heap.set("a", 99, "rescheduled");
    expect(before).toEqual({ key: "a", due: 10, value: "value of a" });
    expect(heap.get("a")).toEqual({ key: "a", due: 99, value: "rescheduled" });
  });

  it("stores due times exactly, fractions and infinities included", () => {
    const heap = new KeyedMinHeap<number>();
    heap.set("inf", Number.POSITIVE_INFINITY, 1);
    heap.set("frac", 1_764_000_000_000.125, 2);
    heap.set("neg", -Number.MAX_VALUE, 3);
    heap.set("tiny", Number.MIN_VALUE, 4);
    expect(drain(heap).map((e) => [e.key, e.due])).toEqual([
      ["neg", -Number.MAX_VALUE],
      ["tiny", Number.MIN_VALUE],
      ["frac", 1_764_000_000_000.125],
      ["inf", Number.POSITIVE_INFINITY],
    ]);
  });

  it("deletes the last slot without disturbing the rest", () => {
    // Set in ascending order, each stays where it was pushed: "c" is the last slot.
    const heap = heapOf([
      ["a", 1],
      ["b", 2],
      ["c", 3],
    ]);
    expect(heap.delete("c")).toBe(true);
    expect(heap.size).toBe(2);
    expect(heap.get("c")).toBeUndefined();
    expect(heap.delete("c")).toBe(false);
    expect(drain(heap).map((e) => e.key)).toEqual(["a", "b"]);
  });

  it("deletes the only entry", () => {
    const heap = heapOf([["a", 1]]);
    expect(heap.delete("a")).toBe(true);
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
    heap.set("b", 2, "after");
    expect(heap.peek()).toEqual({ key: "b", due: 2, value: "after" });
  });

  it("deletes a middle slot whose replacement must sink", () => {
    // Slots: [0:a=0, 1:b=10, 2:c=20, 3:d=30, 4:e=40, 5:f=50, 6:g=60]; deleting b puts g (60) in slot 1.
    const heap = heapOf([
      ["a", 0],
      ["b", 10],
      ["c", 20],
      ["d", 30],
      ["e", 40],
      ["f", 50],
      ["g", 60],
    ]);
    heap.delete("b");
    expect(heap.get("g")).toEqual({ key: "g", due: 60, value: "value of g" });
    expect(drain(heap).map((e) => e.due)).toEqual([0, 20, 30, 40, 50, 60]);
  });

  it("deletes a middle slot whose replacement must rise above its new parent", () => {
    // Slots: [0:a=0, 1:b=10, 2:c=1, 3:d=11, 4:e=12, 5:f=2, 6:g=3]; deleting d puts g (3) under b (10).
    const heap = heapOf([
      ["a", 0],
      ["b", 10],
      ["c", 1],
      ["d", 11],
      ["e", 12],
      ["f", 2],
      ["g", 3],
    ]);
    heap.delete("d");
    expect(heap.get("g")).toEqual({ key: "g", due: 3, value: "value of g" });
    expect(drain(heap).map((e) => [e.key, e.due])).toEqual([
      ["a", 0],
      ["c", 1],
      ["f", 2],
      ["g", 3],
      ["b", 10],
      ["e", 12],
    ]);
  });

  it("orders due times a 32-bit float could not tell apart", () => {
    // 2^24 + 1 and 2^24 are one float32; in a Float64Array they stay distinct (and in order).
    const heap = heapOf([
      ["a", 16_777_217],
      ["b", 16_777_216],
    ]);
    expect(drain(heap).map((e) => [e.key, e.due])).toEqual([
      ["b", 16_777_216],
      ["a", 16_777_217],
    ]);
  });

  it("grows past its first 64 slots and keeps every due time", () => {
    const heap = new KeyedMinHeap<number>();
    const n = 1000;
    // Descending, so every insert rises to the root: the worst case for the moved slots.
    for (let i = n - 1; i >= 0; i--) heap.set(`k${i}`, i * 1.5, i);
    expect(heap.size).toBe(n);
    for (const i of [0, 63, 64, 65, 127, 128, 999])
      expect(heap.get(`k${i}`)).toEqual({ key: `k${i}`, due: i * 1.5, value: i });
    const drained = drain(heap);
    expect(drained.map((e) => e.value)).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it("starts over after clear, growing again from 64 slots", () => {
    const heap = new KeyedMinHeap<number>();
    for (let i = 0; i < 200; i++) heap.set(`old${i}`, i, i);
    heap.clear();
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
    expect(heap.get("old0")).toBeUndefined();
    expect(heap.delete("old0")).toBe(false);

    for (let i = 99; i >= 0; i--) heap.set(`new${i}`, i + 0.5, i);
    expect(heap.size).toBe(100);
    expect(heap.get("old5")).toBeUndefined();
    expect(drain(heap).map((e) => e.key)).toEqual(Array.from({ length: 100 }, (_, i) => `new${i}`));
  });
});

/** The reference: what the heap must behave like, with none of its cleverness. */
type Model = Map<string, { due: number; value: number }>;

function minDue(model: Model): number | undefined {
  let min: number | undefined;
  for (const { due } of model.values()) if (min === undefined || due < min) min = due;
  return min;
}

type Op =
  | { op: "set"; key: string; due: number }
  | { op: "delete"; key: string }
  | { op: "pop" }
  | { op: "peek" }
  | { op: "get"; key: string }
  | { op: "clear" };

/** 120 keys: enough to push the heap past 64 entries; few enough that keys are set again. */
const key = fc.integer({ min: 0, max: 119 }).map((i) => `ns/obj-${i}`);
/** Small integers, so that due times tie often, and any double but NaN (-0 read as 0). */
const due = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 40 }) },
  { weight: 1, arbitrary: fc.double({ noNaN: true }).map((d) => (Object.is(d, -0) ? 0 : d)) },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 30, arbitrary: fc.record({ op: fc.constant("set" as const), key, due }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
  { weight: 6, arbitrary: fc.constant({ op: "pop" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "peek" as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("get" as const), key }) },
);
/**
 * Long runs (about half of them hold more than 64 keys at some point), with at most two clears
 * spliced in: a clear in the mix at any weight would keep the heap too small to grow.
 */
const ops: fc.Arbitrary<Op[]> = fc
  .tuple(fc.array(op, { maxLength: 600, size: "max" }), fc.array(fc.nat(600), { maxLength: 2 }))
  .map(([list, clearAt]) => {
    const out = [...list];
    for (const at of clearAt) out.splice(at, 0, { op: "clear" });
    return out;
  });

const show = (e: HeapEntry<number> | undefined): string => (e ? `${e.key}@${e.due}=${e.value}` : "nothing");

function sameEntry(a: HeapEntry<number> | undefined, b: HeapEntry<number> | undefined): boolean {
  return a === undefined || b === undefined
    ? a === b
    : a.key === b.key && a.due === b.due && a.value === b.value;
}

/**
 * Runs `script` on a heap and on the model side by side; returns the first disagreement, or
 * undefined. Plain comparisons, not `expect`, in the loop: shrinking a failure reruns it thousands
 * of times.
 */
function disagreement(script: Op[]): string | undefined {
  const heap = new KeyedMinHeap<number>();
  const model: Model = new Map();
  const fromModel = (k: string): HeapEntry<number> | undefined => {
    const m = model.get(k);
    return m && { key: k, ...m };
  };
  for (const [step, o] of script.entries()) {
    const at = `step ${step} (${o.op}${"key" in o ? ` ${o.key}` : ""})`;
    switch (o.op) {
      case "set":
        // The step number as the value: a stale value after a reschedule shows.
        heap.set(o.key, o.due, step);
        model.set(o.key, { due: o.due, value: step });
        break;
      case "delete": {
        const deleted = heap.delete(o.key);
        if (deleted !== model.delete(o.key)) return `${at}: delete returned ${deleted}`;
        break;
      }
      case "pop": {
        const popped = heap.pop();
        if (popped === undefined) {
          if (model.size > 0) return `${at}: popped nothing from ${model.size} entries`;
          break;
        }
        if (popped.due !== minDue(model)) return `${at}: popped ${show(popped)}, soonest is ${minDue(model)}`;
        if (!sameEntry(popped, fromModel(popped.key)))
          return `${at}: popped ${show(popped)}, model has ${show(fromModel(popped.key))}`;
        model.delete(popped.key);
        break;
      }
      case "peek": {
        const head = heap.peek();
        if (head === undefined ? model.size > 0 : !sameEntry(head, fromModel(head.key)))
          return `${at}: head is ${show(head)}`;
        break;
      }
      case "get": {
        const got = heap.get(o.key);
        if (!sameEntry(got, fromModel(o.key)))
          return `${at}: got ${show(got)}, model has ${show(fromModel(o.key))}`;
        break;
      }
      case "clear":
        heap.clear();
        model.clear();
        break;
    }
    if (heap.size !== model.size) return `${at}: size ${heap.size}, model has ${model.size}`;
    if (heap.peek()?.due !== minDue(model))
      return `${at}: head due ${heap.peek()?.due}, soonest is ${minDue(model)}`;
  }
  for (const k of model.keys()) {
    if (!sameEntry(heap.get(k), fromModel(k)))
      return `at the end: ${k} is ${show(heap.get(k))}, model has ${show(fromModel(k))}`;
  }
  const drained = drain(heap);
  for (const [i, e] of drained.entries()) {
    if (i > 0 && e.due < drained[i - 1]!.due) return `drain: ${show(e)} after ${show(drained[i - 1])}`;
    if (!sameEntry(e, fromModel(e.key))) return `drain: ${show(e)}, model has ${show(fromModel(e.key))}`;
    model.delete(e.key);
  }
  if (model.size > 0 || heap.size > 0) return `drain: ${model.size} entries never came out`;
  return undefined;
}

describe("KeyedMinHeap against a reference model", () => {
  it("agrees with a plain map on every operation, and drains in non-decreasing due order", () => {
    fc.assert(
      fc.property(ops, (script) => {
        expect(disagreement(script)).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it("agrees with the model when it holds hundreds of keys at once (growth, then deep deletes)", () => {
    const sets = fc.array(
      fc.record({
        op: fc.constant("set" as const),
        key: fc.integer({ min: 0, max: 999 }).map((i) => `ns/obj-${i}`),
        due: fc.integer({ min: 0, max: 10_000 }),
      }),
      { minLength: 65, maxLength: 400, size: "max" },
    );
    fc.assert(
      fc.property(sets, fc.array(fc.nat(), { maxLength: 300, size: "max" }), (inserts, picks) => {
        // Deletes of keys that were set (most still held), wherever they sit in the heap by now.
        const deletes = picks.map((i): Op => ({ op: "delete", key: inserts[i % inserts.length]!.key }));
        expect(disagreement([...inserts, ...deletes])).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });
});
