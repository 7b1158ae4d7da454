/**
 * "May this request use the registration it names?" as plain functions over one snapshot, asked in
 * order; the first that answers is the request's Ready=False reason. Nothing here does I/O: the
 * snapshot comes from the informers.
 */
import type { AppRef, AppRegistrationSpec, ClusterAppRegistrationSpec } from "../../api/types.js";
import type { SpecIssue } from "../../api/schema.js";
import { selectorMatches } from "./label-selector.js";

export interface Verdict {
  reason: string;
  message: string;
}

export type ParsedRegistrationSpec =
  { ok: true; spec: AppRegistrationSpec | ClusterAppRegistrationSpec } | { ok: false; issues: SpecIssue[] };

export interface AppRefSnapshot {
  /** The request's namespace. */
  namespace: string;
  appRef: AppRef;
  tenantId: string;
  scope: string;
  /** The registration the informers hold under that name, parsed; undefined when there is none. */
  registration: ParsedRegistrationSpec | undefined;
  /**
   * Labels of the request's namespace (only a ClusterAppRegistration reads them); undefined when
   * the namespace is not known yet, which no selector selects (not even `{}` or a NotIn).
   */
  namespaceLabels: Readonly<Record<string, string>> | undefined;
}

export type AppRefCheck = (s: AppRefSnapshot) => Verdict | undefined;

export function describeRef(ref: AppRef): string {
  return `${ref.kind} ${ref.name}`;
}

export const registrationExists: AppRefCheck = (s) => {
  if (s.registration !== undefined) return undefined;
  const where =
    s.appRef.kind === "AppRegistration"
      ? ` in namespace ${s.namespace} (an AppRegistration is only usable from its own namespace)`
      : "";
  return {
    reason: "AppRegistrationNotFound",
    message: `${describeRef(s.appRef)} does not exist${where}; the request is retried when it appears`,
  };
};

/** A ClusterAppRegistration serves only the namespaces its selector picks. */
export const namespaceAllowed: AppRefCheck = (s) => {
  if (s.appRef.kind !== "ClusterAppRegistration" || s.registration?.ok !== true) return undefined;
  const selector = (s.registration.spec as ClusterAppRegistrationSpec).namespaceSelector;
  if (s.namespaceLabels === undefined) {
    // Its labels arrive with the namespace informer, which re-queues the request then.
    return {
      reason: "NamespaceNotAllowed",
      message: `${describeRef(s.appRef)}: namespace ${s.namespace} is not known to the operator yet, so its labels cannot be checked`,
    };
  }
  // A spec without a selector never passed validation; refuse rather than treat it as "all".
  if (selector !== undefined && selectorMatches(selector, s.namespaceLabels)) return undefined;
  return {
    reason: "NamespaceNotAllowed",
    message: `${describeRef(s.appRef)} does not serve namespace ${s.namespace}: its namespaceSelector does not select it`,
  };
};

export const registrationValid: AppRefCheck = (s) => {
  if (s.registration === undefined || s.registration.ok) return undefined;
  const first = s.registration.issues[0]?.message ?? "invalid spec";
  return {
    reason: "AppRegistrationNotReady",
    message: `${describeRef(s.appRef)} is not Ready: InvalidSpec: ${first}`.slice(0, 1000),
  };
};

export const tenantAllowed: AppRefCheck = (s) => {
  if (s.registration?.ok !== true) return undefined;
  const allowed = s.registration.spec.allowedTenants;
  if (allowed === undefined) return undefined;
  const tenant = s.tenantId.toLowerCase();
  if (allowed.some((t) => t === "*" || t.toLowerCase() === tenant)) return undefined;
  return {
    reason: "TenantNotAllowed",
    message: `tenant ${s.tenantId} is not in the allowedTenants of ${describeRef(s.appRef)}`,
  };
};

export const scopeAllowed: AppRefCheck = (s) => {
  if (s.registration?.ok !== true) return undefined;
  const allowed = s.registration.spec.allowedScopes;
  if (allowed === undefined || allowed.includes(s.scope)) return undefined;
  return {
    reason: "ScopeNotAllowed",
    message: `scope ${s.scope} is not in the allowedScopes of ${describeRef(s.appRef)}`,
  };
};

/** In the order they are asked. */
export const APP_REF_CHECKS: readonly AppRefCheck[] = [
  registrationExists,
  namespaceAllowed,
  registrationValid,
  tenantAllowed,
  scopeAllowed,
];

export function firstRefusal(s: AppRefSnapshot): Verdict | undefined {
  for (const check of APP_REF_CHECKS) {
    const verdict = check(s);
    if (verdict) return verdict;
  }
  return undefined;
}
