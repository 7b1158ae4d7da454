/**
 * The command-line face of the local control plane (hack/control-plane.sh calls this).
 *   up DIR     find/build binaries, start in the background, wait for /readyz, write DIR/kubeconfig
 *   down DIR   stop it and remove DIR
 */
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ControlPlaneError, startControlPlane, stopDetached } from "./control-plane.js";

async function main(argv: string[]): Promise<number> {
  const [cmd, dirArg] = argv;
  if ((cmd !== "up" && cmd !== "down") || !dirArg) {
    process.stderr.write("usage: hack/control-plane.sh up|down DIR\n");
    return 2;
  }
  const dir = resolve(dirArg);
  if (cmd === "down") {
    if (existsSync(dir)) {
      stopDetached(dir);
      rmSync(dir, { recursive: true, force: true });
    }
    process.stdout.write(`control plane in ${dir} stopped\n`);
    return 0;
  }
  if (existsSync(join(dir, "kube-apiserver.pid"))) {
    process.stderr.write(`${dir} already holds a control plane; run: hack/control-plane.sh down ${dirArg}\n`);
    return 1;
  }
  const cp = await startControlPlane({ dir, mode: "detached", log: (l) => process.stderr.write(`${l}\n`) });
  writeFileSync(join(dir, "bin-dir"), cp.binDir);
  writeFileSync(join(dir, "etcd-url"), cp.etcdUrl);
  process.stdout.write(
    `control plane up: ${cp.serverUrl}\n` +
      `  export KUBECONFIG=${cp.kubeconfigPath}\n` +
      `  ${join(cp.binDir, "kubectl")} get --raw /readyz\n` +
      `stop it with: hack/control-plane.sh down ${dirArg}\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    // A clear line for people, not a stack trace (the binaries script already said what to do).
    process.stderr.write(`${e instanceof ControlPlaneError ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
