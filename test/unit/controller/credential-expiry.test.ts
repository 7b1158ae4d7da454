import { describe, expect, it } from "vitest";
import {
  MAX_EXPIRY_RECHECK_MS,
  credentialExpiry,
  expiryRecheckMs,
} from "../../../src/controller/registrations/credential-expiry.js";
import { FakeClock } from "../../support/fake-clock.js";

const DAY = 86_400_000;
const WINDOW = 30 * DAY;

describe("credentialExpiry: does a registration's credential expire soon?", () => {
  const clock = new FakeClock();
  const now = clock.now();

  it.each([
    ["far (90 days)", "Certificate", 90 * DAY, "Valid", "False", "CredentialValid", 60 * DAY],
    [
      "inside the window (10 days)",
      "Certificate",
      10 * DAY,
      "ExpiringSoon",
      "True",
      "CredentialExpiringSoon",
      10 * DAY,
    ],
    [
      "at the window's edge (30 days)",
      "ClientSecret",
      30 * DAY,
      "ExpiringSoon",
      "True",
      "CredentialExpiringSoon",
      30 * DAY,
    ],
    ["expired an hour ago", "Certificate", -3_600_000, "Expired", "False", "CredentialExpired", undefined],
    ["expiring this very millisecond", "ClientSecret", 0, "Expired", "False", "CredentialExpired", undefined],
    [
      "a client assertion a few minutes from its exp",
      "ClientAssertion",
      5 * 60_000,
      "RefreshedElsewhere",
      "False",
      "RefreshedElsewhere",
      5 * 60_000,
    ],
  ] as const)("%s", (_name, kind, inMs, state, status, reason, nextInMs) => {
    const d = credentialExpiry({ kind, expiresAt: now + inMs, now, warningMs: WINDOW });
    expect(d.state).toBe(state);
    expect(d.condition).toMatchObject({ type: "CredentialExpiringSoon", status, reason });
    expect(d.condition.message).toContain(new Date(now + inMs).toISOString());
    expect(d.nextCheckAt).toBe(nextInMs === undefined ? undefined : now + nextInMs);
  });

  it("has nothing to watch without an expiry, and says how a client secret gets one", () => {
    const secret = credentialExpiry({ kind: "ClientSecret", expiresAt: undefined, now, warningMs: WINDOW });
    expect(secret).toMatchObject({ state: "NoExpiry", nextCheckAt: undefined });
    expect(secret.condition).toMatchObject({ status: "False", reason: "NoExpiry" });
    expect(secret.condition.message).toContain("spec.credential.clientSecret.expiresAt");
    const wi = credentialExpiry({ kind: "WorkloadIdentity", expiresAt: undefined, now, warningMs: WINDOW });
    expect(wi.state).toBe("NoExpiry");
  });

  it("keeps the same message as time passes inside the window, so the one Event is not raised again", () => {
    const expiresAt = now + 10 * DAY;
    const today = credentialExpiry({ kind: "Certificate", expiresAt, now, warningMs: WINDOW });
    clock.advance(3 * DAY);
    const later = credentialExpiry({ kind: "Certificate", expiresAt, now: clock.now(), warningMs: WINDOW });
    expect(later.condition).toEqual(today.condition);
    expect(today.condition.message).toContain("30-day warning window");
  });

  it("names a window that is not whole days in hours", () => {
    const d = credentialExpiry({
      kind: "Certificate",
      expiresAt: now + 3_600_000,
      now,
      warningMs: 36 * 3_600_000 + 1,
    });
    expect(d.condition.message).toContain("36-hour warning window");
  });

  it("requeues at the next boundary, at least a second and at most a day away", () => {
    const far = credentialExpiry({ kind: "Certificate", expiresAt: now + 90 * DAY, now, warningMs: WINDOW });
    expect(expiryRecheckMs(far, now)).toBe(MAX_EXPIRY_RECHECK_MS);
    const soon = credentialExpiry({ kind: "Certificate", expiresAt: now + 5_000, now, warningMs: WINDOW });
    expect(expiryRecheckMs(soon, now)).toBe(5_000);
    const entering = credentialExpiry({
      kind: "Certificate",
      expiresAt: now + WINDOW + 60_000,
      now,
      warningMs: WINDOW,
    });
    expect(expiryRecheckMs(entering, now)).toBe(60_000);
    const expired = credentialExpiry({ kind: "Certificate", expiresAt: now - 1, now, warningMs: WINDOW });
    expect(expiryRecheckMs(expired, now)).toBeUndefined();
  });
});
