import { describe, expect, it } from "vitest";
import type { TokenAcquisitionError } from "../../../src/identity/errors.js";
import { PermanentError, ThrottledError, TransientError } from "../../../src/identity/errors.js";
import type { RawTokenResponse } from "../../../src/identity/token-response.js";
import { classifyTokenResponse } from "../../../src/identity/token-response.js";
import { classifyTokenError } from "../../../src/identity/transport-error.js";

const now = Date.parse("2026-11-24T11:00:00Z");

function entraError(
  status: number,
  code: number,
  error = "invalid_request",
  text = "Something went wrong.",
): RawTokenResponse {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
    body: JSON.stringify({
      error,
      error_description: `AADSTS${code}: ${text}\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-11-24 11:00:00Z`,
      error_codes: [code],
      timestamp: "2026-11-24 11:00:00Z",
      trace_id: "0000aaaa-11bb-cccc-dd22-eeeeee333333",
      correlation_id: "aaaa0000-bb11-2222-33cc-444444dddddd",
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    }),
  };
}

function failure(raw: RawTokenResponse, redact: string[] = []): TokenAcquisitionError {
  const outcome = classifyTokenResponse(raw, { now, redact });
  if (outcome.ok) throw new Error("expected a failure");
  return outcome.error;
}

function success(body: unknown, sentAt = now - 40) {
  const outcome = classifyTokenResponse(
    { status: 200, headers: {}, body: JSON.stringify(body) },
    { now, sentAt },
  );
  if (!outcome.ok) throw outcome.error;
  return outcome.token;
}

describe("classifyTokenResponse: success", () => {
  it("measures expiry from the second the request was sent, so it is never later than the token's exp", () => {
    const token = success({
      token_type: "Bearer",
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: "eyJ.a.b",
    });
    expect(token).toEqual({
      accessToken: "eyJ.a.b",
      tokenType: "Bearer",
      issuedAt: now - 40,
      expiresAt: Math.floor((now - 40) / 1000) * 1000 + 3_599_000,
    });
  });

  it("accepts expires_in as a numeric string and keeps refresh_in", () => {
    const token = success({
      token_type: "Bearer",
      expires_in: "86399",
      refresh_in: 43199,
      access_token: "t",
    });
    expect(token.expiresAt - Math.floor(token.issuedAt / 1000) * 1000).toBe(86_399_000);
    expect(token.refreshIn).toBe(43199);
  });

  it("ignores a refresh_in that is not before expiry", () => {
    expect(
      success({ token_type: "Bearer", expires_in: 60, refresh_in: 60, access_token: "t" }).refreshIn,
    ).toBeUndefined();
  });

  it.each([
    ["not JSON", '{"token_type":"Bearer","access_tok'],
    ["an HTML sign-in page", "<html>Sign in</html>"],
    ["missing access_token", JSON.stringify({ token_type: "Bearer", expires_in: 3599 })],
    ["missing expires_in", JSON.stringify({ token_type: "Bearer", access_token: "t" })],
    ["a zero lifetime", JSON.stringify({ token_type: "Bearer", expires_in: 0, access_token: "t" })],
    [
      "a non-numeric lifetime",
      JSON.stringify({ token_type: "Bearer", expires_in: "soon", access_token: "t" }),
    ],
    ["a JSON array", "[]"],
  ])("treats a 200 with %s as a transient malformed response", (_what, body) => {
    const error = failure({ status: 200, headers: {}, body });
    expect(error).toBeInstanceOf(TransientError);
    expect(error.reason).toBe("MalformedResponse");
  });

  it("names missing fields but never echoes the values it got", () => {
    const error = failure({
      status: 200,
      headers: {},
      body: JSON.stringify({ token_type: 7, access_token: "SECRET-TOKEN" }),
    });
    expect(error.message).toContain("token_type");
    expect(error.message).toContain("expires_in");
    expect(error.message).not.toContain("SECRET-TOKEN");
  });
});

describe("classifyTokenResponse: throttling", () => {
  it("honours a seconds Retry-After on 429", () => {
    const error = failure({ status: 429, headers: { "retry-after": "30" }, body: "" });
    expect(error).toBeInstanceOf(ThrottledError);
    expect((error as ThrottledError).retryAt).toBe(now + 30_000);
  });

  it("honours an HTTP-date Retry-After to the second", () => {
    const error = failure({
      status: 429,
      headers: { "retry-after": "Tue, 24 Nov 2026 11:02:07 GMT" },
      body: "",
    });
    expect((error as ThrottledError).retryAt).toBe(Date.parse("2026-11-24T11:02:07Z"));
  });

  it("throttles on 429 even without Retry-After, leaving the wait to the caller", () => {
    const error = failure({ status: 429, headers: {}, body: "" });
    expect(error).toBeInstanceOf(ThrottledError);
    expect((error as ThrottledError).retryAt).toBeUndefined();
    expect(error.reason).toBe("Throttled");
  });

  it("treats 503 with Retry-After as throttling and 503 without as transient", () => {
    const throttled = failure({ ...entraError(503, 90033), headers: { "retry-after": "5" } });
    expect(throttled).toBeInstanceOf(ThrottledError);
    expect((throttled as ThrottledError).retryAt).toBe(now + 5000);
    expect(failure(entraError(503, 90033))).toBeInstanceOf(TransientError);
  });

  it("treats AADSTS50196 (loop detected) as throttling whatever the status", () => {
    const error = failure(
      entraError(
        400,
        50196,
        "invalid_request",
        "The server terminated an operation because it encountered a client request loop.",
      ),
    );
    expect(error).toBeInstanceOf(ThrottledError);
    expect(error.reason).toBe("LoopDetected");
    expect(error.aadsts).toBe("50196");
  });
});

describe("classifyTokenResponse: Entra rejections", () => {
  it.each([
    [401, 7000215, "invalid_client", "InvalidClientSecret"],
    [401, 7000222, "invalid_client", "ExpiredClientSecret"],
    [400, 700016, "unauthorized_client", "UnknownClient"],
    [400, 90002, "invalid_request", "UnknownTenant"],
    [400, 90023, "invalid_request", "UnknownTenant"],
    [400, 900023, "invalid_request", "InvalidTenantIdentifier"],
    [400, 500011, "invalid_resource", "UnknownResource"],
    [400, 70011, "invalid_scope", "InvalidScope"],
    [400, 1002012, "invalid_scope", "InvalidScope"],
    [401, 700027, "invalid_client", "CertificateNotRegistered"],
    [401, 700024, "invalid_client", "AssertionNotInValidTimeRange"],
    [401, 700023, "invalid_client", "AssertionAudienceMismatch"],
    [401, 700021, "invalid_client", "AssertionIssuerMismatch"],
    [401, 5002738, "invalid_client", "UnsupportedAssertionAlgorithm"],
    [400, 70021, "invalid_request", "FederatedIdentityMismatch"],
    [400, 700211, "invalid_request", "FederatedIdentityMismatch"],
    [400, 700213, "invalid_request", "FederatedIdentityMismatch"],
    [400, 123456, "invalid_request", "TokenRequestRejected"],
  ])("HTTP %i AADSTS%i is permanent: %s / %s", (status, code, error, reason) => {
    const result = failure(entraError(status, code, error));
    expect(result).toBeInstanceOf(PermanentError);
    expect(result.reason).toBe(reason);
    expect(result.aadsts).toBe(String(code));
    expect(result.httpStatus).toBe(status);
    expect(result.message).toMatch(
      new RegExp(`^AADSTS${code}: Something went wrong\\. \\(HTTP ${status} ${error}\\)$`),
    );
  });

  it("keeps the first line of the description and drops the trace trailer", () => {
    const error = failure(
      entraError(
        401,
        7000215,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent is the value, not the ID, for app 'b4d1'.",
      ),
    );
    expect(error.message).toBe(
      "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the value, not the ID, for app 'b4d1'. (HTTP 401 invalid_client)",
    );
    expect(error.message).not.toMatch(/Trace ID|Correlation ID|Timestamp/);
  });

  it("drops a trace trailer that arrives on the same line", () => {
    const raw = {
      status: 400,
      headers: {},
      body: JSON.stringify({
        error: "invalid_grant",
        error_description:
          "AADSTS9002313: Invalid request. Trace ID: 41 Correlation ID: bd Timestamp: 2024-10-03 18:40:55Z",
        error_codes: [9002313],
      }),
    };
    expect(failure(raw).message).toBe("AADSTS9002313: Invalid request. (HTTP 400 invalid_grant)");
  });

  it("bounds very long descriptions", () => {
    const error = failure(entraError(400, 70011, "invalid_scope", "x".repeat(5000)));
    expect(error.message.length).toBeLessThan(400);
  });

  it("never repeats a credential the server echoes back", () => {
    const raw = entraError(
      401,
      7000215,
      "invalid_client",
      "Secret 'hunter2-super-secret' and assertion eyJhbGciOi.eyJzdWIiOi.c2ln are wrong",
    );
    const error = failure(raw, ["hunter2-super-secret"]);
    expect(error.message).not.toContain("hunter2-super-secret");
    expect(error.message).not.toContain("eyJhbGciOi");
    expect(error.message).toContain("[redacted]");
  });

  it("takes the code from the description when error_codes is missing", () => {
    const raw = {
      status: 400,
      headers: {},
      body: JSON.stringify({
        error: "invalid_request",
        error_description: "AADSTS90002: Tenant 'x' not found.",
      }),
    };
    expect(failure(raw).reason).toBe("UnknownTenant");
  });
});

describe("classifyTokenResponse: everything else", () => {
  it.each([
    [500, TransientError, "ServerError"],
    [502, TransientError, "ServerError"],
    [504, TransientError, "ServerError"],
    [408, TransientError, "Timeout"],
    [404, PermanentError, "TokenEndpointNotFound"],
    [302, PermanentError, "UnexpectedRedirect"],
    [403, PermanentError, "TokenRequestRejected"],
    [400, PermanentError, "TokenRequestRejected"],
    [204, TransientError, "UnexpectedStatus"],
  ] as const)("HTTP %i without an AADSTS code is %s / %s", (status, kind, reason) => {
    const error = failure({ status, headers: {}, body: "<html>proxy error</html>" });
    expect(error).toBeInstanceOf(kind);
    expect(error.reason).toBe(reason);
    expect(error.message).toBe(`token service answered HTTP ${status}`);
  });

  it("keeps a transient AADSTS code transient on a 4xx", () => {
    expect(failure(entraError(400, 90033)).reason).toBe("TokenServiceUnavailable");
    expect(failure(entraError(400, 90033))).toBeInstanceOf(TransientError);
  });
});

describe("classifyTokenError", () => {
  const withCode = (code: string, message = `failed ${code}`) => Object.assign(new Error(message), { code });

  it.each([
    ["UND_ERR_CONNECT_TIMEOUT", "ConnectTimeout"],
    ["UND_ERR_HEADERS_TIMEOUT", "Timeout"],
    ["UND_ERR_BODY_TIMEOUT", "Timeout"],
    ["ECONNRESET", "ConnectionReset"],
    ["UND_ERR_SOCKET", "ConnectionReset"],
    ["ECONNREFUSED", "ConnectionRefused"],
    ["ENOTFOUND", "DnsFailure"],
    ["EHOSTUNREACH", "NetworkUnreachable"],
    ["SOMETHING_NEW", "NetworkError"],
  ])("%s is transient: %s", (code, reason) => {
    const error = classifyTokenError(withCode(code), "login.example");
    expect(error).toBeInstanceOf(TransientError);
    expect(error.reason).toBe(reason);
    expect(error.message).toContain("login.example");
  });

  it.each([
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UntrustedAuthorityCertificate"],
    ["SELF_SIGNED_CERT_IN_CHAIN", "UntrustedAuthorityCertificate"],
    ["CERT_HAS_EXPIRED", "UntrustedAuthorityCertificate"],
    ["ERR_TLS_CERT_ALTNAME_INVALID", "AuthorityCertificateNameMismatch"],
  ])("%s is permanent: %s", (code, reason) => {
    const error = classifyTokenError(withCode(code));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error.reason).toBe(reason);
  });

  it("finds the code on a wrapped cause", () => {
    const wrapped = new TypeError("fetch failed", { cause: withCode("ECONNRESET") });
    expect(classifyTokenError(wrapped).reason).toBe("ConnectionReset");
  });

  it("passes classified errors through unchanged", () => {
    const original = new PermanentError("x", { reason: "InvalidClientSecret" });
    expect(classifyTokenError(original)).toBe(original);
  });
});
