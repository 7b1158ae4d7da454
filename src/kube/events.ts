/**
 * Kubernetes Events for `kubectl describe`. Fire-and-forget (an Event that cannot be written must
 * never fail a reconcile), and de-duplicated in memory: the same reason and message for the same
 * object is written at most once per `dedupeWindowMs`, so a request failing in a loop does not
 * flood the API (client-go's EventCorrelator does the same job). A write the API server could not
 * take (429, 5xx, a timeout, a cut connection) is tried again a few times, seconds apart, as
 * client-go's event broadcaster does: an API server under load would otherwise lose the one Event
 * that marks a recovery.
 */
import { randomBytes } from "node:crypto";
import { TokenBucket } from "../rate/token-bucket.js";
import type { Clock } from "../clock.js";
import { WriteRefusedError, type KubeApiClient } from "./api-client.js";
import { systemTimers, type TimerScheduler } from "./timers.js";
import { KubeApiError, isConflict } from "./transport.js";
import type { RawObject } from "./types.js";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string | undefined;
}

export type EventType = "Normal" | "Warning";

export interface EventRecorderOptions {
  api: Pick<KubeApiClient, "createEvent">;
  clock: Clock;
  component?: string;
  host?: string;
  dedupeWindowMs?: number;
  /** Events per second (burst 5×): beyond it Events are dropped, never queued ahead of Secret writes. */
  eventsPerSecond?: number;
  /** Where retries wait; the fake clock's in tests. */
  timers?: TimerScheduler;
  /** An Event given up on: not retriable, or still failing after the last try. */
  onError?: (err: unknown) => void;
  onDropped?: () => void;
}

/** Tries per Event, and the wait before the second (doubling: 1, 2, 4, 8 s). */
export const EVENT_TRIES = 5;
export const EVENT_FIRST_RETRY_MS = 1_000;
/**
 * Events waiting for a retry at once. Beyond it a failed Event is given up on: an API server that is
 * down while 10^5 requests change state must not fill the heap with Events.
 */
export const MAX_EVENTS_AWAITING_RETRY = 1_000;

const MAX_REMEMBERED = 50_000;

export class EventRecorder {
  /** object (uid, else ns/name) -> reason\0message -> when last written; forget() is O(1). */
  private readonly seen = new Map<string, Map<string, number>>();
  private entries = 0;
  private readonly windowMs: number;
  private readonly budget: TokenBucket;
  private readonly timers: TimerScheduler;
  private awaitingRetry = 0;

  constructor(private readonly o: EventRecorderOptions) {
    this.windowMs = o.dedupeWindowMs ?? 10 * 60_000;
    this.timers = o.timers ?? systemTimers;
    const rate = o.eventsPerSecond ?? 10;
    this.budget = new TokenBucket({
      ratePerSecond: rate,
      burst: Math.max(1, Math.ceil(rate * 5)),
      clock: o.clock,
    });
  }

  /**
   * `sameAs` names what the Event is about when its message may differ for the same fact: a retry
   * that writes the same token again must not write a second Event because the message changed.
   */
  record(target: EventTarget, type: EventType, reason: string, message: string, sameAs?: string): void {
    const now = this.o.clock.now();
    const objectId = target.uid ?? `${target.namespace}/${target.name}`;
    const what = `${reason}\u0000${sameAs ?? message}`;
    let perObject = this.seen.get(objectId);
    const last = perObject?.get(what);
    if (last !== undefined && now - last < this.windowMs) return;
    if (this.entries >= MAX_REMEMBERED) this.prune(now);
    // Events are for people; tokens in Secrets are for workloads. When 10^5 requests fail at once,
    // drop Events rather than make Secret writes wait behind them.
    if (this.budget.nextAvailableAt() > now) {
      this.o.onDropped?.();
      return;
    }
    this.budget.reserve();
    if (!perObject) this.seen.set(objectId, (perObject = new Map()));
    if (last === undefined) this.entries++;
    perObject.set(what, now);
    const ts = new Date(now).toISOString();
    // Events about a cluster-scoped object live in "default", where kubectl describe looks.
    const eventNamespace = target.namespace || "default";
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${target.name}.${randomBytes(8).toString("hex")}`, namespace: eventNamespace },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        namespace: target.namespace,
        name: target.name,
        ...(target.uid ? { uid: target.uid } : {}),
      },
      type,
      reason,
      // The API caps messages at 1 KiB; ours never carry secrets, only reasons and AADSTS codes.
      message: message.length > 1000 ? message.slice(0, 997) + "..." : message,
      source: {
        component: this.o.component ?? "apptoken-operator",
        ...(this.o.host ? { host: this.o.host } : {}),
      },
      reportingComponent: this.o.component ?? "apptoken-operator",
      reportingInstance: this.o.host ?? "",
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    };
    this.send(eventNamespace, event, 1);
  }

  /** `event` keeps its name across tries, so a try whose answer was lost shows up as AlreadyExists. */
  private send(namespace: string, event: RawObject, attempt: number): void {
    this.o.api.createEvent(namespace, event).catch((e: unknown) => {
      if (attempt > 1 && isConflict(e)) return; // an earlier try landed after all
      if (attempt >= EVENT_TRIES || !retriable(e) || this.awaitingRetry >= MAX_EVENTS_AWAITING_RETRY) {
        this.o.onError?.(e);
        return;
      }
      this.awaitingRetry++;
      this.timers.schedule(
        () => {
          this.awaitingRetry--;
          this.send(namespace, event, attempt + 1);
        },
        EVENT_FIRST_RETRY_MS * 2 ** (attempt - 1),
      );
    });
  }

  /** Forget an object's events (it was deleted). O(1): deletes can come 10^5 at a time. */
  forget(uid: string): void {
    const perObject = this.seen.get(uid);
    if (!perObject) return;
    this.entries -= perObject.size;
    this.seen.delete(uid);
  }

  private prune(now: number): void {
    for (const [id, perObject] of this.seen) {
      for (const [what, t] of perObject) {
        if (now - t >= this.windowMs) {
          perObject.delete(what);
          this.entries--;
        }
      }
      if (perObject.size === 0) this.seen.delete(id);
    }
    if (this.entries >= MAX_REMEMBERED) {
      this.seen.clear();
      this.entries = 0;
    }
  }
}

/**
 * Worth another try: the API server was busy or failing (429, 5xx) or did not answer (a timeout, a
 * cut connection). Not a refusal of the Event itself (403, 404, 422), nor a lost lease.
 */
function retriable(e: unknown): boolean {
  if (e instanceof WriteRefusedError) return false;
  if (e instanceof KubeApiError) return e.statusCode === 429 || e.statusCode >= 500;
  return true;
}
