import { describe, expect, it } from "vitest";
import type { AppTokenRequest } from "../../../src/api/types.js";
import {
  REQUEST_CHECKS,
  credentialUsable,
  firstRefusal,
  invalidSpec,
  predecessorCollected,
  registrationUsable,
  targetUnclaimed,
  templateValid,
  type Claimant,
  type CredentialSnapshot,
  type RequestSnapshot,
} from "../../../src/controller/checks.js";
import { USABLE_REGISTRATION } from "./support.js";
import { PermanentError } from "../../../src/identity/errors.js";
import type { SecretProjection } from "../../../src/kube/projections.js";

const UID = "uid-graph";
const KEY = "payments/graph";

function request(overrides: Partial<AppTokenRequest["spec"]> = {}): AppTokenRequest {
  return {
    apiVersion: "apptoken.io/v1alpha1",
    kind: "AppTokenRequest",
    metadata: { name: "graph", namespace: "payments", uid: UID },
    spec: {
      appRef: { kind: "ClusterAppRegistration", name: "saas-app" },
      tenantId: "contoso.onmicrosoft.com",
      scope: "https://graph.microsoft.com/.default",
      ...overrides,
    },
  } as AppTokenRequest;
}

const REGISTRATION = USABLE_REGISTRATION;

function secretOwnedBy(kind: string, name: string, uid: string): SecretProjection {
  return {
    metadata: {
      name: "graph",
      namespace: "payments",
      ownerReferences: [{ apiVersion: "apptoken.io/v1alpha1", kind, name, uid, controller: true }],
    },
  } as SecretProjection;
}

function snapshot(overrides: Partial<RequestSnapshot> = {}): RequestSnapshot {
  return {
    key: KEY,
    now: 0,
    req: request(),
    secretName: "graph",
    secret: undefined,
    claimants: [{ key: KEY, createdAt: 1000 }],
    lookup: { ok: true, registration: REGISTRATION },
    ...overrides,
  };
}

const claimants = (...c: [string, number][]): Claimant[] => c.map(([key, createdAt]) => ({ key, createdAt }));

describe("invalidSpec", () => {
  it("lists every issue with its path, cut to 2000 characters", () => {
    expect(
      invalidSpec([
        { path: "spec.scope", message: "must end with /.default" },
        { path: "spec.tenantId", message: "is common" },
      ]),
    ).toEqual({
      reason: "InvalidSpec",
      message: "spec.scope: must end with /.default; spec.tenantId: is common",
    });
    expect(invalidSpec([{ path: "spec", message: "x".repeat(5000) }]).message).toHaveLength(2000);
  });
});

describe("request checks", () => {
  const cases: {
    name: string;
    check: (s: RequestSnapshot) => { reason: string; message: string } | undefined;
    snap: RequestSnapshot;
    reason: string | undefined;
    message?: RegExp;
  }[] = [
    { name: "no template", check: templateValid, snap: snapshot(), reason: undefined },
    {
      name: "a template with known placeholders",
      check: templateValid,
      snap: snapshot({
        req: request({
          target: { name: "graph", template: { data: { auth: "Bearer {{ .accessToken }}" } } },
        }),
      }),
      reason: undefined,
    },
    {
      name: "a template with an unknown placeholder",
      check: templateValid,
      snap: snapshot({
        req: request({ target: { name: "graph", template: { data: { auth: "{{ .secret }}" } } } }),
      }),
      reason: "InvalidSpec",
      message: /template key "auth": unknown placeholder \{\{ \.secret \}\}/,
    },
    { name: "no Secret yet", check: predecessorCollected, snap: snapshot(), reason: undefined },
    {
      name: "our own Secret",
      check: predecessorCollected,
      snap: snapshot({ secret: secretOwnedBy("AppTokenRequest", "graph", UID) }),
      reason: undefined,
    },
    {
      name: "a Secret of the previous request of the same name",
      check: predecessorCollected,
      snap: snapshot({ secret: secretOwnedBy("AppTokenRequest", "graph", "uid-old") }),
      reason: "Pending",
      message:
        /garbage collector to delete Secret graph of the previous AppTokenRequest graph \(uid uid-old\)/,
    },
    {
      name: "a Secret of another request (not a predecessor)",
      check: predecessorCollected,
      snap: snapshot({ secret: secretOwnedBy("AppTokenRequest", "other", "uid-other") }),
      reason: undefined,
    },
    { name: "the only claimant, no Secret", check: targetUnclaimed, snap: snapshot(), reason: undefined },
    {
      name: "the oldest of two claimants",
      check: targetUnclaimed,
      snap: snapshot({ claimants: claimants([KEY, 1000], ["payments/later", 2000]) }),
      reason: undefined,
    },
    {
      name: "the younger of two claimants",
      check: targetUnclaimed,
      snap: snapshot({ claimants: claimants([KEY, 2000], ["payments/first", 1000]) }),
      reason: "SecretConflict",
      message: /also the target of AppTokenRequest first, which claimed it first/,
    },
    {
      name: "two claimants of the same age: the key decides",
      check: targetUnclaimed,
      snap: snapshot({ claimants: claimants([KEY, 1000], ["payments/aaa", 1000]) }),
      reason: "SecretConflict",
      message: /AppTokenRequest aaa/,
    },
    {
      name: "a Secret the operator manages for another request",
      check: targetUnclaimed,
      snap: snapshot({ secret: secretOwnedBy("AppTokenRequest", "other", "uid-other") }),
      reason: "SecretConflict",
      message: /managed by the operator for AppTokenRequest other \(uid uid-other\), not for this request/,
    },
    {
      name: "a labelled Secret without a controller",
      check: targetUnclaimed,
      snap: snapshot({ secret: { metadata: { name: "graph", namespace: "payments" } } as SecretProjection }),
      reason: "SecretConflict",
      message: /for another owner/,
    },
    { name: "a usable registration", check: registrationUsable, snap: snapshot(), reason: undefined },
    {
      name: "a refused registration",
      check: registrationUsable,
      snap: snapshot({ lookup: { ok: false, verdict: { reason: "TenantNotAllowed", message: "no" } } }),
      reason: "TenantNotAllowed",
      message: /^no$/,
    },
  ];
  it.each(cases)("$name -> $reason", ({ check, snap, reason, message }) => {
    const refusal = check(snap);
    expect(refusal?.reason).toBe(reason);
    if (message) expect(refusal?.message).toMatch(message);
  });

  it("are asked in order: the first that refuses decides", () => {
    const snap = snapshot({
      req: request({ target: { name: "graph", template: { data: { a: "{{ .x }}" } } } }),
      secret: secretOwnedBy("AppTokenRequest", "other", "uid-other"),
      lookup: { ok: false, verdict: { reason: "AppRegistrationNotFound", message: "gone" } },
    });
    expect(firstRefusal(snap, REQUEST_CHECKS)?.refusal.reason).toBe("InvalidSpec");
    expect(firstRefusal(snapshot({ lookup: snap.lookup }), REQUEST_CHECKS)?.refusal.reason).toBe(
      "AppRegistrationNotFound",
    );
    expect(firstRefusal(snapshot(), REQUEST_CHECKS)).toBeUndefined();
  });

  it("a predecessor's Secret waits a few seconds without an Event; a conflict warns and waits long", () => {
    const pending = firstRefusal(
      snapshot({ secret: secretOwnedBy("AppTokenRequest", "graph", "uid-old") }),
      REQUEST_CHECKS,
    );
    expect(pending?.policy).toMatchObject({ warn: false, retryAfterMs: 5_000 });
    const conflict = firstRefusal(
      snapshot({ secret: secretOwnedBy("AppTokenRequest", "other", "uid-other") }),
      REQUEST_CHECKS,
    );
    expect(conflict?.policy).toMatchObject({ warn: true, retryAfterMs: 5 * 60_000 });
  });
});

describe("credentialUsable", () => {
  const endpoint = new URL("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
  const cases: { name: string; snap: CredentialSnapshot; reason: string | undefined; message?: string }[] = [
    {
      name: "a resolved credential",
      snap: {
        registration: REGISTRATION,
        resolved: {
          ok: true,
          endpoint,
          credential: { kind: "ClientSecret", fingerprint: "f" } as never,
        },
      },
      reason: undefined,
    },
    {
      name: "a credential that failed for good, named by its registration",
      snap: {
        registration: REGISTRATION,
        resolved: {
          ok: false,
          error: new PermanentError("Secret app-cred not found", { reason: "CredentialSecretNotFound" }),
        },
      },
      reason: "CredentialSecretNotFound",
      message: "ClusterAppRegistration saas-app: Secret app-cred not found",
    },
  ];
  it.each(cases)("$name -> $reason", ({ snap, reason, message }) => {
    const refusal = credentialUsable(snap);
    expect(refusal?.reason).toBe(reason);
    if (message) expect(refusal?.message).toBe(message);
  });
});
