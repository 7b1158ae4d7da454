/**
 * fetchToken: what a failed call looks like to the cache and the status. The identity module's
 * errors pass as they are (their messages are written for a status); anything else is named by its
 * class only, whatever its message says. ReadBackTrust: which namespaces may be served a token read
 * back from a Secret after a restart.
 */
import { describe, expect, it } from "vitest";
import { TokenCache, unlimited } from "../../../src/cache/index.js";
import { ReadBackTrust, fetchToken, type TokenCall } from "../../../src/controller/token-step.js";
import { PermanentError, TransientError } from "../../../src/identity/errors.js";
import { Metrics } from "../../../src/observability/metrics.js";

const CALL: TokenCall = {
  endpoint: new URL("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"),
  clientId: "0a1b2c3d-0000-4000-8000-00000000abcd",
  scope: "https://graph.microsoft.com/.default",
  credential: { kind: "clientSecret", secret: "s3cr3t-value", fingerprint: "sha256:x" },
  signal: new AbortController().signal,
} as unknown as TokenCall;

async function failure(thrown: unknown, metrics = new Metrics({ defaultMetrics: false })) {
  const error = await fetchToken({ requestToken: () => Promise.reject(thrown) }, metrics, CALL).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, metrics };
}

describe("fetchToken", () => {
  it("passes the identity module's errors on as they are", async () => {
    const permanent = new PermanentError("AADSTS7000215: Invalid client secret provided.", {
      reason: "InvalidClientSecret",
      aadsts: "7000215",
    });
    const { error, metrics } = await failure(permanent);
    expect(error).toBe(permanent);
    expect(await metrics.registry.getSingleMetricAsString("apptoken_token_requests_total")).toContain(
      'result="permanent",aadsts="7000215"} 1',
    );
  });

  it("names any other error by its class only: its message never reaches a status", async () => {
    const leaky = new RangeError("could not sign with client_secret=s3cr3t-value");
    const { error, metrics } = await failure(leaky);
    expect(error).toBeInstanceOf(TransientError);
    const e = error as TransientError;
    expect(e.reason).toBe("UnexpectedError");
    expect(e.message).toBe("unexpected failure while requesting a token (RangeError)");
    expect(e.message).not.toContain("s3cr3t");
    expect(e.cause).toBe(leaky);
    expect(await metrics.registry.getSingleMetricAsString("apptoken_token_requests_total")).toContain(
      'result="transient",aadsts=""} 1',
    );
  });

  it("names a thrown non-Error by its type", async () => {
    const { error } = await failure("client_secret=s3cr3t-value");
    expect((error as TransientError).message).toBe("unexpected failure while requesting a token (string)");
  });
});

describe("ReadBackTrust", () => {
  const KEY = "login.microsoftonline.com/|contoso|app|scope|sha256:x";
  const HOUR = 3_600_000;
  const persisted = (accessToken: string) => ({
    accessToken,
    tokenType: "Bearer",
    issuedAt: 0,
    expiresAt: 2 * HOUR,
    refreshAt: HOUR,
  });

  function setup() {
    const clock = { now: () => 1_000 };
    const cache = new TokenCache({ clock, limiter: unlimited });
    let inspections = 0;
    const inspect: TokenCache["inspect"] = (keyId) => {
      inspections++;
      return cache.inspect(keyId);
    };
    const trust = new ReadBackTrust({ inspect, seed: (e) => cache.seed(e) }, clock);
    return { trust, cache, inspections: () => inspections };
  }

  it("seeds the cache from the first namespace's Secret, and trusts that namespace", () => {
    const { trust, cache } = setup();
    expect(trust.distrusted(KEY, "payments", persisted("t1"))).toBe(false);
    expect(cache.inspect(KEY)?.token?.accessToken).toBe("t1");
    expect(trust.distrusted(KEY, "payments", undefined)).toBe(false);
  });

  it.each([
    ["holds no Secret of its own yet", undefined, true],
    ["holds another token (planted, or older)", persisted("planted"), true],
    ["holds the very same token", persisted("t1"), false],
  ])("distrusts the seeded token for another namespace that %s", (_, seed, distrusted) => {
    const { trust } = setup();
    trust.distrusted(KEY, "payments", persisted("t1"));
    expect(trust.distrusted(KEY, "billing", seed)).toBe(distrusted);
  });

  it("trusts every namespace once the key fetched a token of its own", () => {
    const { trust } = setup();
    trust.distrusted(KEY, "payments", persisted("t1"));
    trust.fetched(KEY);
    expect(trust.distrusted(KEY, "billing", undefined)).toBe(false);
    expect(trust.distrusted(KEY, "billing", persisted("planted"))).toBe(false);
  });

  it("does not look at the cache when no token was read back (every steady-state reconcile)", () => {
    const { trust, inspections } = setup();
    for (let i = 0; i < 3; i++) expect(trust.distrusted(KEY, "payments", undefined)).toBe(false);
    expect(inspections()).toBe(0);
  });
});
