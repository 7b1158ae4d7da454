import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MIN_RETRY_DELAY_MS,
  PERMANENT_BACKOFF,
  TRANSIENT_BACKOFF,
  backoffDelay,
  nextRetryAt,
} from "../../../src/cache/backoff.js";
import { HOUR, MINUTE, SECOND, seededRandom } from "./support.js";

const T0 = Date.parse("2026-11-24T11:00:00Z");
const low = () => 0;
const high = () => 0.999999;

describe("backoffDelay", () => {
  it("doubles from the base to the ceiling, with up to half of each delay random", () => {
    const expected = [2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map((s) => s * SECOND);
    expected.forEach((ceiling, i) => {
      expect(backoffDelay(i + 1, TRANSIENT_BACKOFF, low)).toBe(ceiling / 2);
      expect(backoffDelay(i + 1, TRANSIENT_BACKOFF, high)).toBe(ceiling - 1);
    });
  });

  it("is jittered: different draws, different delays", () => {
    const random = seededRandom(7);
    const delays = new Set(Array.from({ length: 100 }, () => backoffDelay(5, TRANSIENT_BACKOFF, random)));
    expect(delays.size).toBeGreaterThan(90);
  });

  it("never shrinks from one attempt to the next while still doubling, whatever the draws", () => {
    // Below the ceiling: 2 s · 2^7 = 256 s < 300 s. At the ceiling the delay is simply in [150, 300) s.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, a, b) => {
          expect(backoffDelay(attempt + 1, TRANSIENT_BACKOFF, () => b)).toBeGreaterThanOrEqual(
            backoffDelay(attempt, TRANSIENT_BACKOFF, () => a),
          );
        },
      ),
    );
  });
});

describe("nextRetryAt", () => {
  it("waits exactly until a throttled answer's Retry-After time", () => {
    const retryAfterAt = T0 + 37_123;
    expect(nextRetryAt({ kind: "Throttled", streak: 1, failedAt: T0, retryAfterAt }, high)).toBe(
      retryAfterAt,
    );
  });

  it("honours a Retry-After longer than the held token's validity", () => {
    const retryAfterAt = T0 + 2 * HOUR;
    expect(
      nextRetryAt(
        { kind: "Throttled", streak: 1, failedAt: T0, retryAfterAt, usableUntil: T0 + MINUTE },
        low,
      ),
    ).toBe(retryAfterAt);
  });

  it("waits at least a second after a Retry-After of zero or in the past", () => {
    expect(nextRetryAt({ kind: "Throttled", streak: 1, failedAt: T0, retryAfterAt: T0 - 5 }, low)).toBe(
      T0 + MIN_RETRY_DELAY_MS,
    );
  });

  it("backs off for about a minute when throttled without a time (AADSTS50196), growing after", () => {
    const first = nextRetryAt({ kind: "Throttled", streak: 1, failedAt: T0 }, low);
    expect(first).toBe(T0 + 30 * SECOND);
    expect(nextRetryAt({ kind: "Throttled", streak: 1, failedAt: T0 }, high)).toBeLessThan(T0 + MINUTE);
    expect(nextRetryAt({ kind: "Throttled", streak: 3, failedAt: T0 }, low)).toBe(T0 + 2 * MINUTE);
  });

  it("retries a transient failure with growing delays while the held token has time to spare", () => {
    const usableUntil = T0 + HOUR;
    const delays = [1, 2, 3, 4].map(
      (streak) => nextRetryAt({ kind: "Transient", streak, failedAt: T0, usableUntil }, low) - T0,
    );
    expect(delays).toEqual([1, 2, 4, 8].map((s) => s * SECOND));
  });

  it("caps a transient retry halfway to the held token's expiry, so it lands before consumers see it expire", () => {
    const usableUntil = T0 + 3 * MINUTE;
    const retryAt = nextRetryAt({ kind: "Transient", streak: 9, failedAt: T0, usableUntil }, high);
    expect(retryAt).toBe(T0 + 90 * SECOND);
    expect(retryAt).toBeLessThan(usableUntil);
  });

  it("still waits the minimum when the held token is about to expire", () => {
    const retryAt = nextRetryAt({ kind: "Transient", streak: 9, failedAt: T0, usableUntil: T0 + 500 }, high);
    expect(retryAt).toBe(T0 + MIN_RETRY_DELAY_MS);
  });

  it("does not cap transient retries by a token that has already expired", () => {
    const retryAt = nextRetryAt({ kind: "Transient", streak: 9, failedAt: T0, usableUntil: T0 - 1 }, low);
    expect(retryAt).toBe(T0 + 150 * SECOND);
  });

  it("backs off slowly after a permanent failure: minutes first, doubling to an hour", () => {
    const first = nextRetryAt({ kind: "Permanent", streak: 1, failedAt: T0 }, low) - T0;
    expect(first).toBe(PERMANENT_BACKOFF.baseMs / 2);
    expect(nextRetryAt({ kind: "Permanent", streak: 1, failedAt: T0 }, high) - T0).toBeLessThan(5 * MINUTE);
    expect(nextRetryAt({ kind: "Permanent", streak: 2, failedAt: T0 }, low) - T0).toBe(5 * MINUTE);
    expect(nextRetryAt({ kind: "Permanent", streak: 20, failedAt: T0 }, high) - T0).toBeLessThan(HOUR);
    expect(nextRetryAt({ kind: "Permanent", streak: 20, failedAt: T0 }, low) - T0).toBe(30 * MINUTE);
  });

  it("does not pull a permanent retry forward for the held token's expiry", () => {
    const retryAt = nextRetryAt(
      { kind: "Permanent", streak: 1, failedAt: T0, usableUntil: T0 + MINUTE },
      low,
    );
    expect(retryAt).toBe(T0 + 150 * SECOND);
  });
});
