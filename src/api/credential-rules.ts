/**
 * The rules on a registration's credential: that exactly one kind is set, and that a certificate's
 * Secret keys and extra claims cannot contradict what the operator puts in a client assertion.
 */
import type { CelRule } from "./cel-rule.js";

/** The four credential kinds, as the CEL rules see them: present or absent. */
export interface CredentialPresence {
  clientSecret?: unknown;
  certificate?: unknown;
  workloadIdentity?: unknown;
  clientAssertion?: unknown;
}
const credentialCount = (c: CredentialPresence): number =>
  (c.clientSecret !== undefined ? 1 : 0) +
  (c.certificate !== undefined ? 1 : 0) +
  (c.workloadIdentity !== undefined ? 1 : 0) +
  (c.clientAssertion !== undefined ? 1 : 0);

export const credentialRules: readonly CelRule<CredentialPresence>[] = [
  {
    rule: "has(self.clientSecret) || has(self.certificate) || has(self.workloadIdentity) || has(self.clientAssertion)",
    message:
      "exactly one of clientSecret, certificate, workloadIdentity or clientAssertion must be set; none is",
    reason: "FieldValueRequired",
    holds: (c) => credentialCount(c) >= 1,
  },
  {
    rule: "(has(self.clientSecret) ? 1 : 0) + (has(self.certificate) ? 1 : 0) + (has(self.workloadIdentity) ? 1 : 0) + (has(self.clientAssertion) ? 1 : 0) <= 1",
    message:
      "exactly one of clientSecret, certificate, workloadIdentity or clientAssertion must be set; more than one is",
    reason: "FieldValueForbidden",
    holds: (c) => credentialCount(c) <= 1,
  },
];

/** The certificate's secretRef, as its rules see it. */
export interface CertificateKeys {
  certKey?: string;
  keyKey?: string;
  pfxKey?: string;
  passwordKey?: string;
}

export const certificateSecretRefRules: readonly CelRule<CertificateKeys>[] = [
  {
    rule: "!has(self.pfxKey) || !(has(self.certKey) || has(self.keyKey))",
    message: "cannot be combined with certKey or keyKey: a PFX holds both the certificate and the key",
    reason: "FieldValueForbidden",
    fieldPath: ".pfxKey",
    holds: (r) => r.pfxKey === undefined || (r.certKey === undefined && r.keyKey === undefined),
  },
  {
    rule: "!has(self.passwordKey) || has(self.pfxKey)",
    message: "can only be used with pfxKey: only a PFX is password-protected",
    reason: "FieldValueForbidden",
    fieldPath: ".passwordKey",
    holds: (r) => r.passwordKey === undefined || r.pfxKey !== undefined,
  },
];

/** Claims of a certificate's client assertion that the operator sets, never a registration. */
export const RESERVED_ASSERTION_CLAIMS = ["aud", "iss", "sub", "jti", "nbf", "exp", "iat"] as const;

export const extraClaimsRules: readonly CelRule<Record<string, unknown>>[] = [
  {
    rule: `![${RESERVED_ASSERTION_CLAIMS.map((c) => `'${c}'`).join(", ")}].exists(c, c in self)`,
    message:
      "must not set aud, iss, sub, jti, nbf, exp or iat: the operator sets those claims of the assertion itself",
    holds: (claims) => !RESERVED_ASSERTION_CLAIMS.some((c) => Object.hasOwn(claims, c)),
  },
];

export const audienceRules: readonly CelRule<string>[] = [
  { rule: "self != ''", message: "must not be empty", holds: (s) => s !== "" },
];
