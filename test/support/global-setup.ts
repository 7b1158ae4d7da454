/**
 * vitest globalSetup for the integration project: one real control plane for every test file.
 * Files isolate themselves by namespace. Set APPTOKEN_TEST_KUBECONFIG (and APPTOKEN_TEST_BIN_DIR)
 * to reuse a control plane started with `hack/control-plane.sh up DIR` while iterating.
 */
import { KubeConfig } from "@kubernetes/client-node";
import type { TestProject } from "vitest/node";
import { resolveBinDir, startControlPlane, type ControlPlane } from "../../hack/control-plane/control-plane.js";
import { installCrds } from "./crds.js";

declare module "vitest" {
  export interface ProvidedContext {
    kubeconfigPath: string;
    binDir: string;
    controlPlaneDir: string;
  }
}

let plane: ControlPlane | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reuse = process.env.APPTOKEN_TEST_KUBECONFIG;
  let kubeconfigPath: string;
  let binDir: string;
  let dir = "";
  if (reuse) {
    kubeconfigPath = reuse;
    binDir = process.env.APPTOKEN_TEST_BIN_DIR ?? resolveBinDir();
  } else {
    plane = await startControlPlane({ log: (l) => process.stderr.write(`[control-plane] ${l}\n`) });
    kubeconfigPath = plane.kubeconfigPath;
    binDir = plane.binDir;
    dir = plane.dir;
  }
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  await installCrds(kc);
  project.provide("kubeconfigPath", kubeconfigPath);
  project.provide("binDir", binDir);
  project.provide("controlPlaneDir", dir);
  return async () => {
    await plane?.stop();
  };
}
