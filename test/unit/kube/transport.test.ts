import { getEventListeners } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeTransport, isExpired, isNotFound, KubeApiError } from "../../../src/kube/transport.js";
import type { WatchEvent } from "../../../src/kube/types.js";

/** A loopback HTTP server whose handler each test sets. */
let handler: http.RequestListener = (_req, res) => res.end();
let server: http.Server;
let kc: KubeConfig;

beforeAll(async () => {
  server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: "test", server: `http://127.0.0.1:${port}`, skipTLSVerify: true },
    { name: "test", token: "t0ken" },
  );
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe("transport", () => {
  it("sends the bearer token, the Accept header and the query, and decodes JSON", async () => {
    let seen: http.IncomingMessage | undefined;
    handler = (req, res) => {
      seen = req;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ items: [] }));
    };
    const out = await createKubeTransport(kc).request<{ items: unknown[] }>({
      path: "/api/v1/secrets",
      query: { limit: 500, continue: undefined, labelSelector: "a!=b" },
      accept: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    });
    expect(out).toEqual({ items: [] });
    expect(seen?.headers.authorization).toBe("Bearer t0ken");
    expect(seen?.headers.accept).toContain("as=PartialObjectMetadataList");
    expect(seen?.url).toBe("/api/v1/secrets?limit=500&labelSelector=a%21%3Db");
  });

  it("turns an error Status into a KubeApiError with code and reason", async () => {
    handler = (_req, res) => {
      res.statusCode = 404;
      res.end(
        JSON.stringify({ kind: "Status", code: 404, reason: "NotFound", message: 'secrets "x" not found' }),
      );
    };
    const err = await createKubeTransport(kc)
      .request({ path: "/api/v1/namespaces/ns/secrets/x" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toBe(
      'GET /api/v1/namespaces/ns/secrets/x: HTTP 404 NotFound: secrets "x" not found',
    );
  });

  it("reassembles watch events split across chunks and resolves when the server ends the stream", async () => {
    const e1 = JSON.stringify({ type: "ADDED", object: { metadata: { name: "a", resourceVersion: "1" } } });
    const e2 = JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: "2" } } });
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      const all = `${e1}\n${e2}\n`;
      res.write(all.slice(0, 10));
      setTimeout(() => res.write(all.slice(10, e1.length + 5)), 5);
      setTimeout(() => res.end(all.slice(e1.length + 5)), 10);
    };
    const events: WatchEvent[] = [];
    await createKubeTransport(kc).watch(
      { path: "/api/v1/secrets", signal: new AbortController().signal },
      (e) => events.push(e),
    );
    expect(events.map((e) => e.type)).toEqual(["ADDED", "BOOKMARK"]);
  });

  it("rejects a refused watch with the HTTP status (410 Gone)", async () => {
    handler = (_req, res) => {
      res.statusCode = 410;
      res.end(
        JSON.stringify({ kind: "Status", code: 410, reason: "Expired", message: "too old resource version" }),
      );
    };
    const err = await createKubeTransport(kc)
      .watch(
        { path: "/api/v1/secrets", query: { resourceVersion: "1" }, signal: new AbortController().signal },
        () => {},
      )
      .catch((e: unknown) => e);
    expect(isExpired(err)).toBe(true);
  });

  it("ends the watch with an error on a line it cannot decode, instead of dropping the event", async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write("{not json\n");
    };
    await expect(
      createKubeTransport(kc).watch(
        { path: "/api/v1/secrets", signal: new AbortController().signal },
        () => {},
      ),
    ).rejects.toThrow(/watch \/api\/v1\/secrets/);
  });

  it("resolves quietly when the caller aborts an open watch", async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write("");
    };
    const ac = new AbortController();
    const done = createKubeTransport(kc).watch({ path: "/api/v1/secrets", signal: ac.signal }, () => {});
    setTimeout(() => ac.abort(), 20);
    await expect(done).resolves.toBeUndefined();
  });

  it("rejects when the connection drops mid-stream", async () => {
    handler = (req, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: "ADDED", object: { metadata: { name: "a" } } })}\n`);
      setTimeout(() => req.socket.destroy(), 10);
    };
    const events: WatchEvent[] = [];
    await expect(
      createKubeTransport(kc).watch({ path: "/api/v1/secrets", signal: new AbortController().signal }, (e) =>
        events.push(e),
      ),
    ).rejects.toThrow();
    expect(events).toHaveLength(1);
  });
});

/** Settles as `p` does, or rejects once `ms` have passed: every wait on the server is bounded. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error and its causes, outermost first. */
function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e !== undefined && chain.length < 10; e = e instanceof Error ? e.cause : undefined)
    chain.push(e);
  return chain;
}

/** A handler that never answers, and a promise of the request it holds, for when it has arrived. */
function holdRequests(): Promise<http.IncomingMessage> {
  return new Promise((resolve) => {
    handler = (req) => resolve(req);
  });
}

/** Resolves when the server sees the client give up on `req` (its socket closed). */
function closedByClient(req: http.IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    if (req.socket.destroyed) resolve();
    else req.socket.once("close", () => resolve());
  });
}

describe("transport: request deadlines and the caller's signal", () => {
  it("aborts a request in flight when the caller's signal aborts, with the caller's reason", async () => {
    const arrived = holdRequests();
    const caller = new AbortController();
    const reason = new Error("reconcile cancelled: leadership lost");
    const outcome = createKubeTransport(kc, { defaultTimeoutMs: 60_000 })
      .request({ path: "/api/v1/namespaces/ns/secrets/held", signal: caller.signal })
      .then(
        () => "resolved",
        (e: unknown) => e,
      );

    const req = await within(arrived, 5_000, "request reaching the server");
    caller.abort(reason);
    const err = await within(outcome, 5_000, "request settling after the abort");

    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^GET \/api\/v1\/namespaces\/ns\/secrets\/held: /);
    expect(causeChain(err)).toContain(reason);
    await within(closedByClient(req), 5_000, "the server seeing the connection closed");
    expect(getEventListeners(caller.signal, "abort")).toHaveLength(0);
  });

  it("does not send a request whose caller's signal has already aborted, and says why", async () => {
    let seen = 0;
    handler = (req, res) => {
      if (req.url === "/api/v1/namespaces/ns/secrets/never") seen++;
      res.end("{}");
    };
    const reason = new Error("shutting down");
    const err = await within(
      createKubeTransport(kc)
        .request({ path: "/api/v1/namespaces/ns/secrets/never", signal: AbortSignal.abort(reason) })
        .catch((e: unknown) => e),
      5_000,
      "request settling",
    );
    expect((err as Error).message).toMatch(/^GET \/api\/v1\/namespaces\/ns\/secrets\/never: /);
    expect(causeChain(err)).toContain(reason);
    expect(seen).toBe(0);
  });

  it("gives up on a server that never answers after timeoutMs, with a TimeoutError naming method and path", async () => {
    const arrived = holdRequests();
    const caller = new AbortController();
    const started = performance.now();
    const err = await within(
      createKubeTransport(kc, { defaultTimeoutMs: 60_000 })
        .request({
          method: "PUT",
          path: "/api/v1/namespaces/ns/secrets/slow",
          body: { metadata: { name: "slow" } },
          timeoutMs: 150,
          signal: caller.signal,
        })
        .then(
          () => "resolved",
          (e: unknown) => e,
        ),
      5_000,
      "request timing out",
    );
    const elapsed = performance.now() - started;

    expect((err as Error).message).toMatch(/^PUT \/api\/v1\/namespaces\/ns\/secrets\/slow: /);
    const timeout = causeChain(err).find((e) => e instanceof Error && e.name === "TimeoutError");
    expect((timeout as Error | undefined)?.message).toBe(
      "PUT /api/v1/namespaces/ns/secrets/slow: no answer within 150 ms",
    );
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(caller.signal.aborted).toBe(false);
    expect(getEventListeners(caller.signal, "abort")).toHaveLength(0);
    await within(closedByClient(await arrived), 5_000, "the server seeing the connection closed");
  });

  it("rounds a fractional remaining budget up to whole milliseconds, and a spent one up to 1 ms", async () => {
    holdRequests();
    const transport = createKubeTransport(kc, { defaultTimeoutMs: 60_000 });
    const timeoutOf = async (timeoutMs: number): Promise<string | undefined> => {
      const err = await within(
        transport.request({ path: "/api/v1/x", timeoutMs }).catch((e: unknown) => e),
        5_000,
        `request with timeoutMs ${timeoutMs}`,
      );
      const timeout = causeChain(err).find((e) => e instanceof Error && e.name === "TimeoutError");
      return (timeout as Error | undefined)?.message;
    };
    expect(await timeoutOf(20.2)).toBe("GET /api/v1/x: no answer within 21 ms");
    expect(await timeoutOf(-5)).toBe("GET /api/v1/x: no answer within 1 ms");
  });

  it("leaves no listener on a long-lived caller signal after many requests, answered or refused", async () => {
    let answered = 0;
    handler = (req, res) => {
      // Counted by path: a request an earlier test gave up on may still reach the server now.
      if (req.url?.startsWith("/api/v1/namespaces/listeners/")) answered++;
      if (req.url?.endsWith("/missing")) {
        res.statusCode = 404;
        res.end(JSON.stringify({ kind: "Status", code: 404, reason: "NotFound" }));
      } else res.end(JSON.stringify({ metadata: { name: "ok" } }));
    };
    const transport = createKubeTransport(kc);
    const workQueue = new AbortController();
    // While one is in flight the listener is there: the check below can see one left behind.
    const inFlight = transport.request({
      path: "/api/v1/namespaces/listeners/secrets/first",
      signal: workQueue.signal,
    });
    expect(getEventListeners(workQueue.signal, "abort")).toHaveLength(1);
    await within(inFlight, 5_000, "first request");

    for (let i = 0; i < 200; i++) {
      const path = `/api/v1/namespaces/listeners/secrets/${i % 2 === 0 ? "present" : "missing"}`;
      await within(
        transport.request({ path, signal: workQueue.signal }).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        }),
        5_000,
        `request ${i}`,
      );
    }

    expect(answered).toBe(201);
    expect(getEventListeners(workQueue.signal, "abort")).toHaveLength(0);
    expect(workQueue.signal.aborted).toBe(false);
  });
});

describe("transport: a response cut off mid-body", () => {
  it("says the deadline, the method and the path when the server stalls after the headers", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"kind":"SecretList","items":[');
    };
    const err = await within(
      createKubeTransport(kc)
        .request({ path: "/api/v1/namespaces/ns/secrets", timeoutMs: 150 })
        .then(
          () => "resolved",
          (e: unknown) => e,
        ),
      5_000,
      "the stalled request",
    );
    expect((err as Error).message).toBe("GET /api/v1/namespaces/ns/secrets: no answer within 150 ms");
    expect(causeChain(err).some((e) => e instanceof Error && e.name === "TimeoutError")).toBe(true);
  });
});

describe("transport: credentials from the kubeconfig", () => {
  it("reads them once per TTL, not per request, so a rotated token is sent after at most the TTL", async () => {
    const seen: (string | undefined)[] = [];
    handler = (req, res) => {
      seen.push(req.headers.authorization);
      res.end("{}");
    };
    const rotating = new KubeConfig();
    rotating.loadFromClusterAndUser(kc.getCurrentCluster()!, { name: "test", token: "first" });
    let reads = 0;
    const apply = rotating.applyToHTTPSOptions.bind(rotating);
    rotating.applyToHTTPSOptions = async (opts) => {
      reads++;
      return apply(opts);
    };
    let now = 1_000_000;
    const transport = createKubeTransport(rotating, { credentialsTtlMs: 10_000, clock: { now: () => now } });

    await Promise.all([1, 2, 3].map(() => transport.request({ path: "/api/v1/namespaces" })));
    (rotating.getCurrentUser() as { token?: string }).token = "second";
    now += 9_999;
    await transport.request({ path: "/api/v1/namespaces" });
    expect(reads).toBe(1);
    now += 2;
    await transport.request({ path: "/api/v1/namespaces" });
    expect(reads).toBe(2);
    expect(seen).toEqual(["Bearer first", "Bearer first", "Bearer first", "Bearer first", "Bearer second"]);
  });

  it("reads them again at once after a 401, and does not keep a read that failed", async () => {
    let status = 401;
    handler = (_req, res) => {
      res.statusCode = status;
      res.end(JSON.stringify({ kind: "Status", code: status, reason: "Unauthorized" }));
    };
    const flaky = new KubeConfig();
    flaky.loadFromClusterAndUser(kc.getCurrentCluster()!, { name: "test", token: "t" });
    let reads = 0;
    let failNext = false;
    const apply = flaky.applyToHTTPSOptions.bind(flaky);
    flaky.applyToHTTPSOptions = async (opts) => {
      reads++;
      if (failNext) {
        failNext = false;
        throw new Error("exec plugin failed");
      }
      return apply(opts);
    };
    const transport = createKubeTransport(flaky, { clock: { now: () => 0 } });

    await expect(transport.request({ path: "/api" })).rejects.toBeInstanceOf(KubeApiError);
    expect(reads).toBe(1);
    failNext = true;
    await expect(transport.request({ path: "/api" })).rejects.toThrow("exec plugin failed");
    expect(reads).toBe(2);
    status = 200;
    await transport.request({ path: "/api" });
    await transport.request({ path: "/api" });
    expect(reads).toBe(3);
  });
});

describe("transport: a kept-alive connection the server has closed", () => {
  /** Answers every request, except that it drops the connection under the first one sent on a reused connection. */
  function dropFirstReused(): { seen: string[] } {
    const served = new WeakMap<object, number>();
    const state = { seen: [] as string[], dropped: false };
    handler = (req, res) => {
      const n = (served.get(req.socket) ?? 0) + 1;
      served.set(req.socket, n);
      state.seen.push(`${req.method} ${req.url} #${n}`);
      if (n > 1 && !state.dropped) {
        state.dropped = true;
        req.socket.destroy();
        return;
      }
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ n }));
    };
    return state;
  }

  it("sends a request reset on a reused connection once more, on a new one", async () => {
    const state = dropFirstReused();
    const t = createKubeTransport(kc);
    await t.request({ path: "/api/v1/namespaces/a" });
    const out = await t.request<{ n: number }>({
      method: "PATCH",
      path: "/apis/apptoken.io/v1alpha1/namespaces/a/apptokenrequests/r/status",
      body: { status: {} },
      contentType: "application/merge-patch+json",
    });
    // Answered on a fresh connection, after the reused one was dropped under it.
    expect(out).toEqual({ n: 1 });
    expect(state.seen).toEqual([
      "GET /api/v1/namespaces/a #1",
      "PATCH /apis/apptoken.io/v1alpha1/namespaces/a/apptokenrequests/r/status #2",
      "PATCH /apis/apptoken.io/v1alpha1/namespaces/a/apptokenrequests/r/status #1",
    ]);
  });

  it("does not send again a request reset on a new connection, nor more than once", async () => {
    const seen: string[] = [];
    handler = (req) => {
      seen.push(`${req.method} ${req.url}`);
      req.socket.destroy();
    };
    const err = await createKubeTransport(kc)
      .request({ method: "PUT", path: "/api/v1/namespaces/a/secrets/s", body: {} })
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^PUT \/api\/v1\/namespaces\/a\/secrets\/s: socket hang up/);
    expect(seen).toHaveLength(1);
  });
});
