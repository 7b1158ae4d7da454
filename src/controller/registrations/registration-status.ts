/**
 * What a registration's status says, as pure functions: the credential's public facts (kind,
 * expiry, certificate thumbprint; never a secret byte) and the Ready condition.
 */
import type {
  AppRegistrationStatus,
  Credential,
  CredentialKind,
  RegistrationCredentialStatus,
} from "../../api/types.js";
import type { ClientCredential, CredentialFacts } from "../../identity/index.js";
import { setCondition, type Condition } from "../conditions.js";
import type { ReadyVerdict } from "../status.js";

export function credentialKindOf(credential: Credential): CredentialKind | undefined {
  if (credential.clientSecret) return "ClientSecret";
  if (credential.certificate) return "Certificate";
  if (credential.workloadIdentity) return "WorkloadIdentity";
  if (credential.clientAssertion) return "ClientAssertion";
  return undefined;
}

/**
 * The facts about a credential that are safe to show anyone who may read the registration: from
 * the loaded credential, or from the error that refused it for its age.
 */
export function credentialFacts(
  spec: Credential,
  loaded: ClientCredential | CredentialFacts | undefined,
): RegistrationCredentialStatus | undefined {
  const kind = credentialKindOf(spec);
  if (kind === undefined) return undefined;
  const facts: RegistrationCredentialStatus = { kind };
  const notAfter = (loaded as { notAfter?: unknown } | undefined)?.notAfter;
  const x5tS256 = (loaded as { x5tS256?: unknown } | undefined)?.x5tS256;
  const expiresAt =
    kind === "ClientSecret"
      ? Date.parse(spec.clientSecret?.expiresAt ?? "")
      : typeof notAfter === "number"
        ? notAfter
        : NaN;
  const iso = rfc3339(expiresAt);
  if (iso !== undefined) facts.expiresAt = iso;
  // The certificate's public SHA-256 thumbprint, in the upper-case hex the Entra portal and
  // openssl show; a client secret gets none: even a hash of a secret is not shown.
  if (typeof x5tS256 === "string")
    facts.thumbprintSHA256 = Buffer.from(x5tS256, "base64url").toString("hex").toUpperCase();
  return facts;
}

/** Years 0000–9999 only: what RFC 3339 (and so the CRD's date-time) can say. */
function rfc3339(ms: number): string | undefined {
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return undefined;
  const iso = new Date(ms).toISOString();
  return /^\d{4}-/.test(iso) ? iso : undefined;
}

export interface RegistrationStatusInput {
  previous: AppRegistrationStatus | undefined;
  generation: number | undefined;
  ready: ReadyVerdict;
  /** The CredentialExpiringSoon condition (credential-expiry.ts); absent for an invalid spec. */
  expiringSoon?: ReadyVerdict | undefined;
  credential: RegistrationCredentialStatus | undefined;
  requests: number;
  now: number;
}

export function desiredRegistrationStatus(i: RegistrationStatusInput): AppRegistrationStatus {
  const generation = i.generation !== undefined ? { observedGeneration: i.generation } : {};
  const nowIso = new Date(i.now).toISOString();
  let conditions = setCondition(
    i.previous?.conditions as Condition[] | undefined,
    { type: "Ready", ...i.ready, ...generation },
    nowIso,
  );
  if (i.expiringSoon)
    conditions = setCondition(
      conditions,
      { type: "CredentialExpiringSoon", ...i.expiringSoon, ...generation },
      nowIso,
    );
  return {
    ...(i.generation !== undefined ? { observedGeneration: i.generation } : {}),
    conditions,
    ...(i.credential ? { credential: i.credential } : {}),
    requests: i.requests,
  };
}

/** A merge patch from `previous` to `desired`, or undefined when nothing changed. */
export function registrationStatusPatch(
  previous: AppRegistrationStatus | undefined,
  desired: AppRegistrationStatus,
): Record<string, unknown> | undefined {
  if (JSON.stringify(normalise(previous)) === JSON.stringify(normalise(desired))) return undefined;
  const credential = desired.credential
    ? {
        kind: desired.credential.kind ?? null,
        expiresAt: desired.credential.expiresAt ?? null,
        thumbprintSHA256: desired.credential.thumbprintSHA256 ?? null,
      }
    : null;
  return {
    observedGeneration: desired.observedGeneration ?? null,
    conditions: desired.conditions ?? null,
    credential,
    requests: desired.requests ?? 0,
  };
}

function normalise(s: AppRegistrationStatus | undefined): unknown {
  if (!s) return {};
  return {
    observedGeneration: s.observedGeneration,
    conditions: (s.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: c.lastTransitionTime,
      observedGeneration: c.observedGeneration,
    })),
    credential: s.credential
      ? {
          kind: s.credential.kind,
          expiresAt: s.credential.expiresAt,
          thumbprintSHA256: s.credential.thumbprintSHA256,
        }
      : undefined,
    requests: s.requests ?? 0,
  };
}
