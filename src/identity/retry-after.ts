/**
 * Reads an HTTP Retry-After header (RFC 9110 §10.2.3): either delay-seconds or an HTTP-date.
 * Returns the epoch ms before which no request may be made, never earlier than `now`; undefined
 * when the header is absent or unreadable (the caller then falls back to its own backoff).
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) {
    const seconds = Number(trimmed);
    return Number.isSafeInteger(seconds) ? now + seconds * 1000 : undefined;
  }
  // HTTP-date always names a weekday and "GMT"; requiring them keeps Date.parse's leniency (which
  // accepts "5" or "tomorrow"-like junk on some engines) from inventing a time.
  if (!/^[A-Za-z]{3,9},? .*\d{2}:\d{2}:\d{2} GMT$/.test(trimmed) && !isAsctime(trimmed)) return undefined;
  const at = Date.parse(isAsctime(trimmed) ? `${trimmed} GMT` : trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(at, now);
}

// asctime-date: "Sun Nov  6 08:49:37 1994", the third obsolete form HTTP still asks us to accept.
function isAsctime(value: string): boolean {
  return /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/.test(value);
}
