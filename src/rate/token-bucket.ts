import type { Clock } from "../clock.js";

/**
 * Anything that paces calls to the token service. `reserve` always takes a slot: now when one is
 * free, else the next one in line, and says when that slot is due. The cache hands that time back
 * to the controller ("come back at T") instead of sleeping, so no reconcile worker is held and tests
 * need no timers; and since every waiter gets its own slot, 10^5 keys due together are spread over
 * the queue instead of all coming back at the same instant and fighting for one token.
 */
export interface CallLimiter {
  reserve(): number;
  /**
   * Gives back the slot the last `reserve` took, when no call was made with it after all (the
   * fleet tier answered from its shared store): a read from the store must not pace real calls.
   */
  giveBack?(): void;
}

export interface TokenBucketOptions {
  /** Sustained calls per second (the --token-requests-per-second flag). */
  ratePerSecond: number;
  /** Calls allowed back to back after a quiet period (≥ 1). */
  burst: number;
  clock: Clock;
}

/**
 * The global limit on calls to the token service: a token bucket, kept as GCRA's single
 * "theoretical arrival time" so there is no refill loop and no timer; every method is O(1) and reads
 * the injected clock. Slots handed out by `reserve` ahead of time count against later callers, so
 * waiting is first come, first served.
 */
export class TokenBucket implements CallLimiter {
  private readonly intervalMs: number;
  private readonly toleranceMs: number;
  private readonly clock: Clock;
  /** When the bucket would be empty again if no one else took a token (GCRA's TAT). */
  private theoreticalArrival: number;

  constructor(options: TokenBucketOptions) {
    if (!(Number.isFinite(options.ratePerSecond) && options.ratePerSecond > 0)) {
      throw new RangeError(`ratePerSecond must be a positive number, got ${options.ratePerSecond}`);
    }
    if (!(Number.isInteger(options.burst) && options.burst >= 1)) {
      throw new RangeError(`burst must be an integer ≥ 1, got ${options.burst}`);
    }
    this.clock = options.clock;
    this.intervalMs = 1000 / options.ratePerSecond;
    this.toleranceMs = (options.burst - 1) * this.intervalMs;
    this.theoreticalArrival = Number.NEGATIVE_INFINITY;
  }

  /** Takes a token if one is available now. */
  tryTake(): boolean {
    const now = this.clock.now();
    if (this.theoreticalArrival - this.toleranceMs > now) return false;
    this.theoreticalArrival = Math.max(this.theoreticalArrival, now) + this.intervalMs;
    return true;
  }

  /** When a token will next be available (now, if one is). Whole ms, never early. */
  nextAvailableAt(): number {
    const now = this.clock.now();
    return Math.max(now, Math.ceil(this.theoreticalArrival - this.toleranceMs));
  }

  /** Takes the next token, now or in the future, and returns when it is due (≤ now: at once). */
  reserve(): number {
    const due = this.nextAvailableAt();
    this.theoreticalArrival = Math.max(this.theoreticalArrival, this.clock.now()) + this.intervalMs;
    return due;
  }

  /** Undoes one `reserve`: later reservations keep their due times, the next one comes sooner. */
  giveBack(): void {
    if (this.theoreticalArrival === Number.NEGATIVE_INFINITY) return;
    this.theoreticalArrival -= this.intervalMs;
  }

  /** Tokens available now (negative when slots are reserved ahead); for metrics. */
  available(): number {
    const now = this.clock.now();
    const burst = this.toleranceMs / this.intervalMs + 1;
    if (this.theoreticalArrival === Number.NEGATIVE_INFINITY) return burst;
    return Math.min(burst, (now - (this.theoreticalArrival - this.toleranceMs)) / this.intervalMs + 1);
  }
}

/** For tests and for deployments that want no global limit. */
export const unlimited: CallLimiter = { reserve: () => Number.NEGATIVE_INFINITY };
