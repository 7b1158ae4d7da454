/**
 * What the informers' stores keep of each object. The projections intern repeated strings and
 * share one frozen labels object between Secrets that carry only the managed-by label; none of that
 * may change a value the controller reads, and a Secret's data must never reach the store.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  intern,
  projectMetadata,
  projectSecret,
  shareObject,
  trimAppTokenRequest,
} from "../../../src/kube/projections.js";
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from "../../../src/kube/resources.js";
import type { RawObject } from "../../../src/kube/types.js";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** A target Secret as the API server sends it, with everything the projection must drop. */
function managedSecret(
  name = "graph-token",
  labels: Record<string, string> = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
): RawObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      namespace: "payments",
      name,
      uid: `uid-${name}`,
      resourceVersion: "4711",
      generation: 1,
      creationTimestamp: "2026-11-24T10:00:00Z",
      deletionTimestamp: "2026-11-24T12:00:00Z",
      labels,
      annotations: {
        [LAST_APPLIED]: '{"apiVersion":"v1","kind":"Secret","data":{"access_token":"c2VjcmV0"}}',
        "apptoken.io/expires-at": "2026-11-24T11:00:00Z",
        "apptoken.io/template-hash": "9f86d081",
      },
      ownerReferences: [
        {
          apiVersion: "apptoken.io/v1alpha1",
          kind: "AppTokenRequest",
          name,
          uid: "uid-request",
          controller: true,
          blockOwnerDeletion: true,
        },
        { apiVersion: "v1", kind: "ConfigMap", name: "other-owner", uid: "uid-cm" },
      ],
      finalizers: ["example.com/keep"],
      managedFields: [{ manager: "apptoken-operator", operation: "Apply" }],
    },
    type: "apptoken.io/bearer",
    data: { access_token: "c2VjcmV0" },
    stringData: { access_token: "secret" },
    immutable: false,
  };
}

describe("projectSecret", () => {
  it("keeps name, namespace, resourceVersion, labels, annotations but last-applied, owners, deletionTimestamp and type, and nothing else", () => {
    const raw = managedSecret();
    const expected = {
      metadata: {
        namespace: "payments",
        name: "graph-token",
        // The Secret's own uid is not kept: nothing reads it (ownership goes by the owners' uids).
        uid: "",
        resourceVersion: "4711",
        deletionTimestamp: "2026-11-24T12:00:00Z",
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
        annotations: {
          "apptoken.io/expires-at": "2026-11-24T11:00:00Z",
          "apptoken.io/template-hash": "9f86d081",
        },
        ownerReferences: [
          {
            apiVersion: "apptoken.io/v1alpha1",
            kind: "AppTokenRequest",
            name: "graph-token",
            uid: "uid-request",
            controller: true,
            blockOwnerDeletion: true,
          },
          { apiVersion: "v1", kind: "ConfigMap", name: "other-owner", uid: "uid-cm" },
        ],
      },
      type: "apptoken.io/bearer",
    };
    const projected = projectSecret(raw);
    expect(projected).toEqual(expected);
    // Not even as keys holding undefined: the token must never be in the store.
    expect(Object.keys(projected).sort()).toEqual(["dataDigest", "metadata", "type"]);
    expect(projected.dataDigest).toBeUndefined();
    expect(JSON.stringify(projected)).not.toContain("c2VjcmV0");
  });

  it("does not change the Secret it projects", () => {
    const raw = managedSecret();
    const before = structuredClone(raw);
    projectSecret(raw);
    expect(raw).toStrictEqual(before);
  });

  it("keeps every owner field equal to what the server sent, absent ones absent", () => {
    const raw = managedSecret();
    const owners = structuredClone(raw.metadata.ownerReferences)!;
    const projected = projectSecret(raw).metadata.ownerReferences!;
    expect(projected).toEqual(owners);
    expect(projected[1]!.controller).toBeUndefined();
    expect(projected[1]!.blockOwnerDeletion).toBeUndefined();
    expect(projected[0]).toEqual({
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      name: "graph-token",
      uid: "uid-request",
      controller: true,
      blockOwnerDeletion: true,
    });
  });

  it("keeps an owner named differently from the Secret under its own name", () => {
    const raw = managedSecret("graph-token");
    raw.metadata.ownerReferences![0]!.name = "graph";
    expect(projectSecret(raw).metadata.ownerReferences![0]!.name).toBe("graph");
  });

  it("shares one frozen labels object among Secrets labelled only managed-by", () => {
    const a = projectSecret(managedSecret("a"));
    const b = projectSecret(managedSecret("b"));
    expect(a.metadata.labels).toBe(b.metadata.labels);
    expect(Object.isFrozen(a.metadata.labels)).toBe(true);
    expect(a.metadata.labels).toEqual({ [MANAGED_BY_LABEL]: MANAGED_BY_VALUE });
  });

  it("gives a Secret with any other label its own labels object, equal to what was sent", () => {
    const withOther = (name: string): RawObject =>
      managedSecret(name, { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, team: "payments" });
    const a = projectSecret(withOther("a"));
    const b = projectSecret(withOther("b"));
    expect(a.metadata.labels).not.toBe(b.metadata.labels);
    expect(a.metadata.labels).toEqual({ [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, team: "payments" });
    expect(Object.isFrozen(a.metadata.labels)).toBe(false);

    // Managed by someone else, or not labelled managed-by at all: never the shared object.
    const shared = projectSecret(managedSecret("c")).metadata.labels;
    const foreign = projectSecret(managedSecret("d", { [MANAGED_BY_LABEL]: "helm" })).metadata.labels;
    const unlabelled = projectSecret(managedSecret("e", { team: "payments" })).metadata.labels;
    expect(foreign).not.toBe(shared);
    expect(foreign).toEqual({ [MANAGED_BY_LABEL]: "helm" });
    expect(unlabelled).not.toBe(shared);
    expect(unlabelled).toEqual({ team: "payments" });
  });

  it("keeps a Secret's labels absent when it has none", () => {
    const raw = managedSecret();
    delete raw.metadata.labels;
    expect(projectSecret(raw).metadata.labels).toBeUndefined();
  });

  it("keeps annotations that were never kubectl-applied as they are", () => {
    const raw = managedSecret();
    raw.metadata.annotations = { "apptoken.io/expires-at": "2026-11-24T11:00:00Z" };
    expect(projectSecret(raw).metadata.annotations).toEqual({
      "apptoken.io/expires-at": "2026-11-24T11:00:00Z",
    });
  });

  it("projects PartialObjectMetadata (no type, no data) and a Secret with sparse metadata", () => {
    const partial: RawObject = {
      apiVersion: "meta.k8s.io/v1",
      kind: "PartialObjectMetadata",
      metadata: { namespace: "payments", name: "app-cred", uid: "u", resourceVersion: "9" },
    };
    expect(projectSecret(partial)).toEqual({
      metadata: { namespace: "payments", name: "app-cred", uid: "", resourceVersion: "9" },
    });
    expect(projectSecret(partial).type).toBeUndefined();

    const sparse = projectSecret({ metadata: { ownerReferences: [] }, type: 42 });
    expect(sparse.metadata).toEqual({ namespace: "", name: "", uid: "", resourceVersion: "" });
    expect(sparse.metadata.ownerReferences).toBeUndefined();
    expect(sparse.type).toBeUndefined();
  });
});

describe("projectSecret on any labels and annotations", () => {
  const key = fc.oneof(
    fc.constantFrom(
      MANAGED_BY_LABEL,
      LAST_APPLIED,
      "apptoken.io/template-hash",
      "team",
      "__proto__",
      "constructor",
    ),
    fc.string({ maxLength: 20 }),
  );
  const value = fc.oneof(fc.constantFrom(MANAGED_BY_VALUE, "", "helm"), fc.string({ maxLength: 200 }));
  const map = fc.option(fc.dictionary(key, value, { maxKeys: 5, noNullPrototype: true }), { nil: undefined });

  it("keeps labels equal, annotations equal but for last-applied, and shares labels only when exactly managed-by", () => {
    fc.assert(
      fc.property(map, map, (labels, annotations) => {
        const raw = managedSecret();
        raw.metadata.labels = labels;
        raw.metadata.annotations = annotations;
        const before = structuredClone(raw);
        const { metadata } = projectSecret(raw);

        expect(metadata.labels).toStrictEqual(before.metadata.labels);
        if (annotations === undefined) expect(metadata.annotations).toBeUndefined();
        else {
          const { [LAST_APPLIED]: _dropped, ...rest } = before.metadata.annotations!;
          expect(metadata.annotations).toStrictEqual(rest);
        }
        const onlyManagedBy =
          labels !== undefined &&
          Object.keys(labels).length === 1 &&
          labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
        expect(metadata.labels !== undefined && Object.isFrozen(metadata.labels)).toBe(onlyManagedBy);
        if (!onlyManagedBy) expect(metadata.labels).toBe(raw.metadata.labels);
        expect(raw).toStrictEqual(before);
      }),
    );
  });
});

describe("projectMetadata", () => {
  it("keeps the same metadata as projectSecret, the object's uid too, and nothing of the object besides", () => {
    const meta = projectMetadata(managedSecret());
    expect(Object.keys(meta)).toEqual(["metadata"]);
    expect(meta.metadata).toEqual({ ...projectSecret(managedSecret()).metadata, uid: "uid-graph-token" });
  });
});

describe("intern", () => {
  it("returns an equal string, long or short, and passes undefined through", () => {
    expect(intern("payments")).toBe("payments");
    expect(intern(`${"pay"}${"ments"}`)).toBe("payments");
    const long = "x".repeat(200);
    expect(intern(long)).toBe(long);
    expect(intern("")).toBe("");
    expect(intern(undefined)).toBeUndefined();
  });
});

/** True when `v` and everything it holds is frozen. */
function deeplyFrozen(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return true;
  return Object.isFrozen(v) && Object.values(v).every(deeplyFrozen);
}

describe("shareObject", () => {
  it("hands out one deeply frozen copy for equal small objects, leaving the originals alone", () => {
    const first = { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" } } };
    const second = structuredClone(first);
    const a = shareObject(first);
    const b = shareObject(second);
    expect(a).toBe(b);
    expect(a).toStrictEqual(first);
    expect(deeplyFrozen(a)).toBe(true);
    expect(Object.isFrozen(first)).toBe(false);
    expect(Object.isFrozen(second.clientSecret)).toBe(false);
  });

  it("keeps distinct objects distinct", () => {
    const a = shareObject({ workloadIdentity: { serviceAccountName: "sa-one" } });
    const b = shareObject({ workloadIdentity: { serviceAccountName: "sa-two" } });
    expect(a).not.toBe(b);
    expect(b).toEqual({ workloadIdentity: { serviceAccountName: "sa-two" } });
  });

  it("returns a large object itself, unfrozen: only small repeated values are pooled", () => {
    const large = { certificate: { secretRef: { name: "x".repeat(600) } } };
    expect(shareObject(large)).toBe(large);
    expect(Object.isFrozen(large)).toBe(false);
  });
});

/** An AppTokenRequest as decoded from the API, with status written by the operator. */
function decodedRequest(): RawObject {
  return {
    apiVersion: "apptoken.io/v1alpha1",
    kind: "AppTokenRequest",
    metadata: {
      name: "graph",
      namespace: "payments",
      uid: "uid-request",
      resourceVersion: "12",
      generation: 3,
      creationTimestamp: "2026-11-24T10:00:00Z",
      deletionTimestamp: "2026-11-24T12:00:00Z",
      labels: { [MANAGED_BY_LABEL]: "argocd", team: "payments" },
      annotations: { [LAST_APPLIED]: '{"big":"copy"}', note: "keep me" },
      finalizers: ["apptoken.io/cleanup"],
      ownerReferences: [{ apiVersion: "argoproj.io/v1alpha1", kind: "Application", name: "pay", uid: "a" }],
      managedFields: [{ manager: "kubectl-client-side-apply", operation: "Update" }],
    },
    spec: {
      appRef: { kind: "ClusterAppRegistration", name: "graph-app" },
      tenantId: "7d0c9a1e-5b2f-4c3d-8e9f-0a1b2c3d4e5f",
      scope: "https://graph.microsoft.com/.default",
      target: { name: "graph", template: { data: { authorization: "Bearer {{ .accessToken }}" } } },
      refreshBefore: "20m",
    },
    status: {
      secretName: "graph",
      tokenSource: "ClientSecret",
      expiresAt: "2026-11-24T11:00:00Z",
      observedGeneration: 3,
      conditions: [
        { type: "Ready", status: "True", reason: "TokenIssued", message: "ok", lastTransitionTime: "t" },
        { type: "Degraded", status: "False", reason: "AsExpected" },
        "not a condition",
        null,
      ],
    },
  };
}

describe("trimAppTokenRequest", () => {
  it("keeps spec and status equal to what the server sent", () => {
    const raw = decodedRequest();
    const { spec, status } = structuredClone(raw);
    const trimmed = trimAppTokenRequest(raw);
    expect(trimmed.spec).toStrictEqual(spec);
    expect(trimmed.status).toStrictEqual(status);
    expect(trimmed.apiVersion).toBe("apptoken.io/v1alpha1");
    expect(trimmed.kind).toBe("AppTokenRequest");
  });

  it("drops managedFields and the last-applied annotation, and keeps every other metadata field as sent", () => {
    const raw = decodedRequest();
    const meta = structuredClone(raw.metadata);
    const trimmed = trimAppTokenRequest(raw);
    expect(trimmed.metadata).toEqual({
      name: "graph",
      namespace: "payments",
      uid: "uid-request",
      resourceVersion: "12",
      generation: 3,
      creationTimestamp: "2026-11-24T10:00:00Z",
      deletionTimestamp: meta.deletionTimestamp,
      labels: meta.labels,
      annotations: { note: "keep me" },
      finalizers: meta.finalizers,
      ownerReferences: meta.ownerReferences,
    });
    expect("managedFields" in trimmed.metadata).toBe(false);
  });

  it("reuses the decoded object but gives it a fresh metadata object, leaving the old one whole", () => {
    const raw = decodedRequest();
    const decodedMeta = raw.metadata;
    const trimmed = trimAppTokenRequest(raw);
    expect(trimmed).toBe(raw);
    expect(trimmed.metadata).not.toBe(decodedMeta);
    // Trimmed by building anew, not by `delete` on the decoded metadata.
    expect(decodedMeta.managedFields).toHaveLength(1);
    expect(decodedMeta.annotations?.[LAST_APPLIED]).toBe('{"big":"copy"}');
  });

  it("leaves a request without spec, status or namespace alone", () => {
    const trimmed = trimAppTokenRequest({ metadata: { name: "bare" }, spec: "junk", status: null });
    expect(trimmed).toEqual({ metadata: { name: "bare" }, spec: "junk", status: null });
    expect(trimmed.metadata.namespace).toBeUndefined();
  });

  it("shares one frozen appRef block between requests that name the same registration", () => {
    const a = trimAppTokenRequest(decodedRequest());
    const b = trimAppTokenRequest(decodedRequest());
    const other = decodedRequest();
    (other.spec as { appRef: unknown }).appRef = { kind: "AppRegistration", name: "other" };
    const c = trimAppTokenRequest(other);

    const appRef = (r: RawObject): unknown => (r.spec as { appRef: unknown }).appRef;
    expect(appRef(a)).toBe(appRef(b));
    expect(deeplyFrozen(appRef(a))).toBe(true);
    expect(appRef(a)).toStrictEqual((decodedRequest().spec as { appRef: unknown }).appRef);
    expect(appRef(c)).not.toBe(appRef(a));
    expect(appRef(c)).toEqual({ kind: "AppRegistration", name: "other" });
  });

  it("drops the annotations altogether when last-applied was the only one", () => {
    const raw = decodedRequest();
    raw.metadata.annotations = { [LAST_APPLIED]: "{}" };
    expect(trimAppTokenRequest(raw).metadata.annotations).toBeUndefined();
  });
});
