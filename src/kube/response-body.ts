/**
 * Decoding what the API server sends back: whole bodies, the Status of an error, watch streams
 * line by line. Apart from the transport's connection handling: none of it opens, retries or times out a
 * request.
 */
import type http from "node:http";
import type { KubeStatus, WatchEvent, WatchEventType } from "./types.js";

/**
 * The body as a string, decoded chunk by chunk into V8 strings rather than concatenated into one
 * Buffer first: a list page of 500 Secrets is megabytes, and such large Buffers come from malloc,
 * whose freed arenas the process keeps (RSS grew with every re-list); V8 returns its string pages.
 */
export function readBody(res: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      if (text.length < limit) text += chunk;
    });
    res.on("end", () => resolve(text));
    res.on("error", reject);
    res.on("aborted", () => reject(new Error("response aborted")));
  });
}

export function parseStatus(text: string): KubeStatus | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null ? (v as KubeStatus) : undefined;
  } catch {
    return text ? { message: text.slice(0, 500) } : undefined;
  }
}

const EVENT_TYPES: ReadonlySet<string> = new Set(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]);

export function parseWatchLine(line: string): WatchEvent {
  const v = JSON.parse(line) as { type?: unknown; object?: unknown };
  if (typeof v.type !== "string" || !EVENT_TYPES.has(v.type)) {
    throw new Error(`unexpected watch event type ${JSON.stringify(v.type)}`);
  }
  return { type: v.type as WatchEventType, object: v.object };
}

/**
 * Hands each event of a watch stream to `onEvent`; resolves when the stream ends or `signal`
 * aborts it, rejects when it breaks or holds a line that cannot be decoded.
 */
export function readWatchStream(
  res: http.IncomingMessage,
  req: { path: string; signal: AbortSignal },
  onEvent: (event: WatchEvent) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (err && !req.signal.aborted) {
        res.destroy();
        reject(err);
      } else {
        resolve();
      }
    };
    let pending = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      pending += chunk;
      let start = 0;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n", start)) {
        const line = pending.slice(start, nl);
        start = nl + 1;
        if (line.trim().length === 0) continue;
        try {
          onEvent(parseWatchLine(line));
        } catch (err) {
          // A line we cannot decode is an event we would lose: end this watch with an error so
          // that the reflector resumes from the last resourceVersion it did apply.
          finish(new Error(`watch ${req.path}: ${(err as Error).message}`, { cause: err }));
          return;
        }
      }
      pending = pending.slice(start);
    });
    res.on("end", () => finish());
    res.on("error", (err) => finish(new Error(`watch ${req.path}: ${err.message}`, { cause: err })));
    res.on("close", () => finish(new Error(`watch ${req.path}: connection closed mid-stream`)));
  });
}
