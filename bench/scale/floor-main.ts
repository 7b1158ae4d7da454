/** The floor as its own process: `node --import tsx bench/scale/floor-main.ts JOB.json` (see floor.ts). */
import { readFileSync } from "node:fs";
import type { RawObject } from "../../src/kube/types.js";
import { runFloor, type FloorJob } from "./floor.js";
import { harnessTransport, kubeConfig } from "./kube.js";

const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as FloorJob;
const transport = harnessTransport(kubeConfig(job.kubeconfigPath));
const requests = job.requests.map(
  (r) =>
    ({
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { namespace: r.namespace, name: r.name, uid: r.uid, generation: r.generation },
      spec: {},
    }) as RawObject,
);
runFloor({ ...job, transport, requests, tenantOf: (i) => job.requests[i]!.tenant }).then(
  (r) => {
    process.stdout.write(JSON.stringify(r) + "\n");
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`floor failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
