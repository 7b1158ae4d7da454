/**
 * The controller's own validation of AppTokenRequest (DESIGN §2: "validation happens twice"). It
 * accepts and rejects exactly what the CRD does, in the same order the apiserver works:
 *
 *   1. nulls are pruned and unknown fields dropped (the apiserver prunes both before validating);
 *   2. defaults are applied (cloud, sendX5C, audience);
 *   3. the structural schema is checked: types, required fields, enums, maxLength, maxProperties;
 *   4. only if step 3 found nothing that "blocks" CEL (a wrong type, a missing field, an enum or size
 *      violation) are the CEL rules run, each as its TypeScript twin from rules.ts.
 *
 * Messages name the field as the apiserver does ("spec.scope: must end with /.default ..."), so a
 * user sees the same words in `kubectl apply` errors and in a Ready=False/InvalidSpec condition.
 */
import { z } from "zod";
import {
  annotationKeyRules,
  audienceRules,
  authorityHostRules,
  certificateSecretRefRules,
  clientIdRules,
  codePoints,
  credentialRules,
  labelKeyRules,
  labelValueRules,
  objectNameRules,
  refreshBeforeRules,
  scopeRules,
  secretKeyRules,
  secretTypeRules,
  templateDataRules,
  templateValueRules,
  tenantIdRules,
  type CelReason,
  type CelRule,
} from "./rules.js";
import { compile, CONDITION_REASON_RE, CONDITION_TYPE_RE, DATE_TIME_RE } from "./patterns.js";
import {
  CLOUDS,
  CONDITION_STATUSES,
  DEFAULT_CLOUD,
  DEFAULT_WORKLOAD_IDENTITY_AUDIENCE,
  THROTTLE_STATES,
  TOKEN_SOURCES,
  type AppTokenRequestSpec,
  type AppTokenRequestStatus,
} from "./types.js";

export { API_VERSION, GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION } from "./types.js";

/** Which of the apiserver's field error types an issue of our own stands for (see BLOCKING). */
type K8sErrorKind = "cel" | "tooLong" | "tooMany" | "pattern";
interface K8sIssueParams {
  k8s: K8sErrorKind;
  reason?: CelReason;
}

/**
 * A string limited like OpenAPI's maxLength: in code points, as the apiserver counts, not in UTF-16
 * units as z.string().max() would. The limit is also recorded as metadata so that the CRD drift test
 * sees it in z.toJSONSchema().
 */
function str(maxLength: number) {
  return z
    .string()
    .check((ctx) => {
      if (codePoints(ctx.value) > maxLength) {
        // "bytes" is the apiserver's word, though it counts code points too.
        ctx.issues.push(issue(ctx.value, "tooLong", `Too long: may not be more than ${maxLength} bytes`));
      }
    })
    .meta({ maxLength });
}

/** A map of strings with OpenAPI's maxProperties. */
function map<V extends z.ZodType<string>>(values: V, maxProperties: number) {
  return z
    .record(z.string(), values)
    .check((ctx) => {
      const n = Object.keys(ctx.value).length;
      if (n > maxProperties) {
        ctx.issues.push(
          issue(ctx.value, "tooMany", `Too many: ${n}: must have at most ${maxProperties} items`),
        );
      }
    })
    .meta({ maxProperties });
}

function matching(pattern: string) {
  const re = compile(pattern);
  return (ctx: z.core.ParsePayload<string>) => {
    if (!re.test(ctx.value)) {
      ctx.issues.push(
        issue(ctx.value, "pattern", `Invalid value: ${JSON.stringify(ctx.value)}: should match '${pattern}'`),
      );
    }
  };
}

/** Runs the TypeScript twins of a node's CEL rules; a failed rule is reported on its fieldPath. */
function cel<T>(rules: readonly CelRule<T>[]) {
  return (ctx: z.core.ParsePayload<T>) => {
    for (const r of rules) {
      if (r.holds(ctx.value)) continue;
      const path = r.fieldPath === undefined ? [] : r.fieldPath.slice(1).split(".");
      ctx.issues.push({ ...issue(ctx.value, "cel", r.message, r.reason), path });
    }
  };
}

function issue(input: unknown, k8s: K8sErrorKind, message: string, reason?: CelReason) {
  const params: K8sIssueParams = reason === undefined ? { k8s } : { k8s, reason };
  return { code: "custom" as const, message, input, params };
}

// ---- spec ---------------------------------------------------------------------------------------

const objectName = () => str(253).check(cel(objectNameRules));
const secretKey = () => str(253).check(cel(secretKeyRules));

const clientSecretSchema = z.object({
  secretRef: z.object({ name: objectName(), key: secretKey() }),
});

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
});

const workloadIdentitySchema = z.object({
  serviceAccountName: objectName(),
  audience: str(253).check(cel(audienceRules)).default(DEFAULT_WORKLOAD_IDENTITY_AUDIENCE),
});

const credentialSchema = z
  .object({
    clientSecret: clientSecretSchema.optional(),
    certificate: certificateSchema.optional(),
    workloadIdentity: workloadIdentitySchema.optional(),
  })
  .check(cel(credentialRules));

const templateSchema = z.object({
  type: str(253).check(cel(secretTypeRules)).optional(),
  metadata: z
    .object({
      labels: map(str(63).check(cel(labelValueRules)), 32)
        .check(cel(labelKeyRules))
        .optional(),
      annotations: map(str(4096), 32).check(cel(annotationKeyRules)).optional(),
    })
    .optional(),
  data: map(str(4096).check(cel(templateValueRules)), 32)
    .check(cel(templateDataRules))
    .optional(),
});

export const appTokenRequestSpecSchema = z.object({
  tenantId: str(253).check(cel(tenantIdRules)),
  clientId: str(36).check(cel(clientIdRules)),
  scope: str(1024).check(cel(scopeRules)),
  cloud: z.enum(CLOUDS).default(DEFAULT_CLOUD),
  authorityHost: str(512).check(cel(authorityHostRules)).optional(),
  credential: credentialSchema,
  target: z
    .object({
      name: objectName().optional(),
      template: templateSchema.optional(),
    })
    .optional(),
  refreshBefore: str(16).check(cel(refreshBeforeRules)).optional(),
});

// ---- status -------------------------------------------------------------------------------------

const dateTime = () => z.string().check(matching(DATE_TIME_RE)).meta({ format: "date-time" });
const count = () => z.int().min(0);

export const conditionSchema = z.object({
  type: str(316).check(matching(CONDITION_TYPE_RE)).meta({ pattern: CONDITION_TYPE_RE }),
  status: z.enum(CONDITION_STATUSES),
  observedGeneration: count().optional(),
  lastTransitionTime: dateTime(),
  reason: str(1024).check(matching(CONDITION_REASON_RE)).meta({ pattern: CONDITION_REASON_RE }),
  message: str(32768),
});

/**
 * The status the controller writes. It is only ever produced by our own code, so this schema
 * exists to keep types, CRD and zod in step (the drift test walks it) rather than to guard input.
 */
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

// Compile-time proof that types.ts and the schemas describe the same shapes.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const specTypesMatch: Equals<z.output<typeof appTokenRequestSpecSchema>, AppTokenRequestSpec> = true;
const statusTypesMatch: Equals<z.output<typeof appTokenRequestStatusSchema>, AppTokenRequestStatus> = true;
void specTypesMatch;
void statusTypesMatch;

// ---- parsing ------------------------------------------------------------------------------------

export interface SpecIssue {
  /** The field as the apiserver writes it: "spec.credential.certificate.secretRef.pfxKey", "spec.target.template.data[auth]". */
  path: string;
  /** "<path>: <what is wrong>". */
  message: string;
}

export type ParseSpecResult = { ok: true; spec: AppTokenRequestSpec } | { ok: false; issues: SpecIssue[] };

/** The apiserver's note when CEL rules were skipped because of a structural error. */
export const RULES_NOT_CHECKED =
  "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/**
 * Validates and defaults a spec as the apiserver would. Never throws; anything invalid comes back as
 * issues, which the controller turns into Ready=False, reason InvalidSpec.
 */
export function parseAppTokenRequestSpec(obj: unknown): ParseSpecResult {
  if (obj === undefined || obj === null) {
    return { ok: false, issues: [{ path: "spec", message: "spec: Required value" }] };
  }
  const input = pruneNulls(obj);
  const result = appTokenRequestSpecSchema.safeParse(input, { reportInput: true });
  const protoKeyIssues = checkProtoKeys(input);
  if (result.success && protoKeyIssues.length === 0) return { ok: true, spec: result.data };

  const zodIssues = result.success ? [] : result.error.issues;
  const classified = [...zodIssues, ...protoKeyIssues].map((i) => ({ issue: i, kind: kindOf(i) }));
  const blocked = classified.some((c) => BLOCKING.has(c.kind));
  const issues: SpecIssue[] = [];
  for (const { issue: i, kind } of classified) {
    if (blocked && kind === "cel") continue;
    const path = formatPath(["spec", ...i.path], kind === "cel");
    issues.push({ path, message: `${path}: ${describe(i, kind, path)}` });
  }
  if (blocked && classified.some((c) => c.kind === "cel")) {
    issues.push({ path: "spec", message: `spec: ${RULES_NOT_CHECKED}` });
  }
  return { ok: false, issues };
}

type IssueKind = K8sErrorKind | "required" | "typeInvalid" | "notSupported" | "other";
/** The error types after which the apiserver runs no CEL rule (apiextensions-apiserver's hasBlockingErr). */
const BLOCKING: ReadonlySet<IssueKind> = new Set([
  "required",
  "typeInvalid",
  "notSupported",
  "tooLong",
  "tooMany",
]);

function kindOf(i: z.core.$ZodIssue): IssueKind {
  switch (i.code) {
    case "custom":
      return (i.params as K8sIssueParams | undefined)?.k8s ?? "other";
    case "invalid_type":
      return i.input === undefined ? "required" : "typeInvalid";
    case "invalid_value":
      return "notSupported";
    default:
      return "other";
  }
}

function describe(i: z.core.$ZodIssue, kind: IssueKind, path: string): string {
  switch (kind) {
    case "required":
      return "Required value";
    case "typeInvalid": {
      const got = openApiType(i.input);
      const expected = i.code === "invalid_type" ? openApiTypeName(i.expected) : "object";
      return `Invalid value: "${got}": ${path} in body must be of type ${expected}: "${got}"`;
    }
    case "notSupported": {
      const values = i.code === "invalid_value" ? i.values.map((v) => JSON.stringify(v)).join(", ") : "";
      return `Unsupported value: ${JSON.stringify(i.input)}: supported values: ${values}`;
    }
    default:
      return i.message;
  }
}

function openApiTypeName(zodExpected: string): string {
  switch (zodExpected) {
    case "record":
      return "object";
    case "int":
      return "integer";
    default:
      return zodExpected;
  }
}

function openApiType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

/** Fields whose next path segment is a map key. */
const MAP_FIELDS: ReadonlySet<PropertyKey> = new Set(["labels", "annotations", "data"]);

/**
 * Writes a path as the apiserver does, quirks included: CEL errors put a map key in brackets
 * ("data[auth]") while OpenAPI schema errors join it with a dot ("data.auth").
 */
function formatPath(segments: readonly PropertyKey[], bracketMapKeys: boolean): string {
  let out = "";
  segments.forEach((s, idx) => {
    const prev = idx > 0 ? segments[idx - 1] : undefined;
    const mapKey = prev !== undefined && MAP_FIELDS.has(prev);
    if (typeof s === "number" || (mapKey && bracketMapKeys)) out += `[${String(s)}]`;
    else out += out === "" ? String(s) : `.${String(s)}`;
  });
  return out;
}

/**
 * Zod drops a `__proto__` map key (it cannot assign one safely), so the key rules of the three maps
 * never see it. The apiserver does, and rejects it; this runs those rules on it explicitly.
 */
const MAPS_WITH_KEY_RULES: ReadonlyArray<
  readonly [path: readonly string[], rules: readonly CelRule<Record<string, string>>[]]
> = [
  [["target", "template", "metadata", "labels"], labelKeyRules],
  [["target", "template", "metadata", "annotations"], annotationKeyRules],
  [["target", "template", "data"], templateDataRules],
];

function checkProtoKeys(input: unknown): z.core.$ZodIssue[] {
  const issues: z.core.$ZodIssue[] = [];
  for (const [path, rules] of MAPS_WITH_KEY_RULES) {
    let node: unknown = input;
    for (const segment of path) {
      node = isObject(node) && Object.hasOwn(node, segment) ? node[segment] : undefined;
    }
    if (!isObject(node) || !Object.hasOwn(node, "__proto__")) continue;
    const onlyThatKey: Record<string, string> = {};
    Object.defineProperty(onlyThatKey, "__proto__", { value: "", enumerable: true });
    for (const r of rules) {
      if (!r.holds(onlyThatKey)) {
        const { code, message, input: value, params } = issue(node, "cel", r.message, r.reason);
        issues.push({ code, message, input: value, params, path: [...path] });
      }
    }
  }
  return issues;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * The apiserver prunes null values of fields that are not nullable (none of ours is) before it
 * defaults and validates, so `cloud: null` means "use the default", not "invalid".
 */
function pruneNulls(v: unknown): unknown {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) {
    if (val === null) continue;
    // defineProperty, not assignment, so that a "__proto__" key stays a key (see checkProtoKeys).
    Object.defineProperty(out, k, {
      value: pruneNulls(val),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
