/**
 * No credential leaves the place it belongs. The real operator runs at --log-level trace as
 * deploy/'s least-privilege ServiceAccount and goes through every path that handles a secret:
 * each credential kind succeeding (a client assertion kept in a Secret too), a wrong client
 * secret, a wrong PFX password, a federated assertion the service refuses, an expired client
 * assertion, throttling, a server error, a forced refresh, a rotation. Then everything a person or
 * a log pipeline can see — the operator's whole output, every Event, every request's and every
 * registration's status, /metrics — is grepped for the client secrets, the PFX passwords, every
 * line of the private key, the client assertions, every part of every access token written to a
 * Secret, the operator's own API token, and anything shaped like a JWT (tokens, client assertions
 * and service-account tokens all are). The chaos suite (test/chaos) runs the same scan after every
 * fault scenario.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CERT_APP,
  CLIENT_SECRET,
  ChaosScenario,
  SA_ISSUER,
  SECRET_APP,
  WI_APP,
  WORKLOAD_SA,
  tenantId,
  until,
} from "../chaos/support/chaos.js";

const WRONG_SECRET = "Wr0ng~secret.Value-1e9d77c3a2b8f4";
const WRONG_PASSWORD = "wrong-pfx-pa55-0b7e2c";
const ROTATED_SECRET = "R0tated~secret.Value-5c1a0e3b9d42f7";

describe("nothing secret in logs (trace), Events, status or metrics", () => {
  const s = new ChaosScenario({ prefix: "sec-leaks", tenants: 2 });
  beforeAll(async () => {
    await s.start();
    s.markSensitive("wrong client secret", WRONG_SECRET);
    s.markSensitive("wrong PFX password", WRONG_PASSWORD);
    s.markSensitive("rotated client secret", ROTATED_SECRET);
    await s.startReplica("a", { logLevel: "trace" });
  }, 180_000);
  afterAll(async () => s.stop());

  it("runs every secret-handling path and finds none of the secrets anywhere", async () => {
    const ok = ["secret", "cert", "pfx", "wi", "assertion"];
    const kinds = ["clientSecret", "certificate", "pfx", "workloadIdentity"] as const;
    await Promise.all(kinds.map((kind, i) => s.createRequest(ok[i]!, s.spec(kind))));
    // A client assertion another system keeps fresh in a Secret: here, a service-account token the
    // workload-identity app trusts (its issuer and subject are federated).
    const assertion = await mintAssertion(s, 3600);
    s.markSensitive("client assertion", assertion);
    await s.putSecret("assertion-jwt", { jwt: assertion });
    await s.createRequest(
      "assertion",
      await s.specWithRegistration("assertion-app", {
        authorityHost: s.service.url,
        clientId: WI_APP,
        credential: { clientAssertion: { secretRef: { name: "assertion-jwt", key: "jwt" } } },
      }),
    );
    // And one whose writer stopped refreshing it: refused locally, never sent.
    const expired = unsignedJwt({
      iss: SA_ISSUER,
      sub: "system:serviceaccount:x:y",
      exp: nowSeconds() - 600,
    });
    s.markSensitive("expired client assertion", expired);
    await s.putSecret("expired-assertion-jwt", { jwt: expired });
    await s.createRequest(
      "expired-assertion",
      await s.specWithRegistration("expired-assertion-app", {
        authorityHost: s.service.url,
        clientId: WI_APP,
        credential: { clientAssertion: { secretRef: { name: "expired-assertion-jwt", key: "jwt" } } },
      }),
    );

    await s.putSecret("wrong-cred", { "client-secret": WRONG_SECRET });
    await s.putSecret("wrong-pfx", {
      "cert.pfx": Buffer.from(
        (await s.core.readNamespacedSecret({ name: "app-pfx", namespace: s.ns })).data!["cert.pfx"]!,
        "base64",
      ),
      password: WRONG_PASSWORD,
    });
    await s.core.createNamespacedServiceAccount({
      namespace: s.ns,
      body: { metadata: { name: "not-federated" } },
    });
    await s.createRequest(
      "wrong-secret",
      await s.specWithRegistration(
        "wrong-secret-app",
        {
          ...s.registrationSpec("clientSecret"),
          credential: { clientSecret: { secretRef: { name: "wrong-cred", key: "client-secret" } } },
        },
        1,
      ),
    );
    await s.createRequest(
      "wrong-password",
      await s.specWithRegistration(
        "wrong-password-app",
        {
          ...s.registrationSpec("pfx"),
          credential: {
            certificate: { secretRef: { name: "wrong-pfx", pfxKey: "cert.pfx", passwordKey: "password" } },
          },
        },
        1,
      ),
    );
    await s.createRequest(
      "wrong-federation",
      await s.specWithRegistration(
        "wrong-federation-app",
        {
          ...s.registrationSpec("workloadIdentity"),
          credential: { workloadIdentity: { serviceAccountName: "not-federated" } },
        },
        1,
      ),
    );
    await Promise.all(ok.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));
    await s.waitFor("wrong-secret", "False", "InvalidClientSecret", 60_000);
    await s.waitFor("wrong-password", "False", "WrongPfxPassword", 60_000);
    await s.waitFor("wrong-federation", "False", "FederatedIdentityMismatch", 60_000);
    await s.waitFor("expired-assertion", "False", "AssertionExpired", 60_000);
    // The registrations whose credential cannot even be loaded say so themselves.
    await s.waitForRegistration("wrong-password-app", "False", "WrongPfxPassword", 60_000);
    await s.waitForRegistration("expired-assertion-app", "False", "AssertionExpired", 60_000);

    // Throttling and a server error on refresh, then a rotation of the client secret.
    s.service.addFault({
      type: "throttle",
      status: 429,
      retryAfter: 1,
      match: { clientId: CERT_APP },
      times: 1,
    });
    s.service.addFault({ type: "serverError", status: 500, match: { clientId: WI_APP }, times: 1 });
    const before = new Map(ok.map((n) => [n, s.history.of(n).at(-1)!.accessToken]));
    // The assertion's writer refreshes it meanwhile (a new JWT for the same identity).
    const refreshed = await mintAssertion(s, 3600);
    s.markSensitive("refreshed client assertion", refreshed);
    await s.putSecret("assertion-jwt", { jwt: refreshed });
    for (const n of ok)
      await s.patchRequest(n, { metadata: { annotations: { "apptoken.io/force-refresh": "leak-scan" } } });
    // The old secret stays valid during the rotation, as in a real overlap window.
    s.service.updateApp({ clientId: SECRET_APP, tenantId: tenantId(0) }, (app) => {
      app.secrets = [CLIENT_SECRET, ROTATED_SECRET];
    });
    await s.putSecret("app-cred", { "client-secret": ROTATED_SECRET });
    await until(
      () => (ok.every((n) => s.history.of(n).at(-1)!.accessToken !== before.get(n)) ? true : undefined),
      "every forced refresh to land (after the throttle and the server error)",
      60_000,
    );
    await Promise.all(ok.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));

    const leaks = await s.scanForLeaks();
    expect(leaks.tokensWatched).toBeGreaterThanOrEqual(ok.length);
    expect(leaks.bytesScanned).toBeGreaterThan(10_000);
    expect(leaks.findings).toEqual([]);

    // Least privilege held: nothing forbidden, nothing outside the namespace but reads of the two
    // cluster-scoped kinds a registration lookup needs (ClusterAppRegistrations, namespaces' labels).
    const proxy = s.replicas[0]!.proxy!;
    expect(proxy.requests.filter((r) => r.status === 403).map((r) => `${r.method} ${r.url}`)).toEqual([]);
    const clusterScopedRead = (r: { method: string; url: string }) =>
      r.method === "GET" &&
      /^\/(apis\/apptoken\.io\/v1alpha1\/clusterappregistrations|api\/v1\/namespaces)(\?|$)/.test(r.url);
    expect(
      proxy.requests
        .filter((r) => !r.url.includes(`/namespaces/${s.ns}/`) && !clusterScopedRead(r))
        .map((r) => `${r.method} ${r.url}`),
    ).toEqual([]);
    expect(proxy.requests.filter(clusterScopedRead).length).toBeGreaterThan(0);
  }, 180_000);

  it("the scan is not vacuous: a planted leak in an Event is found", async () => {
    const token = [...s.history.tokens][0]!;
    await s.core.createNamespacedEvent({
      namespace: s.ns,
      body: {
        metadata: { name: "planted-leak" },
        involvedObject: { kind: "AppTokenRequest", namespace: s.ns, name: "secret" },
        reason: "Planted",
        message: `secret=${CLIENT_SECRET} token=${token} key=${s.cert.keyPem.split("\n")[3]}`,
        type: "Warning",
      },
    });
    const leaks = await s.scanForLeaks();
    await s.core.deleteNamespacedEvent({ name: "planted-leak", namespace: s.ns });
    expect(leaks.findings).toEqual(
      expect.arrayContaining([
        "client secret found in Events",
        "private key PEM found in Events",
        "part of an access token found in Events",
        expect.stringMatching(/^a JWT-shaped string .* found in Events$/),
      ]),
    );
  });
});

/**
 * A service-account token of the scenario's workload ServiceAccount for the token-exchange
 * audience, minted by the control plane: WI_APP trusts it as a federated client assertion.
 */
async function mintAssertion(s: ChaosScenario, seconds: number): Promise<string> {
  const r = await s.kubectl([
    "create",
    "token",
    WORKLOAD_SA,
    "-n",
    s.ns,
    "--audience",
    "api://AzureADTokenExchange",
    "--duration",
    `${seconds}s`,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.trim();
}

/** A JWT-shaped string with these claims and no valid signature (the operator reads only exp). */
function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "RS256", typ: "JWT" })}.${part(claims)}.${Buffer.from("not-a-signature-at-all").toString("base64url")}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
