/**
 * The informers' event handlers, apart from the controller so that what each event queues reads in
 * one place. They queue keys and change no reconciler state: a delete too is a key whose reconcile
 * finds the object gone and lets go of it.
 */
import type { AppTokenRequestStatus } from "../api/types.js";
import type { Informer } from "../kube/informer.js";
import type { AppTokenController } from "./controller.js";
import type { SecretProjection } from "../kube/projections.js";
import { appRefKeys, controllerOwnerKey, registrationRefKey } from "../kube/request-indexes.js";
import type { KubeObject, RawObject } from "../kube/types.js";
import type { Priority } from "../kube/work-queue.js";
import { ANNOTATION } from "./target-secret.js";

/** The controller's informers (its public fields). */
export type HandlerSources = Pick<
  AppTokenController,
  "requests" | "managedSecrets" | "appRegistrations" | "clusterAppRegistrations" | "namespaceLabels"
>;

/** The controller's ways of queuing, which alone know whether this replica leads. */
export interface HandlerActions {
  enqueue(key: string, priority: Priority): void;
  registrationChanged(ref: string): void;
  countChanged(obj: RawObject): void;
}

export function registerHandlers(s: HandlerSources, a: HandlerActions): void {
  registerRequestHandlers(s, a);
  for (const informer of [s.appRegistrations, s.clusterAppRegistrations]) {
    registerRegistrationHandlers(informer, s, a);
  }
  registerNamespaceHandlers(s, a);
  registerManagedSecretHandlers(s, a);
}

function registerRequestHandlers(s: HandlerSources, a: HandlerActions): void {
  s.requests.addEventHandler({
    onAdd: (obj, { initialList, key }) => {
      a.enqueue(key, initialList && !neverSynced(obj) ? "low" : "high");
      if (!initialList) a.countChanged(obj);
    },
    onUpdate: (oldObj, newObj, { resync, key }) => {
      if (resync) return a.enqueue(key, "low");
      const specChanged = oldObj.metadata.generation !== newObj.metadata.generation;
      if (specChanged && appRefKeys(oldObj)[0] !== appRefKeys(newObj)[0]) {
        a.countChanged(oldObj);
        a.countChanged(newObj);
      }
      const forceChanged =
        oldObj.metadata.annotations?.[ANNOTATION.forceRefresh] !==
        newObj.metadata.annotations?.[ANNOTATION.forceRefresh];
      // Status-only updates are our own writes: reconciling them would only loop.
      if (specChanged || forceChanged || oldObj.metadata.uid !== newObj.metadata.uid) a.enqueue(key, "high");
    },
    // One path for deletes: the reconcile finds the request gone and lets go of its cache key
    // and memory. A standby drops the key, and may: it has reconciled nothing, so it holds no
    // memory of the request (a replica that loses the lease exits rather than stand by).
    onDelete: (obj, { key }) => {
      a.enqueue(key, "high");
      a.countChanged(obj);
    },
  });
}

function registerRegistrationHandlers(
  informer: Informer<RawObject>,
  s: HandlerSources,
  a: HandlerActions,
): void {
  informer.addEventHandler({
    onAdd: (obj) => a.registrationChanged(refOf(obj)),
    onUpdate: (oldObj, newObj, { resync }) => {
      // Status-only updates are our own writes; a request depends on the spec alone.
      if (resync || oldObj.metadata.generation === newObj.metadata.generation) return;
      a.registrationChanged(refOf(newObj));
    },
    // Queued: the registration reconcile that finds it gone forgets its status and metric, and
    // drops the credentials no registration names any more (their data is a secret).
    onDelete: (obj) => a.registrationChanged(refOf(obj)),
  });
}

// Labels decide which namespaces a ClusterAppRegistration serves: a change is re-checked now.
// A namespace created with its labels may reach this informer after its first requests did.
function registerNamespaceHandlers(s: HandlerSources, a: HandlerActions): void {
  s.namespaceLabels.addEventHandler({
    onAdd: (ns, { initialList }) => {
      if (!initialList) namespaceLabelsChanged(s, a, ns.metadata.name ?? "");
    },
    onUpdate: (oldNs, newNs, { resync }) => {
      if (resync || sameLabels(oldNs.metadata.labels, newNs.metadata.labels)) return;
      namespaceLabelsChanged(s, a, newNs.metadata.name ?? "");
    },
  });
}

function registerManagedSecretHandlers(s: HandlerSources, a: HandlerActions): void {
  s.managedSecrets.addEventHandler({
    // Data rewritten by someone else while our annotations stayed (our own refreshes change
    // issued-at): put our token back now, not at the next refresh.
    onUpdate: (oldSecret, newSecret, { resync }) => {
      if (resync) return;
      if (oldSecret.dataDigest === newSecret.dataDigest) return;
      const issued = (x: SecretProjection) => x.metadata.annotations?.[ANNOTATION.issuedAt];
      if (issued(oldSecret) !== issued(newSecret)) return;
      const owner = controllerOwnerKey(newSecret);
      if (owner) a.enqueue(owner, "high");
    },
    // Deleted (or relabelled out of our selector): recreate it from the cache, without a call.
    onDelete: (secret) => {
      const owner = controllerOwnerKey(secret);
      if (owner) a.enqueue(owner, "high");
    },
  });
}

/** Requests of `namespace` that use a ClusterAppRegistration are checked against its selector again. */
function namespaceLabelsChanged(s: HandlerSources, a: HandlerActions, namespace: string): void {
  const prefix = `${namespace}/`;
  for (const key of s.requests.keys()) {
    if (!key.startsWith(prefix)) continue;
    const ref = appRefKeys(s.requests.getByKey(key) ?? { metadata: {} })[0];
    if (ref?.startsWith("ClusterAppRegistration:")) a.enqueue(key, "high");
  }
}

/** A request whose status was never written for its current spec: it goes first. */
export function neverSynced(obj: RawObject | undefined): boolean {
  const status = (obj as { status?: AppTokenRequestStatus } | undefined)?.status;
  return !status || status.observedGeneration !== obj?.metadata.generation;
}

export function refOf(obj: KubeObject): string {
  return registrationRefKey(obj.kind ?? "", obj.metadata.namespace, obj.metadata.name ?? "");
}

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ak = Object.keys(a ?? {});
  if (ak.length !== Object.keys(b ?? {}).length) return false;
  return ak.every((k) => a?.[k] === b?.[k]);
}
