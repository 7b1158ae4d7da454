/**
 * Gathers what the checks read about one request: from the informers (no I/O), and then, once the
 * cheap checks pass, the registration's credential and token endpoint.
 */
import type { AppTokenRequest, AppTokenRequestSpec } from "../api/types.js";
import { isTokenAcquisitionError, tokenEndpointFor } from "../identity/index.js";
import { objectKey } from "../kube/object-key.js";
import { TARGET_SECRET_INDEX } from "../kube/request-indexes.js";
import type { RawObject } from "../kube/types.js";
import type { CredentialSnapshot, RequestSnapshot } from "./checks.js";
import type { ReconcilerDeps } from "./reconcile.js";
import { targetSecretName } from "./target-secret.js";

/** The reconciler's ports the snapshot reads. */
export type SnapshotSources = Pick<
  ReconcilerDeps,
  "clock" | "requests" | "managedSecrets" | "registrations" | "credentials" | "authority"
>;

/** Everything the request checks read, from the informers. */
export function gatherRequest(
  src: SnapshotSources,
  key: string,
  obj: RawObject,
  spec: AppTokenRequestSpec,
): RequestSnapshot {
  const req = { ...obj, spec } as unknown as AppTokenRequest;
  const ns = req.metadata.namespace;
  const secretName = targetSecretName(req);
  const secretKey = objectKey(ns, secretName);
  const claimants = src.requests.indexKeys(TARGET_SECRET_INDEX, secretKey).map((k) => ({
    key: k,
    createdAt: Date.parse(src.requests.getByKey(k)?.metadata.creationTimestamp ?? "") || 0,
  }));
  return {
    key,
    now: src.clock.now(),
    req,
    secretName,
    secret: src.managedSecrets.getByKey(secretKey),
    claimants,
    lookup: src.registrations.lookup(ns, spec.appRef, spec.tenantId, spec.scope),
  };
}

/**
 * The registration's credential and token endpoint, for a snapshot whose registration is usable.
 * Resolved only then because it may be I/O (a workload identity mints a service-account token). A
 * transient failure is thrown: a reconcile error, retried with backoff.
 */
export async function resolveCredential(
  src: SnapshotSources,
  snap: RequestSnapshot,
  signal: AbortSignal,
): Promise<CredentialSnapshot> {
  if (!snap.lookup.ok) throw new Error("resolveCredential: the registration was not checked first");
  const registration = snap.lookup.registration;
  const { spec } = registration;
  try {
    const credential = await src.credentials.resolve(
      registration.credentialNamespace,
      spec.credential,
      signal,
      spec.cloud,
    );
    const endpoint = tokenEndpointFor(
      { cloud: spec.cloud, authorityHost: spec.authorityHost, tenantId: snap.req.spec.tenantId },
      src.authority,
    );
    return { registration, resolved: { ok: true, credential, endpoint } };
  } catch (e) {
    if (!isTokenAcquisitionError(e) || e.kind === "Transient") throw e;
    return { registration, resolved: { ok: false, error: e } };
  }
}
