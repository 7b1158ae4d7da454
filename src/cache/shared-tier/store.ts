/**
 * The narrow port the fleet tier needs from its shared store. One entry per cache key, addressed by
 * the HMAC of its id: the sealed token, a lock, and the service's throttling verdict. Every method
 * either answers within the adapter's deadline or rejects; the tier treats a rejection as "the store
 * is not there" and carries on alone.
 */
export interface EntryRead {
  /** The sealed token, if one is stored. */
  readonly sealed: string | undefined;
  /** The throttle record, if one is stored (see ThrottleRecord). */
  readonly throttle: string | undefined;
}

export interface SharedStore {
  /** The token and the throttle record of one address, in one round trip. */
  read(address: string): Promise<EntryRead>;
  /** Stores a sealed token for `ttlMs`. */
  write(address: string, sealed: string, ttlMs: number): Promise<void>;
  /** SET NX PX: true when this caller now holds the lock, with `fencing` as its value. */
  lock(address: string, fencing: string, ttlMs: number): Promise<boolean>;
  /** Deletes the lock only if it still holds `fencing` (a lapsed lock may be someone else's now). */
  unlock(address: string, fencing: string): Promise<void>;
  /** Stores a throttle record for `ttlMs`. */
  throttle(address: string, record: string, ttlMs: number): Promise<void>;
}

/** What the token service said when it throttled a key: not a secret, stored in clear. */
export interface ThrottleRecord {
  retryAt: number;
  reason: string;
  aadsts?: string | undefined;
}

export function encodeThrottle(record: ThrottleRecord): string {
  return JSON.stringify(record);
}

/** undefined for anything that is not a record this version wrote. */
export function decodeThrottle(text: string): ThrottleRecord | undefined {
  try {
    const v = JSON.parse(text) as Partial<Record<keyof ThrottleRecord, unknown>>;
    if (typeof v.retryAt !== "number" || !Number.isFinite(v.retryAt) || typeof v.reason !== "string")
      return undefined;
    return {
      retryAt: v.retryAt,
      reason: v.reason,
      aadsts: typeof v.aadsts === "string" ? v.aadsts : undefined,
    };
  } catch {
    return undefined;
  }
}
