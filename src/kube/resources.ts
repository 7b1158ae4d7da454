/** The API resources src/kube lists, watches and writes, and how their URLs are built. */
export interface ResourceRef {
  /** "" for the core group. */
  group: string;
  version: string;
  plural: string;
}

export const APP_TOKEN_REQUESTS: ResourceRef = {
  group: "apptoken.io",
  version: "v1alpha1",
  plural: "apptokenrequests",
};
export const APP_REGISTRATIONS: ResourceRef = {
  group: "apptoken.io",
  version: "v1alpha1",
  plural: "appregistrations",
};
/** Cluster-scoped. */
export const CLUSTER_APP_REGISTRATIONS: ResourceRef = {
  group: "apptoken.io",
  version: "v1alpha1",
  plural: "clusterappregistrations",
};
/** Cluster-scoped; watched for their labels (ClusterAppRegistration.spec.namespaceSelector). */
export const NAMESPACES: ResourceRef = { group: "", version: "v1", plural: "namespaces" };
export const SECRETS: ResourceRef = { group: "", version: "v1", plural: "secrets" };
export const LEASES: ResourceRef = { group: "coordination.k8s.io", version: "v1", plural: "leases" };

/** The label every Secret the operator writes carries; informers select on it. */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "apptoken-operator";

/** Collection path: all namespaces when `namespace` is undefined. */
export function collectionPath(r: ResourceRef, namespace?: string): string {
  const base = r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  return namespace === undefined
    ? `${base}/${r.plural}`
    : `${base}/namespaces/${encodeURIComponent(namespace)}/${r.plural}`;
}

export function objectPath(r: ResourceRef, namespace: string, name: string): string {
  return `${collectionPath(r, namespace)}/${encodeURIComponent(name)}`;
}

/** Accept headers that make the API server send only metadata (client-go's metadata client uses the same). */
export const METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
export const METADATA_WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
