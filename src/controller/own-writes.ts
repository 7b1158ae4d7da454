/**
 * Secrets this process wrote that the Secret informer has not delivered back yet: milliseconds,
 * a few keys at a time. A reconcile in that gap (a cache key's fan-out right after the request's
 * own refresh) would otherwise read the informer's older copy, PUT over its stale resourceVersion
 * and get a 409: a GET and a second PUT for nothing, and a status write if the stale copy made the
 * token look new.
 */
import type { Clock } from "../clock.js";

interface Versioned {
  metadata: { resourceVersion?: string | undefined };
}

/** Past this, the informer's copy wins again: a write must never be pinned by a watch that stalled. */
export const UNOBSERVED_WRITE_TTL_MS = 30_000;

/** Oldest entries looked at on each write: enough to keep pace with the writes that add them. */
const SWEEP_PER_WRITE = 2;

interface Noted<T> {
  object: T;
  /** The version our write replaced. */
  basedOn: string;
  at: number;
}

/**
 * Nothing tells this class when the informer delivers a write: it looks. An entry is settled as
 * soon as the informer's copy is not the version the write replaced (our write, or anything after
 * it; writes here carry a resourceVersion precondition, so there is nothing in between), which
 * `current` checks for its key and each write checks for the oldest entries. Event handlers stay
 * free of state changes, and the map holds only the writes the watch has not caught up with.
 */
export class OwnWrites<T extends Versioned> {
  /** Insertion order is write order: the oldest entries come first. */
  private readonly writes = new Map<string, Noted<T>>();

  constructor(
    private readonly clock: Clock,
    /** The informer's resourceVersion for `key` (undefined: it holds none). */
    private readonly informerVersion: (key: string) => string | undefined,
  ) {}

  /** The informer's copy of `key`, or this process's own newer write it has not seen yet. */
  current(key: string, cached: T | undefined): T | undefined {
    const written = this.writes.get(key);
    if (!written) return cached;
    if (this.settled(written, cached?.metadata.resourceVersion)) {
      this.writes.delete(key);
      return cached;
    }
    return written.object;
  }

  /**
   * Remembers our replace of `key` if the version known here (`known`: `current()` read just now)
   * is still the one the write replaced (`basedOn`; undefined for a create): then the informer has
   * seen neither our write nor anything after it. If it moved on, its copy is as new as ours or
   * newer, and is trusted.
   */
  wrote(key: string, written: T, basedOn: string | undefined, known: T | undefined): void {
    this.sweep();
    this.writes.delete(key);
    // A create is not remembered: looking at the informer cannot tell "not delivered yet" from
    // "delivered, then deleted" (both show nothing), and trusting our copy over a deletion would
    // leave a deleted Secret missing until the next refresh. A reconcile in the gap costs a 409 and
    // a read instead; status-only updates do not queue one, so the gap is rarely hit.
    if (basedOn === undefined) return;
    if (known?.metadata.resourceVersion !== basedOn) return;
    this.writes.set(key, { object: written, basedOn, at: this.clock.now() });
  }

  get size(): number {
    return this.writes.size;
  }

  private settled(w: Noted<T>, informerVersion: string | undefined): boolean {
    return informerVersion !== w.basedOn || this.clock.now() - w.at > UNOBSERVED_WRITE_TTL_MS;
  }

  private sweep(): void {
    let looked = 0;
    for (const [key, w] of this.writes) {
      if (looked++ === SWEEP_PER_WRITE) return;
      if (this.settled(w, this.informerVersion(key))) this.writes.delete(key);
    }
  }
}
