/**
 * The controller's writes against the real kube-apiserver, where what the server does with a
 * precondition is the point: a status write meant for a deleted request must never land on a new
 * request that took its name.
 */
import { CustomObjectsApi } from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { API_VERSION, GROUP, VERSION } from "../../src/api/types.js";
import { systemClock } from "../../src/clock.js";
import { KubeApiClient, ReplacedError } from "../../src/kube/api-client.js";
import { KubeApiError, createKubeTransport } from "../../src/kube/transport.js";
import { createTestNamespace, deleteTestNamespace, testKubeConfig } from "../support/kube.js";

const kc = testKubeConfig();
const custom = kc.makeApiClient(CustomObjectsApi);
const namespaces: string[] = [];
afterAll(async () => {
  await Promise.all(namespaces.map((ns) => deleteTestNamespace(kc, ns)));
});

const request = (ns: string, name: string) => ({
  apiVersion: API_VERSION,
  kind: "AppTokenRequest",
  metadata: { name, namespace: ns },
  spec: {
    appRef: { kind: "AppRegistration", name: "app" },
    tenantId: "11111111-2222-4333-8444-555555555555",
    scope: "https://graph.microsoft.com/.default",
  },
});

describe("KubeApiClient against the real API server", () => {
  it("refuses a status write for a request that was deleted and recreated under its name", async () => {
    const ns = await createTestNamespace(kc, "api-client");
    namespaces.push(ns);
    const api = new KubeApiClient({
      transport: createKubeTransport(kc),
      clock: systemClock,
      qps: 50,
      burst: 50,
    });
    const target = { group: GROUP, version: VERSION, namespace: ns, plural: "apptokenrequests" };
    const first = (await custom.createNamespacedCustomObject({ ...target, body: request(ns, "reborn") })) as {
      metadata: { uid: string };
    };
    const status = { tokenSource: "Cache" };
    await api.patchRequestStatus(ns, "reborn", first.metadata.uid, status);
    await custom.deleteNamespacedCustomObject({ ...target, name: "reborn" });
    const second = (await custom.createNamespacedCustomObject({
      ...target,
      body: request(ns, "reborn"),
    })) as {
      metadata: { uid: string };
    };

    const refused = await api
      .patchRequestStatus(ns, "reborn", first.metadata.uid, status)
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ReplacedError);
    const now = (await custom.getNamespacedCustomObject({ ...target, name: "reborn" })) as {
      metadata: { uid: string };
      status?: unknown;
    };
    expect(now.metadata.uid).toBe(second.metadata.uid);
    expect(now.status).toBeUndefined();

    const written = await api.patchRequestStatus(ns, "reborn", second.metadata.uid, status);
    expect((written as { status?: unknown }).status).toEqual(status);
    // A status the schema refuses is still that error, not a replaced object.
    const invalid = await api
      .patchRequestStatus(ns, "reborn", second.metadata.uid, { tokenSource: "Nowhere" })
      .catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(KubeApiError);
    expect((invalid as KubeApiError).statusCode).toBe(422);
    // Null members of the merge form remove fields.
    const cleared = await api.patchRequestStatus(ns, "reborn", second.metadata.uid, { tokenSource: null });
    expect((cleared as { status?: unknown }).status ?? {}).toEqual({});
  });
});
