/**
 * The spec schema of AppTokenRequest: which registration, tenant and scope a token is asked for,
 * and the Secret it is written to. The template's labels and annotations get the checks the
 * apiserver gives real metadata, because they end up on a Secret the operator writes.
 */
import { z } from "zod";
import { annotationKeyRules, labelKeyRules } from "./label-rules.js";
import { cel, labelValue, map, objectName, str } from "./schema-fields.js";
import { secretTypeRules, templateDataRules, templateValueRules } from "./secret-rules.js";
import { refreshBeforeRules, scopeRules, tenantIdRules } from "./token-rules.js";
import { APP_REF_KINDS } from "./types.js";

const templateSchema = z.object({
  type: str(253).check(cel(secretTypeRules)).optional(),
  metadata: z
    .object({
      labels: map(labelValue(), 32).check(cel(labelKeyRules)).optional(),
      annotations: map(str(4096), 32).check(cel(annotationKeyRules)).optional(),
    })
    .optional(),
  data: map(str(4096).check(cel(templateValueRules)), 32)
    .check(cel(templateDataRules))
    .optional(),
});

export const appTokenRequestSpecSchema = z.object({
  appRef: z.object({
    kind: z.enum(APP_REF_KINDS),
    name: objectName(),
  }),
  tenantId: str(253).check(cel(tenantIdRules)),
  scope: str(1024).check(cel(scopeRules)),
  target: z
    .object({
      name: objectName().optional(),
      template: templateSchema.optional(),
    })
    .optional(),
  refreshBefore: str(16).check(cel(refreshBeforeRules)).optional(),
});
