import type { TokenResponse } from "../../../src/cache/token-response.js";
import type { Clock } from "../../../src/clock.js";

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

/** A small seeded PRNG (mulberry32), so jitter tests are random-looking but repeatable. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let serial = 0;

/** A token as the token client would return it, issued now. */
export function tokenIssuedNow(clock: Clock, lifetimeMs = HOUR, refreshIn?: number): TokenResponse {
  const now = clock.now();
  serial++;
  return {
    accessToken: `token-${serial}`,
    tokenType: "Bearer",
    issuedAt: now,
    expiresAt: now + lifetimeMs,
    ...(refreshIn === undefined ? {} : { refreshIn }),
  };
}

/** A promise the test settles by hand: a token call "in flight". */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
