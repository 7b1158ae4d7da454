/**
 * Secondary indexes over stored AppTokenRequests. They read the raw JSON shape of DESIGN.md §2
 * defensively: specs are not validated before they are stored (validation happens in reconcile,
 * which reports InvalidSpec), so a malformed spec just yields no index value.
 */
import { objectKey } from "./object-key.js";
import type { KubeObject } from "./types.js";

/** Index name: "ns/name" of the Secret a request reads its credential from. */
export const CREDENTIAL_SECRET_INDEX = "credentialSecret";
/** Index name: "ns/name" of the Secret a request writes its token to (detects two requests on one target). */
export const TARGET_SECRET_INDEX = "targetSecret";

function field(v: unknown, name: string): unknown {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>)[name] : undefined;
}

function nonEmptyString(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

/** The credential Secret of a clientSecret or certificate credential (same namespace only, §2). */
export function credentialSecretKeys(obj: KubeObject): readonly string[] {
  const credential = field(field(obj, "spec"), "credential");
  const out: string[] = [];
  for (const kind of ["clientSecret", "certificate"]) {
    const name = nonEmptyString(field(field(field(credential, kind), "secretRef"), "name"));
    if (name) out.push(objectKey(obj.metadata.namespace, name));
  }
  return out;
}

/**
 * spec.target.name, defaulting to metadata.name. A Secret named after its request has the
 * request's own store key as its index value: `key`, one string for both.
 */
export function targetSecretKeys(obj: KubeObject, key?: string): readonly string[] {
  const name = nonEmptyString(field(field(field(obj, "spec"), "target"), "name")) ?? obj.metadata.name;
  if (!name) return [];
  return [name === obj.metadata.name && key !== undefined ? key : objectKey(obj.metadata.namespace, name)];
}

/** The "ns/name" of the object's controlling owner of `kind`, e.g. the request a managed Secret belongs to. */
export function controllerOwnerKey(obj: KubeObject, kind = "AppTokenRequest"): string | undefined {
  const owner = obj.metadata.ownerReferences?.find((r) => r.controller === true && r.kind === kind);
  return owner ? objectKey(obj.metadata.namespace, owner.name) : undefined;
}
