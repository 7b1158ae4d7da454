/**
 * A refusal from the API server as a class, and the questions callers ask of it (not found?
 * conflict? too old?), answered from the HTTP status and the Status reason, never from message
 * text. Also whether a socket error is a reset, which decides whether the transport may send a
 * request again. Callers import these through transport.ts.
 */
import type { KubeStatus } from "./types.js";

/** A non-2xx answer from the API server, with the decoded Status when the server sent one. */
export class KubeApiError extends Error {
  readonly statusCode: number;
  readonly reason: string | undefined;
  readonly status: KubeStatus | undefined;
  constructor(method: string, path: string, statusCode: number, status: KubeStatus | undefined) {
    const reason = status?.reason;
    super(
      `${method} ${path}: HTTP ${statusCode}${reason ? ` ${reason}` : ""}${status?.message ? `: ${status.message}` : ""}`,
    );
    this.name = "KubeApiError";
    this.statusCode = statusCode;
    this.reason = reason;
    this.status = status;
  }
}

function statusCodeOf(err: unknown): number | undefined {
  return err instanceof KubeApiError ? err.statusCode : undefined;
}
export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
/** 410 Gone / reason Expired: a resourceVersion or continue token too old to serve. */
export const isExpired = (err: unknown): boolean =>
  statusCodeOf(err) === 410 || (err instanceof KubeApiError && err.reason === "Expired");

/** A connection the server reset or closed under a request in flight. */
export function isConnectionReset(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ECONNRESET" || code === "EPIPE";
}
