import { describe, expect, it } from "vitest";
import { clientAssertionCredential } from "../../../src/identity/credentials/client-assertion.js";
import { JWT_BEARER_ASSERTION_TYPE } from "../../../src/identity/credentials/client-credential.js";
import type { CredentialProblem } from "../../../src/identity/errors.js";
import { CredentialError } from "../../../src/identity/errors.js";
import { FakeClock } from "../../support/fake-clock.js";

const ISSUER = "https://token.actions.githubusercontent.com";
const SUBJECT = "repo:contoso/payments:environment:prod";
const SECOND = 1000;

/** A whole second, so that `exp` (seconds) and the clock (ms) line up exactly. */
const clock = () => new FakeClock(Date.parse("2026-11-24T11:00:00Z"));
const nowSeconds = (c: FakeClock) => c.now() / SECOND;

function segment(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** A compact JWS with these claims. Nothing local checks its signature: that is Entra ID's job. */
function jwt(claims: Record<string, unknown>): string {
  return `${segment({ alg: "RS256", typ: "JWT", kid: "k1" })}.${segment(claims)}.${segment("not-a-real-signature")}`;
}

function assertionFor(c: FakeClock, claims: Record<string, unknown> = {}): string {
  return jwt({
    iss: ISSUER,
    sub: SUBJECT,
    aud: "api://AzureADTokenExchange",
    exp: nowSeconds(c) + 600,
    ...claims,
  });
}

function ctx(c: FakeClock) {
  return {
    tokenEndpoint: "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token",
    clientId: "app",
    now: c.now(),
  };
}

function problemOf(run: () => unknown, value: string): CredentialProblem | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialError);
    const message = (error as CredentialError).message;
    if (value.trim() !== "") expect(message).not.toContain(value.trim());
    for (const part of value.split(".").filter((p) => p.length > 8)) expect(message).not.toContain(part);
    return (error as CredentialError).problem;
  }
  return undefined;
}

describe("clientAssertionCredential", () => {
  it("presents the JWT from the Secret unchanged, as a jwt-bearer client assertion", async () => {
    const c = clock();
    const assertion = assertionFor(c);
    const credential = clientAssertionCredential(assertion, c.now());
    expect(credential.kind).toBe("clientAssertion");
    await expect(credential.formFields(ctx(c))).resolves.toEqual({
      client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
      client_assertion: assertion,
    });
    expect(credential.authorizationHeader).toBeUndefined();
  });

  it("drops the whitespace and final newline a file written into the Secret brings along", async () => {
    const c = clock();
    const assertion = assertionFor(c);
    const credential = clientAssertionCredential(`  ${assertion}\r\n`, c.now());
    expect((await credential.formFields(ctx(c))).client_assertion).toBe(assertion);
  });

  it("knows when the assertion expires: its exp, in epoch ms", () => {
    const c = clock();
    const credential = clientAssertionCredential(assertionFor(c, { exp: nowSeconds(c) + 300 }), c.now());
    expect(credential.notAfter).toBe(c.now() + 300 * SECOND);
  });

  describe("its fingerprint (part of the token cache key)", () => {
    it("stays the same for a refreshed assertion of the same issuer and subject", () => {
      const c = clock();
      const first = clientAssertionCredential(assertionFor(c, { jti: "a" }), c.now());
      c.advance(5 * 60 * SECOND);
      const refreshed = clientAssertionCredential(assertionFor(c, { jti: "b", iat: nowSeconds(c) }), c.now());
      expect(refreshed.fingerprint).toBe(first.fingerprint);
      expect(first.fingerprint).toMatch(/^[0-9a-f]{32}$/);
    });

    it.each([
      ["subject", { sub: "repo:contoso/payments:environment:staging" }],
      ["issuer", { iss: "https://oidc.example" }],
    ])("changes with the %s: another identity is another cache key", (_what, claims) => {
      const c = clock();
      const base = clientAssertionCredential(assertionFor(c), c.now());
      expect(clientAssertionCredential(assertionFor(c, claims), c.now()).fingerprint).not.toBe(
        base.fingerprint,
      );
    });

    it("does not tell which issuer and subject it was made from", () => {
      const c = clock();
      const { fingerprint } = clientAssertionCredential(assertionFor(c), c.now());
      expect(fingerprint).not.toContain("contoso");
      expect(fingerprint).not.toContain("github");
    });
  });

  it.each<[string, string]>([
    ["an empty value", ""],
    ["a value that is not a JWT", "this is not a jwt"],
    ["an opaque token", "gho_16C7e42F292c6912E7710c838347Ae178B4a"],
    ["two segments", `${segment({ alg: "RS256" })}.${segment({ exp: 9_999_999_999 })}`],
    ["a JWE (five segments)", `${segment({ alg: "RSA-OAEP", enc: "A256GCM" })}.a.b.c.d`],
    ["a payload that is not JSON", `${segment({ alg: "RS256" })}.${segment("{not json")}.c2ln`],
    ["no exp", jwt({ iss: ISSUER, sub: SUBJECT })],
    ["an exp that is a string", jwt({ iss: ISSUER, sub: SUBJECT, exp: "1795000000" })],
    ["an exp that is null", jwt({ iss: ISSUER, sub: SUBJECT, exp: null })],
  ])("refuses %s as MalformedAssertion, without quoting it", (_what, value) => {
    expect(problemOf(() => clientAssertionCredential(value, clock().now()), value)).toBe(
      "MalformedAssertion",
    );
  });

  it.each<[string, number, CredentialProblem | undefined]>([
    ["expired an hour ago", -3600, "AssertionExpired"],
    ["expiring now", 0, "AssertionExpired"],
    ["expiring within the 30 s it may spend on the way", 30, "AssertionExpired"],
    ["valid for 31 s more", 31, undefined],
    ["valid for an hour", 3600, undefined],
  ])("refuses an assertion %s locally, before a round trip to AADSTS700024", (_what, left, problem) => {
    const c = clock();
    const value = assertionFor(c, { exp: nowSeconds(c) + left });
    expect(problemOf(() => clientAssertionCredential(value, c.now()), value)).toBe(problem);
  });

  it("says when it expired and that whatever writes it has stopped refreshing it", () => {
    const c = clock();
    const value = assertionFor(c, { exp: nowSeconds(c) - 60 });
    const error = (() => {
      try {
        clientAssertionCredential(value, c.now());
      } catch (e) {
        return e as CredentialError;
      }
      throw new Error("expected AssertionExpired");
    })();
    expect(error.message).toContain("expired at 2026-11-24T10:59:00.000Z");
    expect(error.message).toContain("stopped refreshing it");
    expect(error).toMatchObject({
      problem: "AssertionExpired",
      reason: "AssertionExpired",
      kind: "Permanent",
    });
  });

  it("refuses an assertion whose exp is too far in the past for a date with AssertionExpired, not a RangeError", () => {
    const value = jwt({ iss: ISSUER, sub: SUBJECT, exp: -1e13 });
    expect(problemOf(() => clientAssertionCredential(value, clock().now()), value)).toBe("AssertionExpired");
  });

  it.each<[string, Record<string, unknown>]>([
    ["a number", { sub: 42 }],
    ["an array", { iss: ["a", "b"] }],
    ["an object", { sub: { id: "app" } }],
    ["an object with a toString member", { sub: { toString: {} } }],
    ["an object with toString and valueOf members", { iss: { toString: 1, valueOf: 1 } }],
  ])(
    "takes a JWT whose iss or sub is %s as an assertion or refuses it as MalformedAssertion, never with a TypeError",
    (_what, claims) => {
      const c = clock();
      const value = assertionFor(c, claims);
      expect([undefined, "MalformedAssertion"]).toContain(
        problemOf(() => clientAssertionCredential(value, c.now()), value),
      );
    },
  );

  it("checks again when it is presented: an assertion that expired since it was read is not sent", async () => {
    const c = clock();
    const credential = clientAssertionCredential(assertionFor(c, { exp: nowSeconds(c) + 120 }), c.now());
    // Called as the token client calls it (awaited inside an async function).
    const present = async () => credential.formFields(ctx(c));
    c.advance(89 * SECOND);
    await expect(present()).resolves.toHaveProperty("client_assertion");
    c.advance(1 * SECOND);
    await expect(present()).rejects.toMatchObject({ problem: "AssertionExpired" });
  });

  it("reports an expired assertion at presentation as a rejected promise, as ClientCredential.formFields promises", async () => {
    const c = clock();
    const credential = clientAssertionCredential(assertionFor(c, { exp: nowSeconds(c) + 60 }), c.now());
    c.advance(60 * SECOND);
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = credential.formFields(ctx(c));
    }).not.toThrow();
    await expect(result).rejects.toMatchObject({ problem: "AssertionExpired" });
  });

  it("never shows the assertion when serialised", () => {
    const c = clock();
    const value = assertionFor(c);
    expect(JSON.stringify(clientAssertionCredential(value, c.now()))).not.toContain(value);
  });
});
