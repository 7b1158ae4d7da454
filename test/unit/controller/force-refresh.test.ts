import { describe, expect, it } from "vitest";
import { forceHandledBy, forceToRecord, mustForce } from "../../../src/controller/force-refresh.js";

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
  ])("%j -> force=%s (%s)", (facts, expected, _why) => {
    expect(mustForce(facts)).toBe(expected);
  });

  it("counts as handled only when the forced acquire produced a new token", () => {
    expect(forceHandledBy(true, "Fetched")).toBe(true);
    expect(forceHandledBy(true, "Shared")).toBe(true);
    expect(forceHandledBy(true, "Deferred")).toBe(false);
    expect(forceHandledBy(true, "Failed")).toBe(false);
    expect(forceHandledBy(false, "Fetched")).toBe(false);
  });

  it("records the handled value on the Secret, and keeps an older record until then", () => {
    expect(forceToRecord({ wanted: "2", recordedOnSecret: "1", handledHere: "2" })).toBe("2");
    expect(forceToRecord({ wanted: "2", recordedOnSecret: "1", handledHere: undefined })).toBe("1");
    expect(
      forceToRecord({ wanted: undefined, recordedOnSecret: undefined, handledHere: undefined }),
    ).toBeUndefined();
  });
});
