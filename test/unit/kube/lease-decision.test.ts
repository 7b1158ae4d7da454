import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_TIMINGS,
  decideAcquire,
  nextRecord,
  observe,
  parseLeaseSpec,
  releasedRecord,
  stopLeadingAt,
  toMicroTime,
  validateTimings,
  type LeaseRecord,
} from "../../../src/kube/lease-decision.js";

const T0 = Date.parse("2026-11-24T11:00:00Z");

function held(holder: string, renewTime = "2026-11-24T11:00:00.000000Z"): LeaseRecord {
  return {
    holderIdentity: holder,
    leaseDurationSeconds: 15,
    renewTime,
    acquireTime: renewTime,
    leaseTransitions: 2,
  };
}

describe("decideAcquire: can I take this lease record at time T?", () => {
  it("takes a lease nobody holds, and one that was released", () => {
    expect(decideAcquire(undefined, "me", T0)).toEqual({ acquire: true, reason: "NoHolder" });
    const released = observe(undefined, { ...held(""), leaseDurationSeconds: 1 }, T0);
    expect(decideAcquire(released, "me", T0)).toMatchObject({ acquire: true, reason: "NoHolder" });
  });

  it("renews its own lease", () => {
    expect(decideAcquire(observe(undefined, held("me"), T0), "me", T0 + 1)).toMatchObject({
      acquire: true,
      reason: "OwnLease",
    });
  });

  it("leaves another holder's lease alone until leaseDuration after it was last seen changing", () => {
    const obs = observe(undefined, held("other"), T0);
    expect(decideAcquire(obs, "me", T0 + 14_999)).toEqual({
      acquire: false,
      reason: "HeldByOther",
      holder: "other",
      expiresAt: T0 + 15_000,
    });
    expect(decideAcquire(obs, "me", T0 + 15_000)).toMatchObject({ acquire: true, reason: "Expired" });
  });

  it("counts from when it saw the record, not from the holder's renewTime (clock skew)", () => {
    // The holder's clock is an hour behind: its renewTime looks long expired, but we just saw it change.
    const obs = observe(undefined, held("other", "2026-11-24T10:00:00.000000Z"), T0);
    expect(decideAcquire(obs, "me", T0 + 1000).acquire).toBe(false);
  });

  it("restarts the wait each time the holder renews", () => {
    let obs = observe(undefined, held("other", "2026-11-24T11:00:00.000000Z"), T0);
    const same = observe(obs, held("other", "2026-11-24T11:00:00.000000Z"), T0 + 10_000);
    expect(same.observedAt).toBe(T0); // nothing changed: the clock keeps running
    obs = observe(obs, held("other", "2026-11-24T11:00:10.000000Z"), T0 + 10_000);
    expect(obs.observedAt).toBe(T0 + 10_000);
    expect(decideAcquire(obs, "me", T0 + 20_000).acquire).toBe(false);
    expect(decideAcquire(obs, "me", T0 + 25_000).acquire).toBe(true);
  });

  it("honours the record's own leaseDurationSeconds (a released lease expires after 1 s)", () => {
    const obs = observe(undefined, { ...held("other"), leaseDurationSeconds: 1 }, T0);
    expect(decideAcquire(obs, "me", T0 + 999).acquire).toBe(false);
    expect(decideAcquire(obs, "me", T0 + 1000).acquire).toBe(true);
  });
});

describe("lease records", () => {
  const now = "2026-11-24T11:00:05.000000Z";

  it("creates a first record with no transitions", () => {
    expect(nextRecord(undefined, "me", 15, now)).toEqual({
      holderIdentity: "me",
      leaseDurationSeconds: 15,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    });
  });

  it("renews without touching acquireTime or the transition count", () => {
    const r = nextRecord(held("me"), "me", 15, now);
    expect(r).toMatchObject({
      holderIdentity: "me",
      acquireTime: held("me").acquireTime,
      renewTime: now,
      leaseTransitions: 2,
    });
  });

  it("counts a takeover as a transition", () => {
    expect(nextRecord(held("other"), "me", 15, now)).toMatchObject({
      holderIdentity: "me",
      acquireTime: now,
      leaseTransitions: 3,
    });
  });

  it("releases with an empty holder and a one-second duration", () => {
    expect(releasedRecord(held("me"), now)).toEqual({
      holderIdentity: "",
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 2,
    });
  });

  it("writes MicroTime with six fractional digits", () => {
    expect(toMicroTime(Date.parse("2026-11-24T11:00:00.123Z"))).toBe("2026-11-24T11:00:00.123000Z");
  });

  it("reads a spec with missing fields without throwing", () => {
    expect(parseLeaseSpec(undefined)).toEqual({
      holderIdentity: "",
      leaseDurationSeconds: 0,
      leaseTransitions: 0,
    });
    expect(parseLeaseSpec({ holderIdentity: "x", leaseDurationSeconds: 15, renewTime: now })).toEqual({
      holderIdentity: "x",
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
      renewTime: now,
    });
  });
});

describe("timings", () => {
  it("accepts client-go's defaults (15 s / 10 s / 2 s)", () => {
    expect(() => validateTimings(DEFAULT_TIMINGS)).not.toThrow();
    expect(DEFAULT_TIMINGS).toEqual({
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
  });

  it("rejects a renew deadline that is not shorter than the lease", () => {
    expect(() =>
      validateTimings({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ).toThrow(/must exceed the renew deadline/);
  });

  it("rejects a retry period too long for the renew deadline", () => {
    expect(() =>
      validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    ).toThrow(/retry period/);
  });

  it("the leader always stops before any standby may take over", () => {
    // For any history of renewals (each successful write seen by the standby some time after the
    // leader started it), the leader's stop time precedes the standby's earliest takeover.
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 9_999 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 20, maxLength: 20 }),
        (gaps, seenDelays) => {
          let renewStart = 0;
          let lastSeen = 0;
          gaps.forEach((gap, i) => {
            renewStart += gap; // renewals succeed less than renewDeadline apart (else it had already stopped)
            lastSeen = Math.max(lastSeen, renewStart + seenDelays[i]!);
          });
          const leaderStops = stopLeadingAt(renewStart, DEFAULT_TIMINGS.renewDeadlineMs);
          const standbyMayTakeOver = lastSeen + DEFAULT_TIMINGS.leaseDurationMs;
          return (
            leaderStops + (DEFAULT_TIMINGS.leaseDurationMs - DEFAULT_TIMINGS.renewDeadlineMs) <=
            standbyMayTakeOver
          );
        },
      ),
    );
  });
});
