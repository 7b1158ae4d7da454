/**
 * The few shapes of Kubernetes JSON that src/kube reads. Objects are kept as the plain JSON the
 * API server sent (not client-node's model classes, which turn timestamps into Date objects and
 * copy every field): smaller in memory, and what the store's transforms project from.
 */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: unknown[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** An object as decoded from the API: metadata plus whatever the kind carries. */
export interface RawObject extends KubeObject {
  [field: string]: unknown;
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface KubeList {
  metadata?: ListMeta;
  items?: RawObject[];
}

/** meta/v1 Status: the body of API errors and of watch ERROR events. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  code?: number;
  reason?: string;
  message?: string;
  details?: { causes?: { reason?: string; message?: string; field?: string }[] };
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent {
  type: WatchEventType;
  object: unknown;
}

export function isKubeObject(value: unknown): value is RawObject {
  if (typeof value !== "object" || value === null) return false;
  const meta = (value as { metadata?: unknown }).metadata;
  return typeof meta === "object" && meta !== null;
}
