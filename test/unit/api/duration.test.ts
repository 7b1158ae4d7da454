import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatDuration,
  InvalidDurationError,
  parseDuration,
  parseDurationNanos,
  tryParseDuration,
} from "../../../src/api/duration.js";

const S = 1_000_000_000n;
const MS = 1_000_000n;
const US = 1_000n;
const M = 60n * S;
const H = 60n * M;
const MAX = (1n << 63n) - 1n;
const MIN = -(1n << 63n);

describe("parseDurationNanos agrees with Go's time.ParseDuration", () => {
  // Go's own table, src/time/time_test.go parseDurationTests.
  it.each<[string, bigint]>([
    ["0", 0n],
    ["5s", 5n * S],
    ["30s", 30n * S],
    ["1478s", 1478n * S],
    ["-5s", -5n * S],
    ["+5s", 5n * S],
    ["-0", 0n],
    ["+0", 0n],
    ["5.0s", 5n * S],
    ["5.6s", 5n * S + 600n * MS],
    ["5.s", 5n * S],
    [".5s", 500n * MS],
    ["1.0s", S],
    ["1.00s", S],
    ["1.004s", S + 4n * MS],
    ["1.0040s", S + 4n * MS],
    ["100.00100s", 100n * S + MS],
    ["10ns", 10n],
    ["11us", 11n * US],
    ["12\u00b5s", 12n * US],
    ["12\u03bcs", 12n * US],
    ["13ms", 13n * MS],
    ["14s", 14n * S],
    ["15m", 15n * M],
    ["16h", 16n * H],
    ["3h30m", 3n * H + 30n * M],
    ["10.5s4m", 4n * M + 10n * S + 500n * MS],
    ["-2m3.4s", -(2n * M + 3n * S + 400n * MS)],
    ["1h2m3s4ms5us6ns", H + 2n * M + 3n * S + 4n * MS + 5n * US + 6n],
    ["39h9m14.425s", 39n * H + 9n * M + 14n * S + 425n * MS],
    ["52763797000ns", 52763797000n],
    ["0.3333333333333333333h", 20n * M],
    ["9007199254740993ns", (1n << 53n) + 1n],
    ["9223372036854775807ns", MAX],
    ["9223372036854775.807us", MAX],
    ["9223372036s854ms775us807ns", MAX],
    ["-9223372036854775808ns", MIN],
    ["-9223372036854775.808us", MIN],
    ["-9223372036s854ms775us808ns", MIN],
    ["-2562047h47m16.854775808s", MIN],
    ["0.100000000000000000000h", 6n * M],
    ["0.830103483285477580700h", 49n * M + 48n * S + 372539827n],
  ])("%s", (text, want) => {
    expect(parseDurationNanos(text)).toBe(want);
  });

  // Go's parseDurationErrorTests (those expressible as JavaScript strings).
  it.each([
    "",
    "3",
    "-",
    "s",
    ".",
    "-.",
    ".s",
    "+.s",
    "1d",
    "\ufffd",
    "9223372036854775810ns",
    "9223372036854775808ns",
    "-9223372036854775809ns",
    "9223372036854776us",
    "3000000h",
    "9223372036854775.808us",
    "9223372036854ms775us808ns",
  ])("rejects %j", (text) => {
    expect(() => parseDurationNanos(text)).toThrow(InvalidDurationError);
  });

  it("names the problem as Go does", () => {
    expect(() => parseDurationNanos("20")).toThrow('time: missing unit in duration "20"');
    expect(() => parseDurationNanos("1d")).toThrow('time: unknown unit "d" in duration "1d"');
  });
});

describe("parseDuration", () => {
  it("gives milliseconds", () => {
    expect(parseDuration("20m")).toBe(1_200_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration("250us")).toBe(0.25);
  });

  it("returns undefined from tryParseDuration instead of throwing", () => {
    expect(tryParseDuration("1d")).toBeUndefined();
    expect(tryParseDuration("5m")).toBe(300_000);
  });
});

describe("formatDuration writes what Go's Duration.String() writes", () => {
  it.each<[number, string]>([
    [0, "0s"],
    [5_400_000, "1h30m0s"],
    [3_600_000, "1h0m0s"],
    [1_200_000, "20m0s"],
    [1_500, "1.5s"],
    [250, "250ms"],
    [1.5, "1.5ms"],
    [0.001, "1\u00b5s"],
    [0.000001, "1ns"],
    [-5_000, "-5s"],
    [86_400_000, "24h0m0s"],
  ])("%d ms -> %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("round-trips whole milliseconds through parseDuration", () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e12 }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
    );
  });
});
