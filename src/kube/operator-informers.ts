/**
 * The two informers the controller runs, configured for 10^5 objects: AppTokenRequests (trimmed,
 * indexed by credential and target Secret) and the operator's own Secrets (label-selected,
 * projected without data).
 */
import { Informer, type InformerOptions } from "./informer.js";
import { projectSecret, trimAppTokenRequest, type SecretProjection } from "./projections.js";
import {
  CREDENTIAL_SECRET_INDEX,
  TARGET_SECRET_INDEX,
  credentialSecretKeys,
  targetSecretKeys,
} from "./request-indexes.js";
import { APP_TOKEN_REQUESTS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRETS } from "./resources.js";
import type { KubeObject, RawObject } from "./types.js";

type CommonOptions = Omit<InformerOptions<KubeObject>, "name" | "resource" | "transform" | "labelSelector">;

/**
 * AppTokenRequests in `namespaces` (all when empty), with indexes CREDENTIAL_SECRET_INDEX and
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
  informer.addIndex(CREDENTIAL_SECRET_INDEX, credentialSecretKeys);
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
