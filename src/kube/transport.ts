/**
 * The HTTP edge of src/kube: JSON requests and line-delimited watch streams against the API
 * server, authenticated from a client-node KubeConfig.
 *
 * Why not client-node's Watch and generated clients here:
 * - Watch (1.4) cannot send an Accept header, so it cannot ask for PartialObjectMetadata, which
 *   the credential-Secret watch needs to stay metadata-only; it also drops lines it cannot parse
 *   (a lost event, silently) and its client-side timeout is dead code (the signal is overwritten).
 * - The generated clients decode into model classes (Date objects, copies of every field): more
 *   memory per stored object and a MicroTime encoding the Lease API rejects. Here objects stay
 *   the plain JSON the server sent.
 * KubeConfig still does all authentication (exec plugins, token files, client certificates), so
 * every kubeconfig that works with client-node works here.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Clock } from "../clock.js";
import { systemClock } from "../clock.js";
import { KubeApiError, isConnectionReset } from "./api-errors.js";
import { parseStatus, readBody, readWatchStream } from "./response-body.js";
import type { WatchEvent } from "./types.js";

export { KubeApiError, isConflict, isExpired, isNotFound } from "./api-errors.js";

export type QueryValue = string | number | boolean | undefined;

export interface KubeRequest {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Absolute API path, e.g. `/api/v1/namespaces/ns/secrets/name`. */
  path: string;
  query?: Record<string, QueryValue>;
  body?: unknown;
  accept?: string;
  /** Defaults to application/json; patches name their strategy here. */
  contentType?: string;
  signal?: AbortSignal;
  /** Whole-request deadline; default 30 s. */
  timeoutMs?: number;
}

export interface WatchRequest {
  path: string;
  query?: Record<string, QueryValue>;
  accept?: string;
  signal: AbortSignal;
  /** A stream silent for this long is treated as dead (half-open TCP); default 10 minutes. */
  idleTimeoutMs?: number;
}

/**
 * What informers, the credential reader and the leader elector need from the API server. An
 * interface so that tests can wrap the real one (to cut a watch, or to hold a reconnect back) or
 * replace it.
 */
export interface KubeTransport {
  /** Resolves with the decoded JSON body (undefined for an empty body); rejects with KubeApiError for non-2xx. */
  request<T>(req: KubeRequest): Promise<T>;
  /**
   * Opens a watch and calls `onEvent` for every event line. Resolves when the server ends the
   * stream or `signal` aborts; rejects with KubeApiError when the server refuses the watch (e.g.
   * 410), and with an Error when the connection breaks or a line is not a watch event.
   */
  watch(req: WatchRequest, onEvent: (event: WatchEvent) => void): Promise<void>;
}

export interface KubeTransportOptions {
  defaultTimeoutMs?: number;
  userAgent?: string;
  /**
   * How long the credentials and TLS material read from the kubeconfig are reused before they are
   * read again (default 10 s; a 401 reads them again at once). Rotating credentials (projected
   * service-account tokens, exec plugins, renewed client certificates) are picked up within it.
   */
  credentialsTtlMs?: number;
  clock?: Clock;
}

/** What every request to the API server carries, read from the kubeconfig. */
interface Credentials {
  headers: http.OutgoingHttpHeaders;
  agent: http.Agent | undefined;
}

export function createKubeTransport(kc: KubeConfig, options: KubeTransportOptions = {}): KubeTransport {
  return new HttpKubeTransport(kc, options);
}

const MAX_ERROR_BODY = 64 * 1024;

class HttpKubeTransport implements KubeTransport {
  /** One keep-alive agent while the TLS material is unchanged: list pages and GETs reuse connections. */
  private agent: { fingerprint: string; agent: http.Agent } | undefined;
  private readonly defaultTimeoutMs: number;
  private readonly userAgent: string;
  private readonly credentialsTtlMs: number;
  private readonly clock: Clock;
  /**
   * Read at most once per TTL, not per request: client-node's applyToHTTPSOptions reads or decodes
   * the CA, certificate and key and builds a new https.Agent on every call, and at hundreds of
   * writes per second that was a tenth of the operator's CPU.
   */
  private credentials: { value: Promise<Credentials>; readAt: number } | undefined;

  constructor(
    private readonly kc: KubeConfig,
    options: KubeTransportOptions,
  ) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? "apptoken-operator";
    this.credentialsTtlMs = options.credentialsTtlMs ?? 10_000;
    this.clock = options.clock ?? systemClock;
  }

  async request<T>(req: KubeRequest): Promise<T> {
    const method = req.method ?? "GET";
    // One controller per request, aborted by the deadline or by the caller's signal, both undone
    // when the request ends. Not AbortSignal.any([req.signal, timeout]): on Node 20 every call
    // leaves a WeakRef in the long-lived source signal (the work queue's, shared by every
    // reconcile) that is never removed, about 70 bytes per API request, forever.
    const abort = new AbortController();
    const timeoutMs = Math.max(1, Math.ceil(req.timeoutMs ?? this.defaultTimeoutMs));
    const timer = setTimeout(
      () =>
        abort.abort(
          new DOMException(`${method} ${req.path}: no answer within ${timeoutMs} ms`, "TimeoutError"),
        ),
      timeoutMs,
    );
    timer.unref();
    const onCallerAbort = (): void => abort.abort(req.signal?.reason);
    if (req.signal?.aborted) onCallerAbort();
    else req.signal?.addEventListener("abort", onCallerAbort, { once: true });
    try {
      return await this.exchange<T>(method, req, abort.signal);
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onCallerAbort);
    }
  }

  private async exchange<T>(method: string, req: KubeRequest, signal: AbortSignal): Promise<T> {
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    const res = await this.open(method, req.path, req.query, {
      accept: req.accept ?? "application/json",
      contentType: body === undefined ? undefined : (req.contentType ?? "application/json"),
      body,
      signal,
    });
    let text: string;
    try {
      text = await readBody(res, Number.POSITIVE_INFINITY);
    } catch (err) {
      // Cut off mid-body: by our deadline or the caller (say which), or by the connection.
      const why: unknown = signal.aborted ? signal.reason : err;
      const detail = why instanceof Error ? why.message : String(why);
      const where = `${method} ${req.path}`;
      throw new Error(detail.startsWith(where) ? detail : `${where}: ${detail}`, { cause: why });
    }
    const code = res.statusCode ?? 0;
    if (code === 401) this.credentials = undefined;
    if (code < 200 || code >= 300) throw new KubeApiError(method, req.path, code, parseStatus(text));
    if (text.length === 0) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new Error(`${method} ${req.path}: response is not JSON`, { cause: err });
    }
  }

  async watch(req: WatchRequest, onEvent: (event: WatchEvent) => void): Promise<void> {
    if (req.signal.aborted) return;
    let res: http.IncomingMessage;
    try {
      res = await this.open(
        "GET",
        req.path,
        { ...req.query, watch: true },
        {
          accept: req.accept ?? "application/json",
          signal: req.signal,
          idleTimeoutMs: req.idleTimeoutMs ?? 10 * 60_000,
        },
      );
    } catch (err) {
      if (req.signal.aborted) return;
      throw err;
    }
    const code = res.statusCode ?? 0;
    if (code !== 200) {
      if (code === 401) this.credentials = undefined;
      const text = await readBody(res, MAX_ERROR_BODY).catch(() => "");
      throw new KubeApiError("WATCH", req.path, code, parseStatus(text));
    }
    return readWatchStream(res, req, onEvent);
  }

  private async open(
    method: string,
    path: string,
    query: Record<string, QueryValue> | undefined,
    o: {
      accept: string;
      contentType?: string | undefined;
      body?: string | undefined;
      signal: AbortSignal;
      idleTimeoutMs?: number;
    },
  ): Promise<http.IncomingMessage> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    const url = new URL(cluster.server.replace(/\/+$/, "") + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));

    const credentials = await this.currentCredentials(url.protocol, Boolean(cluster.proxyUrl));
    const headers: http.OutgoingHttpHeaders = {
      ...credentials.headers,
      accept: o.accept,
      "user-agent": this.userAgent,
    };
    if (o.contentType) headers["content-type"] = o.contentType;
    if (o.body !== undefined) headers["content-length"] = Buffer.byteLength(o.body);

    const agent = credentials.agent;
    const send = url.protocol === "http:" ? http.request : https.request;
    const attempt = (retried: boolean): Promise<http.IncomingMessage> =>
      new Promise((resolve, reject) => {
        const req = send(url, { method, headers, agent, signal: o.signal }, resolve);
        req.on("error", (err) => {
          // A kept-alive connection the server closed (idle timeout, or after refusing a body it
          // did not read) while this request was on its way, reset before any response: the
          // server did not read it. Sent again once, on a new connection, as Node's docs for
          // reusedSocket advise. Safe for writes too: ours are merge patches of status, or carry
          // a resourceVersion precondition, or are creates whose AlreadyExists is handled.
          // Any other failure is the caller's to handle.
          if (!retried && req.reusedSocket && isConnectionReset(err) && !o.signal.aborted) {
            resolve(attempt(true));
            return;
          }
          reject(new Error(`${method} ${path}: ${err.message}`, { cause: err }));
        });
        if (o.idleTimeoutMs !== undefined) {
          req.setTimeout(Math.ceil(o.idleTimeoutMs), () =>
            req.destroy(new Error(`no data for ${o.idleTimeoutMs} ms`)),
          );
        }
        req.end(o.body);
      });
    return attempt(false);
  }

  private currentCredentials(protocol: string, proxied: boolean): Promise<Credentials> {
    const now = this.clock.now();
    const cached = this.credentials;
    if (cached && now - cached.readAt < this.credentialsTtlMs) return cached.value;
    const value = this.readCredentials(protocol, proxied);
    this.credentials = { value, readAt: now };
    // A failed read (say, an exec plugin that failed) is not kept: the next request tries again.
    value.catch(() => {
      if (this.credentials?.value === value) this.credentials = undefined;
    });
    return value;
  }

  private async readCredentials(protocol: string, proxied: boolean): Promise<Credentials> {
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const headers: http.OutgoingHttpHeaders = { ...(opts.headers as http.OutgoingHttpHeaders | undefined) };
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
    // Behind a proxy, client-node's proxy agent is the way out; it is kept for the TTL too.
    const agent = proxied ? (opts.agent as http.Agent | undefined) : this.keepAliveAgent(protocol, opts);
    return { headers, agent };
  }

  private keepAliveAgent(protocol: string, opts: https.RequestOptions): http.Agent {
    const tls = {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      pfx: opts.pfx,
      passphrase: opts.passphrase,
      servername: opts.servername,
      rejectUnauthorized: opts.rejectUnauthorized,
    };
    const h = createHash("sha256").update(protocol);
    for (const v of Object.values(tls)) h.update(v === undefined ? "\0" : String(v));
    const fingerprint = h.digest("hex");
    if (this.agent?.fingerprint !== fingerprint) {
      this.agent?.agent.destroy();
      const agent =
        protocol === "http:"
          ? new http.Agent({ keepAlive: true })
          : new https.Agent({ keepAlive: true, ...tls });
      this.agent = { fingerprint, agent };
    }
    return this.agent.agent;
  }
}
