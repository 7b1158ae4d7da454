/**
 * The informers the controller runs, configured for 10^5 objects: AppTokenRequests (trimmed,
 * indexed by registration and target Secret), the operator's own Secrets (label-selected,
 * projected without data), the two registration kinds (few, indexed by credential Secret) and the
 * namespaces' labels.
 */
import { Informer, type InformerOptions } from "./informer.js";
import { projectSecret, trimAppTokenRequest, type SecretProjection } from "./projections.js";
import {
  APP_REF_INDEX,
  CREDENTIAL_SECRET_INDEX,
  TARGET_SECRET_INDEX,
  appRefKeys,
  credentialSecretKeys,
  targetSecretKeys,
} from "./request-indexes.js";
import {
  APP_REGISTRATIONS,
  APP_TOKEN_REQUESTS,
  CLUSTER_APP_REGISTRATIONS,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  NAMESPACES,
  SECRETS,
  type ResourceRef,
} from "./resources.js";
import type { KubeObject, RawObject } from "./types.js";

type CommonOptions = Omit<InformerOptions<KubeObject>, "name" | "resource" | "transform" | "labelSelector">;

/**
 * AppTokenRequests in `namespaces` (all when empty), with indexes APP_REF_INDEX and
 * TARGET_SECRET_INDEX. Resync defaults to 10 h like controller-runtime: refresh timing is the
 * queue's job; the resync only repairs anything missed.
 */
export function createAppTokenRequestInformer(
  options: CommonOptions & { transform?: (raw: RawObject) => RawObject },
): Informer<RawObject> {
  const informer = new Informer<RawObject>({
    resyncPeriodMs: 10 * 3600_000,
    ...options,
    name: "apptokenrequests",
    resource: APP_TOKEN_REQUESTS,
    transform: options.transform ?? trimAppTokenRequest,
  });
  informer.addIndex(APP_REF_INDEX, appRefKeys);
  informer.addIndex(TARGET_SECRET_INDEX, targetSecretKeys);
  return informer;
}

/**
 * Secrets labelled app.kubernetes.io/managed-by=apptoken-operator, stored as projections (no
 * data). The list and watch do carry data over the wire (`type` is not in metadata, and restart
 * hydration needs the tokens): a custom `transform` can read `raw.data` (e.g. to seed the token
 * cache) before returning `projectSecret(raw)`. No resync by default: request resyncs already
 * re-verify every Secret.
 */
export function createManagedSecretInformer(
  options: CommonOptions & { transform?: (raw: RawObject) => SecretProjection },
): Informer<SecretProjection> {
  return new Informer<SecretProjection>({
    ...options,
    name: "managed-secrets",
    resource: SECRETS,
    labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
    transform: options.transform ?? projectSecret,
  });
}

/**
 * AppRegistrations (in `namespaces`, all when empty) or ClusterAppRegistrations (cluster-wide),
 * indexed by the credential Secret they name (CREDENTIAL_SECRET_INDEX), so that a rotated Secret
 * re-queues its registrations and, through them, their requests.
 */
export function createRegistrationInformer(
  kind: "AppRegistration" | "ClusterAppRegistration",
  options: CommonOptions & { clusterResourceNamespace: string },
): Informer<RawObject> {
  const { clusterResourceNamespace, ...common } = options;
  const cluster = kind === "ClusterAppRegistration";
  const resource: ResourceRef = cluster ? CLUSTER_APP_REGISTRATIONS : APP_REGISTRATIONS;
  const informer = new Informer<RawObject>({
    ...common,
    ...(cluster ? { namespaces: undefined } : {}),
    name: resource.plural,
    resource,
    transform: withoutManagedFields,
  });
  informer.addIndex(CREDENTIAL_SECRET_INDEX, (obj) => credentialSecretKeys(obj, clusterResourceNamespace));
  return informer;
}

/** Namespaces, metadata only and reduced to name and labels: all a namespaceSelector reads. */
export function createNamespaceInformer(options: CommonOptions): Informer<KubeObject> {
  return new Informer<KubeObject>({
    ...options,
    namespaces: undefined,
    name: "namespaces",
    resource: NAMESPACES,
    metadataOnly: true,
    transform: (raw) => ({
      metadata: {
        name: raw.metadata.name,
        uid: raw.metadata.uid,
        resourceVersion: raw.metadata.resourceVersion,
        labels: raw.metadata.labels,
      },
    }),
  });
}

function withoutManagedFields(raw: RawObject): RawObject {
  delete raw.metadata.managedFields;
  return raw;
}
