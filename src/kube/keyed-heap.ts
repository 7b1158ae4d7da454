/**
 * A binary min-heap of keys ordered by due time, with O(1) lookup by key and O(log n) insert,
 * reschedule and removal. The work queue keeps every delayed requeue (10^5+ of them) here and arms
 * one timer for the head, instead of one timer per object; the reconciler keeps every Secret's
 * expiry here for the soonest-expiry gauge.
 *
 * Stored as parallel arrays (keys, due times in a Float64Array, values) plus a key -> position
 * map, not as one object per entry: an entry object with a boxed due time costs ~70 bytes more per
 * key, and at 10^5 requests each has an entry in two heaps.
 */
export interface HeapEntry<V> {
  readonly key: string;
  readonly due: number;
  readonly value: V;
}

export class KeyedMinHeap<V> {
  private keys: string[] = [];
  private values: V[] = [];
  private dues = new Float64Array(64);
  private readonly pos = new Map<string, number>();

  get size(): number {
    return this.keys.length;
  }

  /** A snapshot of the key's entry; change it with `set`. */
  get(key: string): HeapEntry<V> | undefined {
    const i = this.pos.get(key);
    return i === undefined ? undefined : this.entry(i);
  }

  peek(): HeapEntry<V> | undefined {
    return this.keys.length > 0 ? this.entry(0) : undefined;
  }

  /** Inserts `key`, or moves it to `due` (and sets its value) if present. */
  set(key: string, due: number, value: V): void {
    const i = this.pos.get(key);
    if (i !== undefined) {
      const earlier = due < this.dues[i]!;
      this.dues[i] = due;
      this.values[i] = value;
      if (earlier) this.up(i);
      else this.down(i);
      return;
    }
    const n = this.keys.length;
    if (n === this.dues.length) {
      const grown = new Float64Array(n * 2);
      grown.set(this.dues);
      this.dues = grown;
    }
    this.keys.push(key);
    this.values.push(value);
    this.dues[n] = due;
    this.pos.set(key, n);
    this.up(n);
  }

  delete(key: string): boolean {
    const i = this.pos.get(key);
    if (i === undefined) return false;
    this.pos.delete(key);
    const last = this.keys.length - 1;
    if (i !== last) {
      this.keys[i] = this.keys[last]!;
      this.values[i] = this.values[last]!;
      this.dues[i] = this.dues[last]!;
      this.pos.set(this.keys[i]!, i);
    }
    this.keys.pop();
    this.values.pop();
    if (i !== last) this.down(this.up(i));
    return true;
  }

  pop(): HeapEntry<V> | undefined {
    if (this.keys.length === 0) return undefined;
    const top = this.entry(0);
    this.delete(top.key);
    return top;
  }

  clear(): void {
    this.keys = [];
    this.values = [];
    this.dues = new Float64Array(64);
    this.pos.clear();
  }

  private entry(i: number): HeapEntry<V> {
    return { key: this.keys[i]!, due: this.dues[i]!, value: this.values[i]! };
  }

  /** Moves the entry at `i` towards the root; returns where it ends. */
  private up(i: number): number {
    const { keys, values, dues } = this;
    const key = keys[i]!;
    const value = values[i]!;
    const due = dues[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (dues[p]! <= due) break;
      keys[i] = keys[p]!;
      values[i] = values[p]!;
      dues[i] = dues[p]!;
      this.pos.set(keys[i]!, i);
      i = p;
    }
    keys[i] = key;
    values[i] = value;
    dues[i] = due;
    this.pos.set(key, i);
    return i;
  }

  private down(i: number): void {
    const { keys, values, dues } = this;
    const n = keys.length;
    const key = keys[i]!;
    const value = values[i]!;
    const due = dues[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && dues[r]! < dues[l]! ? r : l;
      if (dues[c]! >= due) break;
      keys[i] = keys[c]!;
      values[i] = values[c]!;
      dues[i] = dues[c]!;
      this.pos.set(keys[i]!, i);
      i = c;
    }
    keys[i] = key;
    values[i] = value;
    dues[i] = due;
    this.pos.set(key, i);
  }
}
