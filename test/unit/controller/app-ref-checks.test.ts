import { describe, expect, it } from "vitest";
import type {
  AppRegistrationSpec,
  ClusterAppRegistrationSpec,
  LabelSelector,
} from "../../../src/api/types.js";
import type {
  AppRefSnapshot,
  ParsedRegistrationSpec,
} from "../../../src/controller/registrations/app-ref-checks.js";
import {
  APP_REF_CHECKS,
  firstRefusal,
  namespaceAllowed,
  registrationExists,
  registrationValid,
  scopeAllowed,
  tenantAllowed,
} from "../../../src/controller/registrations/app-ref-checks.js";

const NS = "payments";
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TENANT = "9d2b1c11-0000-4000-8000-000000000000";
const SCOPE = "https://graph.microsoft.com/.default";

function spec(overrides: Partial<AppRegistrationSpec> = {}): AppRegistrationSpec {
  return {
    clientId: "6731de76-14a6-49ae-97bc-6eba6914391e",
    cloud: "AzurePublic",
    credential: { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" } } },
    ...overrides,
  };
}

function clusterSpec(
  namespaceSelector: LabelSelector | undefined,
  overrides: Partial<AppRegistrationSpec> = {},
): ClusterAppRegistrationSpec {
  return { ...spec(overrides), namespaceSelector } as ClusterAppRegistrationSpec;
}

const valid = (s: AppRegistrationSpec | ClusterAppRegistrationSpec): ParsedRegistrationSpec => ({
  ok: true,
  spec: s,
});

/** A request in NS for TENANT and SCOPE that names an AppRegistration that allows it. */
function snapshot(overrides: Partial<AppRefSnapshot> = {}): AppRefSnapshot {
  return {
    namespace: NS,
    appRef: { kind: "AppRegistration", name: "payments-app" },
    tenantId: TENANT,
    scope: SCOPE,
    registration: valid(spec()),
    namespaceLabels: undefined,
    ...overrides,
  };
}

const PAYMENTS_LABELS = { team: "payments" };

/** The same, naming a ClusterAppRegistration; the request's namespace carries `labels`. */
function clusterSnapshot(
  registration: ParsedRegistrationSpec | undefined,
  labels: Record<string, string> | undefined = PAYMENTS_LABELS,
  overrides: Partial<AppRefSnapshot> = {},
): AppRefSnapshot {
  return snapshot({
    appRef: { kind: "ClusterAppRegistration", name: "saas-app" },
    registration,
    namespaceLabels: labels,
    ...overrides,
  });
}

describe("registrationExists", () => {
  it("refuses a request whose AppRegistration is not in its own namespace, and says where it looked", () => {
    const verdict = registrationExists(snapshot({ registration: undefined }));
    expect(verdict?.reason).toBe("AppRegistrationNotFound");
    expect(verdict?.message).toContain("AppRegistration payments-app does not exist in namespace payments");
    expect(verdict?.message).toContain("only usable from its own namespace");
    expect(verdict?.message).toContain("retried when it appears");
  });

  it("refuses a request whose ClusterAppRegistration does not exist, naming no namespace", () => {
    const verdict = registrationExists(clusterSnapshot(undefined));
    expect(verdict).toEqual({
      reason: "AppRegistrationNotFound",
      message: "ClusterAppRegistration saas-app does not exist; the request is retried when it appears",
    });
  });

  it("has nothing to say about a registration that exists, valid or not", () => {
    expect(registrationExists(snapshot())).toBeUndefined();
    expect(registrationExists(snapshot({ registration: { ok: false, issues: [] } }))).toBeUndefined();
  });
});

describe("namespaceAllowed", () => {
  it.each<[string, LabelSelector, Record<string, string> | undefined, boolean]>([
    ["{} selects every namespace", {}, { team: "payments" }, true],
    ["{} selects a namespace without labels", {}, {}, true],
    ["matchLabels that hold", { matchLabels: { team: "payments" } }, { team: "payments" }, true],
    ["matchLabels that do not hold", { matchLabels: { team: "billing" } }, { team: "payments" }, false],
    ["matchLabels and a namespace without labels", { matchLabels: { team: "payments" } }, {}, false],
    [
      "an expression that holds",
      { matchExpressions: [{ key: "team", operator: "In", values: ["payments", "billing"] }] },
      { team: "payments" },
      true,
    ],
    [
      "an unknown operator",
      { matchExpressions: [{ key: "team", operator: "Near" as "In", values: ["payments"] }] },
      { team: "payments" },
      false,
    ],
  ])(
    "lets a ClusterAppRegistration serve a namespace by its namespaceSelector: %s",
    (_what, selector, labels, allowed) => {
      const verdict = namespaceAllowed(
        clusterSnapshot(valid(clusterSpec(selector)), PAYMENTS_LABELS, { namespaceLabels: labels }),
      );
      if (allowed) {
        expect(verdict).toBeUndefined();
      } else {
        expect(verdict).toEqual({
          reason: "NamespaceNotAllowed",
          message:
            "ClusterAppRegistration saas-app does not serve namespace payments: its namespaceSelector does not select it",
        });
      }
    },
  );

  it.each<[string, LabelSelector]>([
    ["{}", {}],
    ["a NotIn", { matchExpressions: [{ key: "quarantined", operator: "NotIn", values: ["true"] }] }],
    ["a DoesNotExist", { matchExpressions: [{ key: "quarantined", operator: "DoesNotExist" }] }],
  ])(
    "refuses a namespace the operator does not know yet, whose labels it cannot check: %s",
    (_what, selector) => {
      const verdict = namespaceAllowed(
        clusterSnapshot(valid(clusterSpec(selector)), undefined, { namespaceLabels: undefined }),
      );
      expect(verdict?.reason).toBe("NamespaceNotAllowed");
      expect(verdict?.message).toContain("not known to the operator yet");
    },
  );

  it("refuses every namespace when a ClusterAppRegistration has no namespaceSelector, rather than serve all", () => {
    const verdict = namespaceAllowed(clusterSnapshot(valid(clusterSpec(undefined))));
    expect(verdict?.reason).toBe("NamespaceNotAllowed");
  });

  it("never applies to an AppRegistration, whose namespace is its own", () => {
    const withSelector = valid(clusterSpec({ matchLabels: { team: "billing" } }));
    expect(namespaceAllowed(snapshot({ registration: withSelector, namespaceLabels: {} }))).toBeUndefined();
  });

  it("leaves a missing or invalid registration to the other checks", () => {
    expect(namespaceAllowed(clusterSnapshot(undefined))).toBeUndefined();
    expect(namespaceAllowed(clusterSnapshot({ ok: false, issues: [] }))).toBeUndefined();
  });
});

describe("registrationValid", () => {
  it("refuses a registration whose spec failed validation with AppRegistrationNotReady and its first issue", () => {
    const verdict = registrationValid(
      snapshot({
        registration: {
          ok: false,
          issues: [
            { path: "spec.clientId", message: "spec.clientId: must be a GUID" },
            { path: "spec.cloud", message: "spec.cloud: must be one of AzurePublic, AzureChina" },
          ],
        },
      }),
    );
    expect(verdict).toEqual({
      reason: "AppRegistrationNotReady",
      message: "AppRegistration payments-app is not Ready: InvalidSpec: spec.clientId: must be a GUID",
    });
  });

  it("says 'invalid spec' when validation named no issue", () => {
    const verdict = registrationValid(clusterSnapshot({ ok: false, issues: [] }));
    expect(verdict?.message).toBe("ClusterAppRegistration saas-app is not Ready: InvalidSpec: invalid spec");
  });

  it("keeps the message within 1000 characters however long the issue is", () => {
    const long = `spec.allowedScopes[0]: ${"x".repeat(5000)}`;
    const verdict = registrationValid(
      snapshot({ registration: { ok: false, issues: [{ path: "spec.allowedScopes[0]", message: long }] } }),
    );
    expect(verdict?.message).toHaveLength(1000);
    expect(verdict?.message.startsWith("AppRegistration payments-app is not Ready: InvalidSpec: ")).toBe(
      true,
    );
  });

  it("passes a valid or missing registration", () => {
    expect(registrationValid(snapshot())).toBeUndefined();
    expect(registrationValid(snapshot({ registration: undefined }))).toBeUndefined();
  });
});

describe("tenantAllowed", () => {
  it.each<[string, string[] | undefined, string, boolean]>([
    ["unset allows any tenant", undefined, OTHER_TENANT, true],
    ['"*" allows any tenant', ["*"], OTHER_TENANT, true],
    ['"*" among others allows any tenant', [TENANT, "*"], OTHER_TENANT, true],
    ["a listed GUID", [TENANT], TENANT, true],
    ["a listed GUID in other case", [TENANT.toUpperCase()], TENANT, true],
    ["a listed domain in other case", ["Contoso.onmicrosoft.com"], "contoso.ONMICROSOFT.com", true],
    ["a GUID not listed", [TENANT], OTHER_TENANT, false],
    ["a domain not listed", ["contoso.onmicrosoft.com"], "fabrikam.onmicrosoft.com", false],
    ["an empty list allows none", [], TENANT, false],
  ])("%s", (_what, allowedTenants, tenantId, allowed) => {
    const verdict = tenantAllowed(snapshot({ tenantId, registration: valid(spec({ allowedTenants })) }));
    if (allowed) {
      expect(verdict).toBeUndefined();
    } else {
      expect(verdict).toEqual({
        reason: "TenantNotAllowed",
        message: `tenant ${tenantId} is not in the allowedTenants of AppRegistration payments-app`,
      });
    }
  });

  it("leaves a missing or invalid registration to the other checks", () => {
    expect(tenantAllowed(snapshot({ registration: undefined }))).toBeUndefined();
    expect(tenantAllowed(snapshot({ registration: { ok: false, issues: [] } }))).toBeUndefined();
  });
});

describe("scopeAllowed", () => {
  it.each<[string, string[] | undefined, string, boolean]>([
    ["unset allows any scope", undefined, "https://vault.azure.net/.default", true],
    ["a listed scope", [SCOPE, "https://vault.azure.net/.default"], SCOPE, true],
    ["a scope not listed", [SCOPE], "https://vault.azure.net/.default", false],
    ["a listed scope in other case (scopes compare exactly)", [SCOPE], SCOPE.toUpperCase(), false],
    ["a listed scope with a trailing slash", ["https://graph.microsoft.com//.default"], SCOPE, false],
    ['"*" (not a wildcard for scopes)', ["*"], SCOPE, false],
    ["an empty list allows none", [], SCOPE, false],
  ])("%s", (_what, allowedScopes, scope, allowed) => {
    const verdict = scopeAllowed(snapshot({ scope, registration: valid(spec({ allowedScopes })) }));
    if (allowed) {
      expect(verdict).toBeUndefined();
    } else {
      expect(verdict).toEqual({
        reason: "ScopeNotAllowed",
        message: `scope ${scope} is not in the allowedScopes of AppRegistration payments-app`,
      });
    }
  });
});

describe("firstRefusal", () => {
  it("asks the checks in order: exists, namespace, valid, tenant, scope", () => {
    expect(APP_REF_CHECKS).toEqual([
      registrationExists,
      namespaceAllowed,
      registrationValid,
      tenantAllowed,
      scopeAllowed,
    ]);
  });

  it("passes a request every check allows", () => {
    expect(firstRefusal(snapshot())).toBeUndefined();
    expect(
      firstRefusal(
        clusterSnapshot(
          valid(
            clusterSpec(
              { matchLabels: { team: "payments" } },
              { allowedTenants: [TENANT], allowedScopes: [SCOPE] },
            ),
          ),
        ),
      ),
    ).toBeUndefined();
  });

  const refusesEverything = valid(
    clusterSpec(
      { matchLabels: { team: "billing" } },
      { allowedTenants: [OTHER_TENANT], allowedScopes: ["api://x/.default"] },
    ),
  );

  it.each<[string, AppRefSnapshot, string]>([
    ["a missing registration", clusterSnapshot(undefined), "AppRegistrationNotFound"],
    [
      "a namespace the selector does not pick, before the registration's tenants and scopes are revealed",
      clusterSnapshot(refusesEverything),
      "NamespaceNotAllowed",
    ],
    [
      "an invalid registration",
      snapshot({ registration: { ok: false, issues: [{ path: "spec", message: "spec: bad" }] } }),
      "AppRegistrationNotReady",
    ],
    [
      "a tenant not allowed, before the scope",
      snapshot({
        registration: valid(spec({ allowedTenants: [OTHER_TENANT], allowedScopes: ["api://x/.default"] })),
      }),
      "TenantNotAllowed",
    ],
    [
      "a scope not allowed",
      snapshot({ registration: valid(spec({ allowedScopes: ["api://x/.default"] })) }),
      "ScopeNotAllowed",
    ],
  ])("answers with the first refusal: %s", (_what, s, reason) => {
    expect(firstRefusal(s)?.reason).toBe(reason);
  });
});
