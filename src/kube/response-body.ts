/**
 * Decoding what the API server sends back: whole bodies, the Status of an error, watch event
 * lines. Apart from the transport's connection handling: none of it opens, retries or times out a
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
