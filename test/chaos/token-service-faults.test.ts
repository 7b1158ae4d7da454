/**
 * Every way the token service can misbehave, each on its own cache key, all at once, against the
 * real operator process (least-privilege identity, trace logging) and the real control plane:
 *
 * - on refresh (the Secret holds a good token; a force-refresh meets the fault): the old token
 *   stays in the Secret untouched, Ready stays True with RefreshThrottled or RefreshFailing, the
 *   throttle block says Throttled or Backoff, and the key recovers by itself;
 * - on first acquisition (no token yet): Ready=False with the fault's own reason, then recovery;
 * - Retry-After is obeyed to the second (the token service's own request log is the witness);
 * - requests on other keys never notice.
 *
 * A second scenario is a 429 storm over every key at once with short-lived tokens: each key calls
 * no more often than Retry-After allows, no Secret ever holds an expired token, all recover.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FaultBehaviour, FaultRule } from "../../hack/token-service/faults.js";
import type { RequestLogEntry } from "../../hack/token-service/server.js";
import { CERT_APP, ChaosScenario, SECRET_APP, WI_APP, report, tenantId, until } from "./support/chaos.js";

interface FaultCase {
  name: string;
  rules: (FaultBehaviour & { times: number })[];
  /** Ready reason while the old token is kept. */
  refreshReason: "RefreshThrottled" | "RefreshFailing";
  throttleState: "Throttled" | "Backoff";
  /** Ready=False reason for a request that has no token yet. */
  firstReason: string;
  /** Seconds the service named in Retry-After, if it did: calls for the key must be that far apart. */
  retryAfterSeconds?: number;
}

const FAULTS: FaultCase[] = [
  {
    name: "429-retry-after",
    rules: [{ type: "throttle", status: 429, retryAfter: 5, times: 2 }],
    refreshReason: "RefreshThrottled",
    throttleState: "Throttled",
    firstReason: "Throttled",
    retryAfterSeconds: 5,
  },
  {
    name: "429-no-retry-after",
    rules: [{ type: "throttle", status: 429, times: 1 }],
    refreshReason: "RefreshThrottled",
    throttleState: "Throttled",
    firstReason: "Throttled",
  },
  {
    name: "503-retry-after",
    rules: [{ type: "throttle", status: 503, retryAfter: 4, times: 2 }],
    refreshReason: "RefreshThrottled",
    throttleState: "Throttled",
    firstReason: "Throttled",
    retryAfterSeconds: 4,
  },
  {
    name: "503-no-retry-after",
    rules: [{ type: "throttle", status: 503, times: 2 }],
    refreshReason: "RefreshFailing",
    throttleState: "Backoff",
    firstReason: "TokenServiceUnavailable",
  },
  {
    name: "500",
    rules: [{ type: "serverError", status: 500, times: 3 }],
    refreshReason: "RefreshFailing",
    throttleState: "Backoff",
    firstReason: "TokenServiceUnavailable",
  },
  {
    name: "hang",
    rules: [{ type: "hang", times: 1 }],
    refreshReason: "RefreshFailing",
    throttleState: "Backoff",
    firstReason: "Timeout",
  },
  {
    name: "reset",
    rules: [{ type: "reset", times: 2 }],
    refreshReason: "RefreshFailing",
    throttleState: "Backoff",
    firstReason: "ConnectionReset",
  },
  {
    name: "malformed",
    rules: [
      { type: "malformed", variant: "truncated", times: 1 },
      { type: "malformed", variant: "html", times: 1 },
      { type: "malformed", variant: "missingFields", times: 1 },
    ],
    refreshReason: "RefreshFailing",
    throttleState: "Backoff",
    firstReason: "MalformedResponse",
  },
  {
    name: "oversized",
    rules: [{ type: "oversized", bytes: 2 * 1024 * 1024, times: 1 }],
    refreshReason: "RefreshFailing",
    throttleState: "Backoff",
    firstReason: "ResponseTooLarge",
  },
  {
    name: "loop-detected",
    rules: [{ type: "loopDetected", times: 1 }],
    refreshReason: "RefreshThrottled",
    throttleState: "Throttled",
    firstReason: "Throttled",
  },
];

/** Tenant 0 is healthy; fault i lives on tenant i + 1. */
const tenantOf = (i: number) => i + 1;

describe("token service faults: each kind on refresh and on first acquisition", () => {
  const calls: (RequestLogEntry & { at: number })[] = [];
  const s = new ChaosScenario({
    prefix: "chaos-faults",
    tenants: FAULTS.length + 1,
    tokenServiceOptions: { log: (e) => calls.push({ ...e, at: Date.parse(e.time) }) },
  });
  beforeAll(async () => {
    await s.start();
    await s.startReplica("a", { logLevel: "trace" });
  }, 180_000);
  afterAll(async () => s.stop());

  const callsFor = (tenant: number, clientId: string) =>
    calls.filter((c) => c.tenant === tenantId(tenant) && c.clientId === clientId);

  it("keeps the old token on refresh, shows a specific reason without one, obeys Retry-After, recovers", async () => {
    await s.createRequest("healthy-wi", s.spec("workloadIdentity", 0));
    await s.createRequest("healthy-pfx", s.spec("pfx", 0));
    await Promise.all(
      FAULTS.map((f, i) => s.createRequest(`r-${f.name}`, s.spec("clientSecret", tenantOf(i)))),
    );
    const names = ["healthy-wi", "healthy-pfx", ...FAULTS.map((f) => `r-${f.name}`)];
    const before = new Map(
      await Promise.all(
        names.map(async (n) => [n, await s.waitFor(n, "True", "TokenIssued", 60_000)] as const),
      ),
    );
    const oldTokens = new Map(
      await Promise.all(names.map(async (n) => [n, s.decoded(await s.secret(n), "access_token")!] as const)),
    );

    // The faults: for the refresh (client secret app) and for a first acquisition (certificate app).
    FAULTS.forEach((f, i) => {
      for (const clientId of [SECRET_APP, CERT_APP])
        for (const rule of f.rules)
          s.service.addFault({
            ...rule,
            match: { tenantId: tenantId(tenantOf(i)), clientId },
          } satisfies FaultRule);
    });
    const faultedAt = Date.now();
    await Promise.all(
      FAULTS.map((f) =>
        s.patchRequest(`r-${f.name}`, {
          metadata: { annotations: { "apptoken.io/force-refresh": "chaos-1" } },
        }),
      ),
    );
    await Promise.all(
      FAULTS.map((f, i) => s.createRequest(`n-${f.name}`, s.spec("certificate", tenantOf(i)))),
    );

    // While failing: the specific state, the old token (the request history saw every status).
    await Promise.all(
      FAULTS.map(async (f) => {
        const name = `r-${f.name}`;
        const seen = await s.requests.seen(
          name,
          (v) => v.at >= faultedAt && v.ready?.reason === f.refreshReason,
          `Ready reason ${f.refreshReason}`,
          60_000,
        );
        expect.soft(seen.status?.throttle?.state, name).toBe(f.throttleState);
        expect.soft(seen.status?.throttle?.consecutiveFailures, name).toBeGreaterThanOrEqual(1);
        expect.soft(seen.status?.throttle?.lastError, name).toBeTruthy();
        expect.soft(seen.status?.expiresAt, name).toBe(before.get(name)!.status?.expiresAt);
        expect.soft(seen.ready?.status, name).toBe("True");
        if (f.retryAfterSeconds !== undefined) {
          const retryAt = Date.parse(seen.status!.throttle!.retryAfter!);
          expect
            .soft(retryAt - faultedAt, `${name} retryAfter`)
            .toBeGreaterThan(f.retryAfterSeconds * 1000 - 1500);
        }
      }),
    );
    await Promise.all(
      FAULTS.map(async (f) => {
        const name = `n-${f.name}`;
        const seen = await s.requests.seen(
          name,
          (v) => v.ready?.status === "False" && v.ready.reason !== "Pending",
          "Ready=False with a reason",
          60_000,
        );
        expect.soft(seen.ready?.reason, name).toBe(f.firstReason);
        expect.soft(seen.ready?.message, name).toBeTruthy();
      }),
    );

    // Recovery, each by itself (the untimed throttles wait 30–60 s by design).
    await Promise.all(
      FAULTS.flatMap((f) => [
        s.waitFor(`r-${f.name}`, "True", "TokenIssued", 90_000),
        s.waitFor(`n-${f.name}`, "True", "TokenIssued", 90_000),
      ]),
    );
    const recoveredAt = Date.now();

    for (const [i, f] of FAULTS.entries()) {
      const name = `r-${f.name}`;
      // Exactly two versions of the Secret: the first token and its replacement; nothing between.
      const versions = s.history.of(name).filter((v) => v.type !== "DELETED");
      expect.soft(versions.length, `${name} Secret versions`).toBe(2);
      expect.soft(versions[0]?.accessToken, name).toBe(oldTokens.get(name));
      expect.soft(versions[1]?.accessToken, name).not.toBe(oldTokens.get(name));
      expect.soft((await s.getRequest(name)).status?.throttle, name).toBeUndefined();
      // One call per fault firing plus the one that succeeded: no retry storm.
      const faultFirings = f.rules.reduce((n, r) => n + (r.times ?? 1), 0);
      for (const clientId of [SECRET_APP, CERT_APP]) {
        const own = callsFor(tenantOf(i), clientId).filter((c) => c.at >= faultedAt);
        expect.soft(own.length, `${f.name} ${clientId} calls`).toBe(faultFirings + 1);
        if (f.retryAfterSeconds !== undefined) {
          for (let k = 1; k < own.length; k++) {
            // Retry-After has whole seconds; the service's log has millisecond times.
            expect
              .soft(own[k]!.at - own[k - 1]!.at, `${f.name} ${clientId} gap ${k}`)
              .toBeGreaterThanOrEqual(f.retryAfterSeconds * 1000 - 50);
          }
        }
      }
      report({
        suite: "token-service-faults",
        fault: f.name,
        faultFirings,
        refreshPath: s.requests.readyPath(name),
        firstPath: s.requests.readyPath(`n-${f.name}`),
      });
    }

    // The healthy requests on tenant 0 never noticed: one Secret version each, no call since.
    for (const n of ["healthy-wi", "healthy-pfx"]) {
      const now = await s.getRequest(n);
      expect(s.ready(now.status)?.reason).toBe("TokenIssued");
      expect(s.ready(now.status)?.lastTransitionTime).toBe(
        s.ready(before.get(n)!.status)?.lastTransitionTime,
      );
      expect(s.history.of(n).length).toBe(1);
    }
    expect(callsFor(0, WI_APP).filter((c) => c.at >= faultedAt)).toHaveLength(0);
    expect(s.history.deletedManaged()).toEqual([]);
    expect(s.history.expiredWindows(recoveredAt)).toEqual([]);
    expect(s.replicas[0]!.op.child.exitCode).toBeNull();

    // The failures were visible in metrics too.
    const op = s.replicas[0]!.op;
    expect(await op.metric("apptoken_token_requests_total", { result: "throttled" })).toBeGreaterThanOrEqual(
      8,
    );
    expect(await op.metric("apptoken_token_requests_total", { result: "transient" })).toBeGreaterThanOrEqual(
      16,
    );
  }, 240_000);

  it("leaked nothing: no secret, key, token or assertion in logs (trace), Events, status or metrics", async () => {
    const leaks = await s.scanForLeaks();
    report({ suite: "token-service-faults", leakScan: leaks });
    expect(leaks.tokensWatched).toBeGreaterThanOrEqual(FAULTS.length * 2);
    // The registrations' spec and status (credential kind, expiry, thumbprint) were scanned too,
    // with their status written.
    expect(leaks.sources.some((src) => src.startsWith("AppRegistrations"))).toBe(true);
    const registrations = await s.listRegistrations();
    expect(registrations.map((r) => `${r.metadata.name} ${r.status?.credential?.kind}`).sort()).toEqual([
      "app-certificate Certificate",
      "app-clientsecret ClientSecret",
      "app-pfx Certificate",
      "app-workloadidentity WorkloadIdentity",
    ]);
    expect(leaks.findings).toEqual([]);
  });
});

describe("a 429 storm over every key at once, with short-lived tokens", () => {
  const calls: (RequestLogEntry & { at: number })[] = [];
  // 90 s tokens, refresh_in 10 s: every key wants a new token every ~10 s during the storm.
  const s = new ChaosScenario({
    prefix: "chaos-storm",
    tenants: 2,
    tokenLifetimeSeconds: 90,
    refreshInSeconds: 10,
    tokenServiceOptions: { log: (e) => calls.push({ ...e, at: Date.parse(e.time) }) },
  });
  beforeAll(async () => {
    await s.start();
    await s.startReplica("a");
  }, 180_000);
  afterAll(async () => s.stop());

  it("calls each key no more often than Retry-After allows; no Secret ever holds an expired token", async () => {
    const kinds = ["clientSecret", "certificate", "workloadIdentity"] as const;
    const names: string[] = [];
    for (const t of [0, 1])
      for (const k of kinds)
        for (const copy of [1, 2]) {
          // Two requests per key: the storm must not double the calls.
          const name = `${k.toLowerCase()}-${t}-${copy}`;
          names.push(name);
          await s.createRequest(name, s.spec(k, t));
        }
    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));

    const stormFrom = Date.now();
    s.service.addFault({ type: "throttle", status: 429, retryAfter: 4 });
    // Long enough for every key to meet it at least twice.
    await until(
      () => {
        const perKey = new Map<string, number>();
        for (const c of calls.filter((c) => c.at >= stormFrom))
          perKey.set(`${c.tenant}|${c.clientId}`, (perKey.get(`${c.tenant}|${c.clientId}`) ?? 0) + 1);
        return perKey.size === 6 && [...perKey.values()].every((n) => n >= 2) ? true : undefined;
      },
      "every key to be throttled at least twice",
      60_000,
    );
    const throttledMid = await Promise.all(names.map((n) => s.getRequest(n)));
    s.service.clearFaults();
    const stormTo = Date.now();
    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 30_000)));

    const storm = calls.filter((c) => c.at >= stormFrom && c.at <= stormTo && c.fault === "throttle");
    const byKey = new Map<string, number[]>();
    for (const c of storm)
      byKey.set(`${c.tenant}|${c.clientId}`, [...(byKey.get(`${c.tenant}|${c.clientId}`) ?? []), c.at]);
    expect(byKey.size).toBe(6);
    for (const [key, times] of byKey) {
      for (let k = 1; k < times.length; k++)
        expect.soft(times[k]! - times[k - 1]!, `${key} gap`).toBeGreaterThanOrEqual(4000 - 50);
    }
    // Throttled requests still had a valid token, and said why they were not refreshing.
    for (const o of throttledMid) {
      const r = s.ready(o.status);
      expect.soft(r?.status, o.metadata.name).toBe("True");
      expect.soft(["RefreshThrottled", "TokenIssued"], o.metadata.name).toContain(r?.reason);
    }
    expect(s.history.expiredWindows()).toEqual([]);
    expect(s.history.deletedManaged()).toEqual([]);
    report({
      suite: "token-service-faults",
      fault: "429 storm (all keys, Retry-After 4 s)",
      throttledCalls: storm.length,
      keys: byKey.size,
      requests: names.length,
      stormSeconds: Math.round((stormTo - stormFrom) / 1000),
    });
  }, 180_000);

  it("leaked nothing", async () => {
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  });
});
