/**
 * The trust model, played by an attacker on the real apiserver. Mallory may only create, read and
 * delete AppTokenRequests in her namespace (no Secrets, no serviceaccounts/token, no
 * registrations); every call she makes goes through impersonation (`kubectl --as mallory`), so the
 * apiserver's RBAC and admission decide exactly as they would for her.
 *
 * Her host is a token service with a TLS certificate the operator trusts (as a publicly trusted
 * certificate would be): only the operator's allow-lists stand between it and the credentials.
 * What must hold: no byte of any Secret, and no service-account token, ever reaches it; every
 * refusal is a Ready=False reason a person can act on; and each is re-evaluated within seconds
 * when the registration or the namespace's labels change.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServerCertificate } from "../../hack/token-service/pki.js";
import { startTokenService, type TokenService } from "../../hack/token-service/server.js";
import { createTestNamespace, deleteTestNamespace, kubectl, type KubectlResult } from "../support/kube.js";
import {
  CLIENT_SECRET,
  DOMAIN,
  SA_ISSUER,
  Scenario,
  SCOPE,
  SECRET_APP,
  TENANT,
} from "../support/scenario.js";

const MALLORY = "mallory";
const CROWN_JEWEL = "crown-jewel-value-7f3a9c";

describe("a user who may only create AppTokenRequests", () => {
  const s = new Scenario({ prefix: "trust", operator: false });
  let attacker: TokenService;
  let otherNs: string;
  const seenByAttacker: string[] = [];

  const asMallory = (args: string[], input?: string): Promise<KubectlResult> =>
    kubectl([...args, "-n", s.ns, `--as=${MALLORY}`], input === undefined ? {} : { input });

  /** Mallory applies a request; it must be accepted by the apiserver (her RBAC allows it). */
  const malloryRequests = async (name: string, spec: Record<string, unknown>, ns = s.ns): Promise<void> => {
    const manifest = {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { name },
      spec,
    };
    const r = await kubectl(["create", "-n", ns, `--as=${MALLORY}`, "-f", "-"], {
      input: JSON.stringify(manifest),
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  };

  beforeAll(async () => {
    await s.start();
    otherNs = await createTestNamespace(s.kc, "trust-other");
    // Her host: the same protocol, a certificate from a CA the operator trusts.
    const ca = await createCa({ commonName: "a publicly trusted CA" });
    attacker = await startTokenService(s.service.config, {
      tls: { ca, server: await issueServerCertificate(ca) },
      log: (entry) => seenByAttacker.push(JSON.stringify(entry)),
    });
    // Beside the scenario's own CA file, in its temporary directory.
    const bundle = join(s.caFile, "..", "bundle.pem");
    writeFileSync(bundle, `${s.service.caPem}\n${ca.certPem}`);
    await s.putSecret("crown-jewels", { value: CROWN_JEWEL });
    await s.core.createNamespacedServiceAccount({
      namespace: s.ns,
      body: { metadata: { name: "deployer" } },
    });
    for (const ns of [s.ns, otherNs]) {
      await apply({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "request-creator", namespace: ns },
        rules: [
          {
            apiGroups: ["apptoken.io"],
            resources: ["apptokenrequests"],
            verbs: ["create", "get", "list", "watch", "update", "patch", "delete"],
          },
        ],
      });
      await apply({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "mallory-request-creator", namespace: ns },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "request-creator" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: MALLORY }],
      });
    }
    await s.startOperator({ caFile: bundle, namespaces: [s.ns, otherNs] });
  }, 180_000);

  afterAll(async () => {
    await kubectl(["delete", "cappreg", `${s.ns}-shared`, "--ignore-not-found"]);
    await attacker?.close();
    await deleteTestNamespace(s.kc, otherNs);
    await s.stop();
  });

  it("can read no Secret and mint no service-account token herself", async () => {
    expect((await asMallory(["get", "secret", "crown-jewels"])).code).not.toBe(0);
    expect((await asMallory(["auth", "can-i", "create", "serviceaccounts/token"])).stdout.trim()).toBe("no");
    expect((await asMallory(["auth", "can-i", "create", "apptokenrequests"])).stdout.trim()).toBe("yes");
  });

  it("cannot name a host, a credential or an audience in a request: the API has no field for them", async () => {
    const inline = (credential: Record<string, unknown>) =>
      JSON.stringify({
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppTokenRequest",
        metadata: { name: `inline-${Object.keys(credential)[0]!.toLowerCase()}` },
        spec: {
          appRef: { kind: "AppRegistration", name: "app-clientsecret" },
          tenantId: TENANT,
          scope: SCOPE,
          clientId: SECRET_APP,
          authorityHost: attacker.url,
          credential,
        },
      });
    const attempts = [
      inline({ clientSecret: { secretRef: { name: "crown-jewels", key: "value" } } }),
      inline({ workloadIdentity: { serviceAccountName: "deployer", audience: SA_ISSUER } }),
    ];
    for (const body of attempts) {
      // kubectl validates strictly by default: unknown fields are an error, not a silent drop.
      const strict = await asMallory(["create", "-f", "-"], body);
      expect(strict.code).not.toBe(0);
      expect(strict.stderr).toMatch(/unknown field "spec\.(authorityHost|clientId|credential)"/);
    }
    // Even if a client skips validation, the apiserver prunes the fields: nothing of them is stored.
    const lax = await asMallory(["create", "--validate=false", "-f", "-"], attempts[0]);
    expect(lax.code).toBe(0);
    const stored = await s.getRequest("inline-clientsecret");
    expect(Object.keys(stored.spec).sort()).toEqual(["appRef", "scope", "tenantId"]);
    await s.waitFor("inline-clientsecret", "True", "TokenIssued", 60_000);
  });

  it("cannot create or change a registration of either kind", async () => {
    const reg = (kind: string) =>
      JSON.stringify({
        apiVersion: "apptoken.io/v1alpha1",
        kind,
        metadata: { name: "mine" },
        spec: {
          clientId: SECRET_APP,
          authorityHost: attacker.url,
          credential: { clientSecret: { secretRef: { name: "crown-jewels", key: "value" } } },
          ...(kind === "ClusterAppRegistration" ? { namespaceSelector: {} } : {}),
        },
      });
    for (const kind of ["AppRegistration", "ClusterAppRegistration"]) {
      const r = await asMallory(["create", "-f", "-"], reg(kind));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/forbidden/i);
    }
    const patch = await asMallory([
      "patch",
      "appreg",
      "app-clientsecret",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { authorityHost: attacker.url } }),
    ]);
    expect(patch.stderr).toMatch(/forbidden/i);
  });

  it("gets AuthorityNotAllowed, and her host nothing, when a registration names a host off the allow-list", async () => {
    // Say the namespace admin was fooled into it: the operator's own allow-list still holds.
    await s.createRegistration("fooled-host", {
      clientId: SECRET_APP,
      authorityHost: attacker.url,
      credential: { clientSecret: { secretRef: { name: "crown-jewels", key: "value" } } },
    });
    await malloryRequests("via-fooled-host", {
      appRef: { kind: "AppRegistration", name: "fooled-host" },
      tenantId: TENANT,
      scope: SCOPE,
    });
    const req = await s.waitFor("via-fooled-host", "False", "AuthorityNotAllowed");
    expect(s.ready(req.status)?.message).toMatch(/not in the operator's --allowed-authority-hosts/);
    const reg = await waitForRegistration("fooled-host", "False", "AuthorityNotAllowed");
    expect(JSON.stringify(reg)).not.toContain(CROWN_JEWEL);
  });

  it("gets AudienceNotAllowed when a registration would mint a token for the API server's audience", async () => {
    await s.createRegistration("fooled-audience", {
      clientId: SECRET_APP,
      authorityHost: s.service.url,
      credential: { workloadIdentity: { serviceAccountName: "deployer", audience: SA_ISSUER } },
    });
    await malloryRequests("via-fooled-audience", {
      appRef: { kind: "AppRegistration", name: "fooled-audience" },
      tenantId: TENANT,
      scope: SCOPE,
    });
    const req = await s.waitFor("via-fooled-audience", "False", "AudienceNotAllowed");
    expect(s.ready(req.status)?.message).toMatch(/--allowed-token-audiences/);
    await waitForRegistration("fooled-audience", "False", "AudienceNotAllowed");
    // And the same pointed at her host: refused before any token is minted or sent.
    await s.createRegistration("fooled-both", {
      clientId: SECRET_APP,
      authorityHost: attacker.url,
      credential: { workloadIdentity: { serviceAccountName: "deployer", audience: SA_ISSUER } },
    });
    await malloryRequests("via-fooled-both", {
      appRef: { kind: "AppRegistration", name: "fooled-both" },
      tenantId: TENANT,
      scope: SCOPE,
    });
    await s.waitFor("via-fooled-both", "False", "AudienceNotAllowed");
  });

  it("cannot use an AppRegistration of another namespace", async () => {
    await malloryRequests(
      "borrowed",
      { appRef: { kind: "AppRegistration", name: "app-clientsecret" }, tenantId: TENANT, scope: SCOPE },
      otherNs,
    );
    const obj = await s.waitForIn(otherNs, "borrowed", "False", "AppRegistrationNotFound");
    expect(JSON.stringify(obj.status)).toMatch(/only usable from its own namespace/);
  });

  it("gets TenantNotAllowed / ScopeNotAllowed outside a registration's lists, and a token once they allow it", async () => {
    await s.createRegistration("narrow", {
      ...s.registrationSpec("clientSecret"),
      allowedTenants: [DOMAIN],
      allowedScopes: ["api://narrow-only/.default"],
    });
    const ref = { kind: "AppRegistration", name: "narrow" };
    await malloryRequests("wrong-tenant", { appRef: ref, tenantId: TENANT, scope: SCOPE });
    await malloryRequests("wrong-scope", { appRef: ref, tenantId: DOMAIN, scope: SCOPE });
    await s.waitFor("wrong-tenant", "False", "TenantNotAllowed");
    await s.waitFor("wrong-scope", "False", "ScopeNotAllowed");
    // The registration's owner widens it: both are re-evaluated within seconds.
    await s.patchRegistration("narrow", { spec: { allowedTenants: ["*"], allowedScopes: [SCOPE] } });
    await s.waitFor("wrong-tenant", "True", "TokenIssued", 20_000);
    await s.waitFor("wrong-scope", "True", "TokenIssued", 20_000);
  });

  it("gets NamespaceNotAllowed outside a ClusterAppRegistration's selector, and a token once the namespace is labelled", async () => {
    const label = `trust-test/${s.ns}`;
    const name = `${s.ns}-shared`;
    const applied = await kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "apptoken.io/v1alpha1",
        kind: "ClusterAppRegistration",
        metadata: { name },
        spec: {
          ...s.registrationSpec("clientSecret"),
          namespaceSelector: { matchLabels: { [label]: "yes" } },
        },
      }),
    });
    expect(applied.stderr).toBe("");
    await malloryRequests("cluster-app", {
      appRef: { kind: "ClusterAppRegistration", name },
      tenantId: TENANT,
      scope: SCOPE,
    });
    await s.waitFor("cluster-app", "False", "NamespaceNotAllowed");
    expect((await kubectl(["label", "namespace", s.ns, `${label}=yes`])).code).toBe(0);
    await s.waitFor("cluster-app", "True", "TokenIssued", 20_000);
    // And out again: the namespace no longer selected is refused (its Secret keeps the last token).
    expect((await kubectl(["label", "namespace", s.ns, `${label}-`])).code).toBe(0);
    await s.waitFor("cluster-app", "False", "NamespaceNotAllowed", 20_000);
  });

  it("never let any of it reach her host, nor any Secret value into logs", () => {
    expect(attacker.requests()).toBe(0);
    expect(seenByAttacker).toEqual([]);
    const logs = s.operator!.output();
    expect(logs).not.toContain(CROWN_JEWEL);
    expect(logs).not.toContain(CLIENT_SECRET);
  });

  async function apply(obj: Record<string, unknown>): Promise<void> {
    const r = await kubectl(["apply", "-f", "-"], { input: JSON.stringify(obj) });
    if (r.code !== 0) throw new Error(r.stderr);
  }

  async function waitForRegistration(name: string, status: string, reason: string): Promise<unknown> {
    const deadline = Date.now() + 30_000;
    let last: unknown;
    for (;;) {
      const reg = await s.getRegistration(name);
      last = reg.status;
      const ready = (
        reg.status?.conditions as { type: string; status: string; reason: string }[] | undefined
      )?.find((c) => c.type === "Ready");
      if (ready?.status === status && ready.reason === reason) return reg;
      if (Date.now() > deadline)
        throw new Error(
          `AppRegistration ${name} not Ready=${status} (${reason}); last: ${JSON.stringify(last)}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  }
});
