/**
 * The operator holds get/list/watch on Secrets (it writes target Secrets in every namespace it
 * serves, and AppRegistrations may live in any of them), so RBAC alone cannot show which Secrets'
 * data it actually reads. This test shows it on the wire: the real controller runs in-process
 * against the real apiserver through a tap that records every request, watch and answer, and every
 * Secret whose data reached the operator must be one it must read:
 *
 * - a credential Secret named by a registration (in the registration's namespace, or for a
 *   ClusterAppRegistration in the cluster resource namespace), or
 * - a target Secret it manages (label-selected list/watch; its own writes' answers).
 *
 * Bystander Secrets (in a served namespace, in the cluster resource namespace, one that a request
 * names as its target, and one that only a request could have named under the old API) are never
 * read: the credential watch is metadata-only, and a target that turns out to be someone else's is
 * examined through its metadata alone.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenBucket, TokenCache } from "../../src/cache/index.js";
import { systemClock } from "../../src/clock.js";
import { AppTokenController } from "../../src/controller/controller.js";
import { TokenClient, allowedHostSet, type AuthorityPolicy } from "../../src/identity/index.js";
import { KubeApiClient } from "../../src/kube/api-client.js";
import { EventRecorder } from "../../src/kube/events.js";
import { createKubeTransport } from "../../src/kube/transport.js";
import type { WatchEvent } from "../../src/kube/types.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { createTestNamespace, deleteTestNamespace, kubectl } from "../support/kube.js";
import { Scenario } from "../support/scenario.js";
import { TappedTransport } from "../support/tapped-transport.js";

const BYSTANDER = "bystander-value-should-never-be-read";

describe("which Secrets' data reach the operator", () => {
  const s = new Scenario({ prefix: "secret-reads", operator: false });
  let crn: string;
  let transport: TappedTransport;
  let controller: AppTokenController;
  let tokenClient: TokenClient;
  const shutdown = new AbortController();
  let leading: Promise<void>;

  beforeAll(async () => {
    await s.start();
    crn = await createTestNamespace(s.kc, "secret-reads-crn");
    for (const [ns, name] of [
      [s.ns, "bystander"],
      [s.ns, "taken-target"],
      [crn, "bystander"],
    ] as const) {
      await s.core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name }, stringData: { value: BYSTANDER } },
      });
    }
    await s.core.createNamespacedSecret({
      namespace: crn,
      body: {
        metadata: { name: "cluster-cred" },
        stringData: { "client-secret": "Q8r~s3cret.value-for-tests-only" },
      },
    });
    const applied = await kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "apptoken.io/v1alpha1",
        kind: "ClusterAppRegistration",
        metadata: { name: `${s.ns}-reads` },
        spec: {
          ...s.registrationSpec("clientSecret"),
          credential: { clientSecret: { secretRef: { name: "cluster-cred", key: "client-secret" } } },
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": s.ns } },
        },
      }),
    });
    expect(applied.stderr).toBe("");

    transport = new TappedTransport(createKubeTransport(s.kc));
    const clock = systemClock;
    const authority: AuthorityPolicy = {
      allowInsecureLoopback: false,
      allowedHosts: allowedHostSet([s.authorityHostPort]),
    };
    const api = new KubeApiClient({ transport, clock, qps: 100, burst: 200 });
    tokenClient = new TokenClient({
      clock,
      caBundle: s.service.caPem,
      allowedAuthorityHosts: authority.allowedHosts,
    });
    controller = new AppTokenController({
      transport,
      api,
      clock,
      log: createLogger({ level: "silent", format: "json" }),
      metrics: new Metrics({ defaultMetrics: false }),
      cache: new TokenCache({ clock, limiter: new TokenBucket({ ratePerSecond: 50, burst: 50, clock }) }),
      tokenClient,
      events: new EventRecorder({ api, clock }),
      authority,
      allowedAudiences: new Set(["api://AzureADTokenExchange"]),
      clusterResourceNamespace: crn,
      namespaces: [s.ns],
      concurrency: 4,
    });
    leading = controller.lead(shutdown.signal);
  }, 180_000);

  afterAll(async () => {
    shutdown.abort();
    await leading;
    await controller?.stop();
    await tokenClient?.close();
    await kubectl(["delete", "cappreg", `${s.ns}-reads`, "--ignore-not-found"]);
    await deleteTestNamespace(s.kc, crn);
    await s.stop();
  });

  it("reads registrations' credential Secrets and its own target Secrets, and no other Secret's data", async () => {
    await s.createRequest("by-secret", s.spec("clientSecret"));
    await s.createRequest("by-certificate", s.spec("certificate"));
    await s.createRequest("by-pfx", s.spec("pfx"));
    await s.createRequest("by-cluster", {
      appRef: { kind: "ClusterAppRegistration", name: `${s.ns}-reads` },
      tenantId: s.spec().tenantId,
      scope: s.spec().scope,
    });
    await s.createRequest("wants-taken", { ...s.spec("clientSecret"), target: { name: "taken-target" } });
    for (const name of ["by-secret", "by-certificate", "by-pfx", "by-cluster"])
      await s.waitFor(name, "True", "TokenIssued", 60_000);
    await s.waitFor("wants-taken", "False", "SecretConflict", 60_000);

    const allowedCredentials = new Set([
      `${s.ns}/app-cred`,
      `${s.ns}/app-cert`,
      `${s.ns}/app-pfx`,
      `${crn}/cluster-cred`,
    ]);
    const read: string[] = [];
    const secretsWithData = (answer: unknown): { key: string; managed: boolean }[] => {
      const items = (answer as { items?: unknown[] } | undefined)?.items ?? [answer];
      return items.flatMap((o) => {
        const obj = o as {
          kind?: string;
          data?: unknown;
          metadata?: { namespace?: string; name?: string; labels?: Record<string, string> };
        };
        if (obj?.data === undefined) return [];
        return [
          {
            key: `${obj.metadata?.namespace}/${obj.metadata?.name}`,
            managed: obj.metadata?.labels?.["app.kubernetes.io/managed-by"] === "apptoken-operator",
          },
        ];
      });
    };
    for (const req of transport.requests) {
      if (!/\/secrets(\/|$|\?)/.test(req.path)) continue;
      for (const { key, managed } of secretsWithData(req.answer)) {
        read.push(key);
        if (!managed)
          expect(allowedCredentials, `data of Secret ${key} read by ${req.verb} ${req.path}`).toContain(key);
      }
    }
    for (const w of transport.watches) {
      if (!w.path.includes("/secrets")) continue;
      for (const e of w.events as WatchEvent[]) {
        for (const { key, managed } of secretsWithData(e.object)) {
          if (!managed)
            expect(allowedCredentials, `data of Secret ${key} delivered on watch ${w.path}`).toContain(key);
        }
      }
    }
    // It did read what it must (the test would prove nothing if nothing were read at all).
    expect(read).toEqual(expect.arrayContaining([...allowedCredentials]));
    const everything = JSON.stringify([
      transport.requests.map((r) => r.answer),
      transport.watches.map((w) => w.events),
    ]);
    expect(everything).not.toContain(Buffer.from(BYSTANDER).toString("base64"));
  });
});
