import { X509Certificate } from "node:crypto";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, kubectl } from "../support/kube.js";
import {
  CERT_APP,
  RESOURCE,
  SECRET_APP,
  Scenario,
  TENANT,
  WI_APP,
  registrationName,
} from "../support/scenario.js";

const STORAGE = "https://storage.azure.com";

describe("the controller, on the real control plane with the local token service", () => {
  const s = new Scenario({ prefix: "ctl-basics" });
  beforeAll(async () => {
    await s.start();
  }, 120_000);
  afterAll(async () => s.stop());

  /** The token service knows `resource` (the scenario starts with Graph only). */
  function serveResource(resource: string): void {
    if (s.service.config.resources.includes(resource)) return;
    s.service.setConfig({ ...s.service.config, resources: [...s.service.config.resources, resource] });
  }

  it.each([
    ["clientSecret", SECRET_APP, "ClientSecret"],
    ["certificate", CERT_APP, "Certificate"],
    ["pfx", CERT_APP, "Certificate"],
    ["workloadIdentity", WI_APP, "WorkloadIdentity"],
  ] as const)(
    "turns a %s request into a Secret holding a valid token, and reports Ready",
    async (kind, app, credentialKind) => {
      const name = `req-${kind.toLowerCase()}`;
      await s.createRequest(name, s.spec(kind));
      const req = await s.waitFor(name, "True", "TokenIssued");
      const secret = await s.secret(name);
      expect(secret?.type).toBe("Opaque");
      expect(secret?.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("apptoken-operator");
      expect(secret?.metadata?.ownerReferences?.[0]).toMatchObject({
        kind: "AppTokenRequest",
        name,
        controller: true,
      });
      expect(secret?.metadata?.annotations?.["apptoken.io/cache-key-hash"]).toMatch(/^[0-9a-f]{64}$/);
      const token = s.decoded(secret, "access_token")!;
      const claims = await s.service.verifyAccessToken(token, TENANT);
      expect(claims.aud).toBe(RESOURCE);
      expect(claims.appid).toBe(app);
      expect(s.decoded(secret, "token_type")).toBe("Bearer");
      expect(s.decoded(secret, "expires_at")).toBe(req.status?.expiresAt);
      // Measured from when the request was sent, so never later than the token's own exp.
      const exp = (decodeJwt(token).exp ?? 0) * 1000;
      expect(Date.parse(req.status!.expiresAt!)).toBeLessThanOrEqual(exp);
      expect(Date.parse(req.status!.expiresAt!)).toBeGreaterThan(exp - 5_000);
      expect(req.status).toMatchObject({ secretName: name, observedGeneration: 1 });
      // No token, secret or key ever appears in the Secret's annotations or in status.
      expect(JSON.stringify(req.status)).not.toContain(token);
      expect(JSON.stringify(secret?.metadata)).not.toContain(token);
      // The registration it names says its credential is loaded, and what it is.
      const reg = await s.waitForRegistration(registrationName(kind), "True", "CredentialLoaded");
      expect(reg.status?.credential?.kind).toBe(credentialKind);
      if (credentialKind === "Certificate") {
        // The public facts of the certificate, as the Entra portal shows them; never a secret byte.
        const cert = new X509Certificate(s.cert.certPem);
        expect(reg.status?.credential?.expiresAt).toBe(new Date(cert.validTo).toISOString());
        expect(reg.status?.credential?.thumbprintSHA256).toMatch(/^[0-9A-F]{64}$/);
        expect(reg.status?.credential?.thumbprintSHA256).toBe(cert.fingerprint256.replaceAll(":", ""));
      } else {
        expect(reg.status?.credential?.thumbprintSHA256).toBeUndefined();
      }
      expect(JSON.stringify(reg.status)).not.toContain(token);
    },
  );

  it("shows app, tenant, scope, readiness, expiry, source and hits in kubectl's printer columns", async () => {
    await s.waitFor("req-clientsecret", "True");
    const out = await kubectl(["get", "atr", "-n", s.ns]);
    const [header, ...rows] = out.stdout.trim().split("\n");
    expect(header!.split(/\s+/)).toEqual([
      "NAME",
      "APP",
      "TENANT",
      "SCOPE",
      "READY",
      "EXPIRES",
      "SOURCE",
      "HITS",
      "THROTTLE",
      "AGE",
    ]);
    const row = rows.find((r) => r.startsWith("req-clientsecret "))!.split(/\s+/);
    expect(row[1]).toBe(registrationName("clientSecret"));
    expect(row[2]).toBe(TENANT);
    expect(row[3]).toBe(`${RESOURCE}/.default`);
    expect(row[4]).toBe("True");
    expect(Date.parse(row[5]!)).toBeGreaterThan(Date.now());
    expect(row[6]).toBe("IdentityProvider");
  });

  it("renders template keys and never lets them shadow the token keys", async () => {
    await s.createRequest("templated", {
      ...s.spec("clientSecret"),
      target: {
        name: "templated-token",
        template: {
          metadata: { labels: { team: "payments" }, annotations: { note: "hello" } },
          data: { authorization: "Bearer {{ .accessToken }}", expiry: "{{ .expiresAt }}" },
        },
      },
    });
    await s.waitFor("templated", "True");
    const secret = await s.secret("templated-token");
    const token = s.decoded(secret, "access_token")!;
    expect(s.decoded(secret, "authorization")).toBe(`Bearer ${token}`);
    expect(s.decoded(secret, "expiry")).toBe(s.decoded(secret, "expires_at"));
    expect(secret?.metadata?.labels?.team).toBe("payments");
    expect(secret?.metadata?.annotations?.note).toBe("hello");
  });

  it("shares one call among ten requests with the same key: nine are served from the cache", async () => {
    const spec = { ...s.spec("clientSecret"), scope: `${STORAGE}/.default` };
    s.service.addApp({ tenantId: TENANT, clientId: "44444444-aaaa-4bbb-8ccc-000000000004", secrets: ["x"] });
    serveResource(STORAGE);
    const before = s.service.issued({ clientId: SECRET_APP });
    const names = Array.from({ length: 10 }, (_, i) => `shared-${i}`);
    await Promise.all(names.map((n) => s.createRequest(n, spec)));
    const objs = await Promise.all(names.map((n) => s.waitFor(n, "True")));
    expect(s.service.issued({ clientId: SECRET_APP }) - before).toBe(1);
    const sources = objs.map((o) => o.status?.tokenSource);
    expect(sources.filter((x) => x === "IdentityProvider")).toHaveLength(1);
    expect(sources.filter((x) => x === "Cache")).toHaveLength(9);
    const cached = objs.filter((o) => o.status?.tokenSource === "Cache");
    for (const o of cached) expect(o.status?.cache?.hits).toBeGreaterThanOrEqual(1);
    const tokens = new Set(
      await Promise.all(names.map(async (n) => s.decoded(await s.secret(n), "access_token"))),
    );
    expect(tokens.size).toBe(1);
  });

  it("garbage-collects the Secret when its request is deleted", async () => {
    await s.createRequest("short-lived", s.spec("clientSecret"));
    await s.waitFor("short-lived", "True");
    expect(await s.secret("short-lived")).toBeDefined();
    await s.deleteRequest("short-lived");
    await eventually(
      async () => ((await s.secret("short-lived")) ? undefined : true),
      "the Secret to be collected",
    );
  });

  it("recreates a deleted target Secret from the cache, without calling the token service", async () => {
    await s.createRequest("recreate-me", s.spec("certificate"));
    await s.waitFor("recreate-me", "True");
    const before = await s.secret("recreate-me");
    const calls = s.service.requests();
    await s.core.deleteNamespacedSecret({ name: "recreate-me", namespace: s.ns });
    const after = await eventually(async () => {
      const sec = await s.secret("recreate-me");
      return sec && sec.metadata?.uid !== before?.metadata?.uid ? sec : undefined;
    }, "the Secret to be recreated");
    expect(s.decoded(after, "access_token")).toBe(s.decoded(before, "access_token"));
    expect(s.service.requests()).toBe(calls);
  });

  it("never touches a Secret it does not own: SecretConflict, and the Secret is byte-for-byte unchanged", async () => {
    await s.core.createNamespacedSecret({
      namespace: s.ns,
      body: {
        metadata: { name: "foreign", annotations: { owner: "someone" } },
        type: "Opaque",
        data: { k: "dmFsdWU=" },
      },
    });
    const before = await s.secret("foreign");
    await s.createRequest("wants-foreign", { ...s.spec("clientSecret"), target: { name: "foreign" } });
    const req = await s.waitFor("wants-foreign", "False", "SecretConflict");
    expect(s.ready(req.status)?.message).toContain("foreign");
    const after = await s.secret("foreign");
    expect(after?.metadata?.resourceVersion).toBe(before?.metadata?.resourceVersion);
    expect(after?.data).toEqual(before?.data);
  });

  it("lets only the first of two requests that target one Secret write it", async () => {
    await s.createRequest("first-claim", { ...s.spec("clientSecret"), target: { name: "contested" } });
    await s.waitFor("first-claim", "True");
    await s.createRequest("second-claim", { ...s.spec("certificate"), target: { name: "contested" } });
    const second = await s.waitFor("second-claim", "False", "SecretConflict");
    expect(s.ready(second.status)?.message).toContain("first-claim");
    const secret = await s.secret("contested");
    expect(secret?.metadata?.ownerReferences?.[0]?.name).toBe("first-claim");
  });

  it("reports a bad client secret with its AADSTS code, and recovers within seconds once it is fixed", async () => {
    await s.putSecret("wrong-cred", { "client-secret": "not-the-secret" });
    await s.createRequest(
      "bad-secret",
      await s.specWithRegistration("wrong-secret-app", {
        ...s.registrationSpec("clientSecret"),
        credential: { clientSecret: { secretRef: { name: "wrong-cred", key: "client-secret" } } },
      }),
    );
    const failed = await s.waitFor("bad-secret", "False", "InvalidClientSecret");
    expect(s.ready(failed.status)?.message).toContain("AADSTS7000215");
    expect(s.ready(failed.status)?.message).not.toContain("not-the-secret");
    const fixedAt = Date.now();
    await s.putSecret("wrong-cred", { "client-secret": "Q8r~s3cret.value-for-tests-only" });
    await s.waitFor("bad-secret", "True", "TokenIssued", 15_000);
    expect(Date.now() - fixedAt).toBeLessThan(15_000);
  });

  it("names the missing credential Secret and key, on the request and on its registration", async () => {
    await s.createRequest(
      "no-cred",
      await s.specWithRegistration("no-cred-app", {
        ...s.registrationSpec("clientSecret"),
        credential: { clientSecret: { secretRef: { name: "does-not-exist", key: "client-secret" } } },
      }),
    );
    const r = await s.waitFor("no-cred", "False", "CredentialSecretNotFound");
    expect(s.ready(r.status)?.message).toContain("does-not-exist");
    expect(s.ready(r.status)?.message).toMatch(/^AppRegistration no-cred-app: /);
    const noCred = await s.waitForRegistration("no-cred-app", "False", "CredentialSecretNotFound");
    expect(s.ready(noCred.status)?.message).toContain("does-not-exist");
    await s.createRequest(
      "no-key",
      await s.specWithRegistration("no-key-app", {
        ...s.registrationSpec("clientSecret"),
        credential: { clientSecret: { secretRef: { name: "app-cred", key: "nope" } } },
      }),
    );
    const k = await s.waitFor("no-key", "False", "MissingCredentialKey");
    expect(s.ready(k.status)?.message).toContain("nope");
    expect(s.ready(k.status)?.message).toMatch(/^AppRegistration no-key-app: /);
    const noKey = await s.waitForRegistration("no-key-app", "False", "MissingCredentialKey");
    expect(s.ready(noKey.status)?.message).toContain("nope");
  });

  it("uses a rotated client secret for the next token of every request on the registration: one call per tenant and scope", async () => {
    const rotatedApp = "55555555-aaaa-4bbb-8ccc-000000000005";
    s.service.addApp({ tenantId: TENANT, clientId: rotatedApp, secrets: ["old-secret-value"] });
    serveResource(STORAGE);
    await s.putSecret("rotating-cred", { "client-secret": "old-secret-value" });
    const spec = await s.specWithRegistration("rotating-app", {
      ...s.registrationSpec("clientSecret"),
      clientId: rotatedApp,
      credential: { clientSecret: { secretRef: { name: "rotating-cred", key: "client-secret" } } },
    });
    // Three requests on the registration: two share a tenant and scope, one asks for another scope.
    await s.createRequest("rotating", spec);
    await s.createRequest("rotating-twin", spec);
    await s.createRequest("rotating-storage", { ...spec, scope: `${STORAGE}/.default` });
    const first = await s.waitFor("rotating", "True");
    const others = ["rotating-twin", "rotating-storage"];
    const firstOthers = await Promise.all(others.map((n) => s.waitFor(n, "True")));
    const oldToken = s.decoded(await s.secret("rotating"), "access_token");
    const oldOthers = await Promise.all(
      others.map(async (n) => s.decoded(await s.secret(n), "access_token")),
    );
    const callsBefore = s.service.issued({ clientId: rotatedApp });
    // Entra holds both secrets during a rotation; then the old one is removed.
    s.service.updateApp({ clientId: rotatedApp }, (app) => {
      app.secrets = ["new-secret-value"];
    });
    const rotatedAt = Date.now();
    await s.putSecret("rotating-cred", { "client-secret": "new-secret-value" });
    const second = await eventually(
      async () => {
        const o = await s.getRequest("rotating");
        return o.status?.lastRefreshTime !== first.status?.lastRefreshTime &&
          s.ready(o.status)?.status === "True"
          ? o
          : undefined;
      },
      "a token obtained with the new secret",
      15_000,
    );
    expect(second.status?.tokenSource).toBe("IdentityProvider");
    expect(s.decoded(await s.secret("rotating"), "access_token")).not.toBe(oldToken);
    // The rotation reached every request on the registration within seconds...
    for (const [i, n] of others.entries()) {
      await eventually(
        async () => {
          const o = await s.getRequest(n);
          const token = s.decoded(await s.secret(n), "access_token");
          return o.status?.lastRefreshTime !== firstOthers[i]!.status?.lastRefreshTime &&
            s.ready(o.status)?.status === "True" &&
            token !== oldOthers[i]
            ? true
            : undefined;
        },
        `${n} to hold a token obtained with the new secret`,
        15_000,
      );
    }
    expect(Date.now() - rotatedAt).toBeLessThan(15_000);
    // ... with one call per (tenant, scope): the twins share theirs.
    expect(s.service.issued({ clientId: rotatedApp }) - callsBefore).toBe(2);
    expect(s.decoded(await s.secret("rotating-twin"), "access_token")).toBe(
      s.decoded(await s.secret("rotating"), "access_token"),
    );
  });

  it("forces a new token when the force-refresh annotation changes", async () => {
    await s.createRequest("forced", s.spec("certificate"), {});
    const first = await s.waitFor("forced", "True");
    const token1 = s.decoded(await s.secret("forced"), "access_token");
    await s.patchRequest("forced", { metadata: { annotations: { "apptoken.io/force-refresh": "1" } } });
    await eventually(async () => {
      const sec = await s.secret("forced");
      return s.decoded(sec, "access_token") !== token1 &&
        sec?.metadata?.annotations?.["apptoken.io/force-refresh"] === "1"
        ? true
        : undefined;
    }, "a forced new token");
    // The status is written after the Secret: a read between the two writes sees the old status.
    const after = await eventually(async () => {
      const r = await s.getRequest("forced");
      return r.status?.lastRefreshTime !== first.status?.lastRefreshTime ? r : undefined;
    }, "the status to show the forced token");
    expect(after.status?.lastRefreshTime).not.toBe(first.status?.lastRefreshTime);
    expect(s.ready(after.status)?.status).toBe("True");
  });

  it("records Events a person sees in kubectl describe", async () => {
    await eventually(async () => {
      const d = await kubectl(["describe", "atr", "req-clientsecret", "-n", s.ns]);
      return /Normal\s+Issued/.test(d.stdout) ? true : undefined;
    }, "an Issued event");
    await eventually(async () => {
      const d = await kubectl(["describe", "atr", "no-cred", "-n", s.ns]);
      return /Warning\s+CredentialSecretNotFound/.test(d.stdout) ? true : undefined;
    }, "a CredentialSecretNotFound event");
  });

  it("exports Prometheus metrics for token requests, the cache, reconciles (controller-runtime's names), the queues (client-go's) and expiry", async () => {
    const text = await s.operator!.metrics();
    for (const name of [
      "apptoken_token_requests_total",
      "apptoken_token_request_duration_seconds_bucket",
      "apptoken_cache_hits_total",
      "apptoken_cache_misses_total",
      "apptoken_throttled_keys",
      'controller_runtime_reconcile_total{controller="apptokenrequest",result="requeue_after"}',
      'controller_runtime_reconcile_time_seconds_bucket{le="0.005",controller="apptokenrequest"}',
      'controller_runtime_max_concurrent_reconciles{controller="apptokenrequest"}',
      'workqueue_depth{name="apptokenrequest",controller="apptokenrequest"}',
      'workqueue_adds_total{name="appregistration",controller="appregistration"}',
      "workqueue_queue_duration_seconds_bucket",
      'apptoken_requests{condition="Ready",status="True",reason="TokenIssued"}',
      "apptoken_soonest_expiry_seconds",
    ]) {
      expect(text).toContain(name);
    }
    expect(await s.operator!.metric("apptoken_token_requests_total", { result: "success" })).toBeGreaterThan(
      0,
    );
    expect(
      await s.operator!.metric("apptoken_token_requests_total", { result: "permanent", aadsts: "7000215" }),
    ).toBeGreaterThan(0);
    expect(await s.operator!.metric("apptoken_soonest_expiry_seconds")).toBeGreaterThan(0);
    // Labels never name a tenant, a client or a request: 10^5 requests must not mean 10^5 series.
    // A namespace shows only in the one series per registration that tells its credential's expiry.
    expect(text).not.toContain(SECRET_APP);
    const withNamespace = text.split("\n").filter((l) => l.includes(s.ns));
    expect(
      withNamespace.filter((l) => !l.startsWith("apptoken_credential_expiration_timestamp_seconds{")),
    ).toEqual([]);
  });

  it("puts its token back when someone rewrites the Secret's data", async () => {
    await s.createRequest("tampered", s.spec("clientSecret"));
    await s.waitFor("tampered", "True");
    const good = await s.secret("tampered");
    await s.core.replaceNamespacedSecret({
      name: "tampered",
      namespace: s.ns,
      body: {
        ...good!,
        data: { ...good!.data, access_token: Buffer.from("not-a-token").toString("base64") },
      },
    });
    await eventually(async () => {
      const sec = await s.secret("tampered");
      return s.decoded(sec, "access_token") === s.decoded(good, "access_token") ? true : undefined;
    }, "the token to be restored");
  });

  it("hands a request deleted and recreated under the same name its token again, without a call", async () => {
    await s.createRequest("reborn", s.spec("certificate"));
    await s.waitFor("reborn", "True");
    const token = s.decoded(await s.secret("reborn"), "access_token");
    const calls = s.service.requests();
    await s.deleteRequest("reborn");
    await s.createRequest("reborn", s.spec("certificate"));
    const again = await s.waitFor("reborn", "True");
    expect(again.status?.tokenSource).toBe("Cache");
    const secret = await s.secret("reborn");
    expect(secret?.metadata?.ownerReferences?.[0]?.uid).toBe(again.metadata.uid);
    expect(s.decoded(secret, "access_token")).toBe(token);
    expect(s.service.requests()).toBe(calls);
  });

  it("keeps Ready=True and the old token through a credential rotation while the service throttles", async () => {
    const app = "66666666-aaaa-4bbb-8ccc-000000000006";
    s.service.addApp({ tenantId: TENANT, clientId: app, secrets: ["first", "second"] });
    await s.putSecret("rot-cred", { "client-secret": "first" });
    const spec = await s.specWithRegistration("rot-throttled-app", {
      ...s.registrationSpec("clientSecret"),
      clientId: app,
      credential: { clientSecret: { secretRef: { name: "rot-cred", key: "client-secret" } } },
    });
    await s.createRequest("rot-throttled", spec);
    await s.waitFor("rot-throttled", "True");
    const oldToken = s.decoded(await s.secret("rot-throttled"), "access_token");
    s.service.addFault({ type: "throttle", status: 429, retryAfter: 4, match: { clientId: app }, times: 1 });
    await s.putSecret("rot-cred", { "client-secret": "second" });
    const during = await s.waitFor("rot-throttled", "True", "RefreshThrottled");
    expect(during.status?.throttle?.state).toBe("Throttled");
    expect(s.decoded(await s.secret("rot-throttled"), "access_token")).toBe(oldToken);
    await eventually(
      async () =>
        s.decoded(await s.secret("rot-throttled"), "access_token") !== oldToken ? true : undefined,
      "a token obtained with the rotated secret",
      20_000,
    );
    await s.waitFor("rot-throttled", "True", "TokenIssued");
  });
});
