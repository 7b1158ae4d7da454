import { z } from "zod";
import type { AadstsMeaning } from "./aadsts.js";
import { aadstsMeaning } from "./aadsts.js";
import type { TokenAcquisitionError } from "./errors.js";
import { PermanentError, ThrottledError, TransientError } from "./errors.js";
import { parseRetryAfter } from "./retry-after.js";

/** A token as the rest of the operator sees it: absolute times, no protocol field names. */
export interface TokenResponse {
  accessToken: string;
  tokenType: string;
  /** Epoch ms when the request was sent: the token cannot have been issued earlier. */
  issuedAt: number;
  /** Epoch ms: issuedAt + expires_in. Measured from the send time so it is never late. */
  expiresAt: number;
  /** Seconds after issuedAt when Entra suggests refreshing (refresh_in), when it sent one. */
  refreshIn?: number;
}

/** What came back from the token endpoint, before any interpretation. */
export interface RawTokenResponse {
  status: number;
  /** Lower-case names, as Node and undici give them. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: string;
}

export interface ClassifyContext {
  /** Epoch ms now, for Retry-After. */
  now: number;
  /** Epoch ms when the request was sent; defaults to `now`. */
  sentAt?: number;
  /** Values that must never appear in an error message (the secret, the assertion we sent). */
  redact?: readonly string[];
}

export type TokenOutcome = { ok: true; token: TokenResponse } | { ok: false; error: TokenAcquisitionError };

// Entra sends numbers; some proxies and older endpoints send numeric strings.
const seconds = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(/^\d{1,10}$/)
    .transform(Number),
]);

const successBody = z.object({
  access_token: z.string().min(1),
  token_type: z.string().min(1),
  expires_in: seconds.refine((s) => s > 0, "must be positive"),
  refresh_in: seconds.optional(),
});

const errorBody = z.object({
  error: z.string().optional().catch(undefined),
  error_description: z.string().optional().catch(undefined),
  error_codes: z.array(z.number()).optional().catch(undefined),
});

type ErrorBody = z.infer<typeof errorBody>;

const MAX_DESCRIPTION = 300;

/**
 * Turns one HTTP answer from a token endpoint into a token or a classified failure. Pure: no I/O,
 * no clock reads, so every row of the table is a unit test.
 */
export function classifyTokenResponse(raw: RawTokenResponse, ctx: ClassifyContext): TokenOutcome {
  const sentAt = ctx.sentAt ?? ctx.now;
  const redact = ctx.redact ?? [];
  if (raw.status === 200) return parseSuccess(raw, sentAt);

  const body = parseErrorBody(raw.body);
  const code = aadstsCode(body);
  const retryAfter = header(raw.headers, "retry-after");
  const { kind, reason } = decide(
    raw.status,
    code === undefined ? undefined : aadstsMeaning(code),
    retryAfter,
  );
  const message = describeFailure(raw.status, body, code, redact);
  const details = { reason, aadsts: code, httpStatus: raw.status };
  const error =
    kind === "Throttled"
      ? new ThrottledError(message, { ...details, retryAt: parseRetryAfter(retryAfter, ctx.now) })
      : kind === "Transient"
        ? new TransientError(message, details)
        : new PermanentError(message, details);
  return { ok: false, error };
}

/** The rules, in order; the first that fires decides. */
function decide(
  status: number,
  meaning: AadstsMeaning | undefined,
  retryAfter: string | undefined,
): AadstsMeaning {
  if (status === 429 || meaning?.kind === "Throttled") {
    return { kind: "Throttled", reason: meaning?.kind === "Throttled" ? meaning.reason : "Throttled" };
  }
  if (status === 503 && retryAfter !== undefined) return { kind: "Throttled", reason: "ServiceUnavailable" };
  // A 5xx is the service's trouble whatever code rides along with it.
  if (status >= 500) {
    return { kind: "Transient", reason: meaning?.kind === "Transient" ? meaning.reason : "ServerError" };
  }
  if (status === 408) return { kind: "Transient", reason: "Timeout" };
  if (meaning !== undefined) return meaning;
  if (status === 404) return { kind: "Permanent", reason: "TokenEndpointNotFound" };
  // Never followed: a redirect would carry the credential to a host nobody configured.
  if (status >= 300 && status < 400) return { kind: "Permanent", reason: "UnexpectedRedirect" };
  if (status >= 400) return { kind: "Permanent", reason: "TokenRequestRejected" };
  return { kind: "Transient", reason: "UnexpectedStatus" };
}

function parseSuccess(raw: RawTokenResponse, sentAt: number): TokenOutcome {
  let json: unknown;
  try {
    json = JSON.parse(raw.body);
  } catch {
    return malformed("the token response is not JSON");
  }
  const parsed = successBody.safeParse(json);
  if (!parsed.success) {
    // Field names only: the values may include the token itself.
    const fields = [...new Set(parsed.error.issues.map((issue) => issue.path.join(".") || "(body)"))];
    return malformed(`the token response has missing or invalid fields: ${fields.join(", ")}`);
  }
  const { access_token, token_type, expires_in, refresh_in } = parsed.data;
  const token: TokenResponse = {
    accessToken: access_token,
    tokenType: token_type,
    issuedAt: sentAt,
    // Whole seconds, as the token's own iat/exp are: counted from the second the request left, the
    // result is never later than the JWT's exp, whatever part of that second the service saw.
    expiresAt: Math.floor(sentAt / 1000) * 1000 + expires_in * 1000,
  };
  // A refresh_in at or past expiry would be advice to let the token lapse; ignore it.
  if (refresh_in !== undefined && refresh_in > 0 && refresh_in < expires_in) token.refreshIn = refresh_in;
  return { ok: true, token };
}

function malformed(message: string): TokenOutcome {
  return { ok: false, error: new TransientError(message, { reason: "MalformedResponse", httpStatus: 200 }) };
}

function parseErrorBody(text: string): ErrorBody | undefined {
  try {
    const parsed = errorBody.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function aadstsCode(body: ErrorBody | undefined): string | undefined {
  const first = body?.error_codes?.[0];
  if (first !== undefined && Number.isSafeInteger(first)) return String(first);
  return /AADSTS(\d+)/.exec(body?.error_description ?? "")?.[1];
}

function describeFailure(
  status: number,
  body: ErrorBody | undefined,
  code: string | undefined,
  redact: readonly string[],
): string {
  const error = body?.error === undefined ? undefined : scrub(body.error, redact).slice(0, 60);
  const suffix = error === undefined ? `HTTP ${status}` : `HTTP ${status} ${error}`;
  const line = firstLine(body?.error_description ?? "");
  if (line === "") {
    return code === undefined ? `token service answered ${suffix}` : `AADSTS${code} (${suffix})`;
  }
  const text = code !== undefined && !line.startsWith("AADSTS") ? `AADSTS${code}: ${line}` : line;
  // Scrub before bounding, so that a cut never leaves half a secret behind.
  return `${bound(scrub(text, redact))} (${suffix})`;
}

/** The first line, without Entra's trailer (Trace ID, Correlation ID, Timestamp). */
export function firstLine(description: string): string {
  const line = (description.split(/\r?\n/)[0] ?? "").split(/\s*Trace ID:/)[0] ?? "";
  return line.trim();
}

function bound(text: string): string {
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION - 3)}...` : text;
}

// A misbehaving server could echo what we sent; make sure none of it reaches status or logs.
function scrub(text: string, redact: readonly string[]): string {
  let out = text.replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, "[redacted]");
  for (const value of redact) {
    if (value.length >= 4) out = out.split(value).join("[redacted]");
  }
  return out;
}

function header(headers: RawTokenResponse["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
