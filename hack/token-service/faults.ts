/**
 * Scriptable misbehaviour, so tests can show how the client classifies every failure. A fault
 * applies to requests whose tenant and client match (omitted fields match anything), before any
 * validation, as a front door or throttling layer would; `times` limits how often it fires.
 */
export interface RequestMatch {
  /** The tenant GUID (a request naming the tenant by domain matches too), or the raw path segment. */
  tenantId?: string;
  clientId?: string;
}

export type FaultBehaviour =
  | {
      type: "throttle";
      status?: 429 | 503;
      /** Seconds, or "http-date:<epoch ms>" to send an HTTP-date; omitted sends no Retry-After. */
      retryAfter?: number | `http-date:${number}`;
    }
  /** AADSTS50196, which Entra sends as 400 invalid_request (see entra-errors.ts). */
  | { type: "loopDetected" }
  | { type: "serverError"; status?: number }
  /** Never answers; the socket stays open until the client gives up or the service closes. */
  | { type: "hang" }
  | { type: "malformed"; variant?: "truncated" | "missingFields" | "html" }
  /** A 200 with a body far beyond any sane token response (1 MiB unless told). */
  | { type: "oversized"; bytes?: number }
  /** Destroys the socket without answering. */
  | { type: "reset" };

export type FaultRule = FaultBehaviour & { match?: RequestMatch; times?: number };

export class FaultList {
  private rules: FaultRule[] = [];

  add(rule: FaultRule): void {
    this.rules.push({ ...rule });
  }

  clear(): void {
    this.rules = [];
  }

  /** The first rule matching the request, consuming one of its `times`. */
  take(request: { tenantIds: readonly string[]; clientId: string | undefined }): FaultBehaviour | undefined {
    const index = this.rules.findIndex((rule) => matches(rule.match, request));
    if (index === -1) return undefined;
    const rule = this.rules[index]!;
    if (rule.times !== undefined) {
      rule.times -= 1;
      if (rule.times <= 0) this.rules.splice(index, 1);
    }
    return rule;
  }
}

export function matches(
  match: RequestMatch | undefined,
  request: { tenantIds: readonly string[]; clientId: string | undefined },
): boolean {
  if (match === undefined) return true;
  if (match.tenantId !== undefined && !request.tenantIds.includes(match.tenantId.toLowerCase())) return false;
  if (match.clientId !== undefined && match.clientId !== request.clientId) return false;
  return true;
}
