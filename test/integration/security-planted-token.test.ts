/**
 * Tokens are shared across namespaces (one per registration, tenant and scope), and a restarted
 * operator reads them back from the Secrets it manages. Someone who may write Secrets in one
 * namespace can make a Secret there look managed and hold a token of their choosing. This test
 * plants one while the operator is down and shows that, after the restart, the planted token never
 * reaches the other namespace's Secret (a watch sees every version of it), and that the planted
 * one is replaced by a token from the identity provider.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  binDir,
  createTestNamespace,
  deleteTestNamespace,
  eventually,
  kubeconfigPath,
  kubectl,
} from "../support/kube.js";
import { SCOPE, Scenario, TENANT } from "../support/scenario.js";

const PLANTED = "planted.not-a-token.from-someone-with-secret-write";

describe("a token planted in one namespace's Secret while the operator is down", () => {
  const s = new Scenario({ prefix: "planted", operator: false });
  let other: string;
  let watcher: ChildProcess | undefined;
  let seenInOther = "";
  const registration = () => `${s.ns}-shared`;

  beforeAll(async () => {
    await s.start();
    other = await createTestNamespace(s.kc, "planted-other");
    const applied = await kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "apptoken.io/v1alpha1",
        kind: "ClusterAppRegistration",
        metadata: { name: registration() },
        spec: {
          ...s.registrationSpec("clientSecret"),
          namespaceSelector: {
            matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: [s.ns, other] }],
          },
        },
      }),
    });
    expect(applied.stderr).toBe("");
    await s.startOperator({ namespaces: [s.ns, other] });
  }, 180_000);

  afterAll(async () => {
    watcher?.kill();
    await kubectl(["delete", "cappreg", registration(), "--ignore-not-found"]);
    await deleteTestNamespace(s.kc, other);
    await s.stop();
  });

  const spec = () => ({
    appRef: { kind: "ClusterAppRegistration", name: registration() },
    tenantId: TENANT,
    scope: SCOPE,
  });
  const token = async (ns: string, name: string): Promise<string | undefined> =>
    s.decoded(
      await s.core.readNamespacedSecret({ namespace: ns, name }).catch(() => undefined),
      "access_token",
    );

  it("is never served to the other namespace, and is replaced by a real token in its own", async () => {
    await s.createRequest("mine", spec());
    await s.custom.createNamespacedCustomObject({
      group: "apptoken.io",
      version: "v1alpha1",
      namespace: other,
      plural: "apptokenrequests",
      body: {
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppTokenRequest",
        metadata: { name: "theirs" },
        spec: spec(),
      },
    });
    await s.waitFor("mine", "True", "TokenIssued");
    const shared = await eventually(async () => token(other, "theirs"), "the other namespace's token");
    expect(await token(s.ns, "mine")).toBe(shared);
    expect(s.service.issued()).toBe(1);

    await s.operator!.stop();
    // Same annotations (expiry, key hash), someone else's token: what a restarted operator reads back.
    const secret = await s.core.readNamespacedSecret({ namespace: s.ns, name: "mine" });
    secret.data = { ...secret.data, access_token: Buffer.from(PLANTED).toString("base64") };
    await s.core.replaceNamespacedSecret({ namespace: s.ns, name: "mine", body: secret });

    // Every version of the other namespace's Secret from now on.
    watcher = spawn(join(binDir(), "kubectl"), [
      "--kubeconfig",
      kubeconfigPath(),
      "get",
      "secret",
      "theirs",
      "-n",
      other,
      "--watch",
      "-o",
      'jsonpath={.data.access_token}{"\\n"}',
    ]);
    watcher.stdout!.setEncoding("utf8").on("data", (d: string) => (seenInOther += d));

    await s.startOperator({ namespaces: [s.ns, other] });
    const repaired = await eventually(async () => {
      const t = await token(s.ns, "mine");
      return t !== undefined && t !== PLANTED ? t : undefined;
    }, "the planted token replaced");
    await eventually(
      async () => ((await token(other, "theirs")) === repaired ? true : undefined),
      "both hold the new token",
    );
    // One fresh call made the token trustworthy for everyone.
    expect(s.service.issued()).toBe(2);
    const versions = seenInOther
      .split("\n")
      .filter(Boolean)
      .map((b64) => Buffer.from(b64, "base64").toString("utf8"));
    expect(versions.length).toBeGreaterThan(0);
    expect(versions).not.toContain(PLANTED);
    await s.waitFor("mine", "True", "TokenIssued");
  });
});
