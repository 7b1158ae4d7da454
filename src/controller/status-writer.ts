/**
 * Writes a request's status when something a person would want to see changed, records the Event
 * that goes with a change of Ready reason, and logs the outcome at a level that scales to 10^5
 * requests.
 */
import type { Logger } from "pino";
import type { AppTokenRequestStatus } from "../api/types.js";
import { API_VERSION, KIND } from "../api/types.js";
import type { Clock } from "../clock.js";
import { ReplacedError, type KubeApiClient } from "../kube/api-client.js";
import type { EventRecorder } from "../kube/events.js";
import { isNotFound } from "../kube/transport.js";
import type { RawObject } from "../kube/types.js";
import type { Metrics } from "../observability/metrics.js";
import { findCondition } from "./conditions.js";
import type { Outcome } from "./outcomes.js";
import { desiredStatus, statusChange, statusPatch } from "./status.js";
import { objectKey } from "../kube/object-key.js";
import { iso } from "./target-secret.js";

/** What the reconciler remembers of a request's status between reconciles. */
export interface StatusMemo {
  hits: number;
  misses: number;
  /** The last status this process wrote: the informer's copy may lag behind our own write. */
  lastStatus: AppTokenRequestStatus | undefined;
  /**
   * The resourceVersion that write produced: once the informer holds it, lastStatus is a copy of the
   * informer's status and is dropped (about 650 bytes per request, kept 10^5 times otherwise).
   */
  writtenRv: string | undefined;
}

export interface StatusWriterDeps {
  clock: Clock;
  /** The request informer: whether it caught up with a status write is looked up, not told. */
  requests: { getByKey(key: string): RawObject | undefined };
  api: Pick<KubeApiClient, "patchRequestStatus">;
  events: Pick<EventRecorder, "record">;
  metrics: Metrics;
  log: Logger;
}

/**
 * The status as this process knows it: its own last write, else the informer's copy (which holds
 * that write once its version is the one the write produced).
 */
export function knownStatus(memo: StatusMemo, obj: RawObject): AppTokenRequestStatus | undefined {
  statusObserved(memo, obj);
  return memo.lastStatus ?? statusOf(obj);
}

function statusOf(obj: RawObject): AppTokenRequestStatus | undefined {
  return (obj as { status?: AppTokenRequestStatus }).status;
}

/**
 * The informer moved past our version to one that shows what we wrote: a later update. A version
 * from between our read and our write (someone else's merge) shows the status before it instead.
 */
function sameAsWritten(memo: StatusMemo, cached: RawObject): boolean {
  const seen = statusOf(cached);
  return (
    memo.lastStatus !== undefined && seen !== undefined && statusChange(memo.lastStatus, seen) !== "changed"
  );
}

/**
 * The informer holds `obj`. Once that is the version our last status write produced, the memo's
 * copy of the status is redundant: drop it and read the informer's from then on.
 */
export function statusObserved(memo: StatusMemo | undefined, obj: RawObject): void {
  if (memo?.writtenRv !== undefined && obj.metadata.resourceVersion === memo.writtenRv) forgetWrite(memo);
}

function forgetWrite(memo: StatusMemo): void {
  memo.lastStatus = undefined;
  memo.writtenRv = undefined;
}

/** Past this, the informer's copy wins again: a stalled watch must not pin our copy in memory. */
export const UNOBSERVED_STATUS_TTL_MS = 30_000;

/** Oldest awaited writes looked at on each write: enough to keep pace with the writes that add them. */
const SWEEP_PER_WRITE = 2;

export class StatusWriter {
  /**
   * Status writes the informer had not delivered when they returned, oldest first. Each write
   * looks at the oldest few: those the informer caught up with (our version, or a later one that
   * shows the same status), whose request is gone, or past the TTL give up the memo's copy. No
   * event handler is told anything, and memory holds only the writes the watch is behind on.
   */
  private readonly awaited = new Map<string, { memo: StatusMemo; writtenRv: string; at: number }>();

  constructor(private readonly d: StatusWriterDeps) {}

  /**
   * Writes the status `o` implies if it differs in a way a person would see. Returns false when the
   * request was deleted meanwhile. `latest` reads the informer's copy, before the write (the status
   * the API holds) and after it (the watch may have delivered our write before the response came
   * back).
   */
  // Stays whole: all that follows the patch (memo, awaited, Event, log) leans on `current` and its answer.
  async write(
    obj: RawObject,
    memo: StatusMemo,
    secretName: string | undefined,
    o: Outcome,
    latest: () => RawObject | undefined,
  ): Promise<boolean> {
    // The informer's copy now, not the snapshot's: the watch may have delivered our last write
    // since the reconcile began, and dropped the memo's copy of it (statusObserved). The snapshot
    // would then show the status before that write, and a change of Ready reason would go unseen.
    const current = knownStatus(memo, latest() ?? obj);
    const desired = desiredStatus({
      previous: current,
      generation: obj.metadata.generation,
      secretName,
      token: o.token,
      throttle: o.acquire?.throttle,
      ready: o.ready,
      hits: memo.hits,
      misses: memo.misses,
      now: this.d.clock.now(),
    });
    // Counter-only changes are never written on their own: they ride along with the next write a
    // person would want (a refresh, an error), so a resync of 10^5 requests writes nothing.
    if (statusChange(current, desired) !== "changed") return true;
    const ns = obj.metadata.namespace ?? "";
    const name = obj.metadata.name ?? "";
    this.sweep();
    let written: RawObject | undefined;
    try {
      written = await this.d.api.patchRequestStatus(
        ns,
        name,
        obj.metadata.uid,
        statusPatch(current, desired),
      );
    } catch (e) {
      // Gone, or the name now belongs to a new request (its uid differs): the new
      // request's own reconcile, queued by its creation, writes its status.
      if (isNotFound(e) || e instanceof ReplacedError) return false;
      // The token is in its Secret whether or not this write landed. A write that landed but whose
      // answer was lost leaves a status the retry reads as "not the first token": Issued is
      // recorded now, and the retry's own Issued for the same token is the same Event.
      if (o.event?.reason === "Issued") this.recordEvent(obj, o.event, o.token);
      throw e;
    }
    memo.lastStatus = desired;
    memo.writtenRv = written?.metadata?.resourceVersion;
    const cached = latest();
    if (cached) statusObserved(memo, cached);
    const key = objectKey(ns, name);
    this.awaited.delete(key);
    if (memo.writtenRv !== undefined)
      this.awaited.set(key, { memo, writtenRv: memo.writtenRv, at: this.d.clock.now() });
    const previousReady = findCondition(current?.conditions, "Ready");
    // Events mark what a person looks for in `kubectl describe`: the Secret's creation and each
    // change of Ready reason, not every status write.
    if (o.event && (previousReady?.reason !== o.ready.reason || o.event.reason === "Issued"))
      this.recordEvent(obj, o.event, o.token);
    if (o.ready.status === "False") this.d.metrics.notReadyTotal.inc({ reason: o.ready.reason });
    this.logOutcome(obj, o, previousReady?.reason);
    return true;
  }

  /** Issued is one Event per token put in place, whichever reconcile (or retry) records it. */
  private recordEvent(obj: RawObject, event: NonNullable<Outcome["event"]>, token: Outcome["token"]): void {
    const sameAs = event.reason === "Issued" && token ? `token issued at ${token.issuedAt}` : undefined;
    this.d.events.record(
      {
        apiVersion: API_VERSION,
        kind: KIND,
        namespace: obj.metadata.namespace ?? "",
        name: obj.metadata.name ?? "",
        uid: obj.metadata.uid,
      },
      event.type,
      event.reason,
      event.message,
      sameAs,
    );
  }

  private sweep(): void {
    let looked = 0;
    for (const [key, w] of this.awaited) {
      if (looked++ === SWEEP_PER_WRITE) return;
      if (w.memo.writtenRv !== w.writtenRv) {
        this.awaited.delete(key); // already dropped, or replaced by a later write of ours
        continue;
      }
      const cached = this.d.requests.getByKey(key);
      const caughtUp =
        cached === undefined ||
        cached.metadata.resourceVersion === w.writtenRv ||
        sameAsWritten(w.memo, cached) ||
        this.d.clock.now() - w.at > UNOBSERVED_STATUS_TTL_MS;
      if (!caughtUp) continue;
      forgetWrite(w.memo);
      this.awaited.delete(key);
    }
  }

  /**
   * Failures at warn; a token from the identity provider (one line per call, not per request that
   * shares it) and a change of Ready reason at info; a routine refresh from the cache at debug, so
   * that 10^5 requests refreshing do not write 10^5 info lines an hour.
   */
  private logOutcome(obj: RawObject, o: Outcome, previousReason: string | undefined): void {
    const fields = {
      request: `${obj.metadata.namespace}/${obj.metadata.name}`,
      ready: o.ready.status,
      reason: o.ready.reason,
      ...(o.token
        ? { expiresAt: iso(o.token.expiresAt), refreshAt: iso(o.token.refreshAt), source: o.token.source }
        : {}),
      ...(o.acquire ? { outcome: o.acquire.outcome, throttle: o.acquire.throttle.state } : {}),
      ...(previousReason !== o.ready.reason ? { previousReason: previousReason ?? "none" } : {}),
    };
    if (o.ready.status === "False")
      this.d.log.warn({ ...fields, detail: o.ready.message }, "request not ready");
    else if (o.ready.reason !== "TokenIssued")
      this.d.log.warn({ ...fields, detail: o.ready.message }, "refresh failing, old token kept");
    else if (o.acquire?.outcome === "Fetched" || previousReason !== o.ready.reason)
      this.d.log.info(fields, "token in place");
    else this.d.log.debug(fields, "token in place");
  }
}
