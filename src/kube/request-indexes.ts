/**
 * Secondary indexes over stored AppTokenRequests and registrations. They read the raw JSON shape
 * defensively: specs are not validated before they are stored (validation happens in reconcile,
 * which reports InvalidSpec), so a malformed spec just yields no index value.
 */
import { objectKey } from "./object-key.js";
import type { KubeObject } from "./types.js";

/**
 * Index name: the registration a request names, as registrationRefKey writes it
 * ("AppRegistration:ns/name" or "ClusterAppRegistration:name").
 */
export const APP_REF_INDEX = "appRef";
/** Index name: "ns/name" of the Secret a request writes its token to (detects two requests on one target). */
export const TARGET_SECRET_INDEX = "targetSecret";

function field(v: unknown, name: string): unknown {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>)[name] : undefined;
}

function nonEmptyString(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

/**
 * One string per registration, for indexes and queue keys: the kind, then the informer key of the
 * registration ("ns/name", or "name" for a cluster-scoped one). An AppRegistration is looked up in
 * the request's own namespace: appRef has no namespace field, so no request can name another's.
 */
export function registrationRefKey(kind: string, namespace: string | undefined, name: string): string {
  return [kind, objectKey(kind === "ClusterAppRegistration" ? undefined : namespace, name)].join(":");
}

/** The registration a request names, if its appRef is well-formed enough to name one. */
export function appRefKeys(obj: KubeObject): readonly string[] {
  const ref = field(field(obj, "spec"), "appRef");
  const kind = field(ref, "kind");
  const name = nonEmptyString(field(ref, "name"));
  if ((kind !== "AppRegistration" && kind !== "ClusterAppRegistration") || !name) return [];
  return [registrationRefKey(kind, obj.metadata.namespace, name)];
}

/** Index name: "ns/name" of the Secret a registration reads its credential from. */
export const CREDENTIAL_SECRET_INDEX = "credentialSecret";

/**
 * The credential Secret a registration names: in its own namespace, or for a cluster-scoped one
 * (no namespace) in `clusterResourceNamespace`.
 */
export function credentialSecretKeys(obj: KubeObject, clusterResourceNamespace: string): readonly string[] {
  const credential = field(field(obj, "spec"), "credential");
  const namespace = obj.metadata.namespace || clusterResourceNamespace;
  const out: string[] = [];
  for (const kind of ["clientSecret", "certificate", "clientAssertion"]) {
    const name = nonEmptyString(field(field(field(credential, kind), "secretRef"), "name"));
    if (name) out.push(objectKey(namespace, name));
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
