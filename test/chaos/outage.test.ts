/**
 * A token-service outage longer than the refresh margin, scaled down: 2-minute tokens refreshed at
 * half-life (margin 60 s) and an outage of 65 s during which every call fails (a hang, resets,
 * then 502s). The promise under test: a token valid for longer than the outage never
 * expires in its Secret; Ready stays True while the Secret's token is valid, with the failure
 * visible in status (RefreshFailing, throttle Backoff, consecutiveFailures, lastError) and in
 * metrics; retries are backed off (no hot loop) yet land before expiry; all recover at once after.
 *
 * Scaled from the "10-minute outage with 2-minute margins": the 30 s expiry skew and the
 * backoff floors are not scaled, so the windows here are tighter than in production.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChaosScenario, report, until } from "./support/chaos.js";

const LIFETIME_S = 120;
const OUTAGE_MS = 70_000;
/** The operator stops handing out a token this long before it expires (the cache's expiry skew). */
const SKEW_MS = 30_000;

describe("an outage longer than the refresh margin", () => {
  const s = new ChaosScenario({ prefix: "chaos-outage", tokenLifetimeSeconds: LIFETIME_S });
  beforeAll(async () => {
    await s.start();
    await s.startReplica("a");
  }, 180_000);
  afterAll(async () => s.stop());

  it("never lets a Secret hold an expired token; Ready stays True; the failure shows; all recover", async () => {
    const names = ["secret", "cert", "pfx", "wi"];
    const kinds = ["clientSecret", "certificate", "pfx", "workloadIdentity"] as const;
    await Promise.all(names.map((n, i) => s.createRequest(n, s.spec(kinds[i]))));
    const issued = await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 60_000)));
    const firstExpiry = Math.min(...issued.map((o) => Date.parse(o.status!.expiresAt!)));
    const lastRefreshAt = Math.max(...issued.map((o) => Date.parse(o.status!.refreshAt!)));
    const margin = Math.max(
      ...issued.map((o) => Date.parse(o.status!.expiresAt!) - Date.parse(o.status!.refreshAt!)),
    );

    // Every call fails from now on, for longer than any token's refresh margin; every token is
    // still usable (outside the expiry skew) a few seconds after the outage ends.
    s.service.addFault({ type: "reset", times: 4 });
    s.service.addFault({ type: "serverError", status: 502 });
    const outageFrom = Date.now();
    const outageTo = outageFrom + OUTAGE_MS;
    expect(OUTAGE_MS, "the outage is longer than the refresh margin").toBeGreaterThan(margin);
    expect(lastRefreshAt, "every refresh falls in the outage").toBeLessThan(outageTo - 10_000);
    expect(firstExpiry - SKEW_MS, "tokens outlive the outage").toBeGreaterThan(outageTo + 5_000);
    const op = s.replicas[0]!.op;

    // During the outage: every refresh fails, the state is visible, the old tokens stay.
    const failing = await Promise.all(
      names.map((n) =>
        s.requests.seen(
          n,
          (v) => v.ready?.reason === "RefreshFailing" && (v.status?.throttle?.consecutiveFailures ?? 0) >= 2,
          "RefreshFailing with two failures in a row",
          outageTo - Date.now(),
        ),
      ),
    );
    for (const v of failing) {
      expect.soft(v.ready?.status, v.name).toBe("True");
      expect.soft(v.status?.throttle?.state, v.name).toBe("Backoff");
      expect.soft(v.status?.throttle?.lastError, v.name).toMatch(/502|reset|socket|timeout|closed/i);
      expect
        .soft(Date.parse(v.status!.throttle!.retryAfter!), v.name)
        .toBeLessThan(Date.parse(v.status!.expiresAt!));
    }
    expect(Date.now()).toBeLessThan(outageTo);
    // Per cache key: cert and pfx hold the same certificate, so they share one key.
    expect(await op.metric("apptoken_throttled_keys", { state: "Backoff" })).toBe(3);
    expect(await op.metric("apptoken_token_requests_total", { result: "transient" })).toBeGreaterThanOrEqual(
      6,
    );
    await until(() => (Date.now() >= outageTo ? true : undefined), "the outage end", OUTAGE_MS + 5_000, 50);
    const callsDuringOutage = s.service.requests();
    s.service.clearFaults();

    await Promise.all(names.map((n) => s.waitFor(n, "True", "TokenIssued", 45_000)));
    const recoveredAt = Date.now();
    expect(recoveredAt, "recovered before the old tokens expired").toBeLessThan(firstExpiry);
    for (const [i, n] of names.entries()) {
      // Ready never went False, and the Secret was replaced once: before its token expired.
      const falses = s.requests
        .of(n)
        .filter((v) => v.ready?.status === "False")
        .map((v) => `${new Date(v.at).toISOString()} ${v.ready?.reason}: ${v.ready?.message}`);
      expect
        .soft(
          falses,
          `${n} (outage ${new Date(outageFrom).toISOString()} .. ${new Date(outageTo).toISOString()})`,
        )
        .toEqual([]);
      const versions = s.history.of(n);
      expect.soft(versions.length, n).toBe(2);
      expect.soft(versions[1]!.at, n).toBeLessThan(Date.parse(issued[i]!.status!.expiresAt!));
    }
    expect(s.history.expiredWindows()).toEqual([]);
    expect(s.history.deletedManaged()).toEqual([]);
    expect(await op.metric("apptoken_throttled_keys", { state: "Backoff" })).toBe(0);
    report({
      suite: "outage",
      tokenLifetimeSeconds: LIFETIME_S,
      refreshMarginSeconds: Math.round(margin / 1000),
      outageSeconds: OUTAGE_MS / 1000,
      keys: names.length,
      // Initial tokens plus every failed attempt: backed off, not a hot loop.
      callsUntilOutageEnd: callsDuringOutage,
      recoveredSecondsBeforeExpiry: Math.round((firstExpiry - recoveredAt) / 1000),
      readyPaths: Object.fromEntries(names.map((n) => [n, s.requests.readyPath(n)])),
    });
    // Backoff, not a hot loop: a handful of attempts per key in 65 s.
    expect(callsDuringOutage).toBeLessThanOrEqual(names.length * 12);
  }, 240_000);

  it("leaked nothing", async () => {
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  });
});
