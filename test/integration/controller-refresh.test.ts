import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/kube.js";
import { CERT_APP, SECRET_APP, Scenario, WI_APP } from "../support/scenario.js";

describe("refresh: short-lived tokens are replaced before they expire", () => {
  // 90 s tokens with refresh_in 20 s: several refresh cycles within a test's budget.
  const s = new Scenario({ prefix: "ctl-refresh", tokenLifetimeSeconds: 90, refreshInSeconds: 20 });
  beforeAll(async () => {
    await s.start();
  }, 120_000);
  afterAll(async () => s.stop());

  it("replaces the token in the Secret before expiry, every time, over several cycles", async () => {
    await s.createRequest("rolling", s.spec("clientSecret"));
    await s.waitFor("rolling", "True");
    const seen = new Set<string>();
    const deadline = Date.now() + 75_000;
    while (Date.now() < deadline && seen.size < 4) {
      const secret = await s.secret("rolling");
      const token = s.decoded(secret, "access_token")!;
      const expiresAt = Date.parse(s.decoded(secret, "expires_at")!);
      // A consumer reading the Secret at any moment finds a token with time left on it.
      expect(expiresAt - Date.now()).toBeGreaterThan(30_000);
      seen.add(token);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(seen.size).toBeGreaterThanOrEqual(4);
    const req = await s.getRequest("rolling");
    expect(s.ready(req.status)?.status).toBe("True");
    expect(req.status?.cache?.misses).toBeGreaterThanOrEqual(4);
    // Routine refreshes write the Secret and status only: the one Event is the Secret's creation.
    expect(await s.events("rolling"), s.operatorLinesAbout("rolling")).toEqual(["Normal Issued"]);
  }, 100_000);
});

describe("throttling: 429 with Retry-After is honoured and shown", () => {
  const s = new Scenario({ prefix: "ctl-throttle" });
  beforeAll(async () => {
    await s.start();
  }, 120_000);
  afterAll(async () => s.stop());

  it("keeps the old token, shows Throttled with retryAfter, makes no call before it, then recovers", async () => {
    await s.createRequest("busy", s.spec("clientSecret"));
    const first = await s.waitFor("busy", "True", "TokenIssued");
    const oldToken = s.decoded(await s.secret("busy"), "access_token");
    s.service.addFault({
      type: "throttle",
      status: 429,
      retryAfter: 8,
      match: { clientId: SECRET_APP },
      times: 1,
    });
    const callsBefore = s.service.requests({ clientId: SECRET_APP });
    await s.patchRequest("busy", { metadata: { annotations: { "apptoken.io/force-refresh": "now" } } });
    const throttled = await s.waitFor("busy", "True", "RefreshThrottled");
    const throttledAt = Date.now();
    expect(throttled.status?.throttle?.state).toBe("Throttled");
    const retryAfter = Date.parse(throttled.status!.throttle!.retryAfter!);
    expect(retryAfter).toBeGreaterThan(throttledAt + 5_000);
    expect(retryAfter).toBeLessThan(throttledAt + 10_000);
    expect(throttled.status?.expiresAt).toBe(first.status?.expiresAt);
    expect(s.decoded(await s.secret("busy"), "access_token")).toBe(oldToken);
    // Exactly the throttled call so far; nothing until retryAfter.
    expect(s.service.requests({ clientId: SECRET_APP }) - callsBefore).toBe(1);
    while (Date.now() < retryAfter - 500) {
      expect(s.service.requests({ clientId: SECRET_APP }) - callsBefore).toBe(1);
      await new Promise((r) => setTimeout(r, 250));
    }
    const recovered = await s.waitFor("busy", "True", "TokenIssued", 20_000);
    expect(recovered.status?.throttle).toBeUndefined();
    expect(s.decoded(await s.secret("busy"), "access_token")).not.toBe(oldToken);
    expect(s.service.requests({ clientId: SECRET_APP }) - callsBefore).toBe(2);
    // One Event per change of Ready reason: throttled, then recovered (the API orders Events by
    // name, and their timestamps are whole seconds: compare as sets).
    const want = ["Normal Issued", "Normal TokenIssued", "Warning RefreshThrottled"];
    let events: string[] = [];
    await eventually(async () => {
      events = (await s.events("busy")).sort();
      return events.length >= want.length ? true : undefined;
    }, "three Events").catch(() => undefined);
    expect(events, s.operatorLinesAbout("busy")).toEqual(want);
  }, 60_000);

  it("reports Ready=False Throttled for a request that has no token yet, and recovers", async () => {
    // The scenario's certificate registration is CERT_APP's.
    s.service.addFault({
      type: "throttle",
      status: 429,
      retryAfter: 3,
      match: { clientId: CERT_APP },
      times: 1,
    });
    await s.createRequest("throttled-first", s.spec("certificate"));
    const t = await s.waitFor("throttled-first", "False", "Throttled");
    expect(t.status?.throttle?.state).toBe("Throttled");
    expect(t.status?.throttle?.lastError).toContain("429");
    await s.waitFor("throttled-first", "True", undefined, 20_000);
  }, 40_000);

  it("treats AADSTS50196 (loop detected) as throttling", async () => {
    // The scenario's workload-identity registration is WI_APP's.
    s.service.addFault({ type: "loopDetected", match: { clientId: WI_APP }, times: 1 });
    await s.createRequest("loopy", s.spec("workloadIdentity"));
    const t = await eventually(async () => {
      const o = await s.getRequest("loopy");
      return o.status?.throttle?.state === "Throttled" ? o : undefined;
    }, "Throttled state after AADSTS50196");
    expect(t.status?.throttle?.lastError).toContain("50196");
  }, 40_000);
});
