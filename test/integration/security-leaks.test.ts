/**
 * No credential leaves the place it belongs. The real operator runs at --log-level trace as
 * deploy/'s least-privilege ServiceAccount and goes through every path that handles a secret:
 * each credential kind succeeding, a wrong client secret, a wrong PFX password, a federated
 * assertion the service refuses, throttling, a server error, a forced refresh, a rotation. Then
 * everything a person or a log pipeline can see — the operator's whole output, every Event, every
 * status, /metrics — is grepped for the client secrets, the PFX passwords, every line of the
 * private key, every part of every access token written to a Secret, the operator's own API
 * token, and anything shaped like a JWT (tokens, client assertions and service-account tokens all
 * are). The chaos suite (test/chaos) runs the same scan after every fault scenario.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CERT_APP,
  CLIENT_SECRET,
  ChaosScenario,
  SECRET_APP,
  WI_APP,
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
    const ok = ["secret", "cert", "pfx", "wi"];
    const kinds = ["clientSecret", "certificate", "pfx", "workloadIdentity"] as const;
    await Promise.all(ok.map((n, i) => s.createRequest(n, s.spec(kinds[i]))));

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
    await s.createRequest("wrong-secret", {
      ...s.spec("clientSecret", 1),
      credential: { clientSecret: { secretRef: { name: "wrong-cred", key: "client-secret" } } },
    });
    await s.createRequest("wrong-password", {
      ...s.spec("pfx", 1),
      credential: {
        certificate: { secretRef: { name: "wrong-pfx", pfxKey: "cert.pfx", passwordKey: "password" } },
      },
    });
    await s.createRequest("wrong-federation", {
      ...s.spec("workloadIdentity", 1),
      credential: { workloadIdentity: { serviceAccountName: "not-federated" } },
    });
    await Promise.all(ok.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));
    await s.waitFor("wrong-secret", "False", "InvalidClientSecret", 60_000);
    await s.waitFor("wrong-password", "False", "WrongPfxPassword", 60_000);
    await s.waitFor("wrong-federation", "False", "FederatedIdentityMismatch", 60_000);

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

    // Least privilege held: nothing forbidden, nothing outside the namespace.
    const proxy = s.replicas[0]!.proxy!;
    expect(proxy.requests.filter((r) => r.status === 403).map((r) => `${r.method} ${r.url}`)).toEqual([]);
    expect(proxy.requests.filter((r) => !r.url.includes(`/namespaces/${s.ns}/`)).map((r) => r.url)).toEqual(
      [],
    );
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
