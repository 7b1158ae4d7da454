/**
 * Which cluster the operator talks to: the kubeconfig files it was given (--kubeconfig, else
 * $KUBECONFIG), else the pod's in-cluster service account.
 *
 * A list of files (separated by ":" on Linux, as in $KUBECONFIG) is merged the way kubectl merges
 * them: a cluster, user or context named in several files is taken from the first, the first file
 * that sets current-context decides it, and files that do not exist are skipped (all missing is an
 * error). client-node's own merge lets later files win and throws on a repeated name, and its
 * loadFromDefault reads $KUBECONFIG rather than the list it is given, so the merge is done here.
 */
import { existsSync } from "node:fs";
import { delimiter } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";

export class KubeconfigError extends Error {}

export function loadKubeConfig(pathList: string | undefined): KubeConfig {
  if (!pathList) {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return requireCluster(
      kc,
      "no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod",
    );
  }
  const files = pathList.split(delimiter).filter(Boolean);
  const present = files.filter((f) => existsSync(f));
  if (present.length === 0) {
    throw new KubeconfigError(`no such kubeconfig file: ${files.join(", ") || JSON.stringify(pathList)}`);
  }
  const merged = new KubeConfig();
  let currentContext = "";
  for (const file of present) {
    const kc = new KubeConfig();
    try {
      // Relative certificate and token paths are resolved against this file's own directory.
      kc.loadFromFile(file);
    } catch (e) {
      throw new KubeconfigError(
        `cannot load kubeconfig ${file}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    for (const c of kc.getClusters()) if (!merged.getCluster(c.name)) merged.addCluster(c);
    for (const u of kc.getUsers()) if (!merged.getUser(u.name)) merged.addUser(u);
    for (const c of kc.getContexts()) if (!merged.getContextObject(c.name)) merged.addContext(c);
    currentContext ||= kc.getCurrentContext() ?? "";
  }
  if (currentContext) merged.setCurrentContext(currentContext);
  return requireCluster(merged, `${present.join(delimiter)}: no current context with a cluster`);
}

function requireCluster(kc: KubeConfig, message: string): KubeConfig {
  if (!kc.getCurrentCluster()) throw new KubeconfigError(message);
  return kc;
}
