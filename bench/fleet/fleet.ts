/**
 * Fleet-tier benchmark (`make bench-fleet`): K operators, each on its own namespace of one fresh
 * control plane (standing in for K clusters), N requests each on the same M keys, once without and
 * once with the shared tier on a real redis-server. Reports token calls (target: M with the tier,
 * K·M without), the time until every request is Ready in each mode, and Redis memory per key.
 * The modes alternate over FLEET_ROUNDS rounds (alone, tier; tier, alone; ...) so that neither
 * always runs on the busier control plane, and Redis is emptied before each tier run.
 *
 *   FLEET_K=3 FLEET_N=300 FLEET_M=30 FLEET_ROUNDS=2 node --import tsx bench/fleet/fleet.ts
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../../hack/control-plane/control-plane.js";
import { startTokenService, type TokenService } from "../../hack/token-service/server.js";
import { installCrds } from "../../test/support/crds.js";
import { startOperator, type OperatorProcess } from "../../test/support/operator.js";
import { startRedis, type RedisServer } from "../../test/support/redis.js";

const K = Number(process.env.FLEET_K ?? 3);
const N = Number(process.env.FLEET_N ?? 300);
const M = Number(process.env.FLEET_M ?? 30);
const ROUNDS = Number(process.env.FLEET_ROUNDS ?? 2);
if (K * N > 3000)
  throw new Error("FLEET_K × FLEET_N above 3000: this bench is for small fleets on a shared machine");

const CLIENT_ID = "11111111-aaaa-4bbb-8ccc-000000000001";
const SECRET = "fleet-bench-secret";
const SCOPE = "https://graph.microsoft.com/.default";
const tenant = (i: number): string => `7d0c9a1e-5b2f-4c3d-8e9f-${i.toString(16).padStart(12, "0")}`;
const TENANTS = Array.from({ length: M }, (_, i) => tenant(i + 1));

function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      join(cp.binDir, "kubectl"),
      ["--kubeconfig", cp.kubeconfigPath, ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`kubectl ${args[0]}: ${stderr || err.message}`)) : resolve(stdout),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

const create = (cp: ControlPlane, items: object[]): Promise<string> =>
  kubectl(cp, ["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));

async function namespaceWithApp(cp: ControlPlane, ns: string, service: TokenService): Promise<void> {
  await create(cp, [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "app-cred", namespace: ns },
      stringData: { s: SECRET },
    },
    {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppRegistration",
      metadata: { name: "app", namespace: ns },
      spec: {
        authorityHost: service.url,
        clientId: CLIENT_ID,
        credential: { clientSecret: { secretRef: { name: "app-cred", key: "s" } } },
      },
    },
  ]);
}

/** Polls until all N requests of `ns` are Ready=True; returns the seconds it took from `since`. */
async function secondsToReady(cp: ControlPlane, ns: string, since: number): Promise<number> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const list = JSON.parse(await kubectl(cp, ["get", "atr", "-n", ns, "-o", "json"])) as {
      items: { status?: { conditions?: { type: string; status: string }[] } }[];
    };
    const ready = list.items.filter((o) =>
      o.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
    );
    if (ready.length === N) return (Date.now() - since) / 1000;
    if (Date.now() > deadline) throw new Error(`${ns}: ${ready.length}/${N} Ready after 10 minutes`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface ModeResult {
  mode: "alone" | "tier";
  tokenCalls: number;
  /** Per operator: seconds from creating its N requests to all of them Ready. */
  secondsToReady: number[];
}

async function runMode(
  cp: ControlPlane,
  service: TokenService,
  mode: ModeResult["mode"],
  round: number,
  tierArgs: string[],
  caFile: string,
): Promise<ModeResult> {
  const namespaces = Array.from({ length: K }, (_, i) => `fleet-${mode}-${round}-${i}`);
  for (const ns of namespaces) await namespaceWithApp(cp, ns, service);
  const operators: OperatorProcess[] = [];
  try {
    for (const ns of namespaces) {
      operators.push(
        await startOperator({
          kubeconfigPath: cp.kubeconfigPath,
          namespaces: [ns],
          caFile,
          logLevel: "warn",
          args: [
            "--allowed-authority-hosts",
            service.authorityHost,
            "--cluster-resource-namespace",
            ns,
            "--token-requests-per-second",
            "1000",
            ...tierArgs,
          ],
        }),
      );
    }
    await Promise.all(operators.map((op) => op.waitReady()));
    const before = service.requests();
    const times = await Promise.all(
      namespaces.map(async (ns) => {
        const since = Date.now();
        await create(
          cp,
          Array.from({ length: N }, (_, i) => ({
            apiVersion: "apptoken.io/v1alpha1",
            kind: "AppTokenRequest",
            metadata: { name: `r-${i}`, namespace: ns },
            spec: {
              appRef: { kind: "AppRegistration", name: "app" },
              tenantId: TENANTS[i % M],
              scope: SCOPE,
            },
          })),
        );
        return secondsToReady(cp, ns, since);
      }),
    );
    return { mode, tokenCalls: service.requests() - before, secondsToReady: times };
  } finally {
    await Promise.all(operators.map((op) => op.stop()));
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "apptoken-bench-fleet-"));
  const say = (line: string) => process.stderr.write(`[bench-fleet] ${line}\n`);
  say(`K=${K} operators × N=${N} requests on M=${M} keys; starting a control plane`);
  const cp = await startControlPlane({
    log: (l) => say(l),
    beforeControllerManager: async (path) => {
      const crdKc = new KubeConfig();
      crdKc.loadFromFile(path);
      await installCrds(crdKc);
    },
  });
  let redis: RedisServer | undefined;
  let service: TokenService | undefined;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    redis = await startRedis();
    service = await startTokenService({
      tenants: TENANTS.map((id) => ({ id })),
      apps: TENANTS.map((tenantId) => ({ tenantId, clientId: CLIENT_ID, secrets: [SECRET] })),
      resources: ["https://graph.microsoft.com"],
      tokenLifetimeSeconds: 3599,
    });
    const caFile = join(dir, "ca.pem");
    writeFileSync(caFile, service.caPem);
    const keyFile = join(dir, "fleet.key");
    writeFileSync(keyFile, randomBytes(32).toString("base64"));

    const tierArgs = ["--shared-cache-url", redis.url, "--shared-cache-key-file", keyFile];
    const runs: ModeResult[] = [];
    let memoryBefore = 0;
    let stored = new Map<string, string>();
    let memoryAfter = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const order: ModeResult["mode"][] = round % 2 === 0 ? ["alone", "tier"] : ["tier", "alone"];
      for (const mode of order) {
        say(`round ${round + 1}/${ROUNDS}: ${mode === "tier" ? "with" : "without"} the tier`);
        if (mode === "alone") {
          runs.push(await runMode(cp, service, mode, round, [], caFile));
          continue;
        }
        // Every tier run starts cold: what an earlier run stored would make it a run of hits.
        await redis.command(["FLUSHALL"]);
        memoryBefore = await redis.usedMemory();
        runs.push(await runMode(cp, service, mode, round, tierArgs, caFile));
        stored = await redis.dump();
        memoryAfter = await redis.usedMemory();
      }
    }
    const tokenEntries = [...stored.keys()].filter((k) => k.endsWith(":token")).length;
    const valueBytes = [...stored.entries()]
      .filter(([k]) => k.endsWith(":token"))
      .reduce((sum, [k, v]) => sum + k.length + v.length, 0);
    const of = (mode: ModeResult["mode"]) => runs.filter((r) => r.mode === mode);
    const slowest = (r: ModeResult) => Math.max(...r.secondsToReady);
    const median = (xs: number[]) => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    };
    const report = {
      bench: "fleet",
      k: K,
      n: N,
      m: M,
      rounds: ROUNDS,
      tokenCalls: {
        alone: of("alone").map((r) => r.tokenCalls),
        tier: of("tier").map((r) => r.tokenCalls),
        target: { alone: K * M, tier: M },
      },
      // Per run, the slowest operator's seconds from creating its requests to all of them Ready.
      secondsToAllReady: { alone: of("alone").map(slowest), tier: of("tier").map(slowest) },
      medianSecondsToAllReady: {
        alone: median(of("alone").map(slowest)),
        tier: median(of("tier").map(slowest)),
      },
      redis: {
        tokenEntries,
        usedMemoryDeltaBytes: memoryAfter - memoryBefore,
        bytesPerKey: Math.round((memoryAfter - memoryBefore) / Math.max(1, tokenEntries)),
        keyPlusValueBytesPerKey: Math.round(valueBytes / Math.max(1, tokenEntries)),
      },
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await service?.close();
    await redis?.stop();
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
