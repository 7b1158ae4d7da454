/**
 * vitest globalSetup for the integration project: one real control plane for every test file.
 * Files isolate themselves by namespace. Set APPTOKEN_TEST_KUBECONFIG (and APPTOKEN_TEST_BIN_DIR)
 * to reuse a control plane started with `hack/control-plane.sh up DIR` while iterating.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import type { TestProject } from "vitest/node";
import {
  resolveBinDir,
  startControlPlane,
  type ControlPlane,
} from "../../hack/control-plane/control-plane.js";
import { installCrds } from "./crds.js";

declare module "vitest" {
  export interface ProvidedContext {
    kubeconfigPath: string;
    binDir: string;
    controlPlaneDir: string;
    /** etcd's client URL: tests that must store what the apiserver would refuse write there. */
    etcdUrl: string;
  }
}

let plane: ControlPlane | undefined;

function kubeConfigAt(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reuse = process.env.APPTOKEN_TEST_KUBECONFIG;
  let kubeconfigPath: string;
  let binDir: string;
  let dir = "";
  let etcdUrl = "";
  if (reuse) {
    kubeconfigPath = reuse;
    binDir = process.env.APPTOKEN_TEST_BIN_DIR ?? resolveBinDir();
    // hack/control-plane.sh writes it beside the kubeconfig.
    etcdUrl = readFileSync(join(dirname(reuse), "etcd-url"), "utf8").trim();
  } else {
    plane = await startControlPlane({
      log: (l) => process.stderr.write(`[control-plane] ${l}\n`),
      beforeControllerManager: (path) => installCrds(kubeConfigAt(path)),
    });
    kubeconfigPath = plane.kubeconfigPath;
    binDir = plane.binDir;
    dir = plane.dir;
    etcdUrl = plane.etcdUrl;
  }
  // Again for a reused control plane (installing is idempotent).
  await installCrds(kubeConfigAt(kubeconfigPath));
  project.provide("kubeconfigPath", kubeconfigPath);
  project.provide("binDir", binDir);
  project.provide("controlPlaneDir", dir);
  project.provide("etcdUrl", etcdUrl);
  return async () => {
    await plane?.stop();
  };
}
