/**
 * The statuses the controller writes, and their conditions. They are only ever produced by our own
 * code, so these schemas exist to keep types, CRDs and zod in step (the drift test walks them)
 * rather than to guard input.
 */
import { z } from "zod";
import { CONDITION_REASON_RE, CONDITION_TYPE_RE } from "./patterns.js";
import { dateTime, matching, str } from "./schema-fields.js";
import { CONDITION_STATUSES, CREDENTIAL_KINDS, THROTTLE_STATES, TOKEN_SOURCES } from "./types.js";

const count = () => z.int().min(0);

export const conditionSchema = z.object({
  type: str(316).check(matching(CONDITION_TYPE_RE)).meta({ pattern: CONDITION_TYPE_RE }),
  status: z.enum(CONDITION_STATUSES),
  observedGeneration: count().optional(),
  lastTransitionTime: dateTime(),
  reason: str(1024).check(matching(CONDITION_REASON_RE)).meta({ pattern: CONDITION_REASON_RE }),
  message: str(32768),
});

export const appTokenRequestStatusSchema = z.object({
  observedGeneration: count().optional(),
  conditions: z.array(conditionSchema).max(16).optional(),
  secretName: str(253).optional(),
  expiresAt: dateTime().optional(),
  refreshAt: dateTime().optional(),
  lastRefreshTime: dateTime().optional(),
  tokenSource: z.enum(TOKEN_SOURCES).optional(),
  cache: z.object({ hits: count().optional(), misses: count().optional() }).optional(),
  throttle: z
    .object({
      state: z.enum(THROTTLE_STATES).optional(),
      retryAfter: dateTime().optional(),
      consecutiveFailures: count().optional(),
      lastError: str(1024).optional(),
    })
    .optional(),
});

/** The status of both registration kinds. */
export const appRegistrationStatusSchema = z.object({
  observedGeneration: count().optional(),
  conditions: z.array(conditionSchema).max(16).optional(),
  credential: z
    .object({
      kind: z.enum(CREDENTIAL_KINDS).optional(),
      expiresAt: dateTime().optional(),
      thumbprintSHA256: str(64).optional(),
    })
    .optional(),
  requests: count().optional(),
});
