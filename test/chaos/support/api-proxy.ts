/**
 * A recording HTTPS proxy in front of the real kube-apiserver, one per operator replica. It
 * terminates TLS with its own CA (the replica's kubeconfig trusts that CA and carries the
 * replica's own bearer token, which the proxy forwards untouched: the apiserver still
 * authenticates and authorizes the replica itself) and re-originates every request to the real
 * apiserver. What it adds:
 *
 * - Attribution. Both replicas write with fieldManager and user agent "apptoken-operator", so
 *   neither managedFields nor the objects can tell who wrote what. The proxy sees each request of
 *   its replica, with the time it arrived and the answer: the split-brain check reads this log.
 * - Watch cuts. `cut()` destroys every open connection of the replica (watches included), as a
 *   reset or a restarted load balancer would; nothing else changes.
 *
 * Nothing is answered by the proxy itself: every request goes to the real apiserver, every answer
 * is the apiserver's. When the apiserver cannot be reached the client's connection is destroyed,
 * as a TCP reset would look.
 */
import type http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { createCa, issueServerCertificate } from "../../../hack/token-service/pki.js";

export interface ProxiedRequest {
  replica: string;
  method: string;
  /** Path and query, as sent. */
  url: string;
  /** Date.now() when the proxy received the request head (before it was forwarded). */
  at: number;
  /** The apiserver's status code, once it answered. */
  status?: number;
  answeredAt?: number;
  /** Set when the exchange broke (apiserver unreachable, cut, client went away). */
  error?: string;
}

export interface ApiProxy {
  readonly replica: string;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** PEM of the CA the proxy's serving certificate is issued by. */
  readonly caPem: string;
  readonly requests: ProxiedRequest[];
  /** Requests that change state (not GET, not watches), optionally only those whose path includes `pathIncludes`. */
  writes(pathIncludes?: string): ProxiedRequest[];
  /** Destroys every open connection (client side and upstream): watches end mid-stream. */
  cut(): number;
  /** Watches currently open. */
  openWatches(): number;
  close(): Promise<void>;
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export async function startApiProxy(o: {
  replica: string;
  upstream: string;
  upstreamCaPem: string;
}): Promise<ApiProxy> {
  const ca = await createCa({ commonName: `api proxy CA (${o.replica})` });
  const serving = await issueServerCertificate(ca);
  const upstream = new URL(o.upstream);
  const agent = new https.Agent({ keepAlive: true, ca: o.upstreamCaPem });
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();
  const upstreamRequests = new Set<http.ClientRequest>();
  const watches = new Set<http.IncomingMessage>();

  const server = https.createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => {
    const entry: ProxiedRequest = {
      replica: o.replica,
      method: req.method ?? "GET",
      url: req.url ?? "/",
      at: Date.now(),
    };
    requests.push(entry);
    const isWatch = /[?&]watch=(true|1)\b/.test(entry.url);
    if (isWatch) {
      watches.add(req);
      res.on("close", () => watches.delete(req));
    }
    const headers = { ...req.headers, host: upstream.host };
    const up = https.request(
      {
        protocol: "https:",
        hostname: upstream.hostname,
        port: upstream.port,
        method: entry.method,
        path: entry.url,
        headers,
        agent,
      },
      (answer) => {
        entry.status = answer.statusCode;
        entry.answeredAt = Date.now();
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.flushHeaders();
        answer.pipe(res);
        answer.on("error", () => res.destroy());
        answer.on("aborted", () => res.destroy());
      },
    );
    upstreamRequests.add(up);
    up.on("close", () => upstreamRequests.delete(up));
    up.on("error", (err) => {
      entry.error ??= err.message;
      // What a client sees when the server vanishes: the connection breaks.
      res.destroy();
    });
    req.on("error", () => up.destroy());
    res.on("close", () => {
      if (!res.writableFinished) {
        entry.error ??= "client connection closed before the answer completed";
        up.destroy();
      }
    });
    req.pipe(up);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    replica: o.replica,
    url: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    requests,
    writes: (pathIncludes = "") =>
      requests.filter((r) => WRITE_METHODS.has(r.method) && r.url.includes(pathIncludes)),
    cut: () => {
      const n = sockets.size;
      for (const up of upstreamRequests) up.destroy();
      for (const s of sockets) s.destroy();
      return n;
    },
    openWatches: () => watches.size,
    close: async () => {
      for (const up of upstreamRequests) up.destroy();
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
