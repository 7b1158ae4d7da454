/**
 * The API server's own count of requests (apiserver_request_total from its /metrics, read with
 * the admin client certificate), so the benchmark counts every write the server served, whoever
 * sent it, instead of trusting the operator's own counters.
 */
import { readFileSync } from "node:fs";
import { request } from "node:https";

export interface ApiserverAccess {
  serverUrl: string;
  caCertPath: string;
  adminCertPath: string;
  adminKeyPath: string;
}

/**
 * "VERB resource[/subresource]" -> count; also "WATCHEVENTS resource" and "WATCHBYTES resource":
 * the events and bytes the API server sent to watchers, and "SECONDS VERB resource" and "ANSWERED
 * VERB resource": the time the API server spent answering those requests, and how many it timed;
 * "TERMINATEDWATCHERS resource": watchers it closed for falling behind.
 */
export type RequestCounts = Map<string, number>;

const MUTATING = new Set(["POST", "CREATE", "PUT", "UPDATE", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"]);

export async function scrapeRequestCounts(a: ApiserverAccess): Promise<RequestCounts> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(
      `${a.serverUrl}/metrics`,
      {
        ca: readFileSync(a.caCertPath),
        cert: readFileSync(a.adminCertPath),
        key: readFileSync(a.adminKeyPath),
        timeout: 30_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: HTTP ${res.statusCode}`)),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("/metrics timed out")));
    req.end();
  });
  const counts: RequestCounts = new Map();
  const add = (key: string, value: string) => counts.set(key, (counts.get(key) ?? 0) + Number(value));
  for (const line of text.split("\n")) {
    const w = /^apiserver_watch_events_(total|sizes_sum)\{(.*)\} (\S+)$/.exec(line);
    if (w) {
      add(`WATCH${w[1] === "total" ? "EVENTS" : "BYTES"} ${watchedKind(w[2]!)}`, w[3]!);
      continue;
    }
    const t = /^apiserver_terminated_watchers_total\{(.*)\} (\S+)$/.exec(line);
    if (t) {
      // Watchers the API server cut off for not keeping up: each costs that client a re-list.
      add(`TERMINATEDWATCHERS ${watchedKind(t[1]!)}`, t[2]!);
      continue;
    }
    const d = /^apiserver_request_duration_seconds_(sum|count)\{(.*)\} (\S+)$/.exec(line);
    if (d) {
      const labels = labelsOf(d[2]!);
      add(`${d[1] === "sum" ? "SECONDS" : "ANSWERED"} ${labels.verb} ${resourceOf(labels)}`, d[3]!);
      continue;
    }
    if (!line.startsWith("apiserver_request_total{")) continue;
    const m = /^apiserver_request_total\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = labelsOf(m[1]!);
    // Refused writes (409 conflicts above all) are writes too, and worth seeing apart.
    const refused = labels.code && !labels.code.startsWith("2") ? ` (${labels.code})` : "";
    add(`${labels.verb} ${resourceOf(labels)}${refused}`, m[2]!);
  }
  return counts;
}

function labelsOf(text: string): Record<string, string | undefined> {
  return Object.fromEntries([...text.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
}

function resourceOf(labels: Record<string, string | undefined>): string | undefined {
  return labels.subresource ? `${labels.resource}/${labels.subresource}` : labels.resource;
}

/** Watch metrics are labelled by resource in newer API servers, by kind in older ones. */
function watchedKind(labels: string): string {
  return /(?:resource|kind)="([^"]*)"/.exec(labels)?.[1] ?? "?";
}

export function diffCounts(before: RequestCounts, after: RequestCounts): RequestCounts {
  const out: RequestCounts = new Map();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}

/** Only the writes (create, update, patch, delete), optionally only for some resources. */
export function writesOf(counts: RequestCounts, resources?: readonly string[]): RequestCounts {
  const out: RequestCounts = new Map();
  for (const [k, v] of counts) {
    const [verb, resource] = k.split(" ") as [string, string];
    if (!MUTATING.has(verb)) continue;
    if (resources && !resources.some((r) => resource === r || resource.startsWith(`${r}/`))) continue;
    out.set(k, v);
  }
  return out;
}

export function total(counts: RequestCounts): number {
  let n = 0;
  for (const v of counts.values()) n += v;
  return n;
}

/** "CREATE secrets 1000, PATCH apptokenrequests/status 1000" (largest first). */
export function formatCounts(counts: RequestCounts): string {
  const rows = [...counts].sort((a, b) => b[1] - a[1]);
  return rows.length === 0 ? "none" : rows.map(([k, v]) => `${k} ${v}`).join(", ");
}

export function toObject(counts: RequestCounts): Record<string, number> {
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]));
}

/**
 * Mean ms the API server itself spent on the creates of Secrets and the patches of request status
 * counted in `d` (its apiserver_request_duration_seconds): the server's share of a write's latency.
 */
export function serverWriteMeanMs(d: RequestCounts): number {
  const series = ["POST secrets", "PATCH apptokenrequests/status"];
  const seconds = series.reduce((a, k) => a + (d.get(`SECONDS ${k}`) ?? 0), 0);
  const answered = series.reduce((a, k) => a + (d.get(`ANSWERED ${k}`) ?? 0), 0);
  return (1000 * seconds) / Math.max(1, answered);
}
