/**
 * The shape every CEL rule and its TypeScript twin share, and the one CEL string semantic that the
 * rule modules and the zod schemas both need: CEL counts code points where JavaScript counts UTF-16
 * units. Kept apart so that the rule modules and schema-fields.ts depend on it, not on each other.
 */

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

/** CEL's size() of a string counts code points, not UTF-16 units. */
export const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};
