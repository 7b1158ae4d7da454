/**
 * Transforms that decide what an informer's store keeps. At 10^5 objects the store is most of
 * the operator's memory, so each keeps only what the controller reads:
 * - managed Secrets: identity, labels, annotations, owners and type; never `data` (the token).
 * - AppTokenRequests: the object minus managedFields and kubectl's last-applied annotation,
 *   which together are often larger than the object itself.
 * Short strings repeated across objects (namespaces, owner kinds, the managed-by label, the app's
 * client id and scope) are interned so that 10^5 objects share one copy. High-cardinality values
 * (tenant ids — one per customer tenant —, user labels, uids) are not: they would only fill the
 * bounded pool.
 */
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from "./resources.js";
import type { KubeObject, ObjectMeta, OwnerReference, RawObject } from "./types.js";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

const POOL_LIMIT = 100_000;
const INTERN_MAX_LENGTH = 128;
const pool = new Map<string, string>();

/**
 * Returns a shared copy of a short, often-repeated string. Only call it for low-cardinality
 * values: the pool is bounded and never evicts, so unique values (uids, names) would waste it.
 */
export function intern<S extends string | undefined>(s: S): S {
  if (s === undefined || s.length > INTERN_MAX_LENGTH) return s;
  const found = pool.get(s);
  if (found !== undefined) return found as S;
  if (pool.size < POOL_LIMIT) pool.set(s, s);
  return s;
}

function internManagedBy(labels: Record<string, string> | undefined): Record<string, string> | undefined {
  const v = labels?.[MANAGED_BY_LABEL];
  if (labels && v !== undefined) labels[MANAGED_BY_LABEL] = intern(v);
  return labels;
}

function withoutLastApplied(m: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!m || !(LAST_APPLIED in m)) return m;
  const { [LAST_APPLIED]: _dropped, ...rest } = m;
  return rest;
}

function projectOwners(
  refs: OwnerReference[] | undefined,
  objectName: string | undefined,
): OwnerReference[] | undefined {
  if (!refs || refs.length === 0) return undefined;
  // Every field in one literal (absent ones undefined): V8 then keeps them all in the object,
  // where fields added afterwards would need a separate property array (~40 bytes per Secret).
  return refs.map((r): OwnerReference => ({
    apiVersion: intern(r.apiVersion),
    kind: intern(r.kind),
    // A target Secret is usually named after its request: one string for both.
    name: r.name === objectName && objectName !== undefined ? objectName : r.name,
    uid: r.uid,
    controller: r.controller,
    blockOwnerDeletion: r.blockOwnerDeletion,
  }));
}

/** The labels nearly every managed Secret has, exactly: one frozen object for all of them. */
const MANAGED_ONLY: Readonly<Record<string, string>> = Object.freeze({
  [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
});

function sharedLabels(labels: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!labels || labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) return labels;
  for (const k in labels) if (k !== MANAGED_BY_LABEL) return labels;
  return MANAGED_ONLY as Record<string, string>;
}

/** Annotations whose values few objects do not share (one per template): interned. */
const SHARED_ANNOTATIONS = ["apptoken.io/template-hash"] as const;

function internAnnotations(a: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!a) return a;
  for (const k of SHARED_ANNOTATIONS) if (a[k] !== undefined) a[k] = intern(a[k]);
  return a;
}

/** The metadata every projection keeps. */
export interface ProjectedMeta extends ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
}

function projectMeta(m: ObjectMeta, keepUid: boolean): ProjectedMeta {
  // One literal with every field (see projectOwners).
  return {
    name: m.name ?? "",
    namespace: intern(m.namespace ?? ""),
    uid: keepUid ? (m.uid ?? "") : "",
    resourceVersion: m.resourceVersion ?? "",
    labels: sharedLabels(internManagedBy(m.labels)),
    annotations: internAnnotations(withoutLastApplied(m.annotations)),
    ownerReferences: projectOwners(m.ownerReferences, m.name),
    deletionTimestamp: m.deletionTimestamp || undefined,
  };
}

/** A Secret as the managed-Secret informer stores it: no `data`, no `stringData`. */
export interface SecretProjection extends KubeObject {
  metadata: ProjectedMeta;
  type?: string;
  /** A digest of `data` (never the data), when the informer's transform computed one. */
  dataDigest?: number;
}

/**
 * For the managed-Secret informer (also accepts PartialObjectMetadata, which has no type). Without
 * the Secret's own uid, which nothing reads (ownership goes by the owner reference's uid): ~80
 * bytes per Secret.
 */
export function projectSecret(raw: RawObject): SecretProjection {
  return {
    metadata: projectMeta(raw.metadata, false),
    type: typeof raw.type === "string" ? intern(raw.type) : undefined,
    dataDigest: undefined,
  };
}

/** Metadata only, for watches whose events are signals rather than state. */
export function projectMetadata(raw: RawObject): KubeObject & { metadata: ProjectedMeta } {
  return { metadata: projectMeta(raw.metadata, true) };
}

/** Request spec fields that few distinct values share across many requests; interned. */
const SHARED_SPEC_FIELDS = ["scope"] as const;

/** Fields every decoded AppTokenRequest's metadata has, in the order the API server sends them. */
const REQUEST_META_FIELDS = new Set([
  "name",
  "namespace",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "labels",
  "annotations",
  "managedFields",
]);

/**
 * For the AppTokenRequest informer: the object as sent, minus managedFields and the last-applied
 * annotation, with shared strings interned. Reuses `raw` (it was just decoded and is owned by the
 * store from here on) but gives it a fresh metadata object: `delete` on the decoded one would turn
 * it into a dictionary-mode object, about 450 bytes more per request (a tenth of the operator's
 * whole per-request memory).
 */
export function trimAppTokenRequest(raw: RawObject): RawObject {
  const m = raw.metadata;
  const annotations = withoutLastApplied(m.annotations);
  const meta: ObjectMeta = {
    name: m.name,
    namespace: m.namespace === undefined ? undefined : intern(m.namespace),
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    generation: m.generation,
    creationTimestamp: m.creationTimestamp,
    labels: internManagedBy(m.labels),
    annotations: annotations && Object.keys(annotations).length > 0 ? annotations : undefined,
  };
  // Anything else (deletionTimestamp, ownerReferences, finalizers, ...) is kept as sent.
  for (const k of Object.keys(m)) {
    if (!REQUEST_META_FIELDS.has(k)) (meta as Record<string, unknown>)[k] = (m as Record<string, unknown>)[k];
  }
  raw.metadata = meta;
  if (raw.apiVersion) raw.apiVersion = intern(raw.apiVersion);
  if (raw.kind) raw.kind = intern(raw.kind);
  const spec = raw.spec;
  if (typeof spec === "object" && spec !== null) {
    const s = spec as Record<string, unknown>;
    for (const f of SHARED_SPEC_FIELDS) {
      const v = s[f];
      if (typeof v === "string") s[f] = intern(v);
    }
    // The registration reference is the same for every request of an app: one shared, frozen copy.
    if (typeof s.appRef === "object" && s.appRef !== null) s.appRef = shareObject(s.appRef);
  }
  // Status is mostly the operator's own words: condition types, statuses and reasons, the token's
  // source, and a Secret named after the request.
  const status = raw.status;
  if (typeof status === "object" && status !== null) {
    const st = status as Record<string, unknown>;
    if (typeof st.tokenSource === "string") st.tokenSource = intern(st.tokenSource);
    if (st.secretName === meta.name) st.secretName = meta.name;
    if (Array.isArray(st.conditions)) {
      for (const c of st.conditions as unknown[]) {
        if (typeof c !== "object" || c === null) continue;
        const cond = c as Record<string, unknown>;
        for (const f of ["type", "status", "reason"])
          if (typeof cond[f] === "string") cond[f] = intern(cond[f]);
      }
    }
  }
  return raw;
}

const SHARED_OBJECT_MAX_JSON = 512;
const objectPool = new Map<string, object>();

/**
 * One deeply frozen copy of each distinct small JSON object, found by its JSON text; bounded like
 * the string pool. Only for low-cardinality values, which readers never mutate (the spec is parsed
 * into fresh objects before use).
 */
export function shareObject<T extends object>(o: T): T {
  const json = JSON.stringify(o);
  if (json.length > SHARED_OBJECT_MAX_JSON) return o;
  const found = objectPool.get(json);
  if (found !== undefined) return found as T;
  if (objectPool.size >= POOL_LIMIT) return o;
  const frozen = deepFreeze(JSON.parse(json) as T);
  objectPool.set(json, frozen);
  return frozen;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}
