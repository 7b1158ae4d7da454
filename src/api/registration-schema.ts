/**
 * The spec schemas of AppRegistration and ClusterAppRegistration. The two kinds share one shape,
 * so that a registration validates the same whether it is namespaced or cluster-scoped; only the
 * cluster kind adds the namespaceSelector that says which namespaces may use it.
 */
import { z } from "zod";
import {
  audienceRules,
  certificateSecretRefRules,
  credentialRules,
  extraClaimsRules,
} from "./credential-rules.js";
import { labelKeyRules, labelSelectorKeyRules, labelSelectorRequirementRules } from "./label-rules.js";
import {
  cel,
  dateTime,
  isObject,
  labelValue,
  list,
  map,
  objectName,
  secretKey,
  secretKeyRef,
  sizeCheck,
  str,
} from "./schema-fields.js";
import {
  allowedScopesRules,
  allowedTenantRules,
  allowedTenantsRules,
  authorityHostRules,
  clientIdRules,
  scopeRules,
} from "./token-rules.js";
import { CLOUDS, DEFAULT_CLOUD, LABEL_SELECTOR_OPERATORS } from "./types.js";

const clientSecretSchema = z.object({
  secretRef: secretKeyRef(),
  expiresAt: dateTime().optional(),
});

const MAX_EXTRA_CLAIMS = 32;

const certificateSchema = z.object({
  secretRef: z
    .object({
      name: objectName(),
      certKey: secretKey().optional(),
      keyKey: secretKey().optional(),
      pfxKey: secretKey().optional(),
      passwordKey: secretKey().optional(),
    })
    .check(cel(certificateSecretRefRules)),
  sendX5C: z.boolean().default(false),
  extraClaims: z
    .record(z.string(), str(1024))
    .check(
      sizeCheck<Record<string, string>>(isObject, (v) => {
        const n = Object.keys(v).length;
        return n > MAX_EXTRA_CLAIMS
          ? `Too many: ${n}: must have at most ${MAX_EXTRA_CLAIMS} items`
          : undefined;
      }),
    )
    .check(cel(extraClaimsRules))
    .meta({ maxProperties: MAX_EXTRA_CLAIMS })
    .optional(),
});

const workloadIdentitySchema = z.object({
  serviceAccountName: objectName(),
  // No default: the controller picks the token-exchange audience of the registration's cloud.
  audience: str(253).check(cel(audienceRules)).optional(),
});

const clientAssertionSchema = z.object({ secretRef: secretKeyRef() });

const credentialSchema = z
  .object({
    clientSecret: clientSecretSchema.optional(),
    certificate: certificateSchema.optional(),
    workloadIdentity: workloadIdentitySchema.optional(),
    clientAssertion: clientAssertionSchema.optional(),
  })
  .check(cel(credentialRules));

const MAX_ALLOWED_ENTRIES = 64;

const registrationSpecShape = {
  clientId: str(36).check(cel(clientIdRules)),
  cloud: z.enum(CLOUDS).default(DEFAULT_CLOUD),
  authorityHost: str(512).check(cel(authorityHostRules)).optional(),
  credential: credentialSchema,
  allowedTenants: list(str(253).check(cel(allowedTenantRules)), MAX_ALLOWED_ENTRIES)
    .check(cel(allowedTenantsRules))
    .optional(),
  allowedScopes: list(str(1024).check(cel(scopeRules)), MAX_ALLOWED_ENTRIES)
    .check(cel(allowedScopesRules))
    .optional(),
};

export const appRegistrationSpecSchema = z.object(registrationSpecShape);

/** metav1.LabelSelector, with the checks the apiserver gives a built-in selector spelled out. */
const labelSelectorSchema = z.object({
  matchLabels: map(labelValue(), 32).check(cel(labelKeyRules)).optional(),
  matchExpressions: list(
    z
      .object({
        key: str(317).check(cel(labelSelectorKeyRules)),
        operator: z.enum(LABEL_SELECTOR_OPERATORS),
        values: list(labelValue(), 64).optional(),
      })
      .check(cel(labelSelectorRequirementRules)),
    16,
  ).optional(),
});

export const clusterAppRegistrationSpecSchema = z.object({
  ...registrationSpecShape,
  namespaceSelector: labelSelectorSchema,
});
