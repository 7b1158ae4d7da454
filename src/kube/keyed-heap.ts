/**
 * A binary min-heap of keys ordered by due time, with O(1) lookup by key and O(log n) insert,
 * reschedule and removal. The work queue keeps every delayed requeue (10^5+ of them) here and arms
 * one timer for the head, instead of one timer per object.
 */
export interface HeapEntry<V> {
  readonly key: string;
  due: number;
  value: V;
  /** Position in the heap array; maintained by the heap. */
  index: number;
}

export class KeyedMinHeap<V> {
  private readonly heap: HeapEntry<V>[] = [];
  private readonly byKey = new Map<string, HeapEntry<V>>();

  get size(): number {
    return this.heap.length;
  }

  get(key: string): HeapEntry<V> | undefined {
    return this.byKey.get(key);
  }

  peek(): HeapEntry<V> | undefined {
    return this.heap[0];
  }

  /** Inserts `key`, or moves it to `due` if present. */
  set(key: string, due: number, value: V): void {
    const found = this.byKey.get(key);
    if (found) {
      const earlier = due < found.due;
      found.due = due;
      found.value = value;
      if (earlier) this.up(found.index);
      else this.down(found.index);
      return;
    }
    const entry: HeapEntry<V> = { key, due, value, index: this.heap.length };
    this.heap.push(entry);
    this.byKey.set(key, entry);
    this.up(entry.index);
  }

  delete(key: string): boolean {
    const entry = this.byKey.get(key);
    if (!entry) return false;
    this.byKey.delete(key);
    const last = this.heap.pop()!;
    if (last !== entry) {
      this.heap[entry.index] = last;
      last.index = entry.index;
      this.up(last.index);
      this.down(last.index);
    }
    return true;
  }

  pop(): HeapEntry<V> | undefined {
    const top = this.heap[0];
    if (top) this.delete(top.key);
    return top;
  }

  clear(): void {
    this.heap.length = 0;
    this.byKey.clear();
  }

  private up(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (parent.due <= e.due) break;
      h[i] = parent;
      parent.index = i;
      i = p;
    }
    h[i] = e;
    e.index = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.due < h[l]!.due ? r : l;
      const child = h[c]!;
      if (child.due >= e.due) break;
      h[i] = child;
      child.index = i;
      i = c;
    }
    h[i] = e;
    e.index = i;
  }
}
