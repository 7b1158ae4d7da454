import { describe, expect, it } from "vitest";
import {
  firstSeen,
  forceDecision,
  forcePending,
  forceToRecord,
  withForceWait,
  type ForceKeyFacts,
  type ForceRefreshFacts,
} from "../../../src/controller/force-refresh.js";
import type { Outcome } from "../../../src/controller/outcomes.js";

const T0 = Date.parse("2026-03-01T10:00:00Z");
const S = 1_000;

describe("the force-refresh annotation", () => {
  it.each([
    [
      { wanted: undefined, recordedOnSecret: undefined, handledHere: undefined },
      false,
      "no annotation: nothing to force",
    ],
    [
      { wanted: "1", recordedOnSecret: undefined, handledHere: undefined },
      true,
      "a new value forces a token",
    ],
    [
      { wanted: "1", recordedOnSecret: "1", handledHere: undefined },
      false,
      "recorded on the Secret: a restarted operator does not act again",
    ],
    [
      { wanted: "1", recordedOnSecret: undefined, handledHere: "1" },
      false,
      "fetched here but the Secret write failed: retrying the write must not fetch again",
    ],
    [{ wanted: "2", recordedOnSecret: "1", handledHere: "1" }, true, "another new value forces again"],
  ])("%j -> pending=%s (%s)", (facts, expected, _why) => {
    expect(forcePending(facts)).toBe(expected);
  });

  it("records the handled value on the Secret, and keeps an older record until then", () => {
    expect(forceToRecord({ wanted: "2", recordedOnSecret: "1", handledHere: "2" })).toBe("2");
    expect(forceToRecord({ wanted: "2", recordedOnSecret: "1", handledHere: undefined })).toBe("1");
    expect(
      forceToRecord({ wanted: undefined, recordedOnSecret: undefined, handledHere: undefined }),
    ).toBeUndefined();
  });
});

describe("coalescing forced calls per cache key", () => {
  const base: ForceRefreshFacts & ForceKeyFacts = {
    wanted: "v1",
    recordedOnSecret: undefined,
    handledHere: undefined,
    seenAt: T0,
    fetchedAt: T0 - 600 * S, // the key's routine token, fetched before anyone asked
    forcedAt: undefined,
    minIntervalMs: 30 * S,
    now: T0,
  };
  it.each<[string, Partial<ForceRefreshFacts & ForceKeyFacts>, ReturnType<typeof forceDecision>]>([
    ["first value on the key: call", {}, { action: "call" }],
    [
      "second value 5 s after the first forced call: wait until that call + interval",
      { wanted: "v2", handledHere: "v1", seenAt: T0 + 5 * S, now: T0 + 5 * S, fetchedAt: T0, forcedAt: T0 },
      { action: "wait", until: T0 + 30 * S },
    ],
    [
      "the same waiting value looked at again before the interval's end: still wait",
      { wanted: "v2", seenAt: T0 + 5 * S, now: T0 + 29 * S, fetchedAt: T0, forcedAt: T0 },
      { action: "wait", until: T0 + 30 * S },
    ],
    [
      "the waiting value at the interval's end: call",
      { wanted: "v2", seenAt: T0 + 5 * S, now: T0 + 30 * S, fetchedAt: T0, forcedAt: T0 },
      { action: "call" },
    ],
    [
      "a token fetched after the value was seen is in place: nothing to call, record the value",
      { wanted: "v2", seenAt: T0 + 5 * S, now: T0 + 31 * S, fetchedAt: T0 + 30 * S, forcedAt: T0 + 30 * S },
      { action: "none", handled: "v2" },
    ],
    [
      "this reconcile's own forced call started in the millisecond the value was seen: satisfied",
      { fetchedAt: T0, forcedAt: T0 },
      { action: "none", handled: "v1" },
    ],
    [
      "a routine refresh that started after the value was seen satisfies it too",
      { seenAt: T0, now: T0 + 2 * S, fetchedAt: T0 + S },
      { action: "none", handled: "v1" },
    ],
    [
      "interval 0: every new value calls",
      { wanted: "v2", seenAt: T0 + S, now: T0 + S, fetchedAt: T0, forcedAt: T0, minIntervalMs: 0 },
      { action: "call" },
    ],
    [
      "interval 0 still does not call for a value the held token already satisfies",
      { seenAt: T0, now: T0 + S, fetchedAt: T0 + S, forcedAt: T0 + S, minIntervalMs: 0 },
      { action: "none", handled: "v1" },
    ],
    [
      "another request sharing the key forced it 2 s ago, before this value was seen: wait",
      { seenAt: T0 + 2 * S + 1, now: T0 + 2 * S + 1, fetchedAt: T0 + 2 * S, forcedAt: T0 + 2 * S },
      { action: "wait", until: T0 + 32 * S },
    ],
    [
      "the key's last forced call is older than the interval: call",
      { seenAt: T0 + 40 * S, now: T0 + 40 * S, fetchedAt: T0, forcedAt: T0 },
      { action: "call" },
    ],
    [
      "a token seeded from a Secret after a restart has no fetch time: call",
      { fetchedAt: undefined },
      { action: "call" },
    ],
    [
      "already recorded on the Secret: nothing",
      { recordedOnSecret: "v1" },
      { action: "none", handled: undefined },
    ],
    [
      "handled here (its Secret write failed): nothing new to call for",
      { handledHere: "v1", forcedAt: T0 - S },
      { action: "none", handled: undefined },
    ],
    ["no annotation: nothing", { wanted: undefined }, { action: "none", handled: undefined }],
  ])("%s", (_why, facts, expected) => {
    expect(forceDecision({ ...base, ...facts })).toEqual(expected);
  });

  it("remembers when a value was first seen, and starts over when the value changes", () => {
    const seen = firstSeen(undefined, "v1", T0);
    expect(seen).toEqual({ value: "v1", at: T0 });
    expect(firstSeen(seen, "v1", T0 + 5 * S)).toBe(seen);
    expect(firstSeen(seen, "v2", T0 + 5 * S)).toEqual({ value: "v2", at: T0 + 5 * S });
    expect(firstSeen(seen, undefined, T0 + 5 * S)).toBeUndefined();
  });

  it("says on Ready when the forced call will be made, and looks again then", () => {
    const o: Outcome = {
      ready: { status: "True", reason: "TokenIssued", message: "token issued" },
      requeueAfterMs: 600 * S,
    };
    const waiting = withForceWait(o, "v2", T0 + 30 * S, T0 + 5 * S);
    expect(waiting.ready.status).toBe("True");
    expect(waiting.ready.reason).toBe("TokenIssued");
    expect(waiting.ready.message).toBe(
      'token issued; force-refresh "v2" waits for the next forced call at 2026-03-01T10:00:30.000Z ' +
        "(at most one per token per --force-refresh-min-interval)",
    );
    expect(waiting.requeueAfterMs).toBe(25 * S);
    // The key's own schedule, when sooner, still wins.
    expect(withForceWait({ ...o, requeueAfterMs: 3 * S }, "v2", T0 + 30 * S, T0).requeueAfterMs).toBe(3 * S);
    expect(withForceWait(o, "x".repeat(200), T0 + 30 * S, T0).ready.message).toContain(
      `"${"x".repeat(64)}..."`,
    );
  });
});
