/**
 * AppTokenRequest (apptoken.io/v1alpha1) as TypeScript sees it. These mirror
 * crds/apptoken.io_apptokenrequests.yaml, which is the source of truth; field documentation lives
 * there (and in `kubectl explain`). schema.ts proves at compile time that its zod schema produces
 * exactly these shapes.
 *
 * Spec types describe a spec *after* the apiserver's defaulting: fields with a CRD default (cloud,
 * sendX5C, audience) are always present in what the controller reads.
 */

export const GROUP = "apptoken.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}` as const;
export const KIND = "AppTokenRequest";
export const PLURAL = "apptokenrequests";
export const SINGULAR = "apptokenrequest";
export const SHORT_NAME = "atr";

export const CLOUDS = ["AzurePublic", "AzureChina", "AzureUSGovernment"] as const;
export type Cloud = (typeof CLOUDS)[number];
export const DEFAULT_CLOUD: Cloud = "AzurePublic";

/** The audience a service-account token is minted for when workloadIdentity.audience is not set. */
export const DEFAULT_WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange";

/** Keys the operator always writes into the target Secret; a template cannot redefine them. */
export const TOKEN_SECRET_KEYS = ["access_token", "token_type", "expires_at"] as const;

/** Keys read from a certificate Secret when neither pfxKey nor certKey/keyKey say otherwise. */
export const DEFAULT_CERT_KEY = "tls.crt";
export const DEFAULT_KEY_KEY = "tls.key";

export interface ClientSecretCredential {
  secretRef: { name: string; key: string };
}

export interface CertificateSecretRef {
  name: string;
  /** PEM certificate (chain); tls.crt when neither this nor pfxKey is set. */
  certKey?: string;
  /** PEM private key; tls.key when neither this nor pfxKey is set. */
  keyKey?: string;
  /** PKCS#12 file holding certificate and key; excludes certKey and keyKey. */
  pfxKey?: string;
  /** Password of the PFX; only with pfxKey. */
  passwordKey?: string;
}

export interface CertificateCredential {
  secretRef: CertificateSecretRef;
  sendX5C: boolean;
}

export interface WorkloadIdentityCredential {
  serviceAccountName: string;
  audience: string;
}

/** Exactly one member is set (the CRD and the schema enforce it). */
export interface Credential {
  clientSecret?: ClientSecretCredential;
  certificate?: CertificateCredential;
  workloadIdentity?: WorkloadIdentityCredential;
}

export interface SecretTemplate {
  type?: string;
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  /** Extra keys; values may use {{ .accessToken }}, {{ .tokenType }} and {{ .expiresAt }}. */
  data?: Record<string, string>;
}

export interface Target {
  /** Defaults to the request's metadata.name (applied by the controller, not the CRD). */
  name?: string;
  template?: SecretTemplate;
}

export interface AppTokenRequestSpec {
  tenantId: string;
  clientId: string;
  scope: string;
  cloud: Cloud;
  authorityHost?: string;
  credential: Credential;
  target?: Target;
  /** Go duration ("20m"); parse with parseDuration() from duration.ts. */
  refreshBefore?: string;
}

export const CONDITION_STATUSES = ["True", "False", "Unknown"] as const;
export type ConditionStatus = (typeof CONDITION_STATUSES)[number];

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  /** RFC 3339. */
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export const TOKEN_SOURCES = ["IdentityProvider", "Cache"] as const;
export type TokenSource = (typeof TOKEN_SOURCES)[number];

export const THROTTLE_STATES = ["None", "Backoff", "Throttled"] as const;
export type ThrottleState = (typeof THROTTLE_STATES)[number];

export interface ThrottleStatus {
  state?: ThrottleState;
  /** RFC 3339: no call to the token service for this key before then. */
  retryAfter?: string;
  consecutiveFailures?: number;
  lastError?: string;
}

export interface AppTokenRequestStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  secretName?: string;
  /** RFC 3339 date-times. */
  expiresAt?: string;
  refreshAt?: string;
  lastRefreshTime?: string;
  tokenSource?: TokenSource;
  cache?: { hits?: number; misses?: number };
  throttle?: ThrottleStatus;
}

/** The object metadata the operator relies on; the rest of ObjectMeta passes through untyped. */
export interface AppTokenRequestMetadata {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface AppTokenRequest {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: AppTokenRequestMetadata;
  spec: AppTokenRequestSpec;
  status?: AppTokenRequestStatus;
}
