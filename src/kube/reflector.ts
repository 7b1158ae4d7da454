/**
 * List-then-watch for one collection, modelled on client-go's tools/cache Reflector:
 *
 * - The list is paginated (limit/continue, all pages from one consistent snapshot) and streamed
 *   page by page into the sink, so 10^5 raw objects (Secrets with their data) are never held at
 *   once; the sink diffs against its store when the list ends.
 * - The watch starts at the list's resourceVersion with allowWatchBookmarks and a randomised
 *   server-side timeout (5–10 min, as client-go), so connections rotate without a thundering herd.
 * - When a watch ends or breaks, the next one resumes from the last resourceVersion applied: the
 *   server replays everything after it, so nothing is lost and 10^5 objects are not re-listed every
 *   few minutes. When the server says that version is gone (410 at connect, or an ERROR event
 *   with code 410 "too old resource version"), it re-lists, and the sink turns the differences
 *   into add/update/delete events.
 * - Failures back off exponentially with jitter (800 ms -> 30 s, client-go's reflector values).
 *
 * Why not client-node's ListWatch: it keeps full objects (no transform), lists without
 * pagination, does not ask for bookmarks, stops for good on any error other than 410 (the
 * caller has to notice and restart it; kubernetes-client/javascript#447), and its Watch drops
 * lines it cannot parse.
 */
import type { Clock } from "../clock.js";
import { systemClock } from "../clock.js";
import { silentLogger, type KubeLogger } from "./log.js";
import { METADATA_LIST_ACCEPT, METADATA_WATCH_ACCEPT } from "./resources.js";
import { listPaged } from "./paged-list.js";
import { sleep, systemTimers, type TimerScheduler } from "./timers.js";
import { isExpired, type KubeTransport } from "./transport.js";
import { isKubeObject, type KubeStatus, type RawObject, type WatchEvent } from "./types.js";

/** Where a reflector delivers what it sees. */
export interface ReflectorSink {
  /** A full list starts; every object that exists follows through `listPage`. May restart without `endList`. */
  beginList(): void;
  listPage(items: readonly RawObject[]): void;
  /** The list is complete: objects the sink holds that were not listed are gone. */
  endList(resourceVersion: string): void;
  event(type: "ADDED" | "MODIFIED" | "DELETED", obj: RawObject): void;
}

export interface ReflectorOptions {
  /** For logs and errors, e.g. "secrets/payments". */
  name: string;
  transport: KubeTransport;
  /** Collection path, see resources.ts collectionPath. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Ask for PartialObjectMetadata: objects arrive with metadata only. */
  metadataOnly?: boolean;
  /** Items per list page; default 500 (client-go's pager default). */
  pageSize?: number;
  /** Watch timeoutSeconds is drawn from [min, 2·min); default 300. */
  minWatchTimeoutSeconds?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  clock?: Clock;
  timers?: TimerScheduler;
  random?: () => number;
  log?: KubeLogger;
}

type WatchOutcome =
  | { kind: "aborted" }
  | { kind: "expired" }
  | { kind: "ended"; events: number; durationMs: number }
  | { kind: "failed"; err: unknown };

export class Reflector {
  private resourceVersion = "";
  private backoffMs = 0;
  private readonly o: Required<Omit<ReflectorOptions, "labelSelector" | "fieldSelector">> &
    Pick<ReflectorOptions, "labelSelector" | "fieldSelector">;

  constructor(
    options: ReflectorOptions,
    private readonly sink: ReflectorSink,
  ) {
    this.o = {
      metadataOnly: false,
      pageSize: 500,
      minWatchTimeoutSeconds: 300,
      backoffInitialMs: 800,
      backoffMaxMs: 30_000,
      clock: systemClock,
      timers: systemTimers,
      random: Math.random,
      log: silentLogger,
      ...options,
    };
  }

  /** The resourceVersion the next watch resumes from ("" before the first list). */
  lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  /** Lists and watches until `signal` aborts. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    let needList = true;
    let expiredInARow = 0;
    while (!signal.aborted) {
      if (needList) {
        try {
          await this.list(signal);
          needList = false;
          this.backoffMs = 0;
        } catch (err) {
          if (signal.aborted) return;
          this.o.log.warn(
            { reflector: this.o.name, err: errorMessage(err) },
            "list failed; retrying with backoff",
          );
          await this.backoff(signal);
          continue;
        }
      }
      const outcome = await this.watchOnce(signal);
      switch (outcome.kind) {
        case "aborted":
          return;
        case "expired":
          // The resourceVersion we hold is older than the server's history: only a re-list can
          // tell what changed. Back off only if that keeps happening.
          this.o.log.info(
            { reflector: this.o.name, resourceVersion: this.resourceVersion },
            "watch resourceVersion expired; re-listing",
          );
          needList = true;
          this.resourceVersion = "";
          if (++expiredInARow > 1) await this.backoff(signal);
          break;
        case "ended":
          expiredInARow = 0;
          // Normal rotation (timeoutSeconds). A stream that ends at once with nothing in it is a
          // sick server or proxy: back off rather than spin.
          if (outcome.events === 0 && outcome.durationMs < 1000) await this.backoff(signal);
          else this.backoffMs = 0;
          break;
        case "failed":
          expiredInARow = 0;
          this.o.log.warn(
            { reflector: this.o.name, resourceVersion: this.resourceVersion, err: errorMessage(outcome.err) },
            "watch failed; resuming from the last resourceVersion with backoff",
          );
          await this.backoff(signal);
          break;
      }
    }
  }

  private async list(signal: AbortSignal): Promise<void> {
    this.sink.beginList();
    const { resourceVersion: rv, pages } = await listPaged(
      this.o.transport,
      {
        path: this.o.path,
        labelSelector: this.o.labelSelector,
        fieldSelector: this.o.fieldSelector,
        accept: this.o.metadataOnly ? METADATA_LIST_ACCEPT : undefined,
        pageSize: this.o.pageSize,
      },
      signal,
      (items) => this.sink.listPage(items),
    );
    if (signal.aborted) throw new Error("aborted");
    if (!rv) throw new Error(`list ${this.o.path} returned no resourceVersion`);
    this.sink.endList(rv);
    this.resourceVersion = rv;
    this.o.log.debug({ reflector: this.o.name, resourceVersion: rv, pages }, "listed");
  }

  private async watchOnce(signal: AbortSignal): Promise<WatchOutcome> {
    const started = this.o.clock.now();
    const local = new AbortController();
    const watchSignal = AbortSignal.any([signal, local.signal]);
    let events = 0;
    let errorStatus: KubeStatus | undefined;
    const min = this.o.minWatchTimeoutSeconds;
    const onEvent = (e: WatchEvent): void => {
      if (e.type === "ERROR") {
        // The server follows an ERROR event by closing the stream; stop reading now.
        errorStatus = (e.object ?? {}) as KubeStatus;
        local.abort();
        return;
      }
      if (!isKubeObject(e.object)) throw new Error(`${e.type} event without an object`);
      const rv = e.object.metadata.resourceVersion;
      if (e.type !== "BOOKMARK") {
        this.sink.event(e.type, e.object);
        events++;
      }
      // Advanced only after the sink applied the event: if it throws, the next watch replays it.
      if (rv) this.resourceVersion = rv;
    };
    try {
      await this.o.transport.watch(
        {
          path: this.o.path,
          query: {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: Math.floor(min * (1 + this.o.random())),
            labelSelector: this.o.labelSelector,
            fieldSelector: this.o.fieldSelector,
          },
          accept: this.o.metadataOnly ? METADATA_WATCH_ACCEPT : "application/json",
          signal: watchSignal,
          idleTimeoutMs: (2 * min + 60) * 1000,
        },
        onEvent,
      );
    } catch (err) {
      if (signal.aborted) return { kind: "aborted" };
      if (isExpired(err)) return { kind: "expired" };
      return { kind: "failed", err };
    }
    if (signal.aborted) return { kind: "aborted" };
    if (errorStatus) {
      if (errorStatus.code === 410 || errorStatus.reason === "Expired" || errorStatus.reason === "Gone") {
        return { kind: "expired" };
      }
      return {
        kind: "failed",
        err: new Error(
          `watch ERROR event: ${errorStatus.code ?? "?"} ${errorStatus.reason ?? ""} ${errorStatus.message ?? ""}`,
        ),
      };
    }
    return { kind: "ended", events, durationMs: this.o.clock.now() - started };
  }

  private async backoff(signal: AbortSignal): Promise<void> {
    this.backoffMs =
      this.backoffMs === 0 ? this.o.backoffInitialMs : Math.min(this.o.backoffMaxMs, this.backoffMs * 2);
    await sleep(this.o.timers, this.backoffMs * (1 + this.o.random()), signal);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
