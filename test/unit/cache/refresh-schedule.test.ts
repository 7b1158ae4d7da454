import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_JITTER_MS,
  REFRESH_FLOOR_MS,
  latestRefreshAt,
  refreshSchedule,
} from "../../../src/cache/refresh-schedule.js";
import { HOUR, MINUTE, SECOND, seededRandom } from "./support.js";

const T0 = Date.parse("2026-11-24T11:00:00Z");
const noJitter = () => 0;
/** The largest draw: the most jitter. */
const fullJitter = () => 0.999999;

describe("refreshSchedule", () => {
  it("refreshes at half the lifetime when the service sends no refresh_in", () => {
    const plan = refreshSchedule({ issuedAt: T0, expiresAt: T0 + HOUR }, noJitter);
    expect(plan).toEqual({ refreshAt: T0 + 30 * MINUTE, basis: "HalfLife", clampedToFloor: false });
  });

  it("honours refresh_in when the service sends it", () => {
    const plan = refreshSchedule({ issuedAt: T0, expiresAt: T0 + 24 * HOUR, refreshIn: 12 * 3600 }, noJitter);
    expect(plan.refreshAt).toBe(T0 + 12 * HOUR);
    expect(plan.basis).toBe("RefreshIn");
  });

  it("refreshes refreshBefore before expiry when the spec sets it", () => {
    const plan = refreshSchedule(
      { issuedAt: T0, expiresAt: T0 + HOUR, refreshBeforeMs: 20 * MINUTE },
      noJitter,
    );
    expect(plan.refreshAt).toBe(T0 + 40 * MINUTE);
    expect(plan.basis).toBe("RefreshBefore");
  });

  it("takes the earlier of refresh_in and refreshBefore when both are given", () => {
    const byService = refreshSchedule(
      { issuedAt: T0, expiresAt: T0 + HOUR, refreshIn: 1800, refreshBeforeMs: 20 * MINUTE },
      noJitter,
    );
    expect(byService).toMatchObject({ refreshAt: T0 + 30 * MINUTE, basis: "RefreshIn" });
    const byUser = refreshSchedule(
      { issuedAt: T0, expiresAt: T0 + HOUR, refreshIn: 1800, refreshBeforeMs: 45 * MINUTE },
      noJitter,
    );
    expect(byUser).toMatchObject({ refreshAt: T0 + 15 * MINUTE, basis: "RefreshBefore" });
  });

  it("ignores a refreshBefore as long as the lifetime, which would make every token due on arrival", () => {
    const plan = refreshSchedule({ issuedAt: T0, expiresAt: T0 + HOUR, refreshBeforeMs: 2 * HOUR }, noJitter);
    expect(plan).toMatchObject({ refreshAt: T0 + 30 * MINUTE, basis: "HalfLife" });
  });

  it("never refreshes later than 5 minutes before expiry", () => {
    const lateService = refreshSchedule({ issuedAt: T0, expiresAt: T0 + HOUR, refreshIn: 58 * 60 }, noJitter);
    expect(lateService).toMatchObject({ refreshAt: T0 + 55 * MINUTE, clampedToFloor: true });
    const lateUser = refreshSchedule(
      { issuedAt: T0, expiresAt: T0 + HOUR, refreshBeforeMs: MINUTE },
      noJitter,
    );
    expect(lateUser.refreshAt).toBe(T0 + HOUR - REFRESH_FLOOR_MS);
  });

  it("refreshes a token shorter than 10 minutes no later than half its lifetime", () => {
    const plan = refreshSchedule({ issuedAt: T0, expiresAt: T0 + 4 * MINUTE, refreshIn: 200 }, noJitter);
    expect(plan.refreshAt).toBe(T0 + 2 * MINUTE);
    expect(latestRefreshAt(T0, T0 + 4 * MINUTE)).toBe(T0 + 2 * MINUTE);
    expect(latestRefreshAt(T0, T0 + 10 * MINUTE)).toBe(T0 + 5 * MINUTE);
  });

  it("moves refreshAt earlier by at most 5% of the lifetime", () => {
    const plan = refreshSchedule({ issuedAt: T0, expiresAt: T0 + HOUR }, fullJitter);
    expect(plan.refreshAt).toBeLessThan(T0 + 30 * MINUTE);
    expect(plan.refreshAt).toBeGreaterThanOrEqual(T0 + 30 * MINUTE - 3 * MINUTE);
  });

  it("bounds the jitter of long tokens to 5 minutes", () => {
    const plan = refreshSchedule(
      { issuedAt: T0, expiresAt: T0 + 24 * HOUR, refreshIn: 12 * 3600 },
      fullJitter,
    );
    expect(T0 + 12 * HOUR - plan.refreshAt).toBeLessThanOrEqual(MAX_JITTER_MS);
    expect(T0 + 12 * HOUR - plan.refreshAt).toBeGreaterThan(MAX_JITTER_MS - SECOND);
  });

  it("never schedules before the token was issued", () => {
    const plan = refreshSchedule({ issuedAt: T0, expiresAt: T0 + 10 * SECOND, refreshIn: 0.001 }, fullJitter);
    expect(plan.refreshAt).toBeGreaterThanOrEqual(T0);
  });

  it("spreads 10 000 tokens issued in the same second over a window, not a spike", () => {
    const random = seededRandom(42);
    const perSecond = new Map<number, number>();
    let first = Infinity;
    let last = -Infinity;
    for (let i = 0; i < 10_000; i++) {
      const issuedAt = T0 + Math.floor(random() * SECOND);
      const { refreshAt } = refreshSchedule({ issuedAt, expiresAt: issuedAt + HOUR }, random);
      const bucket = Math.floor(refreshAt / SECOND);
      perSecond.set(bucket, (perSecond.get(bucket) ?? 0) + 1);
      first = Math.min(first, refreshAt);
      last = Math.max(last, refreshAt);
    }
    // 5% of an hour is a 180 s window: about 56 refreshes a second, nowhere near 10 000.
    expect(last - first).toBeGreaterThan(170 * SECOND);
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(100); // ≤ 1% of the herd in any second
    expect(perSecond.size).toBeGreaterThan(170);
  });

  it("keeps refreshAt within [issuedAt, expiresAt − 5 min] for every lifetime of 10 minutes or more", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10 * 60, max: 48 * 3600 }), // lifetime, s
        fc.option(fc.double({ min: 0, max: 100 * 3600, noNaN: true }), { nil: undefined }), // refresh_in, s
        fc.option(fc.integer({ min: 0, max: 100 * HOUR }), { nil: undefined }), // refreshBefore, ms
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (lifetimeS, refreshIn, refreshBeforeMs, draw) => {
          const expiresAt = T0 + lifetimeS * SECOND;
          const { refreshAt } = refreshSchedule(
            { issuedAt: T0, expiresAt, refreshIn, refreshBeforeMs },
            () => draw,
          );
          expect(refreshAt).toBeGreaterThanOrEqual(T0);
          expect(refreshAt).toBeLessThanOrEqual(expiresAt - REFRESH_FLOOR_MS);
          expect(Number.isInteger(refreshAt)).toBe(true);
        },
      ),
    );
  });

  it("keeps refreshAt within the first half of the lifetime for tokens shorter than 10 minutes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 10 * 60 }),
        fc.option(fc.double({ min: 0, max: 3600, noNaN: true }), { nil: undefined }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (lifetimeS, refreshIn, draw) => {
          const expiresAt = T0 + lifetimeS * SECOND;
          const { refreshAt } = refreshSchedule({ issuedAt: T0, expiresAt, refreshIn }, () => draw);
          expect(refreshAt).toBeGreaterThanOrEqual(T0);
          expect(refreshAt).toBeLessThanOrEqual(T0 + (lifetimeS * SECOND) / 2);
        },
      ),
    );
  });
});
