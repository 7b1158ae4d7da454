import { inject } from "vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/kube.js";
import { Scenario, SECRET_APP, TENANT } from "../support/scenario.js";

describe("restart without a storm", () => {
  const s = new Scenario({ prefix: "ctl-restart" });
  beforeAll(async () => {
    await s.start();
  }, 120_000);
  afterAll(async () => s.stop());

  it("reuses every fresh token from the Secrets after a restart: no call, no write, all stay Ready", async () => {
    const names = ["r-secret", "r-cert", "r-pfx", "r-wi", "r-secret-2"];
    const kinds = ["clientSecret", "certificate", "pfx", "workloadIdentity", "clientSecret"] as const;
    await Promise.all(names.map((n, i) => s.createRequest(n, s.spec(kinds[i]))));
    await Promise.all(names.map((n) => s.waitFor(n, "True")));
    const registrations = ["app-clientsecret", "app-certificate", "app-pfx", "app-workloadidentity"];
    // Each registration counts its requests (a few seconds after they appear).
    await eventually(async () => {
      const counts = await Promise.all(
        registrations.map(async (r) => (await s.getRegistration(r)).status?.requests),
      );
      return counts.join() === "2,1,1,1" ? true : undefined;
    }, "every registration to count its requests");
    // SIGTERM: in-flight reconciles finish and the process exits cleanly.
    expect(await s.operator!.stop("SIGTERM", 20_000)).toBe(0);
    const before = await Promise.all(
      names.map(async (n) => ({ req: await s.getRequest(n), secret: await s.secret(n) })),
    );
    const registrationsBefore = await Promise.all(registrations.map((r) => s.getRegistration(r)));
    s.service.resetCounters();

    const op = await s.startOperator();
    // Every request gets re-verified (a cache hit seeded from its Secret) ...
    await eventually(async () => {
      const lines = op.logs().filter((l) => l.msg === "tokens read back; reconciling");
      return lines.length > 0 ? lines[0] : undefined;
    }, "the restarted operator to start reconciling");
    await eventually(
      async () => ((await op.metric("apptoken_cache_hits_total")) >= names.length ? true : undefined),
      "every request to be re-verified from the cache",
    );
    // ... without a single call to the token service ...
    expect(s.service.requests()).toBe(0);
    expect(await op.metric("apptoken_token_requests_total")).toBe(0);
    // ... and without writing Secrets or status.
    expect(await op.metric("apptoken_kube_writes_total", { resource: "secrets" })).toBe(0);
    expect(await op.metric("apptoken_kube_writes_total", { resource: "apptokenrequests/status" })).toBe(0);
    // Nor the registrations' status: what it says (Ready, the credential, the count) still holds.
    expect(await op.metric("apptoken_kube_writes_total", { resource: "appregistrations/status" })).toBe(0);
    for (const [i, r] of registrations.entries()) {
      const reg = await s.getRegistration(r);
      expect(reg.metadata.resourceVersion, r).toBe(registrationsBefore[i]!.metadata.resourceVersion);
    }
    for (const [i, n] of names.entries()) {
      const req = await s.getRequest(n);
      const secret = await s.secret(n);
      expect(s.ready(req.status)?.status).toBe("True");
      expect(secret?.metadata?.resourceVersion).toBe(before[i]!.secret?.metadata?.resourceVersion);
      expect(req.metadata.resourceVersion).toBe(before[i]!.req.metadata.resourceVersion);
    }
  }, 90_000);
});

describe("a spec that slipped past CRD validation", () => {
  const s = new Scenario({ prefix: "ctl-invalid" });
  beforeAll(async () => {
    await s.start();
  }, 120_000);
  afterAll(async () => s.stop());

  it("becomes Ready=False InvalidSpec, and other requests keep working", async () => {
    // Stored straight into etcd, as an object written before the CRD's rules tightened would be:
    // the apiserver never validated it.
    const etcd = inject("etcdUrl");
    const storeUnvalidated = async (name: string, uid: string, spec: Record<string, unknown>) => {
      const obj = {
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppTokenRequest",
        metadata: { name, namespace: s.ns, uid, generation: 1, creationTimestamp: new Date().toISOString() },
        spec,
      };
      const b64 = (x: string) => Buffer.from(x).toString("base64");
      const res = await fetch(`${etcd}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({
          key: b64(`/registry/apptoken.io/apptokenrequests/${s.ns}/${name}`),
          value: b64(JSON.stringify(obj)),
        }),
      });
      expect(res.ok).toBe(true);
    };
    await storeUnvalidated("legacy", "0b1c2d3e-0000-4000-8000-00000000abcd", {
      ...s.spec("clientSecret"),
      tenantId: "common",
      scope: "https://graph.microsoft.com/User.Read https://graph.microsoft.com/.default",
    });
    // And one from before registrations: the app and its credential inline, no appRef.
    await storeUnvalidated("pre-registrations", "0b1c2d3e-0000-4000-8000-00000000abce", {
      tenantId: TENANT,
      clientId: SECRET_APP,
      scope: "https://graph.microsoft.com/.default",
      credential: { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" } } },
    });
    const bad = await s.waitFor("legacy", "False", "InvalidSpec");
    const message = s.ready(bad.status)?.message ?? "";
    expect(message).toContain("spec.tenantId");
    expect(message).toContain("spec.scope");
    expect(await s.secret("legacy")).toBeUndefined();
    const inline = await s.waitFor("pre-registrations", "False", "InvalidSpec");
    expect(s.ready(inline.status)?.message).toContain("spec.appRef");
    expect(await s.secret("pre-registrations")).toBeUndefined();

    await s.createRequest("healthy", s.spec("clientSecret"));
    const ok = await s.waitFor("healthy", "True");
    expect(ok.spec.tenantId).toBe(TENANT);
    expect(s.operator!.child.exitCode).toBeNull();
  }, 60_000);
});

describe("two operator processes with leader election", () => {
  const s = new Scenario({ prefix: "ctl-ha", operator: false });
  beforeAll(async () => {
    await s.start();
  }, 120_000);
  afterAll(async () => s.stop());

  it("lets only the leader write, and the standby takes over when the leader is killed", async () => {
    const ha = [
      "--leader-elect",
      "--leader-election-namespace",
      s.ns,
      "--leader-election-id",
      "apptoken-test",
    ];
    const a = await s.startOperator({ args: ha });
    const first = a;
    const b = await s.startOperator({ args: ha });
    const leaderOf = async () => {
      const [la, lb] = await Promise.all([
        a.metric("leader_election_master_status"),
        b.metric("leader_election_master_status"),
      ]);
      return la + lb === 1 ? (la === 1 ? a : b) : undefined;
    };
    const leader = await eventually(leaderOf, "exactly one leader", 30_000);
    const standby = leader === a ? b : a;

    await s.createRequest("ha-1", s.spec("clientSecret"));
    await s.waitFor("ha-1", "True");
    expect(await leader.metric("apptoken_kube_writes_total")).toBeGreaterThan(0);
    expect(await standby.metric("apptoken_kube_writes_total")).toBe(0);

    leader.child.kill("SIGKILL");
    await leader.exited;
    const killedAt = Date.now();
    await eventually(
      async () => ((await standby.metric("leader_election_master_status")) === 1 ? true : undefined),
      "the standby to lead",
      30_000,
    );
    // The lease lasts 15 s; the standby may take it only after it expired.
    expect(Date.now() - killedAt).toBeLessThan(25_000);
    await s.createRequest("ha-2", s.spec("certificate"));
    await s.waitFor("ha-2", "True");
    expect(await standby.metric("apptoken_kube_writes_total")).toBeGreaterThan(0);
    // The new leader read ha-1's token back from its Secret: no second call for that key.
    expect(s.service.issued({ clientId: SECRET_APP })).toBe(1);
    await standby.stop();
    s.operator = first === standby ? undefined : standby;
  }, 90_000);
});
