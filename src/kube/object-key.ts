/**
 * Work-queue and store keys are "namespace/name" (just "name" for cluster-scoped objects), as in
 * client-go. Built with join, which makes one flat string: a template literal makes a rope (a
 * "ns/" string plus a cons cell) that costs 24 more bytes for every copy a map or heap keeps, and
 * 10^5 requests have several copies each.
 */
export function objectKey(namespace: string | undefined, name: string): string {
  return namespace ? [namespace, name].join("/") : name;
}

export function splitObjectKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { namespace: "", name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
