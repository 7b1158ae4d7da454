/**
 * What the request and managed-Secret informers keep of each object they decode: trimmed or
 * projected (of a Secret's data, only its digest, by which a rewrite is noticed), and one copy of
 * the strings many objects repeat. A request's status and its Secret's annotations carry the same
 * token times, so whichever of the two is decoded second takes the other's strings.
 */
import { intern, projectSecret, trimAppTokenRequest, type SecretProjection } from "../kube/projections.js";
import { controllerOwnerKey } from "../kube/request-indexes.js";
import type { RawObject } from "../kube/types.js";
import { shareStatusMessages, shareTokenTimes } from "./status.js";
import { ANNOTATION, secretDataDigest } from "./target-secret.js";

/** The request informer's transform; `secretOf` reads the managed-Secret informer. */
export function requestForInformer(
  raw: RawObject,
  secretOf: (namespace: string, name: string) => SecretProjection | undefined,
): RawObject {
  const trimmed = trimAppTokenRequest(raw);
  shareStatusMessages(trimmed.status);
  const secretName = (trimmed.status as { secretName?: unknown } | undefined)?.secretName;
  if (typeof secretName === "string") {
    const secret = secretOf(trimmed.metadata.namespace ?? "", secretName);
    shareTokenTimes(trimmed.status, secret?.metadata.annotations, "status");
  }
  return trimmed;
}

/** The managed-Secret informer's transform; `requestOf` reads the request informer. */
export function secretForInformer(
  raw: RawObject,
  requestOf: (key: string) => RawObject | undefined,
): SecretProjection {
  const projection = projectSecret(raw);
  if (raw.data !== undefined) projection.dataDigest = secretDataDigest(raw.data);
  const annotations = projection.metadata.annotations;
  // One copy per cache key (shared by every request on it), not one per Secret.
  const keyHash = annotations?.[ANNOTATION.cacheKeyHash];
  if (annotations && keyHash !== undefined) annotations[ANNOTATION.cacheKeyHash] = intern(keyHash);
  const ownerKey = controllerOwnerKey(projection);
  const request = ownerKey === undefined ? undefined : requestOf(ownerKey);
  if (request) {
    shareTokenTimes(request.status, annotations, "annotations");
    const ref = projection.metadata.ownerReferences?.find((r) => r.uid === request.metadata.uid);
    if (ref) ref.uid = request.metadata.uid ?? ref.uid;
  }
  return projection;
}
