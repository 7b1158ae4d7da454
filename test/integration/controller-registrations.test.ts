/**
 * Registrations, end to end: every credential kind (a client secret, a PEM certificate, a PFX, a
 * workload identity, and a client assertion another system keeps fresh in a Secret) gets tokens
 * through an AppRegistration and through a ClusterAppRegistration; requests in two namespaces that
 * share a ClusterAppRegistration, a tenant and a scope share one call; a registration counts the
 * requests that use it; and an expired client assertion is refused before anything is sent.
 *
 * The operator watches two namespaces; the scenario's namespace is also its cluster resource
 * namespace, where ClusterAppRegistrations keep their credential Secrets and ServiceAccounts.
 */
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestNamespace, deleteTestNamespace, eventually } from "../support/kube.js";
import {
  CERT_APP,
  SA_ISSUER,
  SECRET_APP,
  SERVICE_ACCOUNT,
  Scenario,
  TENANT,
  WI_APP,
  type CredentialKindName,
} from "../support/scenario.js";

type Kind = CredentialKindName | "clientAssertion";

/** Each kind, the app it proves, and the kind its registration's status reports. */
const KINDS = [
  ["clientSecret", SECRET_APP, "ClientSecret"],
  ["certificate", CERT_APP, "Certificate"],
  ["pfx", CERT_APP, "Certificate"],
  ["workloadIdentity", WI_APP, "WorkloadIdentity"],
  ["clientAssertion", WI_APP, "ClientAssertion"],
] as const;

const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

describe("registrations, on the real control plane with the local token service", () => {
  const s = new Scenario({ prefix: "ctl-reg", operator: false });
  let otherNs: string;
  let assertion: string;
  const clusterRegistrations: string[] = [];

  /** The registration spec of a kind; the client assertion is the one in Secret app-assertion. */
  const registrationSpec = (kind: Kind): Record<string, unknown> =>
    kind === "clientAssertion"
      ? s.clientAssertionRegistrationSpec("app-assertion")
      : s.registrationSpec(kind);

  /** The scenario's AppRegistration of a kind (app-clientassertion is this file's). */
  const appRegistration = (kind: Kind): string => `app-${kind.toLowerCase()}`;

  async function createClusterRegistration(name: string, spec: Record<string, unknown>): Promise<void> {
    clusterRegistrations.push(name);
    await s.createClusterRegistration(name, spec);
  }

  beforeAll(async () => {
    await s.start();
    otherNs = await createTestNamespace(s.kc, "ctl-reg-other");
    // A service-account token for the token-exchange audience: WI_APP trusts its issuer and subject.
    assertion = await s.mintServiceAccountToken();
    await s.putSecret("app-assertion", { assertion });
    await s.createRegistration(appRegistration("clientAssertion"), registrationSpec("clientAssertion"));
    await s.startOperator({ namespaces: [s.ns, otherNs] });
  }, 180_000);

  afterAll(async () => {
    for (const name of clusterRegistrations) await s.deleteClusterRegistration(name);
    await deleteTestNamespace(s.kc, otherNs);
    await s.stop();
  });

  it.each(KINDS)(
    "gets a token with a %s credential through an AppRegistration, which reports the credential loaded",
    async (kind, app, credentialKind) => {
      const name = `via-app-${kind.toLowerCase()}`;
      await s.createRequest(name, {
        appRef: { kind: "AppRegistration", name: appRegistration(kind) },
        tenantId: TENANT,
        scope: s.spec().scope,
      });
      await s.waitFor(name, "True");
      const token = s.decoded(await s.secret(name), "access_token")!;
      expect((await s.service.verifyAccessToken(token, TENANT)).appid).toBe(app);

      const reg = await s.waitForRegistration(appRegistration(kind), "True", "CredentialLoaded");
      expect(reg.status?.credential?.kind).toBe(credentialKind);
      if (kind === "clientAssertion") {
        // An assertion's expiry is its exp: when its writer must have written the next one.
        expect(reg.status?.credential?.expiresAt).toBe(
          new Date(decodeJwt(assertion).exp! * 1000).toISOString(),
        );
      }
      expect(JSON.stringify(reg.status)).not.toContain(token);
    },
  );

  it.each(KINDS)(
    "gets a token with a %s credential through a ClusterAppRegistration, its credential in the cluster resource namespace",
    async (kind, app) => {
      const registration = `${s.ns}-${kind.toLowerCase()}`;
      await createClusterRegistration(registration, {
        ...registrationSpec(kind),
        namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: s.ns } },
      });
      const name = `via-cluster-${kind.toLowerCase()}`;
      // A resource of its own: the token comes from a call made with the credential the
      // ClusterAppRegistration loaded, not from the cache.
      const resource = `https://${name}.example`;
      s.service.setConfig({ ...s.service.config, resources: [...s.service.config.resources, resource] });
      await s.createRequest(name, { ...s.clusterSpec(registration), scope: `${resource}/.default` });
      const req = await s.waitFor(name, "True");
      expect(req.status?.tokenSource).toBe("IdentityProvider");
      const token = s.decoded(await s.secret(name), "access_token")!;
      const claims = await s.service.verifyAccessToken(token, TENANT);
      expect(claims.appid).toBe(app);
      expect(claims.aud).toBe(resource);
    },
  );

  it("reads a ClusterAppRegistration's credential Secret from the cluster resource namespace only", async () => {
    // The Secret exists in the namespace of the request, not in the cluster resource namespace.
    await s.core.createNamespacedSecret({
      namespace: otherNs,
      body: { metadata: { name: "only-in-team" }, stringData: { "client-secret": "anything" } },
    });
    const registration = `${s.ns}-misplaced`;
    await createClusterRegistration(registration, {
      ...s.registrationSpec("clientSecret"),
      credential: { clientSecret: { secretRef: { name: "only-in-team", key: "client-secret" } } },
      namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: otherNs } },
    });
    await s.createRequestIn(otherNs, "misplaced", s.clusterSpec(registration));
    const refused = await s.waitForIn(otherNs, "misplaced", "False", "CredentialSecretNotFound");
    expect(s.ready(refused.status)?.message).toMatch(new RegExp(`^ClusterAppRegistration ${registration}: `));
    expect(s.ready(refused.status)?.message).toContain(`${s.ns}/only-in-team`);
  });

  it("makes one token call for requests in two namespaces that share a ClusterAppRegistration, a tenant and a scope", async () => {
    const app = "77777777-aaaa-4bbb-8ccc-000000000007";
    s.service.addApp({ tenantId: TENANT, clientId: app, secrets: ["shared-secret-value"] });
    await s.putSecret("shared-cred", { "client-secret": "shared-secret-value" });
    const registration = `${s.ns}-shared`;
    await createClusterRegistration(registration, {
      ...s.registrationSpec("clientSecret"),
      clientId: app,
      credential: { clientSecret: { secretRef: { name: "shared-cred", key: "client-secret" } } },
      namespaceSelector: {
        matchExpressions: [{ key: NAMESPACE_NAME_LABEL, operator: "In", values: [s.ns, otherNs] }],
      },
    });
    await Promise.all([
      s.createRequest("shared", s.clusterSpec(registration)),
      s.createRequestIn(otherNs, "shared", s.clusterSpec(registration)),
    ]);
    const [here, there] = await Promise.all([
      s.waitFor("shared", "True"),
      s.waitForIn(otherNs, "shared", "True"),
    ]);
    expect(s.service.issued({ clientId: app })).toBe(1);
    expect([here.status?.tokenSource, there.status?.tokenSource].sort()).toEqual([
      "Cache",
      "IdentityProvider",
    ]);
    const tokens = [
      s.decoded(await s.secret("shared"), "access_token"),
      s.decoded(await s.secretIn(otherNs, "shared"), "access_token"),
    ];
    expect(tokens[0]).toBeDefined();
    expect(tokens[1]).toBe(tokens[0]);
  });

  it("counts the requests that use a registration in its status, within seconds of each change", async () => {
    await s.createRegistration("counted", s.registrationSpec("clientSecret"));
    await s.waitForRegistration("counted", "True", "CredentialLoaded");
    const counted = {
      appRef: { kind: "AppRegistration", name: "counted" },
      tenantId: TENANT,
      scope: s.spec().scope,
    };
    /** Waits until status.requests is `n`; returns how long that took. */
    const countReaches = async (n: number): Promise<number> => {
      const from = Date.now();
      await eventually(
        async () => ((await s.getRegistration("counted")).status?.requests === n ? true : undefined),
        `AppRegistration counted to count ${n} requests`,
        20_000,
      );
      return Date.now() - from;
    };
    await Promise.all(["counted-1", "counted-2", "counted-3"].map((n) => s.createRequest(n, counted)));
    expect(await countReaches(3)).toBeLessThan(10_000);
    await s.deleteRequest("counted-1");
    expect(await countReaches(2)).toBeLessThan(10_000);
    // One moves to another registration: it no longer counts here.
    await s.patchRequest("counted-2", {
      spec: { appRef: { kind: "AppRegistration", name: "app-clientsecret" } },
    });
    expect(await countReaches(1)).toBeLessThan(10_000);
  });

  it("refuses an expired client assertion with AssertionExpired, sending nothing, and recovers once it is refreshed", async () => {
    // Whatever writes the assertion stopped an hour ago: its last one expired 50 minutes ago.
    const expired = unsignedJwt({
      iss: SA_ISSUER,
      sub: `system:serviceaccount:${s.ns}:${SERVICE_ACCOUNT}`,
      aud: "api://AzureADTokenExchange",
      exp: Math.floor(Date.now() / 1000) - 3000,
    });
    await s.putSecret("stale-assertion", { assertion: expired });
    const callsBefore = s.service.requests({ clientId: WI_APP });
    await s.createRequest(
      "stale",
      await s.specWithRegistration(
        "stale-assertion-app",
        s.clientAssertionRegistrationSpec("stale-assertion"),
      ),
    );
    const refused = await s.waitFor("stale", "False", "AssertionExpired");
    expect(s.ready(refused.status)?.message).toMatch(/^AppRegistration stale-assertion-app: /);
    expect(s.ready(refused.status)?.message).toMatch(/expired at/);
    const reg = await s.waitForRegistration("stale-assertion-app", "False", "AssertionExpired");
    expect(s.ready(reg.status)?.message).not.toContain(expired);
    expect(s.service.requests({ clientId: WI_APP })).toBe(callsBefore);
    expect(await s.secret("stale")).toBeUndefined();

    // The writer comes back: the next assertion is used within seconds.
    await s.putSecret("stale-assertion", { assertion: await s.mintServiceAccountToken() });
    await s.waitFor("stale", "True", undefined, 15_000);
    await s.waitForRegistration("stale-assertion-app", "True", "CredentialLoaded", 15_000);
  });
});

/** A JWT-shaped string with these claims and no valid signature (the operator reads only exp). */
function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "RS256", typ: "JWT" })}.${part(claims)}.${Buffer.from("no signature").toString("base64url")}`;
}
