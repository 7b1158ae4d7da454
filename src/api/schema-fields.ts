/**
 * The pieces the three kinds' schemas are built from: zod types that check a value as the
 * apiserver's OpenAPI validation does (lengths in code points, sizes reported next to bad entries,
 * date-time with kube-openapi's quirks) and run a node's CEL rules as their TypeScript twins. Every
 * issue they raise carries the apiserver's error type (K8sIssueParams), which parse-spec.ts needs
 * to word it and to decide whether the CEL rules count at all.
 */
import { z } from "zod";
import { codePoints, type CelReason, type CelRule } from "./cel-rule.js";
import { labelValueRules } from "./label-rules.js";
import { compile, OPENAPI_DATE_RE, OPENAPI_TIME_RE } from "./patterns.js";
import { objectNameRules, secretKeyRules } from "./secret-rules.js";

/** Which of the apiserver's field error types an issue of ours stands for (see BLOCKING in parse-spec.ts). */
export type K8sErrorKind = "cel" | "tooLong" | "tooMany" | "pattern" | "format";
export interface K8sIssueParams {
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
export function str(maxLength: number) {
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
export function sizeCheck<T>(isShape: (v: unknown) => boolean, tooMany: (v: T) => string | undefined) {
  return z.superRefine<T>(
    (value, ctx) => {
      const message = tooMany(value);
      if (message !== undefined) ctx.addIssue(issue(value, "tooMany", message));
    },
    { when: (payload) => isShape(payload.value) },
  );
}

/** A map of strings with OpenAPI's maxProperties. */
export function map<V extends z.ZodType<string>>(values: V, maxProperties: number) {
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
export function list<I extends z.ZodType>(items: I, maxItems: number) {
  return z
    .array(items)
    .check(
      sizeCheck<unknown[]>(Array.isArray, (v) =>
        v.length > maxItems ? `Too many: ${v.length}: must have at most ${maxItems} items` : undefined,
      ),
    )
    .meta({ maxItems });
}

export function matching(pattern: string) {
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
export function cel<T>(rules: readonly CelRule<T>[]) {
  return (ctx: z.core.ParsePayload<T>) => {
    for (const r of rules) {
      if (r.holds(ctx.value)) continue;
      const path = r.fieldPath === undefined ? [] : r.fieldPath.slice(1).split(".");
      ctx.issues.push({ ...issue(ctx.value, "cel", r.message, r.reason), path, continue: true });
    }
  };
}

export function issue(input: unknown, k8s: K8sErrorKind, message: string, reason?: CelReason) {
  const params: K8sIssueParams = reason === undefined ? { k8s } : { k8s, reason };
  return { code: "custom" as const, message, input, params };
}

/** Marks a type error on a date-time field, which the apiserver words differently (see parse-spec.ts). */
export const DATE_TIME_TYPE_ERROR = "date-time type error";

/**
 * A `format: date-time` string. One case cannot be mirrored: for a list where a date-time belongs
 * the apiserver checks neither type nor format (kube-openapi skips both for slices) and stores it;
 * zod refuses it, so the controller never reads a list where its types promise a string.
 */
export const dateTime = () =>
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

// ---- fields more than one kind has --------------------------------------------------------------

export const objectName = () => str(253).check(cel(objectNameRules));
export const secretKey = () => str(253).check(cel(secretKeyRules));
export const secretKeyRef = () => z.object({ name: objectName(), key: secretKey() });
export const labelValue = () => str(63).check(cel(labelValueRules));

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
