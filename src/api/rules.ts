/**
 * The CRDs' CEL validation rules, each next to the same rule written in TypeScript. The CRD YAML is
 * the source of truth; this file quotes its `x-kubernetes-validations` verbatim (rule, message,
 * reason, fieldPath) and the unit tests fail when the two differ. The zod schemas run `holds`, so
 * the controller's second validation is the apiserver's first, rule for rule.
 */
import { parseDurationNanos } from "./duration.js";
import {
  APP_REGISTRATION_KIND,
  CLUSTER_APP_REGISTRATION_KIND,
  KIND as APP_TOKEN_REQUEST_KIND,
} from "./types.js";
import {
  AUTHORITY_HOST_RE,
  compile,
  DEFAULT_NOT_LAST_RE,
  DNS1123_SUBDOMAIN_RE,
  DURATION_RE,
  GUID_RE,
  LABEL_VALUE_RE,
  QUALIFIED_NAME_RE,
  SCOPE_RE,
  SECRET_KEY_RE,
  TEMPLATE_VALUE_RE,
  TENANT_DOMAIN_RE,
} from "./patterns.js";

/** The `reason` values the apiserver accepts; they decide the error's type ("Invalid value", "Forbidden", ...). */
export type CelReason =
  "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";

export interface CelRule<T> {
  /** CEL source, exactly as in the CRD. */
  readonly rule: string;
  readonly message: string;
  readonly reason?: CelReason;
  /** Relative JSONPath (".pfxKey") of the field the error is reported on, when not the node itself. */
  readonly fieldPath?: string;
  /** The rule in TypeScript: true when `self` is valid. */
  readonly holds: (self: T) => boolean;
}

const guid = compile(GUID_RE);
const tenantDomain = compile(TENANT_DOMAIN_RE);
const scope = compile(SCOPE_RE);
const defaultNotLast = compile(DEFAULT_NOT_LAST_RE);
const authorityHost = compile(AUTHORITY_HOST_RE);
const dns1123Subdomain = compile(DNS1123_SUBDOMAIN_RE);
const secretKey = compile(SECRET_KEY_RE);
const duration = compile(DURATION_RE);
const templateValue = compile(TEMPLATE_VALUE_RE);
const qualifiedName = compile(QUALIFIED_NAME_RE);
const labelValue = compile(LABEL_VALUE_RE);

/** CEL's lowerAscii(): only A-Z change, unlike String.prototype.toLowerCase(). */
const lowerAscii = (s: string): string =>
  s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
/** CEL's size() of a string counts code points, not UTF-16 units. */
export const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

const MULTI_TENANT_ALIASES = ["common", "organizations", "consumers"];
const isAlias = (s: string): boolean => MULTI_TENANT_ALIASES.includes(lowerAscii(s));
const isTenant = (s: string): boolean => guid.test(s) || tenantDomain.test(s);

export const tenantIdRules: readonly CelRule<string>[] = [
  {
    rule: "!(self.lowerAscii() in ['common', 'organizations', 'consumers'])",
    message:
      "must name one tenant, not common, organizations or consumers: the client-credentials flow needs a tenant GUID or domain",
    holds: (s) => !isAlias(s),
  },
  {
    rule: `self.lowerAscii() in ['common', 'organizations', 'consumers'] || self.matches(r'${GUID_RE}') || self.matches(r'${TENANT_DOMAIN_RE}')`,
    message: "must be a tenant GUID or a DNS domain name such as contoso.onmicrosoft.com",
    holds: (s) => isAlias(s) || isTenant(s),
  },
];

/** One entry of a registration's allowedTenants: a tenant as tenantId names it, or "*". */
export const allowedTenantRules: readonly CelRule<string>[] = [
  {
    rule: "!(self.lowerAscii() in ['common', 'organizations', 'consumers'])",
    message:
      'must name one tenant, not common, organizations or consumers: "*" is how every tenant is allowed',
    holds: (s) => !isAlias(s),
  },
  {
    rule: `self == '*' || self.lowerAscii() in ['common', 'organizations', 'consumers'] || self.matches(r'${GUID_RE}') || self.matches(r'${TENANT_DOMAIN_RE}')`,
    message: 'must be "*", a tenant GUID or a DNS domain name such as contoso.onmicrosoft.com',
    holds: (s) => s === "*" || isAlias(s) || isTenant(s),
  },
];

/**
 * An empty allow-list would be the one value whose meaning flips in transit: clients that omit
 * empty lists (Go's omitempty) turn "no tenant" into "unset", which allows every tenant.
 */
export const allowedTenantsRules: readonly CelRule<readonly string[]>[] = [
  {
    rule: "size(self) > 0",
    message:
      'must not be empty: list at least one tenant, or "*"; leave allowedTenants unset to allow any tenant',
    holds: (l) => l.length > 0,
  },
];

export const allowedScopesRules: readonly CelRule<readonly string[]>[] = [
  {
    rule: "size(self) > 0",
    message: "must not be empty: list at least one scope; leave allowedScopes unset to allow any scope",
    holds: (l) => l.length > 0,
  },
];

export const clientIdRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${GUID_RE}')`,
    message: "must be a GUID: the application (client) ID of the app registration",
    holds: (s) => guid.test(s),
  },
];

export const scopeRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${SCOPE_RE}') && !self.matches(r'${DEFAULT_NOT_LAST_RE}')`,
    message:
      "must end with /.default and name exactly one resource, such as https://graph.microsoft.com/.default or api://<app-id>/.default",
    holds: (s) => scope.test(s) && !defaultNotLast.test(s),
  },
];

export const authorityHostRules: readonly CelRule<string>[] = [
  {
    rule: "self.startsWith('https://')",
    message: "must start with https://: the token service is only called over TLS",
    holds: (s) => s.startsWith("https://"),
  },
  {
    rule: `!self.startsWith('https://') || self.matches(r'${AUTHORITY_HOST_RE}')`,
    message: "must be https://host[:port][/path], without user info, query or fragment",
    holds: (s) => !s.startsWith("https://") || authorityHost.test(s),
  },
];

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

/** Names of Secrets, ServiceAccounts, registrations and the target Secret. */
export const objectNameRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${DNS1123_SUBDOMAIN_RE}')`,
    message:
      "must be a DNS-1123 subdomain (lowercase letters, digits, - and .), as Kubernetes object names are",
    holds: (s) => dns1123Subdomain.test(s),
  },
];

const isSecretKey = (s: string): boolean => secretKey.test(s) && s !== "." && !s.startsWith("..");

/** Keys read from or written to a Secret's data. */
export const secretKeyRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${SECRET_KEY_RE}') && self != '.' && !self.startsWith('..')`,
    message: "must be a valid Secret key: letters, digits, -, _ and ., neither . nor starting with ..",
    holds: isSecretKey,
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

export const secretTypeRules: readonly CelRule<string>[] = [
  {
    rule: "self != 'kubernetes.io/service-account-token'",
    message:
      "must not be kubernetes.io/service-account-token: the operator does not write service-account token Secrets",
    reason: "FieldValueForbidden",
    holds: (s) => s !== "kubernetes.io/service-account-token",
  },
];

const RESERVED_KEYS = ["access_token", "token_type", "expires_at"];

export const templateDataRules: readonly CelRule<Record<string, string>>[] = [
  {
    // __proto__ is a valid Secret key, but not one a JavaScript object can carry as data: the
    // operator (and zod) would drop it silently, so it is refused here instead.
    rule: `self.all(k, size(k) <= 253 && k.matches(r'${SECRET_KEY_RE}') && k != '.' && !k.startsWith('..') && k != '__proto__')`,
    message:
      "keys must be valid Secret keys: at most 253 letters, digits, -, _ and ., neither . nor starting with .., nor __proto__",
    holds: (d) => Object.keys(d).every((k) => codePoints(k) <= 253 && isSecretKey(k) && k !== "__proto__"),
  },
  {
    rule: "!self.exists(k, k in ['access_token', 'token_type', 'expires_at'])",
    message: "must not redefine access_token, token_type or expires_at, which the operator always writes",
    reason: "FieldValueForbidden",
    holds: (d) => !Object.keys(d).some((k) => RESERVED_KEYS.includes(k)),
  },
];

export const templateValueRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${TEMPLATE_VALUE_RE}')`,
    message: "may only use the placeholders {{ .accessToken }}, {{ .tokenType }} and {{ .expiresAt }}",
    holds: (s) => templateValue.test(s),
  },
];

const isQualifiedName = (k: string): boolean => codePoints(k) <= 317 && qualifiedName.test(k);

export const labelKeyRules: readonly CelRule<Record<string, string>>[] = [
  {
    rule: `self.all(k, size(k) <= 317 && k.matches(r'${QUALIFIED_NAME_RE}'))`,
    message:
      "keys must be label keys: an optional DNS subdomain prefix and /, then a name of at most 63 characters",
    holds: (m) => Object.keys(m).every(isQualifiedName),
  },
];

export const annotationKeyRules: readonly CelRule<Record<string, string>>[] = [
  {
    rule: `self.all(k, size(k) <= 317 && k.matches(r'${QUALIFIED_NAME_RE}'))`,
    message:
      "keys must be annotation keys: an optional DNS subdomain prefix and /, then a name of at most 63 characters",
    holds: (m) => Object.keys(m).every(isQualifiedName),
  },
];

export const labelValueRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${LABEL_VALUE_RE}')`,
    message:
      "must be a label value: empty, or letters, digits, -, _ and . starting and ending with a letter or digit",
    holds: (s) => labelValue.test(s),
  },
];

/** A matchExpressions key: one label key, as labelKeyRules checks each key of a map. */
export const labelSelectorKeyRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${QUALIFIED_NAME_RE}')`,
    message:
      "must be a label key: an optional DNS subdomain prefix and /, then a name of at most 63 characters",
    holds: (k) => qualifiedName.test(k),
  },
];

/** One requirement of a label selector, as its rules see it. */
export interface LabelSelectorRequirementShape {
  operator: string;
  values?: readonly string[];
}

const hasValues = (r: LabelSelectorRequirementShape): boolean =>
  r.values !== undefined && r.values.length > 0;

/** metav1.LabelSelector's own validation of a requirement, which a CRD does not get for free. */
export const labelSelectorRequirementRules: readonly CelRule<LabelSelectorRequirementShape>[] = [
  {
    rule: "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
    message: "must be non-empty when operator is In or NotIn",
    reason: "FieldValueRequired",
    fieldPath: ".values",
    holds: (r) => !["In", "NotIn"].includes(r.operator) || hasValues(r),
  },
  {
    rule: "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
    message: "must be empty when operator is Exists or DoesNotExist",
    reason: "FieldValueForbidden",
    fieldPath: ".values",
    holds: (r) => !["Exists", "DoesNotExist"].includes(r.operator) || !hasValues(r),
  },
];

const MAX_REFRESH_BEFORE_NS = 24n * 3_600_000_000_000n;

export const refreshBeforeRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${DURATION_RE}')`,
    message: "must be a duration such as 20m or 1h30m (units h, m, s, ms)",
    holds: (s) => duration.test(s),
  },
  {
    rule: `!self.matches(r'${DURATION_RE}') || (duration(self) > duration('0s') && duration(self) <= duration('24h'))`,
    message: "must be more than 0s and at most 24h: no access token lives longer than a day",
    holds: (s) => {
      if (!duration.test(s)) return true;
      // DURATION_RE keeps every accepted value in range, so this cannot throw.
      const ns = parseDurationNanos(s);
      return ns > 0n && ns <= MAX_REFRESH_BEFORE_NS;
    },
  },
];

/** A rule list and where it sits in a CRD, as a schema path ("*" for a map's values, "[]" for a list's items). */
export type CelRulesAt = readonly [path: string, rules: readonly CelRule<never>[]];

/** The credential and everything else the two registration kinds share. */
const REGISTRATION_SPEC_RULES: readonly CelRulesAt[] = [
  ["spec.clientId", clientIdRules],
  ["spec.authorityHost", authorityHostRules],
  ["spec.credential", credentialRules],
  ["spec.credential.clientSecret.secretRef.name", objectNameRules],
  ["spec.credential.clientSecret.secretRef.key", secretKeyRules],
  ["spec.credential.certificate.secretRef", certificateSecretRefRules],
  ["spec.credential.certificate.secretRef.name", objectNameRules],
  ["spec.credential.certificate.secretRef.certKey", secretKeyRules],
  ["spec.credential.certificate.secretRef.keyKey", secretKeyRules],
  ["spec.credential.certificate.secretRef.pfxKey", secretKeyRules],
  ["spec.credential.certificate.secretRef.passwordKey", secretKeyRules],
  ["spec.credential.certificate.extraClaims", extraClaimsRules],
  ["spec.credential.workloadIdentity.serviceAccountName", objectNameRules],
  ["spec.credential.workloadIdentity.audience", audienceRules],
  ["spec.credential.clientAssertion.secretRef.name", objectNameRules],
  ["spec.credential.clientAssertion.secretRef.key", secretKeyRules],
  ["spec.allowedTenants", allowedTenantsRules],
  ["spec.allowedTenants[]", allowedTenantRules],
  ["spec.allowedScopes", allowedScopesRules],
  ["spec.allowedScopes[]", scopeRules],
];

/**
 * Where each rule list sits in each CRD, by kind. The unit test walks every CRD and expects exactly
 * these rules at exactly these places.
 */
export const CEL_RULES_BY_PATH: Readonly<
  Record<
    typeof APP_TOKEN_REQUEST_KIND | typeof APP_REGISTRATION_KIND | typeof CLUSTER_APP_REGISTRATION_KIND,
    readonly CelRulesAt[]
  >
> = {
  [APP_TOKEN_REQUEST_KIND]: [
    ["spec.appRef.name", objectNameRules],
    ["spec.tenantId", tenantIdRules],
    ["spec.scope", scopeRules],
    ["spec.target.name", objectNameRules],
    ["spec.target.template.type", secretTypeRules],
    ["spec.target.template.metadata.labels", labelKeyRules],
    ["spec.target.template.metadata.labels.*", labelValueRules],
    ["spec.target.template.metadata.annotations", annotationKeyRules],
    ["spec.target.template.data", templateDataRules],
    ["spec.target.template.data.*", templateValueRules],
    ["spec.refreshBefore", refreshBeforeRules],
  ],
  [APP_REGISTRATION_KIND]: REGISTRATION_SPEC_RULES,
  [CLUSTER_APP_REGISTRATION_KIND]: [
    ...REGISTRATION_SPEC_RULES,
    ["spec.namespaceSelector.matchLabels", labelKeyRules],
    ["spec.namespaceSelector.matchLabels.*", labelValueRules],
    ["spec.namespaceSelector.matchExpressions[]", labelSelectorRequirementRules],
    ["spec.namespaceSelector.matchExpressions[].key", labelSelectorKeyRules],
    ["spec.namespaceSelector.matchExpressions[].values[]", labelValueRules],
  ],
};
