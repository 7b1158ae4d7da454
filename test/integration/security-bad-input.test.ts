/**
 * Input a user (or an attacker with create rights on AppTokenRequests) can send, refused by the
 * real operator running as deploy/'s least-privilege ServiceAccount:
 *
 * - references can only name objects in the request's own namespace: an AppRegistration, or a
 *   registration's credential Secret or ServiceAccount, that exists only in another namespace is
 *   "not found", and the operator never even asks for it;
 * - a target Secret that someone else owns — another request's, the credential Secret of the
 *   request's own registration, a service-account-token Secret, a TLS Secret, an Opaque Secret
 *   spoofing the managed-by label — is refused with SecretConflict and left byte-for-byte untouched;
 * - and through all of it, an unrelated request stays Ready.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLIENT_SECRET, ChaosScenario, TENANT, SCOPE, until } from "../chaos/support/chaos.js";

describe("bad references and colliding targets", () => {
  const s = new ChaosScenario({ prefix: "sec-input" });
  let other: string;
  beforeAll(async () => {
    await s.start();
    other = `${s.ns}-other`;
    await s.core.createNamespace({
      body: { metadata: { name: other, labels: { "apptoken.io/test": "chaos" } } },
    });
    // The tempting targets, in the other namespace only.
    await s.core.createNamespacedSecret({
      namespace: other,
      body: { metadata: { name: "only-elsewhere" }, stringData: { "client-secret": CLIENT_SECRET } },
    });
    await s.core.createNamespacedServiceAccount({
      namespace: other,
      body: { metadata: { name: "sa-elsewhere" } },
    });
    await s.custom.createNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: other,
      plural: "appregistrations",
      body: {
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppRegistration",
        metadata: { name: "app-elsewhere" },
        spec: s.registrationSpec("clientSecret"),
      },
    });
    await s.startReplica("a", { logLevel: "trace" });
    await s.createRequest("control", s.spec("certificate"));
    await s.waitFor("control", "True", "TokenIssued", 60_000);
  }, 180_000);
  afterAll(async () => {
    await s.core.deleteNamespace({ name: other }).catch(() => undefined);
    await s.stop();
  });

  it("a name that exists only in another namespace is not found, and never read", async () => {
    await s.createRequest(
      "cross-secret",
      await s.specWithRegistration("cross-secret-app", {
        ...s.registrationSpec("clientSecret"),
        credential: { clientSecret: { secretRef: { name: "only-elsewhere", key: "client-secret" } } },
      }),
    );
    await s.createRequest(
      "cross-sa",
      await s.specWithRegistration("cross-sa-app", {
        ...s.registrationSpec("workloadIdentity"),
        credential: { workloadIdentity: { serviceAccountName: "sa-elsewhere" } },
      }),
    );
    await s.createRequest("cross-registration", {
      appRef: { kind: "AppRegistration", name: "app-elsewhere" },
      tenantId: TENANT,
      scope: SCOPE,
    });
    const secretRef = await s.waitFor("cross-secret", "False", "CredentialSecretNotFound", 60_000);
    expect(s.ready(secretRef.status)?.message).toContain(`${s.ns}/only-elsewhere`);
    const sa = await s.waitFor("cross-sa", "False", undefined, 60_000);
    expect(s.ready(sa.status)?.reason).toBe("ServiceAccountNotFound");
    const registration = await s.waitFor("cross-registration", "False", "AppRegistrationNotFound", 60_000);
    expect(s.ready(registration.status)?.message).toContain(`in namespace ${s.ns}`);
    // The registrations say the same of themselves.
    await s.waitForRegistration("cross-secret-app", "False", "CredentialSecretNotFound", 60_000);
    await s.waitForRegistration("cross-sa-app", "False", "ServiceAccountNotFound", 60_000);
    // The operator never sent a request naming the other namespace (nor could it: its Role is here).
    const proxy = s.replicas[0]!.proxy!;
    expect(proxy.requests.filter((r) => r.url.includes(`/namespaces/${other}/`))).toEqual([]);
    expect(proxy.requests.filter((r) => r.status === 403).map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it("the CRDs have no field to name another namespace: such a field is refused or dropped", async () => {
    // Neither a registration's credential Secret nor a request's appRef can name a namespace.
    const registration = {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppRegistration",
      metadata: { name: "ns-field-app" },
      spec: {
        ...s.registrationSpec("clientSecret"),
        credential: {
          clientSecret: { secretRef: { name: "only-elsewhere", namespace: other, key: "client-secret" } },
        },
      },
    };
    const request = {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { name: "ns-field" },
      spec: {
        ...s.spec("clientSecret"),
        appRef: { kind: "AppRegistration", name: "ns-field-app", namespace: other },
      },
    };
    for (const body of [registration, request]) {
      const strict = await s.kubectl(["create", "-n", s.ns, "--validate=strict", "-f", "-"], {
        input: JSON.stringify(body),
      });
      expect(strict.code, body.kind).not.toBe(0);
      expect(strict.stderr).toMatch(/unknown field.*namespace/);
      // Without strict validation the apiserver prunes the field: what is stored names no namespace.
      const lax = await s.kubectl(["create", "-n", s.ns, "--validate=false", "-f", "-"], {
        input: JSON.stringify(body),
      });
      expect(lax.code, lax.stderr).toBe(0);
    }
    const stored = await s.getRequest("ns-field");
    expect(JSON.stringify(stored.spec)).not.toContain(other);
    expect(JSON.stringify((await s.getRegistration("ns-field-app")).spec)).not.toContain(other);
    // The request uses its own namespace's registration, which reads its own namespace's Secret.
    await s.waitFor("ns-field", "False", "CredentialSecretNotFound", 60_000);
  });

  it("never overwrites a Secret it does not own, whatever its type; the Secret stays byte-for-byte", async () => {
    await s.core.createNamespacedServiceAccount({ namespace: s.ns, body: { metadata: { name: "builder" } } });
    const victims: { name: string; type: string; extra?: Record<string, unknown> }[] = [
      {
        name: "sa-token",
        type: "kubernetes.io/service-account-token",
        extra: {
          metadata: { name: "sa-token", annotations: { "kubernetes.io/service-account.name": "builder" } },
        },
      },
      {
        name: "tls-cert",
        type: "kubernetes.io/tls",
        extra: {
          data: {
            "tls.crt": Buffer.from(s.cert.certPem).toString("base64"),
            "tls.key": Buffer.from(s.cert.keyPem).toString("base64"),
          },
        },
      },
      {
        name: "spoofed",
        type: "Opaque",
        extra: {
          metadata: { name: "spoofed", labels: { "app.kubernetes.io/managed-by": "apptoken-operator" } },
          data: { access_token: Buffer.from("not-yours").toString("base64") },
        },
      },
    ];
    for (const v of victims) {
      await s.core.createNamespacedSecret({
        namespace: s.ns,
        body: { metadata: { name: v.name }, type: v.type, ...v.extra },
      });
    }
    const before = new Map(
      await Promise.all(
        [...victims.map((v) => v.name), "app-cred"].map(
          async (n) => [n, JSON.stringify(await s.secret(n))] as const,
        ),
      ),
    );
    for (const v of victims)
      await s.createRequest(`into-${v.name}`, { ...s.spec("clientSecret"), target: { name: v.name } });
    // Its registration's credential Secret as the target: the classic copy-paste mistake.
    await s.createRequest("into-credential", { ...s.spec("clientSecret"), target: { name: "app-cred" } });
    for (const n of [...victims.map((v) => `into-${v.name}`), "into-credential"]) {
      const o = await s.waitFor(n, "False", "SecretConflict", 60_000);
      expect(s.ready(o.status)?.message).toMatch(/not owned|managed by the operator for/);
    }
    for (const [n, json] of before) expect(JSON.stringify(await s.secret(n)), n).toBe(json);
    const proxy = s.replicas[0]!.proxy!;
    for (const n of before.keys())
      expect(proxy.writes(`/secrets/${n}`).filter((w) => w.method === "PUT")).toEqual([]);
  });

  it("two requests for one Secret: the first keeps it, the second is refused", async () => {
    await s.createRequest("first", { ...s.spec("clientSecret"), target: { name: "shared-target" } });
    await s.waitFor("first", "True", "TokenIssued", 60_000);
    const owner = (await s.secret("shared-target"))!;
    await s.createRequest("second", { ...s.spec("workloadIdentity"), target: { name: "shared-target" } });
    const refused = await s.waitFor("second", "False", "SecretConflict", 60_000);
    expect(s.ready(refused.status)?.message).toContain("first");
    const after = (await s.secret("shared-target"))!;
    expect(after.metadata?.resourceVersion).toBe(owner.metadata?.resourceVersion);
    expect(after.metadata?.ownerReferences?.[0]?.name).toBe("first");
  });

  it("the unrelated request stayed Ready through all of it, and nothing leaked", async () => {
    expect(s.requests.readyPath("control").filter((p) => p.startsWith("False"))).toEqual([]);
    await until(
      async () => ((await s.getRequest("control")).status ? true : undefined),
      "control status",
      5_000,
    );
    expect(s.replicas[0]!.op.child.exitCode).toBeNull();
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  });
});
