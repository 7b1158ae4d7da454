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
