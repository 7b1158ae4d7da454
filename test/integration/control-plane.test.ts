import { AuthenticationV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTestNamespace,
  deleteTestNamespace,
  eventually,
  kubectl,
  testKubeConfig,
} from "../support/kube.js";

describe("the local control plane", () => {
  let kc: KubeConfig;
  let ns: string;
  beforeAll(async () => {
    kc = testKubeConfig();
    ns = await createTestNamespace(kc, "cp");
  });
  afterAll(async () => deleteTestNamespace(kc, ns));

  it("is a real apiserver of the pinned release, reachable by the pinned kubectl", async () => {
    const readyz = await kubectl(["get", "--raw", "/readyz"]);
    expect(readyz.stdout.trim()).toBe("ok");
    const version = await kubectl(["version", "-o", "json"]);
    const parsed = JSON.parse(version.stdout) as {
      clientVersion: { minor: string };
      serverVersion: { minor: string };
    };
    expect(parsed.serverVersion.minor).toBe(parsed.clientVersion.minor);
  });

  it("authorizes with RBAC: an unprivileged service account is forbidden to list secrets", async () => {
    await kc
      .makeApiClient(CoreV1Api)
      .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "nobody" } } });
    const can = await kubectl([
      "auth",
      "can-i",
      "list",
      "secrets",
      "-n",
      ns,
      `--as=system:serviceaccount:${ns}:nobody`,
    ]);
    expect(can.stdout.trim()).toBe("no");
  });

  it("mints service-account tokens with the TokenRequest API", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "minted" } } });
    const tr = await core.createNamespacedServiceAccountToken({
      name: "minted",
      namespace: ns,
      body: { spec: { audiences: ["api://AzureADTokenExchange"], expirationSeconds: 600 } },
    });
    const token = tr.status?.token ?? "";
    expect(token.split(".")).toHaveLength(3);
    const review = await kc.makeApiClient(AuthenticationV1Api).createTokenReview({
      body: { spec: { token, audiences: ["api://AzureADTokenExchange"] } },
    });
    expect(review.status?.authenticated).toBe(true);
    expect(review.status?.user?.username).toBe(`system:serviceaccount:${ns}:minted`);
  });

  it("garbage-collects objects whose owner is deleted", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "owner" } },
    });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: {
          name: "owned",
          ownerReferences: [
            {
              apiVersion: "v1",
              kind: "ConfigMap",
              name: "owner",
              uid: owner.metadata!.uid!,
              controller: true,
            },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ name: "owner", namespace: ns });
    await eventually(async () => {
      const list = await core.listNamespacedConfigMap({ namespace: ns });
      return list.items.some((c) => c.metadata?.name === "owned") ? undefined : true;
    }, "the owned ConfigMap to be collected");
  });
});
