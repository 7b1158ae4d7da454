/**
 * The apptoken.io/v1alpha1 API as TypeScript sees it: AppRegistration and ClusterAppRegistration
 * (an Entra app and its credential, owned by whoever administers the namespace or the cluster) and
 * AppTokenRequest (a tenant and a scope asked of one registration). These mirror the CRDs in
 * crds/, which are the source of truth; field documentation lives there (and in `kubectl
 * explain`). schema.ts proves at compile time that its zod schemas produce exactly these shapes.
 *
 * Spec types describe a spec *after* the apiserver's defaulting: fields with a CRD default (cloud,
 * sendX5C) are always present in what the controller reads.
 */

export const GROUP = "apptoken.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}` as const;
export const KIND = "AppTokenRequest";
export const PLURAL = "apptokenrequests";
export const SINGULAR = "apptokenrequest";
export const SHORT_NAME = "atr";

export const APP_REGISTRATION_KIND = "AppRegistration";
export const APP_REGISTRATION_PLURAL = "appregistrations";
export const APP_REGISTRATION_SHORT_NAME = "appreg";
export const CLUSTER_APP_REGISTRATION_KIND = "ClusterAppRegistration";
export const CLUSTER_APP_REGISTRATION_PLURAL = "clusterappregistrations";
export const CLUSTER_APP_REGISTRATION_SHORT_NAME = "cappreg";

export const CLOUDS = ["AzurePublic", "AzureChina", "AzureUSGovernment"] as const;
export type Cloud = (typeof CLOUDS)[number];
export const DEFAULT_CLOUD: Cloud = "AzurePublic";

/** The token-exchange audience of each cloud: what a workload-identity token is minted for by default. */
export const TOKEN_EXCHANGE_AUDIENCES: Readonly<Record<Cloud, string>> = {
  AzurePublic: "api://AzureADTokenExchange",
  AzureChina: "api://AzureADTokenExchangeChina",
  AzureUSGovernment: "api://AzureADTokenExchangeUSGov",
};

/** Keys the operator always writes into the target Secret; a template cannot redefine them. */
export const TOKEN_SECRET_KEYS = ["access_token", "token_type", "expires_at"] as const;

/** Keys read from a certificate Secret when neither pfxKey nor certKey/keyKey say otherwise. */
export const DEFAULT_CERT_KEY = "tls.crt";
export const DEFAULT_KEY_KEY = "tls.key";

export interface SecretKeyRef {
  name: string;
  key: string;
}

export interface ClientSecretCredential {
  secretRef: SecretKeyRef;
  /** RFC 3339: when the secret expires (Entra shows it in the portal); only watched, never enforced by Entra through us. */
  expiresAt?: string;
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
  /** Extra claims merged into the signed client assertion; never aud, iss, sub, jti, nbf, exp, iat. */
  extraClaims?: Record<string, string>;
}

export interface WorkloadIdentityCredential {
  serviceAccountName: string;
  /**
   * The audience the service-account token is minted for. Optional: the token-exchange audience
   * of the registration's cloud when unset. Either way it must be one of the operator's
   * --allowed-token-audiences, or nothing is minted (AudienceNotAllowed).
   */
  audience?: string;
}

/** A signed JWT kept fresh in a Secret by another system (SPIFFE, a CI issuer, ...), sent as is. */
export interface ClientAssertionCredential {
  secretRef: SecretKeyRef;
}

/** Exactly one member is set (the CRD and the schema enforce it). */
export interface Credential {
  clientSecret?: ClientSecretCredential;
  certificate?: CertificateCredential;
  workloadIdentity?: WorkloadIdentityCredential;
  clientAssertion?: ClientAssertionCredential;
}

export const CREDENTIAL_KINDS = [
  "ClientSecret",
  "Certificate",
  "WorkloadIdentity",
  "ClientAssertion",
] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/** metav1.LabelSelector. */
export const LABEL_SELECTOR_OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"] as const;
export type LabelSelectorOperator = (typeof LABEL_SELECTOR_OPERATORS)[number];
export interface LabelSelectorRequirement {
  key: string;
  operator: LabelSelectorOperator;
  values?: string[];
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** The spec both registration kinds share: one Entra app and how to prove it is that app. */
export interface AppRegistrationSpec {
  clientId: string;
  cloud: Cloud;
  /** https://host[:port][/path]; must be in the operator's --allowed-authority-hosts. */
  authorityHost?: string;
  credential: Credential;
  /** Tenant GUIDs or domains requests may name; "*" = any. Unset = any. Compared case-insensitively. */
  allowedTenants?: string[];
  /** Exact scopes requests may name. Unset = any. */
  allowedScopes?: string[];
}

export interface ClusterAppRegistrationSpec extends AppRegistrationSpec {
  /** Namespaces whose requests may use it; required; {} selects every namespace. */
  namespaceSelector: LabelSelector;
}

export interface RegistrationCredentialStatus {
  kind?: CredentialKind;
  /** RFC 3339: certificate notAfter, clientSecret.expiresAt, or the client assertion's exp. */
  expiresAt?: string;
  /** Uppercase hex SHA-256 of the certificate (DER); certificates only. Never a secret. */
  thumbprintSHA256?: string;
}

export interface AppRegistrationStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  credential?: RegistrationCredentialStatus;
  /** AppTokenRequests that reference it now. */
  requests?: number;
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

export const APP_REF_KINDS = [APP_REGISTRATION_KIND, CLUSTER_APP_REGISTRATION_KIND] as const;
export type AppRefKind = (typeof APP_REF_KINDS)[number];

export interface AppRef {
  /** AppRegistration (same namespace as the request) or ClusterAppRegistration. */
  kind: AppRefKind;
  name: string;
}

export interface AppTokenRequestSpec {
  appRef: AppRef;
  tenantId: string;
  scope: string;
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

export const TOKEN_SOURCES = ["IdentityProvider", "Cache", "SharedCache"] as const;
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
export interface ObjectMetadata {
  name: string;
  /** Absent for a cluster-scoped object (a ClusterAppRegistration). */
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** A request's metadata: always namespaced. */
export type AppTokenRequestMetadata = ObjectMetadata & { namespace: string };

export interface AppTokenRequest {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: AppTokenRequestMetadata;
  spec: AppTokenRequestSpec;
  status?: AppTokenRequestStatus;
}

export interface AppRegistration {
  apiVersion: typeof API_VERSION;
  kind: typeof APP_REGISTRATION_KIND;
  metadata: ObjectMetadata & { namespace: string };
  spec: AppRegistrationSpec;
  status?: AppRegistrationStatus;
}

export interface ClusterAppRegistration {
  apiVersion: typeof API_VERSION;
  kind: typeof CLUSTER_APP_REGISTRATION_KIND;
  metadata: ObjectMetadata;
  spec: ClusterAppRegistrationSpec;
  status?: AppRegistrationStatus;
}
