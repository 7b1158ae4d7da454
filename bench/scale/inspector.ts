/**
 * A minimal Chrome DevTools Protocol client for an operator started with --inspect=127.0.0.1:PORT:
 * force a full GC before reading its memory (RSS right after a cold start is mostly garbage not
 * yet collected), read V8's heap usage, and write a heap snapshot for profiling. Uses `ws`, which
 * @kubernetes/client-node already depends on (no new package); loaded untyped to avoid needing
 * @types/ws.
 */
import { createWriteStream } from "node:fs";
import { createRequire } from "node:module";

interface WsLike {
  on(event: "open" | "close", cb: () => void): void;
  on(event: "error", cb: (e: Error) => void): void;
  on(event: "message", cb: (data: Buffer | string) => void): void;
  send(data: string): void;
  close(): void;
}
type WsCtor = new (url: string, opts?: Record<string, unknown>) => WsLike;

const WebSocketClient = createRequire(import.meta.url)("ws") as WsCtor;

export interface HeapBreakdown {
  /** New space (the semi-spaces) and new large-object space, committed. */
  youngCommittedBytes: number;
  /** Old, code and large-object spaces: committed, and in use. */
  oldCommittedBytes: number;
  oldUsedBytes: number;
  /** Memory outside the V8 heap that V8 knows of (Buffers, ArrayBuffers). */
  externalBytes: number;
}

export class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, (params: Record<string, unknown>) => void>();

  private constructor(private readonly ws: WsLike) {
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
        method?: string;
        params?: Record<string, unknown>;
      };
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result);
      } else if (msg.method) {
        this.listeners.get(msg.method)?.(msg.params ?? {});
      }
    });
  }

  static async connect(port: number, timeoutMs = 15_000): Promise<Inspector> {
    const deadline = Date.now() + timeoutMs;
    let url: string | undefined;
    while (!url) {
      try {
        const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
          webSocketDebuggerUrl?: string;
        }[];
        url = list[0]?.webSocketDebuggerUrl;
      } catch {
        /* not listening yet */
      }
      if (!url) {
        if (Date.now() > deadline) throw new Error(`no inspector on port ${port}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const ws = new WebSocketClient(url, { maxPayload: 1024 * 2 ** 20 });
    await new Promise<void>((resolve, reject) => {
      ws.on("open", () => resolve());
      ws.on("error", reject);
    });
    return new Inspector(ws);
  }

  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Two full GCs (the second collects what finalizers of the first released). */
  async collectGarbage(): Promise<void> {
    await this.send("HeapProfiler.collectGarbage");
    await this.send("HeapProfiler.collectGarbage");
  }

  /** V8 heap in use, and committed (used + free pages V8 keeps). */
  async heapUsage(): Promise<{ usedSize: number; totalSize: number }> {
    return this.send<{ usedSize: number; totalSize: number }>("Runtime.getHeapUsage");
  }

  /**
   * V8's heap by space (committed and used) and Node's off-heap figures: what RSS holds besides
   * live objects, e.g. a young generation grown under load, or Buffers' memory.
   */
  async heapBreakdown(): Promise<HeapBreakdown> {
    const expression =
      "JSON.stringify({ spaces: require('node:v8').getHeapSpaceStatistics(), mem: process.memoryUsage() })";
    const r = await this.send<{ result: { value?: string } }>("Runtime.evaluate", {
      expression,
      includeCommandLineAPI: true,
      returnByValue: true,
    });
    const v = JSON.parse(r.result.value ?? "{}") as {
      spaces?: { space_name: string; space_size: number; space_used_size: number }[];
      mem?: { external: number; arrayBuffers: number };
    };
    const space = (name: string) => v.spaces?.find((x) => x.space_name === name);
    const sum = (names: string[], f: "space_size" | "space_used_size") =>
      names.reduce((n, name) => n + (space(name)?.[f] ?? 0), 0);
    const young = ["new_space", "new_large_object_space"];
    const old = ["old_space", "large_object_space", "code_space", "map_space", "code_large_object_space"];
    return {
      youngCommittedBytes: sum(young, "space_size"),
      oldCommittedBytes: sum(old, "space_size"),
      oldUsedBytes: sum(old, "space_used_size"),
      externalBytes: v.mem?.external ?? Number.NaN,
    };
  }

  /** Streams a .heapsnapshot to `file` (open it in Chrome DevTools' Memory tab). */
  async heapSnapshot(file: string): Promise<void> {
    const out = createWriteStream(file);
    this.listeners.set("HeapProfiler.addHeapSnapshotChunk", (p) => out.write(String(p.chunk)));
    await this.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    this.listeners.delete("HeapProfiler.addHeapSnapshotChunk");
    await new Promise<void>((r) => out.end(() => r()));
  }

  close(): void {
    this.ws.close();
  }
}
