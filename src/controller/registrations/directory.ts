/**
 * Where a request finds the registration it names: the informers' copies of AppRegistrations,
 * ClusterAppRegistrations and namespace labels, each registration's spec parsed once per version.
 */
import { parseAppRegistrationSpec, parseClusterAppRegistrationSpec } from "../../api/schema.js";
import type { AppRef, AppRegistrationSpec } from "../../api/types.js";
import type { Informer } from "../../kube/informer.js";
import { registrationRefKey } from "../../kube/request-indexes.js";
import type { KubeObject, RawObject } from "../../kube/types.js";
import { describeRef, firstRefusal, type ParsedRegistrationSpec, type Verdict } from "./app-ref-checks.js";

/** A registration a request may use, with what the request needs of it. */
export interface UsableRegistration {
  /** registrationRefKey: the queue and index key of the registration. */
  ref: string;
  /** "ClusterAppRegistration saas-app", for messages. */
  display: string;
  spec: AppRegistrationSpec;
  /** Where its credential Secret or ServiceAccount lives. */
  credentialNamespace: string;
}

export type RegistrationLookup =
  { ok: true; registration: UsableRegistration } | { ok: false; verdict: Verdict };

export interface RegistrationDirectoryOptions {
  appRegistrations: Pick<Informer<RawObject>, "getByKey">;
  clusterAppRegistrations: Pick<Informer<RawObject>, "getByKey">;
  namespaces: Pick<Informer<KubeObject>, "getByKey">;
  clusterResourceNamespace: string;
}

export class RegistrationDirectory {
  /** Keyed by the informer's object, which is replaced on every update: one parse per version. */
  private readonly parsed = new WeakMap<RawObject, ParsedRegistrationSpec>();

  constructor(private readonly o: RegistrationDirectoryOptions) {}

  /** The registration object `ref` (a registrationRefKey) names, if the informers hold it. */
  get(ref: string): RawObject | undefined {
    const i = ref.indexOf(":");
    const kind = ref.slice(0, i);
    const key = ref.slice(i + 1);
    return kind === "ClusterAppRegistration"
      ? this.o.clusterAppRegistrations.getByKey(key)
      : this.o.appRegistrations.getByKey(key);
  }

  /** The registration's spec as the controller validates it (memoized per object version). */
  parse(obj: RawObject): ParsedRegistrationSpec {
    const known = this.parsed.get(obj);
    if (known) return known;
    const result: ParsedRegistrationSpec = obj.metadata.namespace
      ? parseAppRegistrationSpec(obj.spec)
      : parseClusterAppRegistrationSpec(obj.spec);
    this.parsed.set(obj, result);
    return result;
  }

  /** Where a registration's credential lives: its own namespace, or the cluster resource namespace. */
  credentialNamespace(obj: RawObject): string {
    return obj.metadata.namespace || this.o.clusterResourceNamespace;
  }

  /** `{}` for a namespace without labels; undefined when it is unknown (or not needed). */
  private namespaceLabels(appRef: AppRef, namespace: string): Readonly<Record<string, string>> | undefined {
    if (appRef.kind !== "ClusterAppRegistration") return undefined;
    const ns = this.o.namespaces.getByKey(namespace);
    return ns === undefined ? undefined : (ns.metadata.labels ?? {});
  }

  /** Whether a request in `namespace` may use the registration `appRef` names for tenant and scope. */
  lookup(namespace: string, appRef: AppRef, tenantId: string, scope: string): RegistrationLookup {
    const ref = registrationRefKey(appRef.kind, namespace, appRef.name);
    const obj = this.get(ref);
    const registration = obj ? this.parse(obj) : undefined;
    const verdict = firstRefusal({
      namespace,
      appRef,
      tenantId,
      scope,
      registration,
      namespaceLabels: this.namespaceLabels(appRef, namespace),
    });
    if (verdict) return { ok: false, verdict };
    if (!obj || registration?.ok !== true) throw new Error(`unreachable: ${ref} passed every check unparsed`);
    return {
      ok: true,
      registration: {
        ref,
        display: describeRef(appRef),
        spec: registration.spec,
        credentialNamespace: this.credentialNamespace(obj),
      },
    };
  }
}
