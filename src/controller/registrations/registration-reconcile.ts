/**
 * What happens when an AppRegistration or ClusterAppRegistration is created, changed, or its
 * credential Secret changes: its credential is loaded (once, for every request that uses it) and
 * its status says whether that worked, what the credential is and until when, and how many
 * requests use it. Requests do not wait on this: each one asks the same shared, memoized resolver.
 *
 *   is the spec valid?                 -> InvalidSpec
 *   may its authority be called?       -> AuthorityNotAllowed, InsecureAuthority
 *   is the credential usable?          -> CredentialSecretNotFound, MalformedPem, AudienceNotAllowed,
 *                                         ServiceAccountNotFound, CredentialExpired, AssertionExpired, ...
 *   does it expire soon?               -> CredentialExpiringSoon (one Warning Event per credential),
 *                                         apptoken_credential_expiration_timestamp_seconds
 *   how many requests use it?          -> status.requests
 */
import type { Logger } from "pino";
import { API_VERSION } from "../../api/types.js";
import type {
  AppRegistrationSpec,
  AppRegistrationStatus,
  ClusterAppRegistrationSpec,
  RegistrationCredentialStatus,
} from "../../api/types.js";
import type { Clock } from "../../clock.js";
import type { AuthorityPolicy, ClientCredential, CredentialFacts } from "../../identity/index.js";
import { CredentialError, authorityBaseFor, isTokenAcquisitionError } from "../../identity/index.js";
import { ReplacedError, type KubeApiClient } from "../../kube/api-client.js";
import type { EventRecorder } from "../../kube/events.js";
import type { Informer } from "../../kube/informer.js";
import { APP_REF_INDEX } from "../../kube/request-indexes.js";
import { isNotFound } from "../../kube/transport.js";
import type { RawObject } from "../../kube/types.js";
import type { HandlerResult } from "../../kube/work-queue.js";
import type { Metrics } from "../../observability/metrics.js";
import { findCondition } from "../conditions.js";
import type { CredentialResolver } from "../credential-resolver.js";
import type { ReadyVerdict } from "../status.js";
import {
  EXPIRING_SOON,
  credentialExpiry,
  expiryRecheckMs,
  type ExpiryDecision,
} from "./credential-expiry.js";
import type { RegistrationDirectory } from "./directory.js";
import {
  credentialFacts,
  desiredRegistrationStatus,
  registrationStatusPatch,
} from "./registration-status.js";

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
  /** --credential-expiry-warning; default 30 days. */
  credentialExpiryWarningMs?: number | undefined;
  metrics?: Pick<Metrics, "credentialExpiration"> | undefined;
  /** The registration's Ready reason changed: the requests that use it are reconciled again. */
  onReadyChanged?: ((ref: string) => void) | undefined;
  /** A registration is gone: drop the credentials that no registration names any more. */
  releaseUnusedCredentials?: (() => void) | undefined;
}

export const DEFAULT_CREDENTIAL_EXPIRY_WARNING_MS = 30 * 86_400_000;

/** What loading a registration's credential showed. */
interface CredentialVerdict {
  ready: ReadyVerdict;
  /** What is known of the credential, even when it was refused (for its age, say). */
  known?: ClientCredential | CredentialFacts | undefined;
  /** Set when a person must fix something. */
  retryAfterMs?: number | undefined;
}

/** True when the condition just turned True, or names another expiry than the one written before. */
function expiringSoonRaised(
  previous: AppRegistrationStatus | undefined,
  expiry: ExpiryDecision | undefined,
): boolean {
  if (expiry?.condition.status !== "True") return false;
  const before = findCondition(previous?.conditions, EXPIRING_SOON);
  return before?.status !== "True" || before.message !== expiry.condition.message;
}

export class RegistrationReconciler {
  /** The last status written here: the informer's copy may lag behind our own write. */
  private readonly written = new Map<string, { uid: string; status: AppRegistrationStatus }>();
  /** The label set each registration's expiry is exported under, to remove it when it goes. */
  private readonly exported = new Map<string, Record<"kind" | "namespace" | "name" | "credential", string>>();

  constructor(private readonly d: RegistrationReconcilerDeps) {}

  /** `ref` is a registrationRefKey ("AppRegistration:ns/name" or "ClusterAppRegistration:name"). */
  async reconcile(ref: string, signal: AbortSignal): Promise<HandlerResult> {
    const obj = this.d.directory.get(ref);
    if (!obj) {
      this.forget(ref);
      this.d.releaseUnusedCredentials?.();
      return;
    }
    if (obj.metadata.deletionTimestamp) return;
    const now = this.d.clock.now();
    const parsed = this.d.directory.parse(obj);
    const verdict = parsed.ok
      ? await this.loadCredential(obj, parsed.spec, now, signal)
      : invalidSpec(parsed.issues);
    const { ready } = verdict;

    const credential = parsed.ok ? credentialFacts(parsed.spec.credential, verdict.known) : undefined;
    const expiry = parsed.ok
      ? credentialExpiry({
          kind: credential?.kind,
          expiresAt: credential?.expiresAt === undefined ? undefined : Date.parse(credential.expiresAt),
          now,
          warningMs: this.d.credentialExpiryWarningMs ?? DEFAULT_CREDENTIAL_EXPIRY_WARNING_MS,
        })
      : undefined;
    const requeueAfterMs =
      ready.status === "True" ? expiry && expiryRecheckMs(expiry, now) : verdict.retryAfterMs;
    this.exportExpiry(ref, obj, credential);

    const previous = this.previousStatus(ref, obj);
    const desired = desiredRegistrationStatus({
      previous,
      generation: obj.metadata.generation,
      ready,
      expiringSoon: expiry?.condition,
      credential,
      requests: this.d.requests.indexKeys(APP_REF_INDEX, ref).length,
      now,
    });
    const patch = registrationStatusPatch(previous, desired);
    if (patch) {
      if (!(await this.writeStatus(ref, obj, patch, desired, signal))) return;
      this.announce(ref, obj, previous, ready, expiry);
    }
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  }

  /** Loads the credential as the requests will, so that Ready tells whether they can use it. */
  private async loadCredential(
    obj: RawObject,
    spec: AppRegistrationSpec | ClusterAppRegistrationSpec,
    now: number,
    signal: AbortSignal,
  ): Promise<CredentialVerdict> {
    const where = this.d.directory.credentialNamespace(obj);
    let known: ClientCredential | CredentialFacts | undefined;
    try {
      const base = authorityBaseFor(spec, this.d.authority);
      const loaded = await this.d.credentials.resolve(where, spec.credential, signal, spec.cloud);
      known = loaded;
      if (loaded.kind === "workloadIdentity") {
        // Mints the service-account token (kept for the requests' calls): proves that the
        // ServiceAccount exists and the audience is allowed, before any request needs it.
        await loaded.formFields({ tokenEndpoint: base.href, clientId: spec.clientId, now });
      }
      return {
        ready: {
          status: "True",
          reason: "CredentialLoaded",
          message: loadedMessage(spec.credential, where),
        },
        known,
      };
    } catch (e) {
      if (!isTokenAcquisitionError(e) || e.kind === "Transient") throw e;
      // Refused for its age: what is known of it (expiry, thumbprint) is still shown.
      if (e instanceof CredentialError) known = e.facts;
      return {
        ready: { status: "False", reason: e.reason, message: e.message.slice(0, 2000) },
        known,
        retryAfterMs: SLOW_RETRY_MS,
      };
    }
  }

  /** Our own last write unless the registration was recreated since: the informer's copy may lag. */
  private previousStatus(ref: string, obj: RawObject): AppRegistrationStatus | undefined {
    const mine = this.written.get(ref);
    return mine && mine.uid === (obj.metadata.uid ?? "")
      ? mine.status
      : (obj as { status?: AppRegistrationStatus }).status;
  }

  /** False when there is no registration to write to any more. */
  private async writeStatus(
    ref: string,
    obj: RawObject,
    patch: Record<string, unknown>,
    desired: AppRegistrationStatus,
    signal: AbortSignal,
  ): Promise<boolean> {
    const uid = obj.metadata.uid ?? "";
    const namespace = obj.metadata.namespace || undefined;
    try {
      await this.d.api.patchRegistrationStatus(
        namespace,
        obj.metadata.name ?? "",
        uid || undefined,
        patch,
        signal,
      );
    } catch (e) {
      // Gone, or recreated under its name (its uid differs): its own reconcile writes.
      if (isNotFound(e) || e instanceof ReplacedError) return false;
      throw e;
    }
    this.written.set(ref, { uid, status: desired });
    return true;
  }

  /** After a status write: an Event and a log line for what changed that a person should know. */
  private announce(
    ref: string,
    obj: RawObject,
    previous: AppRegistrationStatus | undefined,
    ready: ReadyVerdict,
    expiry: ExpiryDecision | undefined,
  ): void {
    const involved = {
      apiVersion: API_VERSION,
      kind: obj.kind ?? "",
      namespace: obj.metadata.namespace ?? "",
      name: obj.metadata.name ?? "",
      uid: obj.metadata.uid ?? "",
    };
    const before = findCondition(previous?.conditions, "Ready");
    if (before?.reason !== ready.reason) {
      this.d.events.record(
        involved,
        ready.status === "True" ? "Normal" : "Warning",
        ready.reason,
        ready.message,
      );
      const fields = { registration: ref, ready: ready.status, reason: ready.reason };
      if (ready.status === "True") this.d.log.info(fields, "registration ready");
      else this.d.log.warn({ ...fields, detail: ready.message }, "registration not ready");
      // Requests keep their token until its refresh; a credential that just expired (or
      // recovered) is told on each of them now.
      if (before !== undefined) this.d.onReadyChanged?.(ref);
    }
    if (expiringSoonRaised(previous, expiry)) {
      // Once per credential: the condition's message names the expiry, so a re-reconcile, a
      // restart (status persists) or a status write for another reason raises nothing new.
      this.d.events.record(involved, "Warning", EXPIRING_SOON, expiry!.condition.message);
      this.d.log.warn({ registration: ref, detail: expiry!.condition.message }, "credential expires soon");
    }
  }

  /** apptoken_credential_expiration_timestamp_seconds for this registration (one series each). */
  private exportExpiry(
    ref: string,
    obj: RawObject,
    credential: RegistrationCredentialStatus | undefined,
  ): void {
    const metric = this.d.metrics?.credentialExpiration;
    if (!metric) return;
    const expiresAt = credential?.expiresAt === undefined ? NaN : Date.parse(credential.expiresAt);
    const labels = Number.isFinite(expiresAt)
      ? {
          kind: obj.kind ?? "",
          namespace: obj.metadata.namespace ?? "",
          name: obj.metadata.name ?? "",
          credential: credential?.kind ?? "",
        }
      : undefined;
    const exported = this.exported.get(ref);
    if (exported && JSON.stringify(exported) !== JSON.stringify(labels)) metric.remove(exported);
    if (labels) {
      metric.set(labels, expiresAt / 1000);
      this.exported.set(ref, labels);
    } else this.exported.delete(ref);
  }

  /** The registration is gone. */
  private forget(ref: string): void {
    this.written.delete(ref);
    const exported = this.exported.get(ref);
    if (exported) this.d.metrics?.credentialExpiration.remove(exported);
    this.exported.delete(ref);
  }
}

function invalidSpec(issues: readonly { message: string }[]): CredentialVerdict {
  const message = issues
    .map((i) => i.message)
    .join("; ")
    .slice(0, 2000);
  return { ready: { status: "False", reason: "InvalidSpec", message } };
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
