/**
 * Kubernetes Events for `kubectl describe`. Fire-and-forget (an Event that cannot be written must
 * never fail a reconcile), and de-duplicated in memory: the same reason and message for the same
 * object is written at most once per `dedupeWindowMs`, so a request failing in a loop does not
 * flood the API (client-go's EventCorrelator does the same job).
 */
import { randomBytes } from "node:crypto";
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
  onError?: (err: unknown) => void;
}

const MAX_REMEMBERED = 50_000;

export class EventRecorder {
  private readonly seen = new Map<string, number>();
  private readonly windowMs: number;

  constructor(private readonly o: EventRecorderOptions) {
    this.windowMs = o.dedupeWindowMs ?? 10 * 60_000;
  }

  record(target: EventTarget, type: EventType, reason: string, message: string): void {
    const now = this.o.clock.now();
    const dedupeKey = `${target.uid ?? target.namespace + "/" + target.name}\u0000${reason}\u0000${message}`;
    const last = this.seen.get(dedupeKey);
    if (last !== undefined && now - last < this.windowMs) return;
    if (this.seen.size >= MAX_REMEMBERED) this.prune(now);
    this.seen.set(dedupeKey, now);
    const ts = new Date(now).toISOString();
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${target.name}.${randomBytes(8).toString("hex")}`, namespace: target.namespace },
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
    this.o.api.createEvent(target.namespace, event).catch((e: unknown) => this.o.onError?.(e));
  }

  /** Forget an object's events (it was deleted). */
  forget(uid: string): void {
    for (const k of this.seen.keys()) if (k.startsWith(uid + "\u0000")) this.seen.delete(k);
  }

  private prune(now: number): void {
    for (const [k, t] of this.seen) if (now - t >= this.windowMs) this.seen.delete(k);
    if (this.seen.size >= MAX_REMEMBERED) this.seen.clear();
  }
}
