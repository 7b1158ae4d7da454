/**
 * The real transport (src/kube/transport.ts) to the test control plane, with the test's hand on
 * the wire between it and the real API server. Everything that crosses is recorded: requests,
 * the server's answers, every watch and each event on it. And the test can do to the wire what a
 * network or an outage does:
 *
 * - refuse requests at once, black-hole them, or add latency (leader election);
 * - cut open watches, as a reset connection would, and hold reconnects back (a disconnect);
 * - answer the reconnect with 410 Gone (see ExpiredAnswer).
 *
 * Nothing here stands in for the API server: apart from the faults above, every request and every
 * watch goes to the real one, and every answer is the real one.
 */
import {
  KubeApiError,
  type KubeRequest,
  type KubeTransport,
  type WatchRequest,
} from "../../src/kube/transport.js";
import type { WatchEvent } from "../../src/kube/types.js";

export type Verb = "list" | "get" | "create" | "update" | "patch" | "delete";

export interface TappedRequest {
  verb: Verb;
  path: string;
  query: Record<string, unknown>;
  accept: string | undefined;
  body: unknown;
  /** Date.now() when the client made the request. */
  at: number;
  /** The decoded answer, once the server answered 2xx. */
  answer?: unknown;
  /** Why it failed, once it did: the server's KubeApiError, a network error, or an injected fault. */
  error?: unknown;
}

export interface TappedWatch {
  path: string;
  /** The query as the client asked for it. */
  query: Record<string, unknown>;
  accept: string | undefined;
  openedAt: number;
  /** Every event the server sent on this watch, in order. */
  events: WatchEvent[];
  /**
   * undefined while open; "server": the server ended the stream (timeoutSeconds); "client": the
   * client aborted it; "cut": cut by the test; "error": the stream broke; "refused": answered 410
   * by the test (ExpiredAnswer "410-event" or "410-status") without reaching the server.
   */
  end?: "server" | "client" | "cut" | "error" | "refused";
}

/**
 * How a reconnect is told that its resourceVersion expired:
 * - "ancient-rv": by the real server. The resume point is swapped for "1", and kube-apiserver
 *   answers with an ERROR event (code 410, "too old resource version") when "1" is older than its
 *   watch cache for that resource. That holds for every resource whose cache started after the
 *   apiserver's first writes, e.g. any custom resource, but not for Secrets on a fresh control
 *   plane: that cache starts at the very beginning and serves "1" (its window only moves after
 *   events older than 75 s are evicted), so Secret tests cannot ask the server for a 410 on demand.
 * - "410-event": the same ERROR event, in the exact form kube-apiserver sends, synthesised here.
 * - "410-status": an HTTP 410 status, synthesised here. kube-apiserver no longer refuses an
 *   accepted watch that way (it sends the ERROR event), but clients must still handle it.
 */
export type ExpiredAnswer = "ancient-rv" | "410-event" | "410-status";

const ANCIENT_RESOURCE_VERSION = "1";

/** What kube-apiserver 1.34 sends on a watch from an expired resourceVersion (recorded from it). */
const EXPIRED_STATUS = {
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message: "too old resource version: 1 (653)",
  reason: "Expired",
  code: 410,
};

export class TappedTransport implements KubeTransport {
  readonly requests: TappedRequest[] = [];
  readonly watches: TappedWatch[] = [];
  /**
   * What happens to requests (watches are cut and held instead): "up" passes them through;
   * "refused" fails each at once, like a connection refused; "black-hole" never answers: the
   * request ends only when the caller's own signal aborts, whatever timeout it asked for.
   */
  network: "up" | "refused" | "black-hole" = "up";
  /** Requests reach the server this much later; the caller's signal and timeout still apply. */
  latencyMs = 0;
  /** Awaited after the server answered a request and before the client sees the answer. */
  beforeAnswer: ((req: TappedRequest) => Promise<void> | void) | undefined;

  private readonly open = new Set<{ path: string; cut: AbortController }>();
  private hold: { pathIncludes: string; released: Promise<void>; release: () => void } | undefined;
  private nextAnswer: { pathIncludes: string; answer: ExpiredAnswer } | undefined;

  constructor(private readonly inner: KubeTransport) {}

  /** Requests of one verb (optionally under one path), in order. */
  calls(verb: Verb, pathIncludes = ""): TappedRequest[] {
    return this.requests.filter((r) => r.verb === verb && r.path.includes(pathIncludes));
  }

  /** Full lists started (first pages), in order. */
  lists(pathIncludes = ""): TappedRequest[] {
    return this.calls("list", pathIncludes).filter((r) => !r.query.continue);
  }

  async request<T>(req: KubeRequest): Promise<T> {
    const tap: TappedRequest = {
      verb: verbOf(req),
      path: req.path,
      query: { ...req.query },
      accept: req.accept,
      body: req.body,
      at: Date.now(),
    };
    this.requests.push(tap);
    try {
      const answer = await this.send<T>(req);
      // A copy: the client may trim what it was given (the AppTokenRequest informer does).
      tap.answer = structuredClone(answer);
      await this.beforeAnswer?.(tap);
      return answer;
    } catch (err) {
      tap.error = err;
      throw err;
    }
  }

  async watch(req: WatchRequest, onEvent: (event: WatchEvent) => void): Promise<void> {
    await this.whileHeld(req.path, req.signal);
    if (req.signal.aborted) return;
    const tap: TappedWatch = {
      path: req.path,
      query: { ...req.query },
      accept: req.accept,
      openedAt: Date.now(),
      events: [],
    };
    this.watches.push(tap);
    let answer: ExpiredAnswer | undefined;
    if (this.nextAnswer && req.path.includes(this.nextAnswer.pathIncludes)) {
      answer = this.nextAnswer.answer;
      this.nextAnswer = undefined;
    }
    if (answer === "410-status") {
      tap.end = "refused";
      throw new KubeApiError("WATCH", req.path, 410, structuredClone(EXPIRED_STATUS));
    }
    if (answer === "410-event") {
      const event: WatchEvent = { type: "ERROR", object: structuredClone(EXPIRED_STATUS) };
      tap.events.push(structuredClone(event));
      tap.end = "refused";
      onEvent(event);
      return;
    }
    const query =
      answer === "ancient-rv" ? { ...req.query, resourceVersion: ANCIENT_RESOURCE_VERSION } : req.query;
    const entry = { path: req.path, cut: new AbortController() };
    this.open.add(entry);
    try {
      await this.inner.watch(
        { ...req, query, signal: AbortSignal.any([req.signal, entry.cut.signal]) },
        (e) => {
          tap.events.push(structuredClone(e));
          onEvent(e);
        },
      );
    } catch (err) {
      tap.end = "error";
      throw err;
    } finally {
      this.open.delete(entry);
    }
    if (req.signal.aborted) {
      tap.end = "client";
    } else if (entry.cut.signal.aborted) {
      tap.end = "cut";
      throw new Error(`watch ${req.path}: connection reset (cut by the test)`);
    } else {
      tap.end = "server";
    }
  }

  /** Watches currently open (optionally under one path). */
  openWatches(pathIncludes = ""): number {
    return [...this.open].filter((w) => w.path.includes(pathIncludes)).length;
  }

  /** Holds every new watch under `pathIncludes` back until `reconnect()`; open ones run on. */
  holdReconnects(pathIncludes = ""): void {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    this.hold = { pathIncludes, released, release };
  }

  /** Cuts the open watches under `pathIncludes`, as a reset connection would, and holds their reconnects back. */
  disconnect(pathIncludes = ""): void {
    this.holdReconnects(pathIncludes);
    for (const w of this.open) if (w.path.includes(pathIncludes)) w.cut.abort();
  }

  /** Lets held watches through. With `expired`, the first of them is answered 410 Gone in that form. */
  reconnect(expired?: ExpiredAnswer): void {
    const hold = this.hold;
    this.hold = undefined;
    if (expired) this.nextAnswer = { pathIncludes: hold?.pathIncludes ?? "", answer: expired };
    hold?.release();
  }

  private async whileHeld(path: string, signal: AbortSignal): Promise<void> {
    const hold = this.hold;
    if (!hold || !path.includes(hold.pathIncludes) || signal.aborted) return;
    await new Promise<void>((resolve) => {
      void hold.released.then(resolve);
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  private async send<T>(req: KubeRequest): Promise<T> {
    const what = `${req.method ?? "GET"} ${req.path}`;
    if (this.network === "refused") throw new Error(`${what}: connect ECONNREFUSED (refused by the test)`);
    if (this.network === "black-hole") {
      return new Promise<T>((_resolve, reject) => {
        const fail = (): void => reject(new Error(`${what}: aborted while black-holed by the test`));
        if (req.signal?.aborted) fail();
        req.signal?.addEventListener("abort", fail, { once: true });
      });
    }
    if (this.latencyMs > 0) {
      const started = Date.now();
      const timeoutMs = req.timeoutMs ?? 30_000;
      const deadline = AbortSignal.timeout(Math.max(1, timeoutMs));
      const signal = req.signal ? AbortSignal.any([req.signal, deadline]) : deadline;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.latencyMs);
        signal.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            reject(new Error(`${what}: timed out after ${timeoutMs} ms (latency added by the test)`));
          },
          { once: true },
        );
      });
      return this.inner.request<T>({ ...req, timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)) });
    }
    return this.inner.request<T>(req);
  }
}

/**
 * The verb of a request, from its method and whether its path names a collection. After
 * `/api/v1` or `/apis/group/version`, a collection path has an odd number of segments
 * (`secrets`, `namespaces/ns/secrets`), an object path an even one.
 */
function verbOf(req: KubeRequest): Verb {
  switch (req.method ?? "GET") {
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return "delete";
    default: {
      const segments = req.path.split("/").filter(Boolean);
      const rest = segments[0] === "api" ? segments.slice(2) : segments.slice(3);
      return rest.length % 2 === 1 ? "list" : "get";
    }
  }
}
