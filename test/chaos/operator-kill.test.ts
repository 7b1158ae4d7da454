/**
 * The operator SIGKILLed in the middle of a refresh (every key has a call in flight, hung at the
 * token service), then restarted: no Secret is lost, no Secret ever holds an expired token, and
 * the restarted process makes at most one call per cache key (no duplicate storm), although
 * twice as many requests as keys are due.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestLogEntry } from "../../hack/token-service/server.js";
import { ChaosScenario, report, tenantId, until } from "./support/chaos.js";

describe("SIGKILL mid-refresh, then restart", () => {
  const calls: (RequestLogEntry & { at: number })[] = [];
  // 2-minute tokens refreshed after ~20 s: refreshes come due while the test runs.
  const s = new ChaosScenario({
    prefix: "chaos-kill",
    tenants: 3,
    tokenLifetimeSeconds: 120,
    refreshInSeconds: 20,
    tokenServiceOptions: { log: (e) => calls.push({ ...e, at: Date.parse(e.time) }) },
  });
  beforeAll(async () => {
    await s.start();
    await s.startReplica("first");
  }, 180_000);
  afterAll(async () => s.stop());

  it("loses no Secret and makes at most one call per key after the restart", async () => {
    const names: string[] = [];
    for (const t of [0, 1, 2])
      for (const k of ["clientSecret", "certificate"] as const)
        for (const copy of [1, 2]) {
          const name = `${k.toLowerCase()}-${t}-${copy}`;
          names.push(name);
          await s.createRequest(name, s.spec(k, t));
        }
    const keys = 6;
    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));
    const tokensBefore = new Map(names.map((n) => [n, s.history.of(n).at(-1)!.accessToken]));

    // Every refresh hangs at the token service: the operator is mid-refresh for every key.
    const hangFrom = Date.now();
    s.service.addFault({ type: "hang" });
    await until(
      () => {
        const keysInFlight = new Set(
          calls.filter((c) => c.at >= hangFrom).map((c) => `${c.tenant}|${c.clientId}`),
        );
        return keysInFlight.size === keys ? true : undefined;
      },
      "every key to have a refresh in flight",
      60_000,
    );
    const first = s.replicas[0]!.op;
    first.child.kill("SIGKILL");
    await first.exited;
    const killedAt = Date.now();
    s.service.clearFaults();

    await s.startReplica("second");
    const refreshed = await Promise.all(
      names.map((n) =>
        until(
          () => {
            const v = s.history.of(n).at(-1)!;
            return v.accessToken !== tokensBefore.get(n) ? v : undefined;
          },
          `${n} to get a new token after the restart`,
          60_000,
        ),
      ),
    );
    const allRefreshedAt = Math.max(...refreshed.map((v) => v.at));
    const after = calls.filter((c) => c.at >= killedAt && c.at <= allRefreshedAt);
    // One call per key, not per request, not per retry: the restarted operator read the due tokens
    // back from the Secrets and refreshed each key once.
    expect(after.length).toBeLessThanOrEqual(keys);
    expect(new Set(after.map((c) => `${c.tenant}|${c.clientId}`)).size).toBe(keys);
    for (const t of [0, 1, 2])
      expect(after.filter((c) => c.tenant === tenantId(t)).length).toBeLessThanOrEqual(2);

    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 30_000)));
    for (const n of names) expect(await s.secret(n), n).toBeDefined();
    expect(s.history.deletedManaged()).toEqual([]);
    expect(s.history.expiredWindows()).toEqual([]);
    report({
      suite: "operator-kill",
      requests: names.length,
      keys,
      hungCallsAtKill: calls.filter((c) => c.at >= hangFrom && c.at < killedAt).length,
      callsAfterRestart: after.length,
      secretsLost: s.history.deletedManaged().length,
    });
  }, 240_000);

  it("leaked nothing", async () => {
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  });
});
