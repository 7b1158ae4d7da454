/**
 * Kubernetes Events for `kubectl describe`. Fire-and-forget (an Event that cannot be written must
 * never fail a reconcile), and de-duplicated in memory: the same reason and message for the same
 * object is written at most once per `dedupeWindowMs`, so a request failing in a loop does not
 * flood the API (client-go's EventCorrelator does the same job).
 */
import { randomBytes } from "node:crypto";
import { TokenBucket } from "../rate/token-bucket.js";
import type { Clock } from "../clock.js";
import type { KubeApiClient } from "./api-client.js";

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
  onError?: (err: unknown) => void;
  onDropped?: () => void;
}

const MAX_REMEMBERED = 50_000;

export class EventRecorder {
  /** object (uid, else ns/name) -> reason\0message -> when last written; forget() is O(1). */
  private readonly seen = new Map<string, Map<string, number>>();
  private entries = 0;
  private readonly windowMs: number;
  private readonly budget: TokenBucket;

  constructor(private readonly o: EventRecorderOptions) {
    this.windowMs = o.dedupeWindowMs ?? 10 * 60_000;
    const rate = o.eventsPerSecond ?? 10;
    this.budget = new TokenBucket({
      ratePerSecond: rate,
      burst: Math.max(1, Math.ceil(rate * 5)),
      clock: o.clock,
    });
  }

  record(target: EventTarget, type: EventType, reason: string, message: string): void {
    const now = this.o.clock.now();
    const objectId = target.uid ?? `${target.namespace}/${target.name}`;
    const what = `${reason}\u0000${message}`;
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
    this.o.api.createEvent(eventNamespace, event).catch((e: unknown) => this.o.onError?.(e));
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
