/** The floor as its own process: `node --import tsx bench/scale/floor-main.ts JOB.json` (see floor.ts). */
import { readFileSync } from "node:fs";
import { Informer } from "../../src/kube/informer.js";
import { APP_TOKEN_REQUESTS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRETS } from "../../src/kube/resources.js";
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

/** The operator's two watches, with the objects decoded and kept whole (see FloorJob.watch). */
async function watchLikeTheOperator(): Promise<() => Promise<void>> {
  const keep = (raw: RawObject) => raw as RawObject & { metadata: { name: string } };
  const informers = [
    new Informer({ name: "floor-requests", transport, resource: APP_TOKEN_REQUESTS, transform: keep }),
    new Informer({
      name: "floor-secrets",
      transport,
      resource: SECRETS,
      labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
      transform: keep,
    }),
  ];
  for (const i of informers) i.start();
  await Promise.all(informers.map((i) => i.waitForSync()));
  return async () => {
    await Promise.all(informers.map((i) => i.stop()));
  };
}

const stopWatching = job.watch ? await watchLikeTheOperator() : async () => undefined;
runFloor({ ...job, transport, requests, tenantOf: (i) => job.requests[i]!.tenant }).then(
  async (r) => {
    await stopWatching();
    process.stdout.write(JSON.stringify(r) + "\n");
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`floor failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
