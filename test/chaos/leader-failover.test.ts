/**
 * High availability: two real operator replicas with --leader-elect, each behind its own recording
 * API proxy (both write with the same field manager, so the proxies are what tells their writes
 * apart). The leader is frozen with SIGSTOP for longer than its lease while short-lived tokens keep
 * coming due; the standby must take over and refresh them. Then the old leader is thawed with
 * SIGCONT, its timers all overdue at once: it must not write another byte to Secrets, statuses or
 * Events, and must exit so that a fresh process can campaign again. Every write of both replicas is
 * on record, with the time it reached the apiserver: no two leaders ever wrote in the same window.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChaosScenario, report, until, type Replica } from "./support/chaos.js";
import type { ProxiedRequest } from "./support/api-proxy.js";

const isObjectWrite = (r: ProxiedRequest) => !r.url.includes("/leases");

describe("leader paused past its lease: the standby takes over, the old leader never writes again", () => {
  // 90 s tokens refreshed every ~8 s: writes are always due, so a second writer would show.
  const s = new ChaosScenario({
    prefix: "chaos-ha",
    tenants: 2,
    tokenLifetimeSeconds: 90,
    refreshInSeconds: 8,
  });
  let a: Replica;
  let b: Replica;
  beforeAll(async () => {
    await s.start();
  }, 180_000);
  afterAll(async () => s.stop());

  it("fails over on SIGSTOP and fences the resumed leader", async () => {
    const ha = ["--leader-elect", "--leader-election-namespace", s.ns, "--leader-election-id", "chaos-ha"];
    a = await s.startReplica("a", { args: ha });
    await until(
      async () => ((await a.op.metric("leader_election_master_status")) === 1 ? true : undefined),
      "a to lead",
      40_000,
    );
    b = await s.startReplica("b", { args: ha });

    const names: string[] = [];
    for (const t of [0, 1])
      for (const k of ["clientSecret", "certificate", "workloadIdentity"] as const) {
        const name = `${k.toLowerCase()}-${t}`;
        names.push(name);
        await s.createRequest(name, s.spec(k, t));
      }
    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));
    // The leader is busy refreshing: at least one refresh written by a.
    await until(
      () => (s.history.versions.some((v) => v.managed && v.type === "MODIFIED") ? true : undefined),
      "a first refresh by the leader",
      30_000,
    );
    expect(b.proxy!.writes().filter(isObjectWrite)).toEqual([]);

    a.op.child.kill("SIGSTOP");
    const stoppedAt = Date.now();
    await until(
      async () => ((await b.op.metric("leader_election_master_status")) === 1 ? true : undefined),
      "b to lead",
      60_000,
    );
    const bLeadsAt = Date.now();
    // The lease is 15 s from a's last renewal (at most one 2 s retry period before the pause), as
    // b observed it: b may not take it sooner.
    expect(bLeadsAt - stoppedAt).toBeGreaterThanOrEqual(12_000);
    const firstB = await until(
      () => b.proxy!.writes("/secrets").find((w) => w.status !== undefined && w.status < 300),
      "b to write a refreshed token to a Secret",
      60_000,
    );

    a.op.child.kill("SIGCONT");
    const resumedAt = Date.now();
    const code = await Promise.race([
      a.op.exited,
      new Promise<"still running">((r) => setTimeout(() => r("still running"), 30_000)),
    ]);
    // Lost leadership: exit (non-zero) so that a fresh process campaigns again.
    expect(code).toBe(1);

    const aWrites = a.proxy!.writes().filter(isObjectWrite);
    const bWrites = b.proxy!.writes().filter(isObjectWrite);
    const aAfterResume = aWrites.filter((w) => w.at >= resumedAt);
    // Nothing at all from the old leader once it was thawed, not even an attempt.
    expect(
      aAfterResume.map((w) => `${w.method} ${w.url} -> ${w.status ?? w.error}`),
      "writes by the old leader after SIGCONT",
    ).toEqual([]);
    // Every write of a reached the apiserver before the first write of b: one writer at a time.
    const lastA = Math.max(...aWrites.map((w) => w.at));
    const firstBAt = Math.min(...bWrites.map((w) => w.at));
    expect(lastA).toBeLessThan(firstBAt);
    expect(firstB.at).toBeGreaterThanOrEqual(firstBAt);
    // b wrote only after its lease write succeeded.
    const bAcquired = b.proxy!.writes("/leases").find((w) => w.status !== undefined && w.status < 300)!;
    expect(bAcquired.at).toBeLessThan(firstBAt);

    // The Secrets: never deleted, never expired, and still refreshed by the new leader.
    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 30_000)));
    const lastVersions = names.map((n) => s.history.of(n).at(-1)!);
    await until(
      () =>
        names.every((n, i) => s.history.of(n).at(-1)!.resourceVersion !== lastVersions[i]!.resourceVersion)
          ? true
          : undefined,
      "b to keep refreshing every Secret",
      40_000,
    );
    expect(s.history.deletedManaged()).toEqual([]);
    expect(s.history.expiredWindows()).toEqual([]);
    report({
      suite: "leader-failover",
      pausedSeconds: Math.round((resumedAt - stoppedAt) / 1000),
      takeoverSeconds: Math.round((bLeadsAt - stoppedAt) / 1000),
      writesByA: aWrites.length,
      writesByB: bWrites.length,
      writesByAAfterResume: aAfterResume.length,
      aExit: code,
    });
  }, 240_000);

  it("leaked nothing", async () => {
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  });
});
