/**
 * Puts the desired target Secret in place: nothing when it is already current, a create, or a
 * replace from a fresh read when the informer's copy was stale. Someone else's Secret is examined
 * by its metadata alone and never overwritten.
 */
import type { AppTokenRequest } from "../api/types.js";
import type { Clock } from "../clock.js";
import type { KubeApiClient } from "../kube/api-client.js";
import type { Informer } from "../kube/informer.js";
import { objectKey } from "../kube/object-key.js";
import { projectSecret, type SecretProjection } from "../kube/projections.js";
import { KubeApiError, isConflict, isNotFound } from "../kube/transport.js";
import type { RawObject } from "../kube/types.js";
import type { Refusal } from "./checks.js";
import { OwnWrites } from "./own-writes.js";
import {
  isOwnedBy,
  secretDataDigest,
  secretIsCurrent,
  type DesiredSecret,
  type SecretLike,
} from "./target-secret.js";

export interface SecretWriteResult {
  created: boolean;
  /** The Secret could not be written as asked: a reason for the request. */
  conflict?: Refusal | undefined;
}

export interface SecretWriterDeps {
  clock: Clock;
  managedSecrets: Pick<Informer<SecretProjection>, "getByKey">;
  api: Pick<KubeApiClient, "createSecret" | "replaceSecret" | "getSecret" | "getSecretMetadata">;
}

export class SecretWriter {
  /** Target Secrets written here that the informer has not delivered back yet (see OwnWrites). */
  private readonly ownWrites: OwnWrites<SecretProjection>;

  constructor(private readonly d: SecretWriterDeps) {
    this.ownWrites = new OwnWrites(
      d.clock,
      (key) => d.managedSecrets.getByKey(key)?.metadata.resourceVersion,
    );
  }

  /** The target Secret as it stands: the informer's copy, or our own newer write it has not seen. */
  current(key: string): SecretProjection | undefined {
    return this.ownWrites.current(key, this.d.managedSecrets.getByKey(key));
  }

  /** Writes `desired` unless `existing` already is it; a Secret the API server refuses is a conflict. */
  async write(
    req: AppTokenRequest,
    existing: SecretProjection | undefined,
    desired: DesiredSecret,
    signal: AbortSignal,
  ): Promise<SecretWriteResult> {
    try {
      return await this.put(req, existing, desired, signal);
    } catch (e) {
      const rejected = secretRejected(e, desired.metadata.name);
      if (!rejected) throw e;
      return { created: false, conflict: rejected };
    }
  }

  // Stays whole: a two-attempt retry loop with local state (the informer's copy is trusted on the first).
  private async put(
    req: AppTokenRequest,
    existing: SecretProjection | undefined,
    desired: DesiredSecret,
    signal: AbortSignal,
  ): Promise<SecretWriteResult> {
    if (existing && secretIsCurrent(existing, desired)) return { created: false };
    if (!existing) {
      try {
        return await this.create(desired, signal);
      } catch (e) {
        if (!isConflict(e)) throw e;
        // It exists but is not in our label-selected informer (yet): read it to find out whose it is.
      }
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      const { namespace, name } = desired.metadata;
      // Whose it is, from its metadata alone: the data of someone else's Secret is never read.
      const owner =
        attempt === 0 && existing
          ? existing
          : await this.d.api.getSecretMetadata(namespace, name, signal).catch(undefinedIfNotFound);
      if (!owner) return this.create(desired, signal);
      if (!isOwnedBy(owner as SecretLike, req)) {
        return {
          created: false,
          conflict: {
            reason: "SecretConflict",
            message: `Secret ${name} already exists and is not owned by this AppTokenRequest; the operator never overwrites it. Delete it or set spec.target.name`,
          },
        };
      }
      const current =
        owner === existing
          ? existing
          : await this.d.api.getSecret(namespace, name, signal).catch(undefinedIfNotFound);
      if (!current) return this.create(desired, signal);
      // Our informer had not seen it yet, but it may already be what we want (our own earlier write).
      const fresh = {
        ...(current as SecretLike),
        dataDigest: secretDataDigest((current as { data?: unknown }).data),
      };
      if (secretIsCurrent(fresh, desired)) return { created: false };
      const type = (current as { type?: string }).type ?? "Opaque";
      if (type !== desired.type) {
        return {
          created: false,
          conflict: {
            reason: "SecretTypeImmutable",
            message: `Secret ${name} has type ${type} but the template asks for ${desired.type}; a Secret's type cannot change: delete the Secret and the operator recreates it`,
          },
        };
      }
      try {
        const written = await this.d.api.replaceSecret(toSecretBody(desired, current), signal);
        this.noteWrite(written, desired, current.metadata.resourceVersion);
        return { created: false };
      } catch (e) {
        if (!isConflict(e) || attempt === 1) throw e;
        // Our informer copy was stale: retry once from a fresh read.
      }
    }
    return { created: false };
  }

  private async create(desired: DesiredSecret, signal: AbortSignal): Promise<{ created: true }> {
    // Not noted as our own write: OwnWrites keeps replaces only (see OwnWrites.wrote).
    await this.d.api.createSecret(toSecretBody(desired, undefined), signal);
    return { created: true };
  }

  /** Remembers a write of ours until the informer delivers it (see OwnWrites.wrote). */
  private noteWrite(
    written: RawObject | undefined,
    desired: DesiredSecret,
    basedOn: string | undefined,
  ): void {
    if (!written?.metadata) return;
    const key = objectKey(desired.metadata.namespace, desired.metadata.name);
    const secret = projectSecret(written);
    secret.dataDigest = desired.dataDigest;
    this.ownWrites.wrote(key, secret, basedOn, this.current(key));
  }
}

function undefinedIfNotFound(e: unknown): undefined {
  if (isNotFound(e)) return undefined;
  throw e;
}

/**
 * The API server refused the Secret itself (422 Invalid, 400): e.g. a template type whose required
 * keys are missing (kubernetes.io/tls without tls.crt) or whose data must parse
 * (kubernetes.io/dockerconfigjson). Retrying cannot help until the spec changes, so it is a reason
 * on the request, not a reconcile error retried in silence. The server's message names the field;
 * it redacts Secret values, and anything JWT-shaped is cut out all the same.
 */
function secretRejected(e: unknown, name: string): Refusal | undefined {
  if (!(e instanceof KubeApiError) || (e.statusCode !== 422 && e.statusCode !== 400)) return undefined;
  const detail = (e.status?.message ?? `HTTP ${e.statusCode}`)
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, "[redacted]")
    .slice(0, 500);
  return {
    reason: "SecretRejected",
    message: `the API server refused Secret ${name}: ${detail}; check spec.target.template (type and data)`,
  };
}

/** The full Secret to send; keeps labels and annotations others put on our Secret. */
function toSecretBody(desired: DesiredSecret, current: RawObject | SecretProjection | undefined): RawObject {
  const meta = current?.metadata;
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: desired.metadata.name,
      namespace: desired.metadata.namespace,
      ...(meta?.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
      labels: { ...(meta?.labels ?? {}), ...desired.metadata.labels },
      annotations: { ...(meta?.annotations ?? {}), ...desired.metadata.annotations },
      // Other owners' references stay; ours is the one controller reference.
      ownerReferences: [
        ...(meta?.ownerReferences ?? []).filter((r) => r.controller !== true),
        ...desired.metadata.ownerReferences,
      ],
    },
    type: desired.type,
    data: desired.data,
  };
}
