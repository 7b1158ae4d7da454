/**
 * "Does the credential expire soon?", as a pure function of its expiry, the time and the warning
 * window (--credential-expiry-warning): the registration's CredentialExpiringSoon condition, and
 * when to look again (the next boundary: entering the window, then expiry).
 *
 * A client assertion is the exception: it lives minutes and another system replaces it long before
 * it expires, so it is always "inside" any window of days. Warning about it would flag every such
 * registration and emit an Event per rotation; its expiry is shown, and refused once past
 * (AssertionExpired), but never warned about.
 */
import type { CredentialKind } from "../../api/types.js";

/** A registration whose credential expires is looked at again at the latest this often. */
export const MAX_EXPIRY_RECHECK_MS = 24 * 3600_000;

export const EXPIRING_SOON = "CredentialExpiringSoon";

export type ExpiryState = "NoExpiry" | "Valid" | "ExpiringSoon" | "Expired" | "RefreshedElsewhere";

export interface ExpiryInput {
  kind: CredentialKind | undefined;
  /** Epoch ms; undefined when the credential has no known expiry. */
  expiresAt: number | undefined;
  now: number;
  warningMs: number;
}

export interface ExpiryDecision {
  state: ExpiryState;
  condition: { type: typeof EXPIRING_SOON; status: "True" | "False"; reason: string; message: string };
  /** Epoch ms of the next boundary worth a reconcile; undefined when time changes nothing. */
  nextCheckAt: number | undefined;
}

export function credentialExpiry(i: ExpiryInput): ExpiryDecision {
  const decide = (
    state: ExpiryState,
    status: "True" | "False",
    reason: string,
    message: string,
    nextCheckAt?: number,
  ): ExpiryDecision => ({
    state,
    condition: { type: EXPIRING_SOON, status, reason, message },
    nextCheckAt,
  });
  if (i.expiresAt === undefined || !Number.isFinite(i.expiresAt)) {
    return decide(
      "NoExpiry",
      "False",
      "NoExpiry",
      i.kind === "ClientSecret"
        ? "the client secret declares no expiry; set spec.credential.clientSecret.expiresAt (the portal shows it) to be warned before it expires"
        : "the credential has no expiry date to watch",
    );
  }
  const at = new Date(i.expiresAt).toISOString();
  if (i.now >= i.expiresAt) {
    return decide("Expired", "False", "CredentialExpired", `the credential expired at ${at}`);
  }
  if (i.kind === "ClientAssertion") {
    return decide(
      "RefreshedElsewhere",
      "False",
      "RefreshedElsewhere",
      `the client assertion expires at ${at}; it is short-lived and replaced by whatever writes its Secret, so only its expiry is refused`,
      i.expiresAt,
    );
  }
  if (i.expiresAt - i.now <= i.warningMs) {
    // The message names the date, not "in N days": it stays the same until the credential changes,
    // so the condition (and the one Warning Event it raises) is written once, not daily.
    return decide(
      "ExpiringSoon",
      "True",
      EXPIRING_SOON,
      `the credential expires at ${at}, within the ${window(i.warningMs)} warning window; rotate it before then`,
      i.expiresAt,
    );
  }
  return decide(
    "Valid",
    "False",
    "CredentialValid",
    `the credential expires at ${at}`,
    i.expiresAt - i.warningMs,
  );
}

/** How long until the decision's next boundary, as a requeue delay: at least 1 s, at most a day. */
export function expiryRecheckMs(decision: ExpiryDecision, now: number): number | undefined {
  if (decision.nextCheckAt === undefined) return undefined;
  return Math.min(Math.max(decision.nextCheckAt - now, 1_000), MAX_EXPIRY_RECHECK_MS);
}

function window(ms: number): string {
  const days = ms / 86_400_000;
  if (Number.isInteger(days)) return `${days}-day`;
  return `${Math.round((ms / 3_600_000) * 10) / 10}-hour`;
}
