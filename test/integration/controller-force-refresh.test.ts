/**
 * A storm of force-refresh values (a script or a GitOps loop rewriting the annotation) on the real
 * control plane: the operator makes at most one forced call per cache key per
 * --force-refresh-min-interval, and the token fetched at the interval's end answers every value set
 * meanwhile, on every request that shares the key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/kube.js";
import { SECRET_APP, Scenario } from "../support/scenario.js";

const FORCE = "apptoken.io/force-refresh";
/** Long enough that the 2 s storm falls inside one interval on a busy machine, short for the test. */
const INTERVAL_MS = 5_000;

describe("force-refresh coalescing", () => {
  const s = new Scenario({
    prefix: "ctl-force",
    operator: { args: ["--force-refresh-min-interval", `${INTERVAL_MS / 1000}s`] },
  });
  beforeAll(async () => {
    await s.start();
  }, 120_000);
  afterAll(async () => s.stop());

  /** One write of the annotation, straight to the API (a kubectl per write would pace the storm). */
  async function setForce(name: string, value: string): Promise<number> {
    await s.custom.patchNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: s.ns,
      plural: "apptokenrequests",
      name,
      body: [{ op: "add", path: "/metadata/annotations", value: { [FORCE]: value } }],
    });
    return Date.now();
  }

  it("turns 25 values written in 2 s into at most 2 token calls, and records the last one on the Secret", async () => {
    // Two requests on one cache key: the budget is the key's, not each request's.
    await s.createRequest("storm", s.spec("clientSecret"));
    await s.createRequest("storm-twin", s.spec("clientSecret"));
    await s.waitFor("storm", "True", "TokenIssued");
    await s.waitFor("storm-twin", "True", "TokenIssued");
    const callsBefore = s.service.requests({ clientId: SECRET_APP });

    const stormStart = Date.now();
    let lastSetAt = 0;
    let twinSetAt = 0;
    for (let i = 1; i <= 25; i++) {
      // A script writing every 80 ms: pace the writes over 2 s, as the loop in the field does.
      const due = stormStart + (i - 1) * 80;
      if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
      lastSetAt = await setForce("storm", `v${i}`);
      if (i === 12) twinSetAt = await setForce("storm-twin", "t1");
    }
    const stormTook = Date.now() - stormStart;
    // The premise: the storm fits in one interval (else a third call would be right).
    expect(stormTook).toBeLessThan(INTERVAL_MS - 1_000);

    // While the last value waits, Ready says when the forced call will be made.
    const waiting = await eventually(async () => {
      const ready = s.ready((await s.getRequest("storm")).status);
      return ready?.message.includes('force-refresh "v25" waits for the next forced call at')
        ? ready
        : undefined;
    }, "Ready to say that v25 waits");
    expect(waiting.status).toBe("True");

    const handled = await eventually(
      async () => {
        const sec = await s.secret("storm");
        return sec?.metadata?.annotations?.[FORCE] === "v25" ? sec : undefined;
      },
      "v25 recorded as handled on the Secret",
      INTERVAL_MS + 15_000,
    );
    const issuedAt = Date.parse(handled.metadata!.annotations!["apptoken.io/issued-at"]!);
    expect(issuedAt).toBeGreaterThan(lastSetAt);
    const twin = await eventually(async () => {
      const sec = await s.secret("storm-twin");
      return sec?.metadata?.annotations?.[FORCE] === "t1" ? sec : undefined;
    }, "the twin's value recorded as handled by the same token");
    expect(Date.parse(twin.metadata!.annotations!["apptoken.io/issued-at"]!)).toBeGreaterThan(twinSetAt);
    expect(s.decoded(twin, "access_token")).toBe(s.decoded(handled, "access_token"));

    // One call for v1 at once, one for everything after it at the interval's end.
    expect(s.service.requests({ clientId: SECRET_APP }) - callsBefore).toBeLessThanOrEqual(2);
    await eventually(async () => {
      const ready = s.ready((await s.getRequest("storm")).status);
      return ready?.status === "True" && !ready.message.includes("force-refresh") ? true : undefined;
    }, "Ready to stop mentioning the handled value");
  }, 60_000);
});
