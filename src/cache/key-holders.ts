/**
 * Which holder (request) holds which cache key: this Map one way, each key's `holders` Set the
 * other. The token cache owns it; nothing else keeps a copy of the relation.
 */
import type { KeyState } from "./key-state.js";

export class KeyHolders {
  private readonly byHolder = new Map<string, KeyState>();

  /** `unheld` is told when a key's last holder lets go (the key is then marked released). */
  constructor(private readonly unheld: (key: KeyState) => void) {}

  get size(): number {
    return this.byHolder.size;
  }

  /** `holder` holds `key` (a Set lookup when it already does), and lets go of its previous key. */
  link(holder: string, key: KeyState): void {
    if (key.holders?.has(holder) === true) return;
    const previous = this.byHolder.get(holder);
    this.byHolder.set(holder, key);
    (key.holders ??= new Set()).add(holder);
    key.released = false;
    if (previous !== undefined && previous !== key) this.unref(previous, holder);
  }

  /** The holder is gone; returns whether it held a key. */
  release(holder: string): boolean {
    const key = this.byHolder.get(holder);
    if (key === undefined) return false;
    this.byHolder.delete(holder);
    this.unref(key, holder);
    return true;
  }

  /** The key leaves the cache: its holders hold nothing (their next acquire holds again). */
  detach(key: KeyState): void {
    for (const holder of key.holders ?? []) this.byHolder.delete(holder);
    key.holders = undefined;
  }

  private unref(key: KeyState, holder: string): void {
    key.holders?.delete(holder);
    if (key.holders?.size) return;
    key.holders = undefined;
    key.released = true;
    this.unheld(key);
  }
}
