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

export class OwnWrites<T extends Versioned> {
  private readonly writes = new Map<string, { object: T; at: number }>();

  constructor(private readonly clock: Clock) {}

  /** The informer's copy of `key`, or this process's own newer write it has not seen yet. */
  current(key: string, cached: T | undefined): T | undefined {
    const written = this.writes.get(key);
    if (!written) return cached;
    if (this.clock.now() - written.at > UNOBSERVED_WRITE_TTL_MS) {
      this.writes.delete(key);
      return cached;
    }
    return written.object;
  }

  /**
   * Remembers our write of `key` if the version known here (`known`: `current()` read just now) is
   * still the one the write replaced (`basedOn`; undefined for a create): then the informer has
   * seen neither our write nor anything after it. If it moved on, its copy is as new as ours or
   * newer, and is trusted.
   */
  wrote(key: string, written: T, basedOn: string | undefined, known: T | undefined): void {
    if (known?.metadata.resourceVersion !== basedOn) return;
    this.writes.set(key, { object: written, at: this.clock.now() });
  }

  /**
   * The informer delivered an event for `key` (not a resync). Ours was noted only while the
   * informer held the version it replaced, so any version it delivers next is ours or a later one.
   */
  observed(key: string): void {
    this.writes.delete(key);
  }

  get size(): number {
    return this.writes.size;
  }
}
