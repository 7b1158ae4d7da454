/**
 * The fleet tier: a decorator around the token fetch that looks in a store shared by every
 * operator of a fleet before calling the token service, makes sure only one of them calls per key
 * (shared-lock.ts), publishes the sealed result for the others, and shares the service's throttling
 * verdicts. It is never worse than no tier: trouble of every kind with the store (down, slow, full,
 * wrong password, values it cannot open) ends in this operator calling the service itself, and the
 * tier says so once per change of state, in the log and in apptoken_shared_cache_up.
 */
import { randomBytes } from "node:crypto";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Clock } from "../../clock.js";
import { ThrottledError } from "../../identity/errors.js";
import { UNTIMED_THROTTLE_BACKOFF } from "../backoff.js";
import { latestRefreshAt, refreshSchedule } from "../refresh-schedule.js";
import type { TokenCacheOptions, TokenFetch, AcquireOptions } from "../token-cache.js";
import { TokenCache } from "../token-cache.js";
import type { TokenResponse } from "../token-response.js";
import { SealError, addressOf, openToken, sealToken, type FleetKeys } from "./sealed-token.js";
import { DEFAULT_LOCK_TIMINGS, lockedCall, type LockTimings, type LockedCallOutcome } from "./shared-lock.js";
import { decodeThrottle, encodeThrottle, type SharedStore, type ThrottleRecord } from "./store.js";

/** The part of a pino logger the tier uses. */
export interface TierLog {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export interface SharedTierOptions {
  store: SharedStore;
  keys: FleetKeys;
  /**
   * During a rotation, the fleet key before `keys`: tokens sealed under it are still read (never
   * written), so that operators that have not switched yet keep serving the ones that have.
   */
  previousKeys?: FleetKeys | undefined;
  clock: Clock;
  log: TierLog;
  /** Where apptoken_shared_cache_* go; a private registry when omitted (tests). */
  registry?: Registry | undefined;
  /** Waits while a loser polls; setTimeout by default, the fake clock in tests. */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  timings?: Partial<LockTimings> | undefined;
  /** After a failure the store is left alone for this long before the next try. Default 2 s. */
  retryAfterFailureMs?: number | undefined;
}

type StoreOp = "read" | "write" | "lock" | "unlock" | "throttle";

/** A store operation failed: the caller goes on without the tier. */
class StoreUnavailable extends Error {}

interface Read {
  token: TokenResponse | undefined;
  throttle: ThrottleRecord | undefined;
}

/** Where a key's entry lives under one fleet key. */
interface Place {
  keys: FleetKeys;
  address: string;
}

const realSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class SharedTier {
  private readonly o: SharedTierOptions;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly timings: LockTimings;
  private readonly retryAfterFailureMs: number;
  private state: "Unknown" | "Up" | "Down" = "Unknown";
  private keys: FleetKeys;
  private previousKeys: FleetKeys | undefined;
  private leaveAloneUntil = Number.NEGATIVE_INFINITY;
  private readonly up: Gauge;
  private readonly ops: Counter<"op" | "result">;
  private readonly waits: Counter<"outcome">;

  constructor(o: SharedTierOptions) {
    this.o = o;
    this.keys = o.keys;
    this.previousKeys = o.previousKeys;
    this.sleep = o.sleep ?? realSleep;
    this.timings = { ...DEFAULT_LOCK_TIMINGS, ...o.timings };
    this.retryAfterFailureMs = o.retryAfterFailureMs ?? 2_000;
    const registers = o.registry ? [o.registry] : [];
    this.up = new Gauge({
      name: "apptoken_shared_cache_up",
      help: "1 while the fleet's shared token cache answers, 0 while this operator carries on without it",
      registers,
    });
    this.ops = new Counter({
      name: "apptoken_shared_cache_operations_total",
      help: "Operations on the fleet's shared token cache, by op (read|write|lock|unlock|throttle) and result",
      labelNames: ["op", "result"] as const,
      registers,
    });
    this.waits = new Counter({
      name: "apptoken_shared_cache_lock_outcomes_total",
      help: "How calls through the fleet tier went: Won (called), Waited (got another operator's token), TookOver, GaveUp",
      labelNames: ["outcome"] as const,
      registers,
    });
  }

  /** Whether the store answered last time (for tests and the bench). */
  get isUp(): boolean {
    return this.state === "Up";
  }

  /**
   * A new fleet key, and the one before it (read, never written, until the next rotation). Calls
   * in flight finish under the keys they started with.
   */
  useKeys(keys: FleetKeys, previousKeys: FleetKeys | undefined): void {
    this.keys = keys;
    this.previousKeys = previousKeys;
  }

  /**
   * The token for `keyId`: a fresh one from the store, or one this operator (or another, whose
   * result it waits for) fetched through `fetch`. Rejects only with what `fetch` rejects with, or
   * with a ThrottledError when the fleet holds a throttle verdict for the key.
   */
  async fetch(keyId: string, fetch: TokenFetch, options: AcquireOptions = {}): Promise<TokenResponse> {
    if (this.state === "Down" && this.o.clock.now() < this.leaveAloneUntil) return fetch();
    const place = { keys: this.keys, address: addressOf(this.keys, keyId) };
    const previous = this.previousKeys;
    const older = previous && { keys: previous, address: addressOf(previous, keyId) };
    try {
      return await this.throughStore(place, older, fetch, options);
    } catch (e) {
      if (e instanceof StoreUnavailable) return fetch();
      throw e;
    }
  }

  private async throughStore(
    place: Place,
    older: Place | undefined,
    fetch: TokenFetch,
    options: AcquireOptions,
  ): Promise<TokenResponse> {
    const { address } = place;
    const force = options.force === true;
    const first = await this.read(place);
    if (first.token !== undefined && !force && this.fresh(first.token, options.refreshBeforeMs)) {
      return fromTier(first.token);
    }
    this.refuseIfThrottled(first.throttle);
    if (first.token === undefined && older !== undefined && !force) {
      // Sealed by an operator still on the previous key: as good, until its own refresh time.
      const old = await this.read(older);
      if (old.token !== undefined && this.fresh(old.token, options.refreshBeforeMs))
        return fromTier(old.token);
      this.refuseIfThrottled(old.throttle);
    }
    // A forced refresh wants a token newer than the one it saw, not that one again.
    const seenIssuedAt = force ? first.token?.issuedAt : undefined;
    const fencing = randomBytes(16).toString("hex");
    return lockedCall<TokenResponse>(
      {
        tryLock: async () => {
          const won = await this.op("lock", () =>
            this.o.store.lock(address, fencing, this.timings.lockTtlMs),
          );
          this.ops.inc({ op: "lock", result: won ? "acquired" : "busy" });
          return won;
        },
        look: async () => {
          const seen = await this.read(place);
          const t = seen.token;
          if (t !== undefined && t.issuedAt !== seenIssuedAt && this.fresh(t, options.refreshBeforeMs)) {
            return { kind: "Found", value: fromTier(t) };
          }
          this.refuseIfThrottled(seen.throttle);
          return { kind: "Nothing" };
        },
        call: (locked) => this.callAndPublish(place, fetch, locked ? fencing : undefined),
        release: () => this.bestEffort("unlock", () => this.o.store.unlock(address, fencing)),
      },
      this.o.clock,
      this.sleep,
      this.timings,
      (outcome: LockedCallOutcome) => this.waits.inc({ outcome }),
    );
  }

  private async callAndPublish(
    { keys, address }: Place,
    fetch: TokenFetch,
    fencing: string | undefined,
  ): Promise<TokenResponse> {
    try {
      const token = await fetch();
      const ttl = latestRefreshAt(token.issuedAt, token.expiresAt) - this.o.clock.now();
      if (ttl > 0) {
        const sealed = sealToken(keys, address, token);
        await this.bestEffort("write", () => this.o.store.write(address, sealed, ttl));
      }
      return token;
    } catch (e) {
      if (e instanceof ThrottledError) await this.shareThrottle(address, e);
      throw e;
    } finally {
      if (fencing !== undefined) await this.bestEffort("unlock", () => this.o.store.unlock(address, fencing));
    }
  }

  private async shareThrottle(address: string, e: ThrottledError): Promise<void> {
    const now = this.o.clock.now();
    const retryAt = e.retryAt ?? now + UNTIMED_THROTTLE_BACKOFF.baseMs;
    if (retryAt <= now) return;
    const record = encodeThrottle({ retryAt, reason: e.reason, aadsts: e.aadsts });
    await this.bestEffort("throttle", () => this.o.store.throttle(address, record, retryAt - now));
  }

  private refuseIfThrottled(record: ThrottleRecord | undefined): void {
    if (record === undefined || record.retryAt <= this.o.clock.now()) return;
    throw new ThrottledError(
      `the token service is throttling this key for the fleet until ${new Date(record.retryAt).toISOString()} (${record.reason}, seen by another operator)`,
      { reason: record.reason, aadsts: record.aadsts, retryAt: record.retryAt },
    );
  }

  /**
   * Fresh by the cache's own rule, read strictly: before the earliest refreshAt any operator could
   * draw for this token (the full jitter), so whoever reads it does not consider it due at once.
   */
  private fresh(token: TokenResponse, refreshBeforeMs: number | undefined): boolean {
    const plan = refreshSchedule({ ...token, refreshBeforeMs }, () => 1);
    return this.o.clock.now() < plan.refreshAt;
  }

  private async read({ keys, address }: Place): Promise<Read> {
    const raw = await this.op("read", () => this.o.store.read(address));
    const throttle = raw.throttle === undefined ? undefined : decodeThrottle(raw.throttle);
    if (raw.sealed === undefined) {
      this.ops.inc({ op: "read", result: "miss" });
      return { token: undefined, throttle };
    }
    try {
      const token = openToken(keys, address, raw.sealed);
      this.ops.inc({ op: "read", result: "hit" });
      return { token, throttle };
    } catch (e) {
      if (!(e instanceof SealError)) throw e;
      // Another key, a tampered or truncated value: as good as none. Whoever calls next overwrites it.
      this.ops.inc({ op: "read", result: "unreadable" });
      return { token: undefined, throttle };
    }
  }

  private async op<T>(op: StoreOp, run: () => Promise<T>): Promise<T> {
    let value: T;
    try {
      value = await run();
    } catch (e) {
      this.ops.inc({ op, result: "error" });
      this.markDown(op, e);
      throw new StoreUnavailable(`shared cache ${op} failed`, { cause: e });
    }
    if (op !== "read" && op !== "lock") this.ops.inc({ op, result: "ok" });
    this.markUp();
    return value;
  }

  private async bestEffort(op: StoreOp, run: () => Promise<void>): Promise<void> {
    try {
      await this.op(op, run);
    } catch (e) {
      if (!(e instanceof StoreUnavailable)) throw e;
    }
  }

  /** Connection trouble the client reports between operations (refused, reset, wrong password). */
  connectionFailed(message: string): void {
    this.markDown("connect", message);
  }

  /**
   * The client reconnected: try the store on the next call instead of waiting out the pause that
   * follows a failure (the state flips to Up on the first operation that succeeds).
   */
  connectionReady(): void {
    this.leaveAloneUntil = Number.NEGATIVE_INFINITY;
  }

  private markDown(op: StoreOp | "connect", e: unknown): void {
    this.leaveAloneUntil = this.o.clock.now() + this.retryAfterFailureMs;
    if (this.state === "Down") return;
    this.state = "Down";
    this.up.set(0);
    this.o.log.warn(
      { op, err: describe(e) },
      "shared token cache unavailable: calling the token service directly until it answers again",
    );
  }

  private markUp(): void {
    if (this.state === "Up") return;
    const was = this.state;
    this.state = "Up";
    this.up.set(1);
    if (was === "Down") this.o.log.info({}, "shared token cache answers again: using it");
    else this.o.log.debug({}, "shared token cache answers");
  }
}

/**
 * A TokenCache whose calls go through the fleet tier: the only change to the cache's behaviour is
 * where a due key's token comes from.
 */
export class SharedTierTokenCache extends TokenCache {
  constructor(
    options: TokenCacheOptions,
    private readonly tier: SharedTier,
  ) {
    super(options);
  }

  protected override source(keyId: string, fetch: TokenFetch, options: AcquireOptions): TokenFetch {
    return () => this.tier.fetch(keyId, fetch, options);
  }
}

function fromTier(token: TokenResponse): TokenResponse {
  return { ...token, source: "SharedCache" };
}

function describe(e: unknown): string {
  if (typeof e === "string") return e;
  const err = e instanceof Error ? e : undefined;
  const text = err === undefined ? typeof e : `${err.name}: ${err.message}`;
  return text.slice(0, 200);
}
