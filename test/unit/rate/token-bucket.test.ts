import { describe, expect, it } from "vitest";
import { TokenBucket } from "../../../src/rate/token-bucket.js";
import { FakeClock } from "../../support/fake-clock.js";

describe("TokenBucket", () => {
  it("allows a burst, then one call per interval", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, clock });
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(bucket.nextAvailableAt()).toBe(clock.now() + 100);
    clock.advance(99);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(1);
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
  });

  it("says a token is available now when one is", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ ratePerSecond: 1, burst: 1, clock });
    expect(bucket.nextAvailableAt()).toBe(clock.now());
    expect(bucket.available()).toBe(1);
  });

  it("holds the configured rate over a long run", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ ratePerSecond: 50, burst: 20, clock });
    let taken = 0;
    for (let ms = 0; ms < 60_000; ms++) {
      while (bucket.tryTake()) taken++;
      clock.advance(1);
    }
    expect(taken).toBe(50 * 60 + 20 - 1);
  });

  it("refills no more than the burst after a quiet period", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ ratePerSecond: 5, burst: 2, clock });
    clock.advance(3_600_000);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, false]);
  });

  it("hands out reserved slots first come, first served, one interval apart", () => {
    const clock = new FakeClock();
    const now = clock.now();
    const bucket = new TokenBucket({ ratePerSecond: 4, burst: 1, clock });
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([now, now + 250, now + 500]);
    expect(bucket.available()).toBe(-2);
    clock.advance(250);
    // The slot at +250 belongs to the second reservation, so a newcomer cannot take it.
    expect(bucket.tryTake()).toBe(false);
    expect(bucket.nextAvailableAt()).toBe(now + 750);
  });

  it("never claims a slot early with a rate that is not a whole number of milliseconds", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ ratePerSecond: 3, burst: 1, clock });
    bucket.tryTake();
    const at = bucket.nextAvailableAt();
    expect(at).toBe(clock.now() + 334);
    clock.set(at);
    expect(bucket.tryTake()).toBe(true);
  });

  it("takes back a slot given back, never beyond the burst", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ ratePerSecond: 1, burst: 1, clock });
    bucket.giveBack(); // nothing taken yet: no effect
    expect(bucket.reserve()).toBe(clock.now());
    expect(bucket.nextAvailableAt()).toBe(clock.now() + 1000);
    bucket.giveBack();
    expect(bucket.nextAvailableAt()).toBe(clock.now());
    // Giving back more than was taken does not grow the burst.
    bucket.giveBack();
    bucket.giveBack();
    expect(bucket.reserve()).toBe(clock.now());
    expect(bucket.reserve()).toBe(clock.now() + 1000);
  });

  it("rejects a rate or burst that would block every call", () => {
    const clock = new FakeClock();
    expect(() => new TokenBucket({ ratePerSecond: 0, burst: 1, clock })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSecond: 1, burst: 0, clock })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSecond: Number.NaN, burst: 1, clock })).toThrow(RangeError);
  });
});
