import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ApiextensionsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { parse } from "yaml";

const CRD_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../crds");

/** Server-side applies every CRD in crds/ and waits until each is Established. Idempotent. */
export async function installCrds(kc: KubeConfig, timeoutMs = 30_000): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const files = readdirSync(CRD_DIR).filter((f) => f.endsWith(".yaml"));
  for (const f of files) {
    const crd = parse(readFileSync(join(CRD_DIR, f), "utf8")) as V1CustomResourceDefinition;
    const name = crd.metadata!.name!;
    await api.patchCustomResourceDefinition(
      { name, body: crd, fieldManager: "apptoken-tests", force: true },
      setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = await api.readCustomResourceDefinition({ name });
      const established = got.status?.conditions?.find((c) => c.type === "Established")?.status === "True";
      if (established) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
