import type { LabelSelector } from "../../api/types.js";

/**
 * metav1.LabelSelector semantics, as the apiserver applies them: every matchLabels pair and every
 * expression must hold; `{}` selects everything. A requirement with an operator this code does
 * not know selects nothing, so a malformed selector can only narrow, never widen, who may use a
 * ClusterAppRegistration.
 */
export function selectorMatches(
  selector: LabelSelector,
  labels: Readonly<Record<string, string>> = {},
): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case "In":
        if (!has || !values.includes(labels[req.key]!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[req.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
