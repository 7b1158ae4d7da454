/**
 * What the informers keep and how they find it: the projections their stores hold, the indexes
 * over AppTokenRequests, and the indexed store. Pure functions and data structures, no server.
 * The informers themselves (list, watch, resume, re-list, resync, handlers) are specified against
 * the real API server in test/integration/kube-informer.test.ts.
 */
import { describe, expect, it } from "vitest";
import { projectSecret, trimAppTokenRequest } from "../../../src/kube/projections.js";
import {
  appRefKeys,
  controllerOwnerKey,
  credentialSecretKeys,
  targetSecretKeys,
} from "../../../src/kube/request-indexes.js";
import { IndexedStore } from "../../../src/kube/store.js";
import type { KubeObject, RawObject } from "../../../src/kube/types.js";

function request(spec: unknown, name = "graph"): RawObject {
  return {
    apiVersion: "apptoken.io/v1alpha1",
    kind: "AppTokenRequest",
    metadata: { namespace: "payments", name },
    spec,
  };
}

describe("request and registration indexes", () => {
  const registration = (spec: unknown, namespace?: string): RawObject => ({
    apiVersion: "apptoken.io/v1alpha1",
    kind: namespace ? "AppRegistration" : "ClusterAppRegistration",
    metadata: { ...(namespace ? { namespace } : {}), name: "app" },
    spec,
  });

  it("index a registration by the Secret of its credential: its own namespace, or the cluster resource namespace", () => {
    expect(
      credentialSecretKeys(
        registration(
          { credential: { clientSecret: { secretRef: { name: "app-cred", key: "k" } } } },
          "payments",
        ),
        "apptoken-system",
      ),
    ).toEqual(["payments/app-cred"]);
    expect(
      credentialSecretKeys(
        registration({ credential: { certificate: { secretRef: { name: "app-cert" } } } }),
        "apptoken-system",
      ),
    ).toEqual(["apptoken-system/app-cert"]);
    expect(
      credentialSecretKeys(
        registration(
          { credential: { clientAssertion: { secretRef: { name: "jwt", key: "token" } } } },
          "payments",
        ),
        "apptoken-system",
      ),
    ).toEqual(["payments/jwt"]);
    expect(
      credentialSecretKeys(
        registration({ credential: { workloadIdentity: { serviceAccountName: "sa" } } }, "payments"),
        "apptoken-system",
      ),
    ).toEqual([]);
  });

  it("index a request by the registration it names: an AppRegistration of its own namespace, or a ClusterAppRegistration", () => {
    expect(appRefKeys(request({ appRef: { kind: "AppRegistration", name: "app" } }))).toEqual([
      "AppRegistration:payments/app",
    ]);
    expect(appRefKeys(request({ appRef: { kind: "ClusterAppRegistration", name: "saas" } }))).toEqual([
      "ClusterAppRegistration:saas",
    ]);
  });

  it("index a request by its target Secret, which defaults to the request's name", () => {
    expect(targetSecretKeys(request({ target: { name: "vault-token" } }))).toEqual(["payments/vault-token"]);
    expect(targetSecretKeys(request({}))).toEqual(["payments/graph"]);
  });

  // Specs are stored before they are validated (the CRD rejects these; an older CRD, or one
  // edited by hand, might not): a malformed one yields no credential or registration key and the
  // default target.
  const malformed: [string, unknown][] = [
    ["no spec", undefined],
    ["spec null", null],
    ["spec a string", "spec"],
    ["credential a string", { credential: "not-an-object" }],
    ["credential null", { credential: null }],
    ["secretRef missing", { credential: { clientSecret: {} } }],
    ["secretRef a string", { credential: { clientSecret: { secretRef: "app-cred" } } }],
    ["secret name empty", { credential: { clientSecret: { secretRef: { name: "" } } } }],
    ["secret name a number", { credential: { certificate: { secretRef: { name: 42 } } } }],
    ["appRef a string", { appRef: "app" }],
    ["appRef of an unknown kind", { appRef: { kind: "Secret", name: "app" } }],
    ["appRef without a name", { appRef: { kind: "AppRegistration", name: "" } }],
    ["target a string", { target: "vault-token" }],
    ["target name empty", { target: { name: "" } }],
    ["target name an array", { target: { name: ["a"] } }],
  ];
  it.each(malformed)("tolerate a malformed spec (%s)", (_what, spec) => {
    expect(credentialSecretKeys(registration(spec, "payments"), "apptoken-system")).toEqual([]);
    const obj = request(spec);
    expect(appRefKeys(obj)).toEqual([]);
    expect(targetSecretKeys(obj)).toEqual(["payments/graph"]);
  });

  it("find the controlling owner of a kind", () => {
    const owned: KubeObject = {
      metadata: {
        namespace: "payments",
        name: "graph",
        ownerReferences: [
          { apiVersion: "v1", kind: "ConfigMap", name: "other", uid: "1", controller: true },
          {
            apiVersion: "apptoken.io/v1alpha1",
            kind: "AppTokenRequest",
            name: "graph",
            uid: "2",
            controller: true,
          },
        ],
      },
    };
    expect(controllerOwnerKey(owned)).toBe("payments/graph");
    expect(controllerOwnerKey({ metadata: { namespace: "payments", name: "x" } })).toBeUndefined();
  });
});

describe("projections", () => {
  const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

  it("trim an AppTokenRequest of managedFields and the last-applied annotation, and nothing else", () => {
    const raw = request({
      tenantId: "contoso.onmicrosoft.com",
      credential: { clientSecret: { secretRef: { name: "c" } } },
    });
    raw.metadata.managedFields = [{ manager: "kubectl-client-side-apply" }];
    raw.metadata.annotations = { [LAST_APPLIED]: '{"big":"copy"}', keep: "me" };
    raw.metadata.labels = { team: "payments" };
    raw.status = { phase: "x" };
    const spec = structuredClone(raw.spec);

    const trimmed = trimAppTokenRequest(raw);
    expect(trimmed.metadata).toEqual({
      namespace: "payments",
      name: "graph",
      annotations: { keep: "me" },
      labels: { team: "payments" },
    });
    expect(trimmed.spec).toEqual(spec);
    expect(trimmed.status).toEqual({ phase: "x" });
  });

  it("drop the annotations of a trimmed request altogether when last-applied was the only one", () => {
    const raw = request({});
    raw.metadata.annotations = { [LAST_APPLIED]: "{}" };
    expect(trimAppTokenRequest(raw).metadata.annotations).toBeUndefined();
  });

  it("keep a Secret's identity (but its own uid, which nothing reads), labels, annotations, owners and type, never its data", () => {
    const projected = projectSecret({
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        namespace: "payments",
        name: "graph",
        uid: "u",
        resourceVersion: "7",
        labels: { "app.kubernetes.io/managed-by": "apptoken-operator" },
        annotations: { [LAST_APPLIED]: "{}", "apptoken.io/expires-at": "2026-11-24T12:00:00Z" },
        ownerReferences: [
          { apiVersion: "apptoken.io/v1alpha1", kind: "AppTokenRequest", name: "graph", uid: "r" },
        ],
        managedFields: [{ manager: "apptoken-operator" }],
      },
      type: "Opaque",
      data: { access_token: "dG9rZW4=" },
      stringData: { access_token: "token" },
    });
    expect(projected).toEqual({
      metadata: {
        namespace: "payments",
        name: "graph",
        uid: "",
        resourceVersion: "7",
        labels: { "app.kubernetes.io/managed-by": "apptoken-operator" },
        annotations: { "apptoken.io/expires-at": "2026-11-24T12:00:00Z" },
        ownerReferences: [
          { apiVersion: "apptoken.io/v1alpha1", kind: "AppTokenRequest", name: "graph", uid: "r" },
        ],
      },
      type: "Opaque",
    });
  });
});

describe("IndexedStore", () => {
  const obj = (name: string, cred: string): KubeObject & { cred: string } => ({
    metadata: { namespace: "ns", name },
    cred,
  });

  it("keeps an index in step through adds, updates and deletes", () => {
    const store = new IndexedStore<KubeObject & { cred: string }>();
    store.addIndex("cred", (o) => [o.cred]);
    store.set("ns/a", obj("a", "x"));
    store.set("ns/b", obj("b", "x"));
    expect([...store.indexKeys("cred", "x")].sort()).toEqual(["ns/a", "ns/b"]);

    store.set("ns/b", obj("b", "y"));
    expect(store.indexKeys("cred", "x")).toEqual(["ns/a"]);
    expect(store.indexKeys("cred", "y")).toEqual(["ns/b"]);

    store.delete("ns/a");
    expect(store.indexKeys("cred", "x")).toEqual([]);
    expect([...store.keysInNamespace("ns")]).toEqual(["ns/b"]);
    expect(() => store.indexKeys("nope", "x")).toThrow(/no index named nope/);
  });

  it("indexes the objects it already holds when an index is added", () => {
    const store = new IndexedStore<KubeObject & { cred: string }>();
    store.set("ns/a", obj("a", "x"));
    store.addIndex("cred", (o) => [o.cred]);
    expect(store.indexKeys("cred", "x")).toEqual(["ns/a"]);
    expect(() => store.addIndex("cred", () => [])).toThrow(/already exists/);
  });
});
