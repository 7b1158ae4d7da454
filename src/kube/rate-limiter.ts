import type { Clock } from "../clock.js";
import { TokenBucket } from "../rate/token-bucket.js";

/**
 * How long a failed key waits before it is handed out again. Same contract as client-go's
 * workqueue.TypedRateLimiter: `when` records a failure and returns the delay, `forget` clears the
 * key's history after a success.
 */
export interface RateLimiter {
  when(key: string): number;
  forget(key: string): void;
  retries(key: string): number;
}

/** Per-key exponential backoff: base·2^failures, capped. controller-runtime: 5 ms -> 1000 s. */
export class ExponentialFailureRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  constructor(
    private readonly baseDelayMs = 5,
    private readonly maxDelayMs = 1_000_000,
  ) {
    if (!(baseDelayMs > 0) || !(maxDelayMs >= baseDelayMs)) {
      throw new Error(`invalid backoff: base ${baseDelayMs} ms, max ${maxDelayMs} ms`);
    }
  }
  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity long after the cap; Math.min handles it.
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** n);
  }
  forget(key: string): void {
    this.failures.delete(key);
  }
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/**
 * One bucket for all keys (golang.org/x/time/rate reservations, as client-go's BucketRateLimiter):
 * each failure reserves the next token, so a burst of failures is spread out at `qps` instead of
 * hammering the API server all at once. The same bucket type paces writes, Events and token calls.
 */
export class TokenBucketRateLimiter implements RateLimiter {
  private readonly bucket: TokenBucket;
  constructor(
    qps: number,
    burst: number,
    private readonly clock: Clock,
  ) {
    if (!(qps > 0) || !(burst >= 1)) throw new Error(`invalid token bucket: ${qps} qps, burst ${burst}`);
    this.bucket = new TokenBucket({ ratePerSecond: qps, burst: Math.floor(burst), clock });
  }
  when(): number {
    return Math.max(0, this.bucket.reserve() - this.clock.now());
  }
  forget(): void {}
  retries(): number {
    return 0;
  }
}

/** The longest delay any of `limiters` asks for (client-go's MaxOfRateLimiter). */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: readonly RateLimiter[];
  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }
  when(key: string): number {
    let max = 0;
    for (const l of this.limiters) max = Math.max(max, l.when(key));
    return max;
  }
  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }
  retries(key: string): number {
    let max = 0;
    for (const l of this.limiters) max = Math.max(max, l.retries(key));
    return max;
  }
}

export interface ControllerRateLimiterOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * Overall retry rate. controller-runtime uses 10 qps / burst 100, tuned for thousands of objects;
   * at 10^5 a one-minute API outage fails tens of thousands of keys and 10 qps would spread their
   * retries over an hour, so the default here is 50 qps / burst 500.
   */
  qps?: number;
  burst?: number;
}

/** controller-runtime's default limiter: max(per-key exponential, overall token bucket). */
export function defaultControllerRateLimiter(
  clock: Clock,
  o: ControllerRateLimiterOptions = {},
): RateLimiter {
  return new MaxOfRateLimiter(
    new ExponentialFailureRateLimiter(o.baseDelayMs ?? 5, o.maxDelayMs ?? 1_000_000),
    new TokenBucketRateLimiter(o.qps ?? 50, o.burst ?? 500, clock),
  );
}
