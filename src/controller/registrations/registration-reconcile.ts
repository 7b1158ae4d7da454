/**
 * What happens when an AppRegistration or ClusterAppRegistration is created, changed, or its
 * credential Secret changes: its credential is loaded (once, for every request that uses it) and
 * its status says whether that worked, what the credential is and until when, and how many
 * requests use it. Requests do not wait on this: each one asks the same shared, memoized resolver.
 *
 *   is the spec valid?                 -> InvalidSpec
 *   may its authority be called?       -> AuthorityNotAllowed, InsecureAuthority
 *   is the credential usable?          -> CredentialSecretNotFound, MalformedPem, AudienceNotAllowed,
 *                                         ServiceAccountNotFound, AssertionExpired, ...
 *   how many requests use it?          -> status.requests
 */
import type { Logger } from "pino";
import { API_VERSION } from "../../api/types.js";
import type { AppRegistrationStatus } from "../../api/types.js";
import type { Clock } from "../../clock.js";
import type { AuthorityPolicy, ClientCredential } from "../../identity/index.js";
import { authorityBaseFor, isTokenAcquisitionError } from "../../identity/index.js";
import type { KubeApiClient } from "../../kube/api-client.js";
import type { EventRecorder } from "../../kube/events.js";
import type { Informer } from "../../kube/informer.js";
import { APP_REF_INDEX } from "../../kube/request-indexes.js";
import { isNotFound } from "../../kube/transport.js";
import type { RawObject } from "../../kube/types.js";
import type { HandlerResult } from "../../kube/work-queue.js";
import { findCondition } from "../conditions.js";
import type { CredentialResolver } from "../credential-resolver.js";
import type { ReadyVerdict } from "../status.js";
import type { RegistrationDirectory } from "./directory.js";
import {
  credentialFacts,
  desiredRegistrationStatus,
  registrationStatusPatch,
} from "./registration-status.js";

/** A credential that expires is looked at again then (at the latest a day from now). */
const MAX_RECHECK_MS = 24 * 3600_000;
/** Problems a person must fix: look again slowly, and at once when the spec or the Secret changes. */
const SLOW_RETRY_MS = 5 * 60_000;

export interface RegistrationReconcilerDeps {
  clock: Clock;
  directory: Pick<RegistrationDirectory, "get" | "parse" | "credentialNamespace">;
  requests: Pick<Informer<RawObject>, "indexKeys">;
  credentials: Pick<CredentialResolver, "resolve">;
  api: Pick<KubeApiClient, "patchRegistrationStatus">;
  events: Pick<EventRecorder, "record">;
  authority: AuthorityPolicy;
  log: Logger;
}

export class RegistrationReconciler {
  /** The last status written here: the informer's copy may lag behind our own write. */
  private readonly written = new Map<string, { uid: string; status: AppRegistrationStatus }>();

  constructor(private readonly d: RegistrationReconcilerDeps) {}

  /** `ref` is a registrationRefKey ("AppRegistration:ns/name" or "ClusterAppRegistration:name"). */
  async reconcile(ref: string, signal: AbortSignal): Promise<HandlerResult> {
    const obj = this.d.directory.get(ref);
    if (!obj) {
      this.written.delete(ref);
      return;
    }
    if (obj.metadata.deletionTimestamp) return;
    const now = this.d.clock.now();
    const parsed = this.d.directory.parse(obj);
    let ready: ReadyVerdict;
    let loaded: ClientCredential | undefined;
    let requeueAfterMs: number | undefined;
    if (!parsed.ok) {
      ready = {
        status: "False",
        reason: "InvalidSpec",
        message: parsed.issues
          .map((i) => i.message)
          .join("; ")
          .slice(0, 2000),
      };
    } else {
      const spec = parsed.spec;
      const where = this.d.directory.credentialNamespace(obj);
      try {
        const base = authorityBaseFor(spec, this.d.authority);
        loaded = await this.d.credentials.resolve(where, spec.credential, signal, spec.cloud);
        if (loaded.kind === "workloadIdentity") {
          // Mints the service-account token (kept for the requests' calls): proves that the
          // ServiceAccount exists and the audience is allowed, before any request needs it.
          await loaded.formFields({ tokenEndpoint: base.href, clientId: spec.clientId, now });
        }
        ready = {
          status: "True",
          reason: "CredentialLoaded",
          message: loadedMessage(spec.credential, where),
        };
        const notAfter = (loaded as { notAfter?: unknown }).notAfter;
        if (typeof notAfter === "number" && Number.isFinite(notAfter))
          requeueAfterMs = Math.min(Math.max(notAfter - now, 1_000), MAX_RECHECK_MS);
      } catch (e) {
        if (!isTokenAcquisitionError(e) || e.kind === "Transient") throw e;
        ready = { status: "False", reason: e.reason, message: e.message.slice(0, 2000) };
        requeueAfterMs = SLOW_RETRY_MS;
      }
    }

    const uid = obj.metadata.uid ?? "";
    const mine = this.written.get(ref);
    const previous =
      mine && mine.uid === uid ? mine.status : (obj as { status?: AppRegistrationStatus }).status;
    const desired = desiredRegistrationStatus({
      previous,
      generation: obj.metadata.generation,
      ready,
      credential: parsed.ok ? credentialFacts(parsed.spec.credential, loaded) : undefined,
      requests: this.d.requests.indexKeys(APP_REF_INDEX, ref).length,
      now,
    });
    const patch = registrationStatusPatch(previous, desired);
    if (patch) {
      const namespace = obj.metadata.namespace || undefined;
      const name = obj.metadata.name ?? "";
      try {
        await this.d.api.patchRegistrationStatus(namespace, name, patch, signal);
      } catch (e) {
        if (isNotFound(e)) return;
        throw e;
      }
      this.written.set(ref, { uid, status: desired });
      const before = findCondition(previous?.conditions, "Ready");
      if (before?.reason !== ready.reason) {
        this.d.events.record(
          { apiVersion: API_VERSION, kind: obj.kind ?? "", namespace: namespace ?? "", name, uid },
          ready.status === "True" ? "Normal" : "Warning",
          ready.reason,
          ready.message,
        );
        const fields = { registration: ref, ready: ready.status, reason: ready.reason };
        if (ready.status === "True") this.d.log.info(fields, "registration ready");
        else this.d.log.warn({ ...fields, detail: ready.message }, "registration not ready");
      }
    }
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  }

  /** The registration is gone. */
  forget(ref: string): void {
    this.written.delete(ref);
  }
}

function loadedMessage(
  credential: {
    clientSecret?: unknown;
    certificate?: unknown;
    workloadIdentity?: { serviceAccountName: string };
    clientAssertion?: unknown;
  },
  namespace: string,
): string {
  if (credential.workloadIdentity)
    return `service-account tokens of ${namespace}/${credential.workloadIdentity.serviceAccountName} can be minted; requests that use this registration share its tokens`;
  return `the credential Secret in namespace ${namespace} is loaded and usable; requests that use this registration share it`;
}
