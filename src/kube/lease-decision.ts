/**
 * The decisions of Lease-based leader election as pure functions of (what we observed, when),
 * following client-go's tools/leaderelection. The elector (leader-election.ts) does the I/O.
 *
 * Expiry is judged from `observedAt` — the local time at which this replica first saw the current
 * record — plus the record's leaseDurationSeconds, never from the renewTime written by another
 * replica: clocks on different nodes disagree, durations measured locally do not.
 */

export interface LeaseRecord {
  /** "" when released. */
  holderIdentity: string;
  leaseDurationSeconds: number;
  /** MicroTime strings as stored (informational: decisions never compare them across replicas). */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

export interface LeaseObservation {
  record: LeaseRecord;
  /** Local clock (ms) when this record content was first seen. */
  observedAt: number;
}

export interface LeaderElectionTimings {
  /** How long a standby waits after it last saw the record change before taking over. */
  leaseDurationMs: number;
  /** A leader that has not renewed for this long stops leading. Must be < leaseDurationMs. */
  renewDeadlineMs: number;
  /** Between attempts to acquire or renew. */
  retryPeriodMs: number;
}

export const DEFAULT_TIMINGS: LeaderElectionTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** client-go's JitterFactor: retries wait retryPeriod·(1 + up to 1.2). */
export const RETRY_JITTER = 1.2;

/** Throws unless the timings guarantee that a leader stops before a standby may take over. */
export function validateTimings(t: LeaderElectionTimings): void {
  if (!(t.retryPeriodMs > 0) || !(t.renewDeadlineMs > 0) || !(t.leaseDurationMs > 0)) {
    throw new Error(`leader election timings must be positive: ${JSON.stringify(t)}`);
  }
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) {
    throw new Error(
      `lease duration (${t.leaseDurationMs} ms) must exceed the renew deadline (${t.renewDeadlineMs} ms), ` +
        "or a standby could take over while the leader still writes",
    );
  }
  if (!(t.renewDeadlineMs > RETRY_JITTER * t.retryPeriodMs)) {
    throw new Error(
      `renew deadline (${t.renewDeadlineMs} ms) must exceed ${RETRY_JITTER} × retry period (${t.retryPeriodMs} ms)`,
    );
  }
  if (t.leaseDurationMs % 1000 !== 0) {
    throw new Error(`lease duration (${t.leaseDurationMs} ms) must be whole seconds (leaseDurationSeconds)`);
  }
}

function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime &&
    a.leaseTransitions === b.leaseTransitions
  );
}

/** Records a read of the lease: observedAt moves only when the record's content changed. */
export function observe(
  prev: LeaseObservation | undefined,
  record: LeaseRecord,
  now: number,
): LeaseObservation {
  if (prev && sameRecord(prev.record, record)) return prev;
  return { record, observedAt: now };
}

export type AcquireDecision =
  | { acquire: true; reason: "NoHolder" | "OwnLease" | "Expired" }
  | { acquire: false; reason: "HeldByOther"; holder: string; expiresAt: number };

/** May `identity` write itself into the lease it observed, at local time `now`? */
export function decideAcquire(
  obs: LeaseObservation | undefined,
  identity: string,
  now: number,
): AcquireDecision {
  if (!obs || obs.record.holderIdentity === "") return { acquire: true, reason: "NoHolder" };
  if (obs.record.holderIdentity === identity) return { acquire: true, reason: "OwnLease" };
  const expiresAt = obs.observedAt + obs.record.leaseDurationSeconds * 1000;
  if (now >= expiresAt) return { acquire: true, reason: "Expired" };
  return { acquire: false, reason: "HeldByOther", holder: obs.record.holderIdentity, expiresAt };
}

/** The record to write when acquiring or renewing: a renewal keeps acquireTime and the transition count. */
export function nextRecord(
  current: LeaseRecord | undefined,
  identity: string,
  leaseDurationSeconds: number,
  nowMicroTime: string,
): LeaseRecord {
  if (current && current.holderIdentity === identity) {
    return { ...current, leaseDurationSeconds, renewTime: nowMicroTime };
  }
  return {
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTime: nowMicroTime,
    renewTime: nowMicroTime,
    leaseTransitions: current ? current.leaseTransitions + 1 : 0,
  };
}

/** client-go's ReleaseOnCancel: empty holder and a 1 s duration so a standby takes over at once. */
export function releasedRecord(current: LeaseRecord, nowMicroTime: string): LeaseRecord {
  return {
    holderIdentity: "",
    leaseDurationSeconds: 1,
    acquireTime: nowMicroTime,
    renewTime: nowMicroTime,
    leaseTransitions: current.leaseTransitions,
  };
}

/**
 * When the leader must stop if it renews no more: renewDeadline after the *start* of its last
 * successful renewal. The write may have landed anywhere within that request, and a standby
 * counts from when it saw the write, so counting from the start keeps the leader on the safe side:
 * it stops at least leaseDuration − renewDeadline before any standby may take over.
 */
export function stopLeadingAt(lastRenewStartedAt: number, renewDeadlineMs: number): number {
  return lastRenewStartedAt + renewDeadlineMs;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits (the API rejects three). */
export function toMicroTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/Z$/, "000Z");
}

/** Reads a Lease's spec defensively (another writer may have left fields out). */
export function parseLeaseSpec(spec: unknown): LeaseRecord {
  const s = (typeof spec === "object" && spec !== null ? spec : {}) as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  const num = (v: unknown, d: number): number => (typeof v === "number" && Number.isFinite(v) ? v : d);
  const r: LeaseRecord = {
    holderIdentity: str(s.holderIdentity) ?? "",
    leaseDurationSeconds: num(s.leaseDurationSeconds, 0),
    leaseTransitions: num(s.leaseTransitions, 0),
  };
  const acquireTime = str(s.acquireTime);
  if (acquireTime !== undefined) r.acquireTime = acquireTime;
  const renewTime = str(s.renewTime);
  if (renewTime !== undefined) r.renewTime = renewTime;
  return r;
}
