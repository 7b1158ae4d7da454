/**
 * Go-style durations ("20m", "1h30m", "1.5h"), parsed exactly as Go's time.ParseDuration parses
 * them, because the CRD's CEL rule calls `duration()`, which is ParseDuration: the schema and the
 * controller must read a value the way the apiserver validated it, including Go's float64 rounding
 * of fractions and its overflow errors. The CRD narrows what it accepts further (see DURATION_RE);
 * this module accepts everything Go does.
 */

export class InvalidDurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidDurationError";
  }
}

const NANOS_PER_MILLI = 1_000_000n;
const MAX_UINT63 = 1n << 63n;

/** Go's unitMap, in nanoseconds. Both micro signs are accepted, as Go does. */
const UNITS: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["\u00b5s", 1_000n],
  ["\u03bcs", 1_000n],
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

function quote(s: string): string {
  return JSON.stringify(s);
}

/** Go's leadingInt: the digits `s` starts with; undefined on overflow, which Go fails on too. */
function leadingInt(s: string): { value: bigint; rest: string } | undefined {
  let i = 0;
  let v = 0n;
  while (isDigit(s[i])) {
    if (v > MAX_UINT63 / 10n) return undefined;
    v = v * 10n + BigInt(s.charCodeAt(i) - 48);
    if (v > MAX_UINT63) return undefined;
    i++;
  }
  return { value: v, rest: s.slice(i) };
}

/**
 * Go's leadingFraction: the digits after a ".", and 10^(digits kept). Go stops accumulating
 * precision on overflow instead of failing, and so does this.
 */
function leadingFraction(s: string): { value: bigint; scale: number; rest: string } {
  let j = 0;
  let f = 0n;
  let scale = 1;
  let overflow = false;
  while (isDigit(s[j])) {
    if (!overflow) {
      if (f > (MAX_UINT63 - 1n) / 10n) {
        overflow = true;
      } else {
        const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
        if (y > MAX_UINT63) {
          overflow = true;
        } else {
          f = y;
          scale *= 10;
        }
      }
    }
    j++;
  }
  return { value: f, scale, rest: s.slice(j) };
}

/**
 * Parses a Go duration string to nanoseconds, with Go's semantics and error messages:
 * `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or a bare "0".
 * @throws InvalidDurationError
 */
export function parseDurationNanos(text: string): bigint {
  const invalid = (): InvalidDurationError =>
    new InvalidDurationError(`time: invalid duration ${quote(text)}`);
  let s = text;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") throw invalid();
  let total = 0n;
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]))) throw invalid();
    const int = leadingInt(s);
    if (!int) throw invalid();
    const pre = int.rest.length !== s.length;
    let v = int.value;
    s = int.rest;
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === ".") {
      s = s.slice(1);
      const fraction = leadingFraction(s);
      post = fraction.rest.length !== s.length;
      f = fraction.value;
      scale = fraction.scale;
      s = fraction.rest;
    }
    if (!pre && !post) throw invalid();
    let u = 0;
    while (u < s.length && !(s[u] === "." || isDigit(s[u]))) u++;
    if (u === 0) throw new InvalidDurationError(`time: missing unit in duration ${quote(text)}`);
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = UNITS.get(unitName);
    if (unit === undefined) {
      throw new InvalidDurationError(`time: unknown unit ${quote(unitName)} in duration ${quote(text)}`);
    }
    if (v > MAX_UINT63 / unit) throw invalid();
    v *= unit;
    if (f > 0n) {
      // Go computes the fraction in float64 and truncates; doing the same keeps us bit-for-bit equal.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX_UINT63) throw invalid();
    }
    total += v;
    if (total > MAX_UINT63) throw invalid();
  }
  if (neg) return -total;
  if (total > MAX_UINT63 - 1n) throw invalid();
  return total;
}

/**
 * Parses a Go duration string to milliseconds (fractional below 1 ms), the unit every timer in
 * this project uses.
 * @throws InvalidDurationError
 */
export function parseDuration(text: string): number {
  const ns = parseDurationNanos(text);
  return Number(ns / NANOS_PER_MILLI) + Number(ns % NANOS_PER_MILLI) / 1e6;
}

/** Like parseDuration, but undefined instead of an exception; for optional spec fields. */
export function tryParseDuration(text: string): number | undefined {
  try {
    return parseDuration(text);
  } catch (e) {
    if (e instanceof InvalidDurationError) return undefined;
    throw e;
  }
}

/**
 * Formats milliseconds the way Go's Duration.String() does ("1h30m0s", "1.5s", "250ms", "0s"), so
 * that messages in status read like the values users write in refreshBefore. Sub-nanosecond parts
 * are truncated.
 */
export function formatDuration(ms: number): string {
  // Whole and fractional milliseconds apart: ms * 1e6 would lose nanoseconds above 2^53.
  const whole = Math.trunc(ms);
  const ns = BigInt(whole) * NANOS_PER_MILLI + BigInt(Math.trunc((ms - whole) * 1e6));
  if (ns === 0n) return "0s";
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    // Below a second Go picks the largest unit that keeps an integer part, with a fraction.
    const [unitNs, name] =
      u < 1_000n ? [1n, "ns"] : u < 1_000_000n ? [1_000n, "\u00b5s"] : [1_000_000n, "ms"];
    out = fixed(u, unitNs) + name;
  } else {
    const h = u / 3_600_000_000_000n;
    u -= h * 3_600_000_000_000n;
    const m = u / 60_000_000_000n;
    u -= m * 60_000_000_000n;
    out = `${fixed(u, 1_000_000_000n)}s`;
    if (h > 0n) out = `${h}h${m}m${out}`;
    else if (m > 0n) out = `${m}m${out}`;
  }
  return neg ? `-${out}` : out;
}

/** n / unit as a decimal without trailing zeros, exactly (Go's fmtFrac + fmtInt). */
function fixed(n: bigint, unit: bigint): string {
  const whole = n / unit;
  const frac = n % unit;
  if (frac === 0n) return whole.toString();
  const digits = unit.toString().length - 1;
  return `${whole}.${frac.toString().padStart(digits, "0").replace(/0+$/, "")}`;
}
