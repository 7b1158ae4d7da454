/**
 * The controller's own validation of the three kinds: validation happens twice, once by the
 * apiserver against the CRD and once here, where the controller reads a spec. Each schema accepts
 * and rejects exactly what its CRD does, in the same order the apiserver works:
 *
 *   1. nulls are pruned and unknown fields dropped (the apiserver prunes both before validating);
 *   2. defaults are applied (cloud, sendX5C);
 *   3. the structural schema is checked: types, required fields, enums, formats, maxLength,
 *      maxProperties, maxItems;
 *   4. only if step 3 found nothing that "blocks" CEL (a wrong type or format, a missing field, an
 *      enum or size violation) are the CEL rules run, each as its TypeScript twin from rules.ts.
 *
 * Messages name the field as the apiserver does ("spec.scope: must end with /.default ..."), so a
 * user sees the same words in `kubectl apply` errors and in a Ready=False/InvalidSpec condition.
 *
 * This module is the entry point. The schemas are built from schema-fields.ts, one module per
 * object (request-schema.ts, registration-schema.ts, status-schema.ts), and parse-spec.ts runs them;
 * they are re-exported here, next to the proof that they match types.ts, so callers need one import.
 */
import type { z } from "zod";
import type { appRegistrationSpecSchema, clusterAppRegistrationSpecSchema } from "./registration-schema.js";
import type { appTokenRequestSpecSchema } from "./request-schema.js";
import type { appRegistrationStatusSchema, appTokenRequestStatusSchema } from "./status-schema.js";
import type {
  AppRegistrationSpec,
  AppRegistrationStatus,
  AppTokenRequestSpec,
  AppTokenRequestStatus,
  ClusterAppRegistrationSpec,
} from "./types.js";

export { API_VERSION, GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION } from "./types.js";
export {
  parseAppRegistrationSpec,
  parseAppTokenRequestSpec,
  parseClusterAppRegistrationSpec,
  RULES_NOT_CHECKED,
  type ParseSpecResult,
  type SpecIssue,
} from "./parse-spec.js";
export { appRegistrationSpecSchema, clusterAppRegistrationSpecSchema } from "./registration-schema.js";
export { appTokenRequestSpecSchema } from "./request-schema.js";
export { isApiserverDateTime } from "./schema-fields.js";
export {
  appRegistrationStatusSchema,
  appTokenRequestStatusSchema,
  conditionSchema,
} from "./status-schema.js";

// Compile-time proof that types.ts and the schemas describe the same shapes.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const typesMatch: [
  Equals<z.output<typeof appTokenRequestSpecSchema>, AppTokenRequestSpec>,
  Equals<z.output<typeof appTokenRequestStatusSchema>, AppTokenRequestStatus>,
  Equals<z.output<typeof appRegistrationSpecSchema>, AppRegistrationSpec>,
  Equals<z.output<typeof clusterAppRegistrationSpecSchema>, ClusterAppRegistrationSpec>,
  Equals<z.output<typeof appRegistrationStatusSchema>, AppRegistrationStatus>,
] = [true, true, true, true, true];
void typesMatch;
