/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's tools/leaderelection, so
 * that two replicas never both write:
 *
 * - Acquire: read the lease; take it if it is free, ours, or unchanged for leaseDuration as
 *   measured on our own clock (lease-decision.ts); write with the read resourceVersion, so of two
 *   replicas racing for it exactly one succeeds (the other gets 409).
 * - Lead: renew every retryPeriod. A timer armed at (start of the last successful renewal +
 *   renewDeadline) aborts the leading signal if no renewal succeeded by then, whether requests
 *   failed or hang; since renewDeadline < leaseDuration, the leader has stopped before any standby
 *   may take over. `run` then returns: like controller-manager, the process should exit.
 * - Shutdown: aborting `run`'s signal aborts the leading signal; the elector keeps renewing until
 *   onStartedLeading's promise settles (the controller drained its in-flight writes), then
 *   releases the lease (empty holder, 1 s duration: client-go's ReleaseOnCancel) so a standby
 *   takes over at once instead of after leaseDuration.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Clock } from "../clock.js";
import { systemClock } from "../clock.js";
import {
  DEFAULT_TIMINGS,
  RETRY_JITTER,
  decideAcquire,
  nextRecord,
  observe,
  parseLeaseSpec,
  releasedRecord,
  stopLeadingAt,
  toMicroTime,
  validateTimings,
  type LeaderElectionTimings,
  type LeaseObservation,
  type LeaseRecord,
} from "./lease-decision.js";
import { silentLogger, type KubeLogger } from "./log.js";
import { errorMessage } from "./reflector.js";
import { LEASES, collectionPath, objectPath } from "./resources.js";
import { monotonicClock, sleep, systemTimers, type TimerScheduler } from "./timers.js";
import { isConflict, isNotFound, type KubeTransport } from "./transport.js";
import type { ObjectMeta } from "./types.js";

export interface LeaderElectionOptions extends Partial<LeaderElectionTimings> {
  transport: KubeTransport;
  namespace: string;
  /** Lease name (--leader-election-id). */
  name: string;
  /** Default: defaultHolderIdentity(). Must be unique per process. */
  identity?: string;
  /**
   * Runs while leading; `signal` aborts when leadership is lost or shutdown begins. Its promise
   * should settle once every write it started has finished: the lease is released only then.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  onStoppedLeading?: () => void;
  /** Called when another holder is observed (for logs and metrics). */
  onNewLeader?: (identity: string) => void;
  /** Release the lease when `run`'s signal aborts (default true). */
  releaseOnCancel?: boolean;
  /** Decision clock; default monotonic, so wall-clock jumps cannot shorten a lease. */
  clock?: Clock;
  /** Wall clock for the times written into the Lease (informational). */
  wallClock?: Clock;
  timers?: TimerScheduler;
  random?: () => number;
  log?: KubeLogger;
}

/** POD_NAME (downward API) or the hostname, plus a random suffix: unique even across restarts. */
export function defaultHolderIdentity(): string {
  return `${process.env.POD_NAME || hostname()}_${randomUUID()}`;
}

interface LeaseJson {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: unknown;
}

export type LeaderElectionOutcome = "lost" | "released" | "stopped" | "aborted";

export class LeaderElector {
  readonly identity: string;
  private readonly t: LeaderElectionTimings;
  private readonly clock: Clock;
  private readonly wallClock: Clock;
  private readonly timers: TimerScheduler;
  private readonly random: () => number;
  private readonly log: KubeLogger;
  private observed: LeaseObservation | undefined;
  /** resourceVersion of the lease as we last read or wrote it: lets the leader renew without a GET. */
  private observedResourceVersion: string | undefined;
  private leading = false;
  /** Decision-clock time until which the lease is surely ours (see holdsLease). */
  private heldUntil = Number.NEGATIVE_INFINITY;
  private lastLeader: string | undefined;

  constructor(private readonly o: LeaderElectionOptions) {
    this.t = {
      leaseDurationMs: o.leaseDurationMs ?? DEFAULT_TIMINGS.leaseDurationMs,
      renewDeadlineMs: o.renewDeadlineMs ?? DEFAULT_TIMINGS.renewDeadlineMs,
      retryPeriodMs: o.retryPeriodMs ?? DEFAULT_TIMINGS.retryPeriodMs,
    };
    validateTimings(this.t);
    this.identity = o.identity ?? defaultHolderIdentity();
    this.clock = o.clock ?? monotonicClock;
    this.wallClock = o.wallClock ?? systemClock;
    this.timers = o.timers ?? systemTimers;
    this.random = o.random ?? Math.random;
    this.log = o.log ?? silentLogger;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /**
   * Whether a write may be sent now: leading, and the last successful renewal started less than
   * renewDeadline ago, read from the clock at the moment of asking. The renew-deadline timer stops
   * the leader too, but timers fire in due order: a process that was paused (SIGSTOP, a frozen VM,
   * a stalled node) wakes with every overdue timer firing at once, and requeues due before the
   * deadline would start reconciles that write after a standby has taken over. Checked right
   * before each write, this refuses them; no standby can take over until leaseDuration after that
   * renewal, so a write that passes the check lands before any other leader starts.
   */
  holdsLease(): boolean {
    return this.leading && this.clock.now() < this.heldUntil;
  }

  /**
   * Campaigns until leading, leads, and returns when leadership ends: "lost" (renewal failed past
   * the deadline; the process should exit), "released" (shutdown, lease handed back),
   * "stopped" (onStartedLeading returned by itself; lease released) or "aborted" (shut down before
   * ever leading).
   */
  async run(signal: AbortSignal): Promise<LeaderElectionOutcome> {
    for (;;) {
      if (signal.aborted) return "aborted";
      const attemptStartedAt = this.clock.now();
      if (await this.tryAcquireOrRenew(signal, this.t.renewDeadlineMs)) {
        return this.lead(signal, attemptStartedAt);
      }
      await sleep(this.timers, this.t.retryPeriodMs * (1 + this.random() * RETRY_JITTER), signal);
    }
  }

  // Stays whole: the deadline timer, callback and renew loop share this term's `lost` and `lastRenewStart`.
  private async lead(signal: AbortSignal, acquiredAt: number): Promise<LeaderElectionOutcome> {
    this.leading = true;
    this.log.info({ lease: this.leaseName(), identity: this.identity }, "started leading");
    const leading = new AbortController();
    const stopRenewing = new AbortController();
    let lost = false;
    let lastRenewStart = acquiredAt;
    this.heldUntil = stopLeadingAt(acquiredAt, this.t.renewDeadlineMs);
    let cancelDeadline: () => void = () => undefined;
    const armDeadline = (): void => {
      cancelDeadline();
      cancelDeadline = this.timers.schedule(
        () => {
          if (lost) return;
          lost = true;
          this.heldUntil = Number.NEGATIVE_INFINITY;
          this.log.error(
            { lease: this.leaseName(), identity: this.identity, renewDeadlineMs: this.t.renewDeadlineMs },
            "failed to renew the lease within the renew deadline; stopping",
          );
          leading.abort(new Error(`leader election lost: lease ${this.leaseName()} not renewed in time`));
          stopRenewing.abort();
        },
        stopLeadingAt(lastRenewStart, this.t.renewDeadlineMs) - this.clock.now(),
      );
    };
    armDeadline();

    const onShutdown = (): void => leading.abort(new Error("shutting down"));
    signal.addEventListener("abort", onShutdown, { once: true });
    if (signal.aborted) onShutdown();

    let callbackSettled = false;
    const callback = (async () => {
      try {
        await this.o.onStartedLeading(leading.signal);
      } catch (err) {
        this.log.error({ lease: this.leaseName(), err: errorMessage(err) }, "onStartedLeading failed");
      } finally {
        callbackSettled = true;
        stopRenewing.abort();
      }
    })();

    // Renew until lost, or until the callback has finished (after shutdown, or on its own).
    while (!lost && !callbackSettled) {
      await sleep(this.timers, this.t.retryPeriodMs, stopRenewing.signal);
      if (lost || callbackSettled) break;
      const start = this.clock.now();
      const budget = stopLeadingAt(lastRenewStart, this.t.renewDeadlineMs) - start;
      const ok = await this.tryAcquireOrRenew(stopRenewing.signal, Math.max(1, budget));
      if (ok && !lost) {
        lastRenewStart = start;
        this.heldUntil = stopLeadingAt(start, this.t.renewDeadlineMs);
        armDeadline();
      }
    }
    cancelDeadline();
    signal.removeEventListener("abort", onShutdown);
    this.leading = false;
    this.heldUntil = Number.NEGATIVE_INFINITY;

    if (lost) {
      // No release: we no longer know that the lease is ours. Do not wait for the callback either;
      // its signal is aborted and the caller should exit.
      this.o.onStoppedLeading?.();
      return "lost";
    }
    leading.abort(new Error("leadership ended"));
    await callback;
    if (this.o.releaseOnCancel ?? true) await this.release();
    this.log.info({ lease: this.leaseName(), identity: this.identity }, "stopped leading");
    this.o.onStoppedLeading?.();
    return signal.aborted ? "released" : "stopped";
  }

  /** One attempt: true when we hold the lease afterwards. Never throws. */
  private async tryAcquireOrRenew(signal: AbortSignal, timeoutMs: number): Promise<boolean> {
    const leaseDurationSeconds = this.t.leaseDurationMs / 1000;
    const now = this.clock.now();
    const wallNow = toMicroTime(this.wallClock.now());
    try {
      // Fast path (as client-go): the leader writes over the version it last saw, without a GET.
      if (this.leading && this.observed && this.observedResourceVersion) {
        const record = nextRecord(this.observed.record, this.identity, leaseDurationSeconds, wallNow);
        try {
          await this.write("PUT", record, this.observedResourceVersion, signal, timeoutMs, now);
          return true;
        } catch (err) {
          if (!isConflict(err)) throw err;
          // Someone else wrote: fall through and judge the lease as it is now.
        }
      }
      let lease: LeaseJson | undefined;
      try {
        lease = await this.o.transport.request<LeaseJson>({
          path: objectPath(LEASES, this.o.namespace, this.o.name),
          signal,
          timeoutMs,
        });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (!lease) {
        const record = nextRecord(undefined, this.identity, leaseDurationSeconds, wallNow);
        await this.write("POST", record, undefined, signal, timeoutMs, now);
        return true;
      }
      const current = parseLeaseSpec(lease.spec);
      this.observed = observe(this.observed, current, now);
      this.observedResourceVersion = lease.metadata.resourceVersion;
      if (current.holderIdentity && current.holderIdentity !== this.lastLeader) {
        this.lastLeader = current.holderIdentity;
        if (current.holderIdentity !== this.identity) this.o.onNewLeader?.(current.holderIdentity);
      }
      const decision = decideAcquire(this.observed, this.identity, now);
      if (!decision.acquire) return false;
      const record = nextRecord(current, this.identity, leaseDurationSeconds, wallNow);
      await this.write("PUT", record, lease.metadata.resourceVersion, signal, timeoutMs, now);
      return true;
    } catch (err) {
      if (!signal.aborted) {
        const level = isConflict(err) ? "debug" : "warn";
        this.log[level](
          { lease: this.leaseName(), identity: this.identity, err: errorMessage(err) },
          "lease acquire/renew attempt failed",
        );
      }
      return false;
    }
  }

  private async write(
    method: "POST" | "PUT",
    record: LeaseRecord,
    resourceVersion: string | undefined,
    signal: AbortSignal,
    timeoutMs: number,
    now: number,
  ): Promise<void> {
    const body: LeaseJson = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: this.o.name,
        namespace: this.o.namespace,
        ...(resourceVersion !== undefined && { resourceVersion }),
      },
      spec: record,
    };
    const written = await this.o.transport.request<LeaseJson>({
      method,
      path:
        method === "POST"
          ? collectionPath(LEASES, this.o.namespace)
          : objectPath(LEASES, this.o.namespace, this.o.name),
      body,
      signal,
      timeoutMs,
    });
    this.observed = { record, observedAt: now };
    this.observedResourceVersion = written?.metadata.resourceVersion;
    if (record.holderIdentity) this.lastLeader = record.holderIdentity;
  }

  /** Hands the lease back if we still hold it, so a standby need not wait out leaseDuration. */
  private async release(): Promise<void> {
    if (
      !this.observed ||
      this.observed.record.holderIdentity !== this.identity ||
      !this.observedResourceVersion
    )
      return;
    try {
      const record = releasedRecord(this.observed.record, toMicroTime(this.wallClock.now()));
      await this.write(
        "PUT",
        record,
        this.observedResourceVersion,
        AbortSignal.timeout(5000),
        5000,
        this.clock.now(),
      );
      this.log.info({ lease: this.leaseName(), identity: this.identity }, "released the lease");
    } catch (err) {
      // Someone else took it already (409) or the API is down: the lease expires on its own.
      this.log.warn({ lease: this.leaseName(), err: errorMessage(err) }, "failed to release the lease");
    }
  }

  private leaseName(): string {
    return `${this.o.namespace}/${this.o.name}`;
  }
}
