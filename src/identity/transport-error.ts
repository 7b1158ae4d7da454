import type { TokenAcquisitionError } from "./errors.js";
import { PermanentError, TransientError, isTokenAcquisitionError } from "./errors.js";

/**
 * Classifies a failure that happened before a complete HTTP answer arrived: connection, TLS,
 * timeouts. Pure, so it is unit tested with hand-made errors.
 *
 * TLS trust failures are Permanent: the operator needs `--authority-ca-file` (or the authority a
 * valid certificate), and hammering the endpoint will not change that. Everything else on the
 * wire is Transient.
 */
export function classifyTokenError(error: unknown, authority?: string): TokenAcquisitionError {
  if (isTokenAcquisitionError(error)) return error;
  const code = errorCode(error);
  const where = authority === undefined ? "" : ` (${authority})`;
  const detail = errorMessage(error);
  const message = `token request failed${where}: ${detail}`;
  const permanent = code === undefined ? undefined : permanentCodes.get(code);
  if (permanent !== undefined) return new PermanentError(message, { reason: permanent, cause: error });
  const reason = (code === undefined ? undefined : transientCodes.get(code)) ?? "NetworkError";
  return new TransientError(message, { reason, cause: error });
}

const transientCodes: ReadonlyMap<string, string> = new Map([
  ["UND_ERR_CONNECT_TIMEOUT", "ConnectTimeout"],
  ["UND_ERR_HEADERS_TIMEOUT", "Timeout"],
  ["UND_ERR_BODY_TIMEOUT", "Timeout"],
  ["ETIMEDOUT", "Timeout"],
  ["ECONNRESET", "ConnectionReset"],
  ["EPIPE", "ConnectionReset"],
  ["UND_ERR_SOCKET", "ConnectionReset"],
  ["UND_ERR_CLOSED", "ConnectionReset"],
  ["ECONNREFUSED", "ConnectionRefused"],
  ["ENOTFOUND", "DnsFailure"],
  ["EAI_AGAIN", "DnsFailure"],
  ["ENETUNREACH", "NetworkUnreachable"],
  ["EHOSTUNREACH", "NetworkUnreachable"],
  ["UND_ERR_RES_EXCEEDED_MAX_SIZE", "ResponseTooLarge"],
]);

const permanentCodes: ReadonlyMap<string, string> = new Map([
  ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UntrustedAuthorityCertificate"],
  ["UNABLE_TO_GET_ISSUER_CERT", "UntrustedAuthorityCertificate"],
  ["UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UntrustedAuthorityCertificate"],
  ["SELF_SIGNED_CERT_IN_CHAIN", "UntrustedAuthorityCertificate"],
  ["DEPTH_ZERO_SELF_SIGNED_CERT", "UntrustedAuthorityCertificate"],
  ["CERT_UNTRUSTED", "UntrustedAuthorityCertificate"],
  ["CERT_SIGNATURE_FAILURE", "UntrustedAuthorityCertificate"],
  ["CERT_HAS_EXPIRED", "UntrustedAuthorityCertificate"],
  ["CERT_NOT_YET_VALID", "UntrustedAuthorityCertificate"],
  ["ERR_TLS_CERT_ALTNAME_INVALID", "AuthorityCertificateNameMismatch"],
]);

// undici wraps socket errors (TypeError: fetch failed, SocketError...) with the useful code on a cause.
function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && code !== "") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function errorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const code = errorCode(error);
  const line = (text.split("\n")[0] ?? "").slice(0, 200);
  return code === undefined || line.includes(code) ? line : `${line} [${code}]`;
}
