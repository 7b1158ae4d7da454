import { describe, expect, it } from "vitest";
import { decideAcquire, nextAttemptAt } from "../../../src/cache/acquire-decision.js";
import type { KeySnapshot } from "../../../src/cache/acquire-decision.js";

const NOW = 1_000_000;
const none = Number.NEGATIVE_INFINITY;
const fresh: KeySnapshot = {
  refreshAt: NOW + 100,
  usableUntil: NOW + 500,
  inflight: undefined,
  retryAt: none,
  slotAt: undefined,
};
const due: KeySnapshot = { ...fresh, refreshAt: NOW - 1 };

describe("decideAcquire", () => {
  it("serves a fresh token, and calls for a due or missing one", () => {
    expect(decideAcquire(fresh, NOW, false)).toBe("Serve");
    expect(decideAcquire(due, NOW, false)).toBe("Call");
    expect(decideAcquire({ ...due, refreshAt: none, usableUntil: none }, NOW, false)).toBe("Call");
  });

  it("treats a token at the end of its usable life as due even before its refresh time", () => {
    expect(decideAcquire({ ...fresh, usableUntil: NOW }, NOW, false)).toBe("Call");
  });

  it("joins a call in flight before looking at backoff or the limiter", () => {
    expect(decideAcquire({ ...due, inflight: Promise.resolve(), retryAt: NOW + 5 }, NOW, false)).toBe("Join");
  });

  it("waits for retryAt, then for a reserved slot", () => {
    expect(decideAcquire({ ...due, retryAt: NOW + 1, slotAt: NOW + 9 }, NOW, false)).toBe("WaitForRetry");
    expect(decideAcquire({ ...due, retryAt: NOW, slotAt: NOW + 9 }, NOW, false)).toBe("WaitForSlot");
    expect(decideAcquire({ ...due, slotAt: NOW }, NOW, false)).toBe("Call");
  });

  it("lets force skip freshness only", () => {
    expect(decideAcquire(fresh, NOW, true)).toBe("Call");
    expect(decideAcquire({ ...fresh, retryAt: NOW + 1 }, NOW, true)).toBe("WaitForRetry");
  });
});

describe("nextAttemptAt", () => {
  it("is the refresh time of a fresh token", () => {
    expect(nextAttemptAt(fresh, NOW)).toBe(NOW + 100);
  });

  it("is when a call is next allowed, or the end of the held token's life if sooner", () => {
    expect(nextAttemptAt({ ...due, retryAt: NOW + 50 }, NOW)).toBe(NOW + 50);
    expect(nextAttemptAt({ ...due, retryAt: NOW + 50, slotAt: NOW + 70 }, NOW)).toBe(NOW + 70);
    expect(nextAttemptAt({ ...due, retryAt: NOW + 900 }, NOW)).toBe(NOW + 500);
    expect(nextAttemptAt({ ...due, usableUntil: none, retryAt: NOW + 900 }, NOW)).toBe(NOW + 900);
  });
});
