import type { FailureKind } from "./errors.js";

/**
 * What an AADSTS code means for us: whether to wait (Throttled), retry soon (Transient) or stop
 * until someone fixes the spec or the credential (Permanent), and the CamelCase reason that
 * becomes the Ready condition's reason. Codes not listed here fall back on the HTTP status.
 *
 * Sources: the Entra ID error code reference (learn.microsoft.com/entra/identity-platform/
 * reference-error-codes) and the Azure SDK troubleshooting guides for ClientSecretCredential,
 * ClientCertificateCredential and ClientAssertionCredential.
 */
export interface AadstsMeaning {
  kind: FailureKind;
  reason: string;
}

const meanings: ReadonlyMap<string, AadstsMeaning> = new Map<string, AadstsMeaning>([
  // Throttling that Entra reports in the body rather than with a 429.
  ["50196", { kind: "Throttled", reason: "LoopDetected" }],
  ["90055", { kind: "Throttled", reason: "TenantThrottled" }],
  // "A transient error has occurred. Please try again."
  ["90033", { kind: "Transient", reason: "TokenServiceUnavailable" }],

  // Client secret
  ["7000215", { kind: "Permanent", reason: "InvalidClientSecret" }],
  ["7000222", { kind: "Permanent", reason: "ExpiredClientSecret" }],
  ["7000218", { kind: "Permanent", reason: "MissingClientCredential" }],

  // Application, tenant, resource, scope
  ["700016", { kind: "Permanent", reason: "UnknownClient" }],
  ["90002", { kind: "Permanent", reason: "UnknownTenant" }],
  ["90023", { kind: "Permanent", reason: "UnknownTenant" }],
  ["900023", { kind: "Permanent", reason: "InvalidTenantIdentifier" }],
  ["500011", { kind: "Permanent", reason: "UnknownResource" }],
  ["70011", { kind: "Permanent", reason: "InvalidScope" }],
  ["1002012", { kind: "Permanent", reason: "InvalidScope" }],
  ["7000112", { kind: "Permanent", reason: "ClientDisabled" }],
  ["90014", { kind: "Permanent", reason: "MissingRequestParameter" }],
  ["900144", { kind: "Permanent", reason: "MissingRequestParameter" }],
  ["9000411", { kind: "Permanent", reason: "DuplicateRequestParameter" }],
  ["70003", { kind: "Permanent", reason: "UnsupportedGrantType" }],

  // Certificate client assertions
  ["700027", { kind: "Permanent", reason: "CertificateNotRegistered" }],
  ["700024", { kind: "Permanent", reason: "AssertionNotInValidTimeRange" }],
  ["700023", { kind: "Permanent", reason: "AssertionAudienceMismatch" }],
  ["700021", { kind: "Permanent", reason: "AssertionIssuerMismatch" }],
  ["5002738", { kind: "Permanent", reason: "UnsupportedAssertionAlgorithm" }],
  ["50027", { kind: "Permanent", reason: "InvalidClientAssertion" }],

  // Federated (workload identity) assertions
  ["70021", { kind: "Permanent", reason: "FederatedIdentityMismatch" }],
  ["700211", { kind: "Permanent", reason: "FederatedIdentityMismatch" }],
  ["700212", { kind: "Permanent", reason: "FederatedIdentityMismatch" }],
  ["700213", { kind: "Permanent", reason: "FederatedIdentityMismatch" }],
]);

export function aadstsMeaning(code: string): AadstsMeaning | undefined {
  return meanings.get(code);
}
