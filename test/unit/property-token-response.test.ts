/**
 * Property: whatever a token endpoint (or anything impersonating one) answers — any status, any
 * Retry-After, any body from valid Entra JSON to binary junk, including bodies that echo back the
 * secret or the assertion we sent — classification never throws; it yields either a usable token
 * (non-empty, expiring after it was issued) or one of the three failure classes with a CamelCase
 * reason, and its message is short and quotes neither what we sent nor anything shaped like a JWT.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PermanentError, ThrottledError, TransientError } from "../../src/identity/errors.js";
import { classifyTokenResponse } from "../../src/identity/token-response.js";

const NOW = Date.parse("2026-11-24T11:00:00Z");
const SECRET = "Prop~cl1ent.Secret-Value_42";
const ASSERTION =
  "eyJhbGciOiJSUzI1NiIsIng1dCNTMjU2IjoiYWJjIn0.eyJpc3MiOiJhcHAiLCJzdWIiOiJhcHAiLCJhdWQiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";

const echo = fc.constantFrom(
  SECRET,
  ASSERTION,
  `client_secret=${SECRET}`,
  `client_assertion=${ASSERTION}`,
  "",
);

/** Strings that may carry what we sent, in the places a misbehaving server could put it. */
const text = fc.oneof(
  fc.string({ maxLength: 200 }),
  echo,
  fc.tuple(fc.string(), echo, fc.string()).map((p) => p.join("")),
);

const entraLikeBody = fc.record(
  {
    error: fc.oneof(text, fc.integer(), fc.constant(null)),
    error_description: fc.oneof(
      text,
      fc
        .tuple(fc.integer({ min: 0, max: 99_999_999 }), text)
        .map(([c, t]) => `AADSTS${c}: ${t}\r\nTrace ID: x`),
    ),
    error_codes: fc.oneof(
      fc.array(fc.integer()),
      fc.array(fc.anything(), { maxLength: 3 }),
      fc.constant("x"),
    ),
    access_token: fc.oneof(text, fc.integer(), fc.constant(ASSERTION)),
    token_type: fc.oneof(fc.constant("Bearer"), text),
    expires_in: fc.oneof(
      fc.integer({ min: -10, max: 100_000 }),
      fc.string({ maxLength: 12 }),
      fc.double(),
      fc.constant("3599"),
    ),
    refresh_in: fc.oneof(fc.integer({ min: -10, max: 100_000 }), fc.string({ maxLength: 5 })),
  },
  { requiredKeys: [] },
);

const body = fc.oneof(
  entraLikeBody.map((b) => JSON.stringify(b)),
  fc.json(),
  fc.string({ maxLength: 2000 }),
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString("latin1")),
  fc.constant('{"token_type":"Bearer","expires_in":3599,"access_tok'),
  fc.constant("<html><body>Sign in</body></html>"),
);

const status = fc.oneof(
  fc.constantFrom(200, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504, 301, 302),
  fc.integer({ min: 100, max: 599 }),
);

const retryAfter = fc.option(
  fc.oneof(
    fc.integer({ min: -5, max: 100_000 }).map(String),
    fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()),
    fc.string({ maxLength: 30 }),
  ),
  { nil: undefined },
);

const JWT_SHAPED = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/;

describe("property: classifyTokenResponse on anything a server can send", () => {
  it("never throws; tokens are usable; failures are classified and quote nothing we sent", () => {
    fc.assert(
      fc.property(status, retryAfter, body, (st, ra, b) => {
        const outcome = classifyTokenResponse(
          { status: st, headers: ra === undefined ? {} : { "retry-after": ra }, body: b },
          { now: NOW, sentAt: NOW - 50, redact: [SECRET, ASSERTION] },
        );
        if (outcome.ok) {
          expect(st).toBe(200);
          expect(outcome.token.accessToken.length).toBeGreaterThan(0);
          expect(outcome.token.expiresAt).toBeGreaterThan(outcome.token.issuedAt - 1000);
          return;
        }
        const e = outcome.error;
        expect([ThrottledError, TransientError, PermanentError].some((c) => e instanceof c)).toBe(true);
        expect(e.reason).toMatch(/^[A-Z][A-Za-z0-9]+$/);
        expect(e.message.length).toBeLessThanOrEqual(400);
        expect(e.message).not.toContain(SECRET);
        expect(e.message).not.toMatch(JWT_SHAPED);
        if (st === 429) expect(e).toBeInstanceOf(ThrottledError);
        if (st >= 500 && !(e instanceof ThrottledError)) expect(e).toBeInstanceOf(TransientError);
        if (e instanceof ThrottledError && e.retryAt !== undefined)
          expect(Number.isFinite(e.retryAt)).toBe(true);
      }),
      { numRuns: 3000, seed: 42 },
    );
  });

  it("a 200 that is not a complete token is a transient MalformedResponse, never a token", () => {
    fc.assert(
      fc.property(body, (b) => {
        const outcome = classifyTokenResponse({ status: 200, headers: {}, body: b }, { now: NOW });
        if (outcome.ok) {
          const parsed = JSON.parse(b) as { access_token: unknown; expires_in: unknown };
          expect(typeof parsed.access_token).toBe("string");
        } else {
          expect(outcome.error).toBeInstanceOf(TransientError);
          expect(outcome.error.reason).toBe("MalformedResponse");
          // Field names at most; never the values (which could include a token).
          expect(outcome.error.message).not.toMatch(JWT_SHAPED);
        }
      }),
      { numRuns: 2000, seed: 43 },
    );
  });
});
