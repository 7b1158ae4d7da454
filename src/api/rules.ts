/**
 * The CRDs' CEL validation rules, each next to the same rule written in TypeScript. The CRD YAML is
 * the source of truth; the rule modules quote its `x-kubernetes-validations` verbatim (rule,
 * message, reason, fieldPath) and the unit tests fail when the two differ. The zod schemas run
 * `holds`, so the controller's second validation is the apiserver's first, rule for rule.
 *
 * The rules live by what they validate (token-rules.ts, credential-rules.ts, secret-rules.ts,
 * label-rules.ts, on the shape in cel-rule.ts). This module says where each list sits in each CRD,
 * which the drift test checks, and re-exports them all so that callers need one import.
 */
import type { CelRule } from "./cel-rule.js";
import {
  audienceRules,
  certificateSecretRefRules,
  credentialRules,
  extraClaimsRules,
} from "./credential-rules.js";
import {
  annotationKeyRules,
  labelKeyRules,
  labelSelectorKeyRules,
  labelSelectorRequirementRules,
  labelValueRules,
} from "./label-rules.js";
import {
  objectNameRules,
  secretKeyRules,
  secretTypeRules,
  templateDataRules,
  templateValueRules,
} from "./secret-rules.js";
import {
  allowedScopesRules,
  allowedTenantRules,
  allowedTenantsRules,
  authorityHostRules,
  clientIdRules,
  refreshBeforeRules,
  scopeRules,
  tenantIdRules,
} from "./token-rules.js";
import {
  APP_REGISTRATION_KIND,
  CLUSTER_APP_REGISTRATION_KIND,
  KIND as APP_TOKEN_REQUEST_KIND,
} from "./types.js";

export * from "./cel-rule.js";
export * from "./credential-rules.js";
export * from "./label-rules.js";
export * from "./secret-rules.js";
export * from "./token-rules.js";

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
