import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { allowedHostSet, tokenEndpointFor } from "../../src/identity/authority.js";
import { certificateCredential } from "../../src/identity/credentials/certificate.js";
import type { AssertionContext, ClientCredential } from "../../src/identity/credentials/client-credential.js";
import { clientSecretCredential } from "../../src/identity/credentials/client-secret.js";
import { workloadIdentityCredential } from "../../src/identity/credentials/workload-identity.js";
import { PermanentError, ThrottledError, TransientError } from "../../src/identity/errors.js";
import type { Fixture } from "./token-service-fixture.js";
import {
  CERT_APP,
  FEDERATED_APP,
  RESOURCE,
  SECRET,
  SECRET_APP,
  START_TIMEOUT_MS,
  TENANT,
  failureOf,
  startFixture,
} from "./token-service-fixture.js";

let fx: Fixture;
const secret = clientSecretCredential(SECRET);

beforeAll(async () => {
  fx = await startFixture();
}, START_TIMEOUT_MS);
afterAll(async () => {
  await fx.close();
});
beforeEach(() => {
  fx.service.resetCounters();
  fx.service.clearFaults();
});

describe("throttling", () => {
  it("honours a 429 Retry-After in seconds", async () => {
    fx.service.addFault({ type: "throttle", status: 429, retryAfter: 37, times: 1 });
    const error = await failureOf(fx.request(secret));
    expect(error).toBeInstanceOf(ThrottledError);
    expect(error).toMatchObject({ reason: "Throttled", httpStatus: 429, retryAt: fx.clock.now() + 37_000 });
  });

  it("honours an HTTP-date Retry-After to the second", async () => {
    const at = Math.floor(fx.clock.now() / 1000) * 1000 + 95_000;
    fx.service.addFault({ type: "throttle", retryAfter: `http-date:${at}`, times: 1 });
    const error = await failureOf(fx.request(secret));
    expect(error).toBeInstanceOf(ThrottledError);
    expect((error as unknown as ThrottledError).retryAt).toBe(at);
  });

  it("treats 503 with Retry-After as throttling", async () => {
    fx.service.addFault({ type: "throttle", status: 503, retryAfter: 5, times: 1 });
    const error = await failureOf(fx.request(secret));
    expect(error).toBeInstanceOf(ThrottledError);
    expect(error).toMatchObject({ reason: "ServiceUnavailable", retryAt: fx.clock.now() + 5000 });
  });

  it("treats AADSTS50196 (client request loop) as throttling", async () => {
    fx.service.addFault({ type: "loopDetected", times: 1 });
    const error = await failureOf(fx.request(secret));
    expect(error).toBeInstanceOf(ThrottledError);
    expect(error).toMatchObject({ reason: "LoopDetected", aadsts: "50196", httpStatus: 400 });
  });

  it("applies a fault only to the tenant and client it names, and only as often as told", async () => {
    fx.service.addFault({
      type: "throttle",
      retryAfter: 1,
      match: { tenantId: TENANT, clientId: CERT_APP },
      times: 2,
    });
    await expect(fx.request(secret)).resolves.toBeDefined();
    const cert = certificateCredential({ certPem: fx.appCert.certPem, keyPem: fx.appCert.keyPem }, fx.clock);
    expect(await failureOf(fx.request(cert, { clientId: CERT_APP }))).toBeInstanceOf(ThrottledError);
    expect(await failureOf(fx.request(cert, { clientId: CERT_APP }))).toBeInstanceOf(ThrottledError);
    await expect(fx.request(cert, { clientId: CERT_APP })).resolves.toBeDefined();
    expect(fx.service.requests({ clientId: CERT_APP })).toBe(3);
    expect(fx.service.issued({ clientId: CERT_APP })).toBe(1);
  });
});

describe("transient failures", () => {
  it("treats a 500 as transient", async () => {
    fx.service.addFault({ type: "serverError", status: 500, times: 1 });
    const error = await failureOf(fx.request(secret));
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ reason: "TokenServiceUnavailable", aadsts: "90033", httpStatus: 500 });
  });

  it("treats a 503 without Retry-After as transient", async () => {
    fx.service.addFault({ type: "serverError", status: 503, times: 1 });
    expect(await failureOf(fx.request(secret))).toBeInstanceOf(TransientError);
  });

  it("gives up on a service that never answers, as a transient timeout", async () => {
    fx.service.addFault({ type: "hang", times: 1 });
    const impatient = fx.newClient({ headersTimeoutMs: 300 });
    const started = Date.now();
    const error = await failureOf(
      impatient.requestToken({
        endpoint: fx.endpoint(),
        clientId: SECRET_APP,
        scope: `${RESOURCE}/.default`,
        credential: secret,
      }),
    );
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ reason: "Timeout" });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it.each(["truncated", "missingFields", "html"] as const)(
    "treats a %s 200 body as transient",
    async (variant) => {
      fx.service.addFault({ type: "malformed", variant, times: 1 });
      const error = await failureOf(fx.request(secret));
      expect(error).toBeInstanceOf(TransientError);
      expect(error).toMatchObject({ reason: "MalformedResponse" });
    },
  );

  it("stops reading an oversized body at the limit", async () => {
    fx.service.addFault({ type: "oversized", bytes: 4 * 1024 * 1024, times: 1 });
    const error = await failureOf(fx.request(secret));
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ reason: "ResponseTooLarge" });
    // The pool recovers: the next request works.
    await expect(fx.request(secret)).resolves.toBeDefined();
  });

  it("treats a reset connection as transient", async () => {
    fx.service.addFault({ type: "reset", times: 1 });
    const error = await failureOf(fx.request(secret));
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ reason: "ConnectionReset" });
  });

  it("treats a refused connection as transient", async () => {
    const port = await freePort();
    const allowedHosts = allowedHostSet([`127.0.0.1:${port}`]);
    const endpoint = tokenEndpointFor(
      { authorityHost: `127.0.0.1:${port}`, tenantId: TENANT },
      { allowInsecureLoopback: false, allowedHosts },
    );
    const error = await failureOf(
      fx.newClient({ allowedAuthorityHosts: allowedHosts }).requestToken({
        endpoint,
        clientId: SECRET_APP,
        scope: `${RESOURCE}/.default`,
        credential: secret,
      }),
    );
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ reason: "ConnectionRefused" });
  });

  it("rethrows the caller's abort unchanged", async () => {
    fx.service.addFault({ type: "hang", times: 1 });
    const controller = new AbortController();
    const pending = fx.client.requestToken({
      endpoint: fx.endpoint(),
      clientId: SECRET_APP,
      scope: `${RESOURCE}/.default`,
      credential: secret,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error("shutting down")), 50);
    await expect(pending).rejects.toThrow("shutting down");
  });
});

describe("closing the token service", () => {
  it("ends requests it left hanging", async () => {
    const own = await startFixture();
    own.service.addFault({ type: "hang" });
    const pending = failureOf(own.request(secret));
    const deadline = Date.now() + 5000;
    while (own.service.requests() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await own.service.close();
    const error = await pending;
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ reason: "ConnectionReset" });
    await own.close();
  });
});

describe("permanent rejections", () => {
  it("reports a wrong client secret without repeating it", async () => {
    const error = await failureOf(fx.request(clientSecretCredential("wrong-secret-value")));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ reason: "InvalidClientSecret", aadsts: "7000215", httpStatus: 401 });
    expect(error.message).toMatch(/^AADSTS7000215: Invalid client secret provided\./);
    expect(error.message).not.toContain("wrong-secret-value");
    expect(error.message).not.toMatch(/Trace ID|Correlation ID/);
  });

  it("reports an unknown tenant", async () => {
    const error = await failureOf(
      fx.request(secret, { endpoint: fx.endpoint("9d2b1c11-0000-4000-8000-000000000000") }),
    );
    expect(error).toMatchObject({ reason: "UnknownTenant", aadsts: "90002" });
  });

  it("reports an unknown app", async () => {
    const error = await failureOf(fx.request(secret, { clientId: "7e57ab1e-0000-4000-8000-000000000000" }));
    expect(error).toMatchObject({ reason: "UnknownClient", aadsts: "700016" });
  });

  it("reports an unknown resource", async () => {
    const error = await failureOf(fx.request(secret, { scope: "https://vault.azure.net/.default" }));
    expect(error).toMatchObject({ reason: "UnknownResource", aadsts: "500011" });
  });

  it.each([
    ["without /.default", `${RESOURCE}/User.Read`, "1002012"],
    ["with two resources", `${RESOURCE}/.default https://vault.azure.net/.default`, "70011"],
  ])("reports a scope %s as invalid", async (_what, scope, aadsts) => {
    const error = await failureOf(fx.request(secret, { scope }));
    expect(error).toMatchObject({ reason: "InvalidScope", aadsts });
  });

  it("reports a certificate that is not registered on the app", async () => {
    const stranger = certificateCredential(
      { certPem: fx.strangerCert.certPem, keyPem: fx.strangerCert.keyPem },
      fx.clock,
    );
    const error = await failureOf(fx.request(stranger, { clientId: CERT_APP }));
    expect(error).toMatchObject({ reason: "CertificateNotRegistered", aadsts: "700027", httpStatus: 401 });
  });

  it("reports a replayed assertion (the service never accepts a jti twice)", async () => {
    const cert = certificateCredential({ certPem: fx.appCert.certPem, keyPem: fx.appCert.keyPem }, fx.clock);
    let first: Record<string, string> | undefined;
    const replaying: ClientCredential = {
      kind: "certificate",
      fingerprint: cert.fingerprint,
      formFields: async (ctx) => (first ??= await cert.formFields(ctx)),
    };
    await expect(fx.request(replaying, { clientId: CERT_APP })).resolves.toBeDefined();
    const error = await failureOf(fx.request(replaying, { clientId: CERT_APP }));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ reason: "TokenRequestRejected", aadsts: "999999" });
  });

  it("reports an assertion signed too long ago as outside its valid time range", async () => {
    const cert = certificateCredential({ certPem: fx.appCert.certPem, keyPem: fx.appCert.keyPem }, fx.clock);
    const stale: ClientCredential = {
      kind: "certificate",
      fingerprint: cert.fingerprint,
      formFields: (ctx) => cert.formFields({ ...ctx, now: ctx.now - 20 * 60_000 }),
    };
    const error = await failureOf(fx.request(stale, { clientId: CERT_APP }));
    expect(error).toMatchObject({ reason: "AssertionNotInValidTimeRange", aadsts: "700024" });
  });

  it("reports an assertion made for another token endpoint", async () => {
    const cert = certificateCredential({ certPem: fx.appCert.certPem, keyPem: fx.appCert.keyPem }, fx.clock);
    const misaddressed: ClientCredential = {
      kind: "certificate",
      fingerprint: cert.fingerprint,
      formFields: (ctx) =>
        cert.formFields({ ...ctx, tokenEndpoint: "https://login.microsoftonline.com/x/oauth2/v2.0/token" }),
    };
    const error = await failureOf(fx.request(misaddressed, { clientId: CERT_APP }));
    expect(error).toMatchObject({ reason: "AssertionAudienceMismatch", aadsts: "700023" });
  });
});

describe("the allowed authority hosts (--allowed-authority-hosts)", () => {
  /** A credential that records every time it is asked for form fields or an assertion. */
  interface Spy {
    credential: ClientCredential;
    formFields: AssertionContext[];
    assertions: number;
  }

  function spyOn(make: (count: () => void) => ClientCredential): Spy {
    const spy: Spy = { credential: undefined as unknown as ClientCredential, formFields: [], assertions: 0 };
    const inner = make(() => (spy.assertions += 1));
    spy.credential = {
      kind: inner.kind,
      fingerprint: inner.fingerprint,
      formFields: (ctx) => {
        spy.formFields.push(ctx);
        return inner.formFields(ctx);
      },
    };
    return spy;
  }

  const kinds: [string, string, () => Spy][] = [
    [
      "a certificate (no assertion is signed)",
      CERT_APP,
      () =>
        spyOn((count) => {
          const cert = certificateCredential(
            { certPem: fx.appCert.certPem, keyPem: fx.appCert.keyPem },
            fx.clock,
          );
          return { ...cert, formFields: (ctx) => (count(), cert.formFields(ctx)) };
        }),
    ],
    [
      "a workload identity (no service-account token is minted)",
      FEDERATED_APP,
      () =>
        spyOn((count) =>
          workloadIdentityCredential({
            fingerprint: "sa:payments/payments-app@api://AzureADTokenExchange",
            getAssertion: () => (count(), fx.mintServiceAccountToken()),
          }),
        ),
    ],
    ["a client secret", SECRET_APP, () => spyOn(() => clientSecretCredential(SECRET))],
  ];

  it.each(kinds)(
    "asks %s for nothing and sends the token service nothing when its host:port is not allowed",
    async (_kind, clientId, makeSpy) => {
      const spy = makeSpy();
      const connections = fx.service.connections();
      // The endpoint is well formed (the fixture's policy allows it); this client's list does not.
      const cloudsOnly = fx.newClient({
        allowedAuthorityHosts: allowedHostSet(["login.microsoftonline.com", "login.microsoftonline.us"]),
      });
      const error = await failureOf(
        cloudsOnly.requestToken({
          endpoint: fx.endpoint(),
          clientId,
          scope: `${RESOURCE}/.default`,
          credential: spy.credential,
        }),
      );
      expect(error).toBeInstanceOf(PermanentError);
      expect(error).toMatchObject({ reason: "AuthorityNotAllowed", kind: "Permanent" });
      expect(error.message).toContain(fx.service.authorityHost);
      expect(spy.formFields).toEqual([]);
      expect(spy.assertions).toBe(0);
      expect(fx.service.requests()).toBe(0);
      expect(fx.service.connections()).toBe(connections);
    },
  );

  it.each(kinds)(
    "gets a token with %s once the host:port is allowed (the spy is not what stops it)",
    async (_kind, clientId, makeSpy) => {
      const spy = makeSpy();
      await expect(fx.request(spy.credential, { clientId })).resolves.toMatchObject({ tokenType: "Bearer" });
      expect(spy.formFields).toHaveLength(1);
      expect(spy.assertions).toBe(clientId === SECRET_APP ? 0 : 1);
      expect(fx.service.requests()).toBe(1);
    },
  );

  it.each([
    ["the host alone (which means port 443)", (host: string) => host.split(":")[0]!],
    ["the host on the next port", (host: string) => `127.0.0.1:${Number(host.split(":")[1]) + 1}`],
    ["another loopback address on the same port", (host: string) => `127.0.0.2:${host.split(":")[1]}`],
    ["nothing at all", () => undefined],
  ])("refuses the local token service when the list holds %s", async (_what, entry) => {
    const spy = kinds[0]![2]();
    const listed = entry(fx.service.authorityHost);
    const client = fx.newClient({
      allowedAuthorityHosts: allowedHostSet(listed === undefined ? [] : [listed]),
    });
    const error = await failureOf(
      client.requestToken({
        endpoint: fx.endpoint(),
        clientId: CERT_APP,
        scope: `${RESOURCE}/.default`,
        credential: spy.credential,
      }),
    );
    expect(error).toMatchObject({ reason: "AuthorityNotAllowed" });
    expect(spy.formFields).toEqual([]);
    expect(fx.service.requests()).toBe(0);
  });

  it("checks every call itself, even for an endpoint built without any restriction", async () => {
    const spy = kinds[1]![2]();
    const unrestricted = tokenEndpointFor(
      { authorityHost: fx.service.authorityHost, tenantId: TENANT },
      { allowInsecureLoopback: false, allowedHosts: "any" },
    );
    const error = await failureOf(
      fx.newClient({ allowedAuthorityHosts: allowedHostSet(["login.microsoftonline.com"]) }).requestToken({
        endpoint: unrestricted,
        clientId: FEDERATED_APP,
        scope: `${RESOURCE}/.default`,
        credential: spy.credential,
      }),
    );
    expect(error).toMatchObject({ reason: "AuthorityNotAllowed" });
    expect(spy.assertions).toBe(0);
    expect(fx.service.requests()).toBe(0);
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
