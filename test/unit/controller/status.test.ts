import { describe, expect, it } from "vitest";
import { desiredStatus, statusChange, statusPatch } from "../../../src/controller/status.js";

const now = Date.parse("2026-11-24T11:00:00Z");
const ready = { status: "True" as const, reason: "TokenIssued", message: "ok" };
const token = {
  expiresAt: now + 3600_000,
  refreshAt: now + 1800_000,
  issuedAt: now,
  source: "IdentityProvider" as const,
};

describe("desiredStatus", () => {
  it("reports expiry, refresh time, source, counters and the Ready condition", () => {
    const s = desiredStatus({
      previous: undefined,
      generation: 3,
      secretName: "t",
      token,
      throttle: undefined,
      ready,
      hits: 2,
      misses: 1,
      now,
    });
    expect(s).toMatchObject({
      observedGeneration: 3,
      secretName: "t",
      expiresAt: "2026-11-24T12:00:00.000Z",
      refreshAt: "2026-11-24T11:30:00.000Z",
      lastRefreshTime: "2026-11-24T11:00:00.000Z",
      tokenSource: "IdentityProvider",
      cache: { hits: 2, misses: 1 },
    });
    expect(s.conditions?.[0]).toMatchObject({
      type: "Ready",
      status: "True",
      reason: "TokenIssued",
      observedGeneration: 3,
    });
    expect(s.throttle).toBeUndefined();
  });

  it("keeps lastTransitionTime while Ready keeps its status, and moves it when Ready flips", () => {
    const first = desiredStatus({
      previous: undefined,
      generation: 1,
      secretName: "t",
      token,
      throttle: undefined,
      ready,
      hits: 0,
      misses: 1,
      now,
    });
    const same = desiredStatus({
      previous: first,
      generation: 1,
      secretName: "t",
      token,
      throttle: undefined,
      ready: { ...ready, message: "other" },
      hits: 0,
      misses: 1,
      now: now + 60_000,
    });
    expect(same.conditions?.[0]?.lastTransitionTime).toBe(first.conditions?.[0]?.lastTransitionTime);
    const flipped = desiredStatus({
      previous: same,
      generation: 1,
      secretName: "t",
      token: undefined,
      throttle: undefined,
      ready: { status: "False", reason: "InvalidClientSecret", message: "x" },
      hits: 0,
      misses: 1,
      now: now + 120_000,
    });
    expect(flipped.conditions?.[0]?.lastTransitionTime).toBe("2026-11-24T11:02:00.000Z");
  });

  it("shows throttle only while backing off, with retryAfter and the last error", () => {
    const s = desiredStatus({
      previous: undefined,
      generation: 1,
      secretName: "t",
      token,
      throttle: {
        state: "Throttled",
        retryAt: now + 30_000,
        consecutiveFailures: 3,
        lastError: {
          kind: "Throttled",
          reason: "Throttled",
          aadsts: "50196",
          message: "AADSTS50196: loop detected",
        },
      },
      ready,
      hits: 0,
      misses: 0,
      now,
    });
    expect(s.throttle).toEqual({
      state: "Throttled",
      retryAfter: "2026-11-24T11:00:30.000Z",
      consecutiveFailures: 3,
      lastError: "AADSTS50196: loop detected",
    });
  });
});

describe("statusChange", () => {
  const base = desiredStatus({
    previous: undefined,
    generation: 1,
    secretName: "t",
    token,
    throttle: undefined,
    ready,
    hits: 1,
    misses: 1,
    now,
  });

  it("sees no change when only the lastTransitionTime-preserving rebuild happened", () => {
    const again = desiredStatus({
      previous: base,
      generation: 1,
      secretName: "t",
      token,
      throttle: undefined,
      ready,
      hits: 1,
      misses: 1,
      now: now + 5_000,
    });
    expect(statusChange(base, again)).toBe("none");
  });

  it("tells counter-only changes apart, so they can ride along with real writes", () => {
    const more = desiredStatus({
      previous: base,
      generation: 1,
      secretName: "t",
      token,
      throttle: undefined,
      ready,
      hits: 5,
      misses: 1,
      now,
    });
    expect(statusChange(base, more)).toBe("countersOnly");
  });

  it("sees a refresh as a change", () => {
    const refreshed = desiredStatus({
      previous: base,
      generation: 1,
      secretName: "t",
      token: { ...token, issuedAt: now + 1, expiresAt: now + 7200_000 },
      throttle: undefined,
      ready,
      hits: 1,
      misses: 2,
      now,
    });
    expect(statusChange(base, refreshed)).toBe("changed");
  });

  it("compares as the API server stores it: key order, condition order and undefined fields aside", () => {
    // As the informer decodes it: keys in another order, the conditions listed in another order.
    const reversed = (o: object) => Object.fromEntries(Object.entries(o).reverse());
    const other = {
      type: "Degraded",
      status: "False" as const,
      reason: "None",
      message: "",
      lastTransitionTime: "t",
    };
    const withTwo = { ...base, conditions: [...base.conditions!, other] };
    const decoded = JSON.parse(
      JSON.stringify({ ...reversed(withTwo), conditions: [other, ...base.conditions!].map(reversed) }),
    ) as typeof base;
    expect(statusChange(decoded, withTwo)).toBe("none");
    expect(statusChange(decoded, { ...withTwo, throttle: undefined })).toBe("none");
    expect(statusChange(undefined, base)).toBe("changed");
    // Any field, at any depth, or a condition more or less, is a change.
    expect(statusChange(decoded, { ...withTwo, secretName: "u" })).toBe("changed");
    expect(statusChange(decoded, { ...withTwo, conditions: base.conditions })).toBe("changed");
    expect(
      statusChange(decoded, { ...withTwo, conditions: [base.conditions![0]!, { ...other, message: "x" }] }),
    ).toBe("changed");
    expect(statusChange(decoded, { ...withTwo, throttle: { state: "Throttled" } })).toBe("changed");
  });
});

describe("statusPatch", () => {
  it("removes fields the new status no longer has (throttle cleared after recovery)", () => {
    const patch = statusPatch({ throttle: { state: "Throttled" }, secretName: "t" }, { secretName: "t" });
    expect(patch).toEqual({ secretName: "t", throttle: null });
  });
});
