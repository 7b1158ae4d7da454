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
 */
import { z } from "zod";
import {
  allowedScopesRules,
  allowedTenantRules,
  allowedTenantsRules,
  annotationKeyRules,
  audienceRules,
  authorityHostRules,
  certificateSecretRefRules,
  extraClaimsRules,
  clientIdRules,
  codePoints,
  credentialRules,
  labelKeyRules,
  labelSelectorKeyRules,
  labelSelectorRequirementRules,
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
import {
  compile,
  CONDITION_REASON_RE,
  CONDITION_TYPE_RE,
  OPENAPI_DATE_RE,
  OPENAPI_TIME_RE,
} from "./patterns.js";
import {
  APP_REF_KINDS,
  CLOUDS,
  CONDITION_STATUSES,
  CREDENTIAL_KINDS,
  DEFAULT_CLOUD,
  LABEL_SELECTOR_OPERATORS,
  THROTTLE_STATES,
  TOKEN_SOURCES,
  type AppRegistrationSpec,
  type AppRegistrationStatus,
  type AppTokenRequestSpec,
  type AppTokenRequestStatus,
  type ClusterAppRegistrationSpec,
} from "./types.js";

export { API_VERSION, GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION } from "./types.js";

/** Which of the apiserver's field error types an issue of our own stands for (see BLOCKING). */
type K8sErrorKind = "cel" | "tooLong" | "tooMany" | "pattern" | "format";
interface K8sIssueParams {
  k8s: K8sErrorKind;
  reason?: CelReason;
  /** The OpenAPI format a "format" issue is about. */
  format?: string;
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

/**
 * A size check that runs even when an item or value inside already failed: the apiserver reports
 * a too-long list or map next to its bad entries (zod would skip the check once they failed).
 */
function sizeCheck<T>(isShape: (v: unknown) => boolean, tooMany: (v: T) => string | undefined) {
  return z.superRefine<T>(
    (value, ctx) => {
      const message = tooMany(value);
      if (message !== undefined) ctx.addIssue(issue(value, "tooMany", message));
    },
    { when: (payload) => isShape(payload.value) },
  );
}

/** A map of strings with OpenAPI's maxProperties. */
function map<V extends z.ZodType<string>>(values: V, maxProperties: number) {
  return z
    .record(z.string(), values)
    .check(
      sizeCheck<Record<string, string>>(isObject, (v) => {
        const n = Object.keys(v).length;
        return n > maxProperties ? `Too many: ${n}: must have at most ${maxProperties} items` : undefined;
      }),
    )
    .meta({ maxProperties });
}

/** A list with OpenAPI's maxItems, refused in the apiserver's words rather than zod's. */
function list<I extends z.ZodType>(items: I, maxItems: number) {
  return z
    .array(items)
    .check(
      sizeCheck<unknown[]>(Array.isArray, (v) =>
        v.length > maxItems ? `Too many: ${v.length}: must have at most ${maxItems} items` : undefined,
      ),
    )
    .meta({ maxItems });
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

const openApiDate = compile(OPENAPI_DATE_RE);
const openApiTime = compile(OPENAPI_TIME_RE);

function daysInMonth(year: number, month: number): number {
  // Go's proleptic Gregorian calendar, year 0 a leap year; Date.UTC would read years 0-99 as 19xx.
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * `format: date-time` exactly as the apiserver checks it (kube-openapi's strfmt.IsDateTime), quirks
 * included: the text is cut at every "t" or "T", the first piece must be a real calendar date and
 * the second a time of day with a zone, and any further pieces are not looked at
 * ("2030-01-01T00:00:00Zt, anything" passes). Whoever reads such a field must still parse it.
 */
export function isApiserverDateTime(s: string): boolean {
  const pieces = s.split(/[tT]/);
  const [date, time] = pieces;
  if (date === undefined || time === undefined) return false;
  const d = openApiDate.exec(date);
  if (!d) return false;
  const [year, month, day] = [Number(d[1]), Number(d[2]), Number(d[3])];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  const t = openApiTime.exec(time);
  if (!t) return false;
  return Number(t[1]) <= 23 && Number(t[2]) <= 59 && Number(t[3]) <= 59;
}

/**
 * Runs the TypeScript twins of a node's CEL rules; a failed rule is reported on its fieldPath. The
 * apiserver runs every rule of every node, so a failure here must not stop zod from checking the
 * nodes around it: the issue is marked `continue`.
 */
function cel<T>(rules: readonly CelRule<T>[]) {
  return (ctx: z.core.ParsePayload<T>) => {
    for (const r of rules) {
      if (r.holds(ctx.value)) continue;
      const path = r.fieldPath === undefined ? [] : r.fieldPath.slice(1).split(".");
      ctx.issues.push({ ...issue(ctx.value, "cel", r.message, r.reason), path, continue: true });
    }
  };
}

function issue(input: unknown, k8s: K8sErrorKind, message: string, reason?: CelReason) {
  const params: K8sIssueParams = reason === undefined ? { k8s } : { k8s, reason };
  return { code: "custom" as const, message, input, params };
}

/** Marks a type error on a date-time field, which the apiserver words differently (see describe). */
const DATE_TIME_TYPE_ERROR = "date-time type error";

/**
 * A `format: date-time` string. One case cannot be mirrored: for a list where a date-time belongs
 * the apiserver checks neither type nor format (kube-openapi skips both for slices) and stores it;
 * zod refuses it, so the controller never reads a list where its types promise a string.
 */
const dateTime = () =>
  z
    .string({
      error: (i) => (i.code === "invalid_type" && i.input !== undefined ? DATE_TIME_TYPE_ERROR : undefined),
    })
    .check((ctx) => {
      if (!isApiserverDateTime(ctx.value)) {
        const params: K8sIssueParams = { k8s: "format", format: "date-time" };
        ctx.issues.push({ code: "custom", message: "must be of type date-time", input: ctx.value, params });
      }
    })
    .meta({ format: "date-time" });

// ---- shared by the three kinds ------------------------------------------------------------------

const objectName = () => str(253).check(cel(objectNameRules));
const secretKey = () => str(253).check(cel(secretKeyRules));
const secretKeyRef = () => z.object({ name: objectName(), key: secretKey() });

// ---- AppRegistration and ClusterAppRegistration -------------------------------------------------

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

const labelValue = () => str(63).check(cel(labelValueRules));

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

// ---- AppTokenRequest ----------------------------------------------------------------------------

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

// ---- status -------------------------------------------------------------------------------------

const count = () => z.int().min(0);

export const conditionSchema = z.object({
  type: str(316).check(matching(CONDITION_TYPE_RE)).meta({ pattern: CONDITION_TYPE_RE }),
  status: z.enum(CONDITION_STATUSES),
  observedGeneration: count().optional(),
  lastTransitionTime: dateTime(),
  reason: str(1024).check(matching(CONDITION_REASON_RE)).meta({ pattern: CONDITION_REASON_RE }),
  message: str(32768),
});

/*
 * The statuses the controller writes. They are only ever produced by our own code, so these
 * schemas exist to keep types, CRDs and zod in step (the drift test walks them) rather than to
 * guard input.
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

// ---- parsing ------------------------------------------------------------------------------------

export interface SpecIssue {
  /** The field as the apiserver writes it: "spec.credential.certificate.secretRef.pfxKey", "spec.target.template.data[auth]". */
  path: string;
  /** "<path>: <what is wrong>". */
  message: string;
}

export type ParseSpecResult<S = AppTokenRequestSpec> =
  { ok: true; spec: S } | { ok: false; issues: SpecIssue[] };

/** The apiserver's note when CEL rules were skipped because of a structural error. */
export const RULES_NOT_CHECKED =
  "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/**
 * Each parse function validates and defaults a spec as the apiserver would. None throws; anything
 * invalid comes back as issues, which the controller turns into Ready=False, reason InvalidSpec.
 */
export function parseAppTokenRequestSpec(obj: unknown): ParseSpecResult<AppTokenRequestSpec> {
  return parseSpec(appTokenRequestSpecSchema, obj, REQUEST_MAPS_WITH_KEY_RULES);
}

export function parseAppRegistrationSpec(obj: unknown): ParseSpecResult<AppRegistrationSpec> {
  return parseSpec(appRegistrationSpecSchema, obj, []);
}

export function parseClusterAppRegistrationSpec(obj: unknown): ParseSpecResult<ClusterAppRegistrationSpec> {
  return parseSpec(clusterAppRegistrationSpecSchema, obj, CLUSTER_REGISTRATION_MAPS_WITH_KEY_RULES);
}

function parseSpec<S extends z.ZodType>(
  schema: S,
  obj: unknown,
  mapsWithKeyRules: readonly MapWithKeyRules[],
): ParseSpecResult<z.output<S>> {
  if (obj === undefined || obj === null) {
    return { ok: false, issues: [{ path: "spec", message: "spec: Required value" }] };
  }
  const input = pruneNulls(obj);
  const result = schema.safeParse(input, { reportInput: true });
  const protoKeyIssues = checkProtoKeys(input, mapsWithKeyRules);
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
/**
 * The error types after which the apiserver runs no CEL rule (apiextensions-apiserver's
 * hasBlockingErr). A format error is one: the apiserver reports it as a type error.
 */
const BLOCKING: ReadonlySet<IssueKind> = new Set([
  "required",
  "typeInvalid",
  "notSupported",
  "tooLong",
  "tooMany",
  "format",
]);

function kindOf(i: z.core.$ZodIssue): IssueKind {
  switch (i.code) {
    case "custom":
      return (i.params as K8sIssueParams | undefined)?.k8s ?? "other";
    case "invalid_type":
      return i.input === undefined ? "required" : "typeInvalid";
    case "invalid_value":
      // zod reports a missing enum (appRef.kind, an operator) as a wrong value.
      return i.input === undefined ? "required" : "notSupported";
    default:
      return "other";
  }
}

function describe(i: z.core.$ZodIssue, kind: IssueKind, path: string): string {
  switch (kind) {
    case "required":
      return "Required value";
    case "typeInvalid": {
      if (i.message === DATE_TIME_TYPE_ERROR) {
        // The apiserver names what it got by Go's number format, or not at all.
        const got = typeof i.input === "number" ? (Number.isInteger(i.input) ? "int64" : "float64") : "";
        return `Invalid value: "${got}": ${path} in body must be of type date-time: "${got}"`;
      }
      const got = openApiType(i.input);
      const expected = i.code === "invalid_type" ? openApiTypeName(i.expected) : "object";
      return `Invalid value: "${got}": ${path} in body must be of type ${expected}: "${got}"`;
    }
    case "format": {
      const value = JSON.stringify(i.input);
      const format = i.code === "custom" ? (i.params as K8sIssueParams).format : undefined;
      return `Invalid value: ${value}: ${path} in body must be of type ${format ?? "string"}: ${value}`;
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
const MAP_FIELDS: ReadonlySet<PropertyKey> = new Set(["labels", "annotations", "data", "matchLabels"]);

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
 * Zod drops a `__proto__` map key (it cannot assign one safely), so the key rules of a map never
 * see it. The apiserver does, and rejects it; this runs those rules on it explicitly.
 */
type MapWithKeyRules = readonly [path: readonly string[], rules: readonly CelRule<Record<string, string>>[]];

const REQUEST_MAPS_WITH_KEY_RULES: readonly MapWithKeyRules[] = [
  [["target", "template", "metadata", "labels"], labelKeyRules],
  [["target", "template", "metadata", "annotations"], annotationKeyRules],
  [["target", "template", "data"], templateDataRules],
];

const CLUSTER_REGISTRATION_MAPS_WITH_KEY_RULES: readonly MapWithKeyRules[] = [
  [["namespaceSelector", "matchLabels"], labelKeyRules],
];

function checkProtoKeys(input: unknown, maps: readonly MapWithKeyRules[]): z.core.$ZodIssue[] {
  const issues: z.core.$ZodIssue[] = [];
  for (const [path, rules] of maps) {
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
 * defaults and validates, so `cloud: null` means "use the default", not "invalid". It looks inside
 * lists too, but leaves a null list item in place, where it is a type error.
 */
function pruneNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map((item: unknown) => pruneNulls(item));
  if (v === null || typeof v !== "object") return v;
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
