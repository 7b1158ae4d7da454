/**
 * metav1.Condition handling: lastTransitionTime moves only when status flips, as Kubernetes
 * conventions require, so that `kubectl describe` tells how long something has been broken.
 */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export function setCondition(
  existing: readonly Condition[] | undefined,
  next: Omit<Condition, "lastTransitionTime">,
  nowIso: string,
): Condition[] {
  const list = existing ? existing.filter((c) => c.type !== next.type) : [];
  const prev = existing?.find((c) => c.type === next.type);
  const lastTransitionTime = prev && prev.status === next.status ? prev.lastTransitionTime : nowIso;
  return [...list, { ...next, lastTransitionTime }].sort((a, b) => a.type.localeCompare(b.type));
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}
