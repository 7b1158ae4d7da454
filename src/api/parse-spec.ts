/**
 * Turns a spec into the apiserver's answer: the schema's issues as the apiserver would report them,
 * in its words and with its field paths. The schemas alone cannot say this: the apiserver prunes
 * nulls before it validates, runs no CEL rule after a "blocking" error, and sees map keys
 * (__proto__) that zod drops.
 */
import type { z } from "zod";
import type { CelRule } from "./cel-rule.js";
import { annotationKeyRules, labelKeyRules } from "./label-rules.js";
import { appRegistrationSpecSchema, clusterAppRegistrationSpecSchema } from "./registration-schema.js";
import { appTokenRequestSpecSchema } from "./request-schema.js";
import {
  DATE_TIME_TYPE_ERROR,
  isObject,
  issue,
  type K8sErrorKind,
  type K8sIssueParams,
} from "./schema-fields.js";
import { templateDataRules } from "./secret-rules.js";
import type { AppRegistrationSpec, AppTokenRequestSpec, ClusterAppRegistrationSpec } from "./types.js";

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
