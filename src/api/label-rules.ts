/**
 * The rules on labels, annotations and label selectors. A CRD field typed as a map or a
 * metav1.LabelSelector gets none of the checks the apiserver gives built-in metadata, so they are
 * spelled out here, for the target Secret's template and for a cluster registration's selector.
 */
import { codePoints, type CelRule } from "./cel-rule.js";
import { compile, LABEL_VALUE_RE, QUALIFIED_NAME_RE } from "./patterns.js";

const qualifiedName = compile(QUALIFIED_NAME_RE);
const labelValue = compile(LABEL_VALUE_RE);

const isQualifiedName = (k: string): boolean => codePoints(k) <= 317 && qualifiedName.test(k);

export const labelKeyRules: readonly CelRule<Record<string, string>>[] = [
  {
    rule: `self.all(k, size(k) <= 317 && k.matches(r'${QUALIFIED_NAME_RE}'))`,
    message:
      "keys must be label keys: an optional DNS subdomain prefix and /, then a name of at most 63 characters",
    holds: (m) => Object.keys(m).every(isQualifiedName),
  },
];

export const annotationKeyRules: readonly CelRule<Record<string, string>>[] = [
  {
    rule: `self.all(k, size(k) <= 317 && k.matches(r'${QUALIFIED_NAME_RE}'))`,
    message:
      "keys must be annotation keys: an optional DNS subdomain prefix and /, then a name of at most 63 characters",
    holds: (m) => Object.keys(m).every(isQualifiedName),
  },
];

export const labelValueRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${LABEL_VALUE_RE}')`,
    message:
      "must be a label value: empty, or letters, digits, -, _ and . starting and ending with a letter or digit",
    holds: (s) => labelValue.test(s),
  },
];

/** A matchExpressions key: one label key, as labelKeyRules checks each key of a map. */
export const labelSelectorKeyRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${QUALIFIED_NAME_RE}')`,
    message:
      "must be a label key: an optional DNS subdomain prefix and /, then a name of at most 63 characters",
    holds: (k) => qualifiedName.test(k),
  },
];

/** One requirement of a label selector, as its rules see it. */
export interface LabelSelectorRequirementShape {
  operator: string;
  values?: readonly string[];
}

const hasValues = (r: LabelSelectorRequirementShape): boolean =>
  r.values !== undefined && r.values.length > 0;

/** metav1.LabelSelector's own validation of a requirement, which a CRD does not get for free. */
export const labelSelectorRequirementRules: readonly CelRule<LabelSelectorRequirementShape>[] = [
  {
    rule: "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
    message: "must be non-empty when operator is In or NotIn",
    reason: "FieldValueRequired",
    fieldPath: ".values",
    holds: (r) => !["In", "NotIn"].includes(r.operator) || hasValues(r),
  },
  {
    rule: "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
    message: "must be empty when operator is Exists or DoesNotExist",
    reason: "FieldValueForbidden",
    fieldPath: ".values",
    holds: (r) => !["Exists", "DoesNotExist"].includes(r.operator) || !hasValues(r),
  },
];
