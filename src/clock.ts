/**
 * Time is injected everywhere refresh, backoff or throttling is decided, so that those rules are
 * tested without sleeping. Milliseconds since the epoch, like Date.now().
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
