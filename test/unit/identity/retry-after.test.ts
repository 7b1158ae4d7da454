import { describe, expect, it } from "vitest";
import { parseRetryAfter } from "../../../src/identity/retry-after.js";

const now = Date.parse("2026-11-24T11:00:00.250Z");

describe("parseRetryAfter", () => {
  it("reads delay-seconds relative to now", () => {
    expect(parseRetryAfter("120", now)).toBe(now + 120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(now);
  });

  it("reads an IMF-fixdate to the second", () => {
    expect(parseRetryAfter("Tue, 24 Nov 2026 11:01:30 GMT", now)).toBe(Date.parse("2026-11-24T11:01:30Z"));
  });

  it("reads the obsolete RFC 850 and asctime forms", () => {
    expect(parseRetryAfter("Tuesday, 24-Nov-26 11:01:30 GMT", now)).toBe(Date.parse("2026-11-24T11:01:30Z"));
    expect(parseRetryAfter("Tue Nov 24 11:01:30 2026", now)).toBe(Date.parse("2026-11-24T11:01:30Z"));
  });

  it("never names a time in the past", () => {
    expect(parseRetryAfter("Tue, 24 Nov 2026 10:00:00 GMT", now)).toBe(now);
  });

  it.each([undefined, "", "soon", "-5", "1.5", "5 seconds", "2026-11-24T11:01:30Z", "99999999999999999999"])(
    "ignores %j",
    (value) => {
      expect(parseRetryAfter(value, now)).toBeUndefined();
    },
  );
});
