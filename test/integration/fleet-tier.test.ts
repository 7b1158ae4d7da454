/**
 * The fleet tier end to end: three operators (real processes), each watching its own namespace on
 * one control plane — three namespaces standing in for three clusters —, one real redis-server and
 * one local token service. The same registration, tenants and scope in every namespace make the
 * same cache keys in every operator, so the fleet should make one call per key.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTokenService, type TokenService } from "../../hack/token-service/server.js";
import type { AppTokenRequestStatus } from "../../src/api/types.js";
import {
  createTestNamespace,
  deleteTestNamespace,
  eventually,
  kubeconfigPath,
  kubectl,
  testKubeConfig,
} from "../support/kube.js";
import { startOperator, type OperatorProcess } from "../support/operator.js";
import { startRedis, type RedisServer } from "../support/redis.js";
import { CLIENT_SECRET, RESOURCE, SCOPE, SECRET_APP } from "../support/scenario.js";

/** Requests per operator and distinct keys; FLEET_N / FLEET_M shrink them on a busy machine. */
const N = Number(process.env.FLEET_N ?? 300);
const M = Number(process.env.FLEET_M ?? 30);
const OPERATORS = 3;
/** Keys beyond the first M, for the outage and recovery phases. */
const OUTAGE_KEYS = 4;
const RECOVERY_KEYS = 4;
const REDIS_PASSWORD = `pw-${randomBytes(8).toString("hex")}`;

const tenant = (i: number): string => `7d0c9a1e-5b2f-4c3d-8e9f-${i.toString(16).padStart(12, "0")}`;
const TENANTS = Array.from({ length: M + OUTAGE_KEYS + RECOVERY_KEYS + 1 }, (_, i) => tenant(i + 1));

interface Request {
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  status?: AppTokenRequestStatus;
}

let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let service: TokenService;
let redis: RedisServer;
let dir: string;
const namespaces: string[] = [];
const operators: OperatorProcess[] = [];

async function prepareNamespace(prefix: string): Promise<string> {
  const ns = await createTestNamespace(kc, prefix);
  namespaces.push(ns);
  await kubectlCreate([
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "app-cred", namespace: ns },
      stringData: { "client-secret": CLIENT_SECRET },
    },
    {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppRegistration",
      metadata: { name: "app", namespace: ns },
      spec: {
        authorityHost: service.url,
        clientId: SECRET_APP,
        credential: { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" } } },
      },
    },
  ]);
  return ns;
}

/** Creates every object in one `kubectl create` (one process instead of one request per object). */
async function kubectlCreate(items: object[]): Promise<void> {
  const r = await kubectl(["create", "-f", "-"], {
    input: JSON.stringify({ apiVersion: "v1", kind: "List", items }),
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`kubectl create failed: ${r.stderr.slice(0, 2000)}`);
}

async function launchOperator(ns: string, keyFile: string): Promise<OperatorProcess> {
  const passwordFile = join(dir, "redis-password");
  const op = await startOperator({
    kubeconfigPath: kubeconfigPath(),
    namespaces: [ns],
    caFile: join(dir, "ca.pem"),
    logLevel: "info",
    args: [
      "--allowed-authority-hosts",
      service.authorityHost,
      "--cluster-resource-namespace",
      ns,
      "--shared-cache-url",
      `redis://127.0.0.1:${redis.port}`,
      "--shared-cache-password-file",
      passwordFile,
      "--shared-cache-key-file",
      keyFile,
    ],
  });
  operators.push(op);
  await op.waitReady();
  return op;
}

/** Creates `count` requests in `ns`, request i on tenant `tenants[i % tenants.length]`. */
async function createRequests(ns: string, prefix: string, tenants: string[], count: number): Promise<void> {
  const items = Array.from({ length: count }, (_, i) => ({
    apiVersion: "apptoken.io/v1alpha1",
    kind: "AppTokenRequest",
    metadata: { name: `${prefix}-${i}`, namespace: ns },
    spec: {
      appRef: { kind: "AppRegistration", name: "app" },
      tenantId: tenants[i % tenants.length],
      scope: SCOPE,
    },
  }));
  await kubectlCreate(items);
}

async function listRequests(ns: string): Promise<Request[]> {
  const list = (await custom.listNamespacedCustomObject({
    group: "apptoken.io",
    version: "v1alpha1",
    namespace: ns,
    plural: "apptokenrequests",
  })) as { items: Request[] };
  return list.items;
}

const ready = (r: Request) => r.status?.conditions?.find((c) => c.type === "Ready");

/** Waits until every request of `ns` whose name starts with `prefix` is Ready=True; returns them. */
async function allReady(ns: string, prefix: string, count: number, timeoutMs = 180_000): Promise<Request[]> {
  return eventually(
    async () => {
      const items = (await listRequests(ns)).filter((r) => r.metadata.name.startsWith(`${prefix}-`));
      return items.length === count && items.every((r) => ready(r)?.status === "True") ? items : undefined;
    },
    `${count} requests ${ns}/${prefix}-* Ready`,
    timeoutMs,
    500,
  );
}

const issuedFor = (tenants: string[]): number =>
  tenants.reduce((sum, t) => sum + service.requests({ tenantId: t, clientId: SECRET_APP }), 0);

async function forceRefresh(ns: string, name: string, value: string): Promise<void> {
  const r = await kubectl([
    "annotate",
    "--overwrite",
    "atr",
    name,
    "-n",
    ns,
    `apptoken.io/force-refresh=${value}`,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
}

/** What each operator's tier did, for a failing count. */
async function diagnostics(): Promise<string> {
  const lines: string[] = [];
  for (const op of operators) {
    const text = await op.metrics();
    lines.push(
      ...text.split("\n").filter((l) => l.startsWith("apptoken_shared_cache_") && !l.startsWith("#")),
      ...op
        .logs()
        .filter((l) => String(l.component) === "fleet-tier")
        .map((l) => JSON.stringify(l)),
      "--",
    );
  }
  return lines.join("\n");
}

describe("fleet tier: three operators, one Redis, one token service", () => {
  beforeAll(async () => {
    kc = testKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    dir = mkdtempSync(join(tmpdir(), "apptoken-fleet-"));
    redis = await startRedis({ password: REDIS_PASSWORD });
    writeFileSync(join(dir, "redis-password"), `${REDIS_PASSWORD}\n`);
    writeFileSync(join(dir, "fleet.key"), randomBytes(32).toString("base64"));
    writeFileSync(join(dir, "other.key"), randomBytes(32).toString("base64"));
    service = await startTokenService({
      tenants: TENANTS.map((id) => ({ id })),
      apps: TENANTS.map((tenantId) => ({ tenantId, clientId: SECRET_APP, secrets: [CLIENT_SECRET] })),
      resources: [RESOURCE],
      tokenLifetimeSeconds: 3599,
    });
    writeFileSync(join(dir, "ca.pem"), service.caPem);
    for (let i = 0; i < OPERATORS; i++) await prepareNamespace(`fleet-${i}`);
    await Promise.all(namespaces.map((ns) => launchOperator(ns, join(dir, "fleet.key"))));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(operators.map((op) => op.stop()));
    await service?.close();
    await redis?.stop();
    await Promise.all(namespaces.map((ns) => deleteTestNamespace(kc, ns)));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const keys = TENANTS.slice(0, M);

  it(`${OPERATORS} × ${N} requests on ${M} keys make exactly ${M} token calls`, async () => {
    await Promise.all(namespaces.map((ns) => createRequests(ns, "r", keys, N)));
    const all = await Promise.all(namespaces.map((ns) => allReady(ns, "r", N)));
    expect(issuedFor(keys), await diagnostics()).toBe(M);
    const sources = all.flat().map((r) => r.status?.tokenSource);
    expect(sources.filter((s) => s === "IdentityProvider")).toHaveLength(M);
    // Every key's token reached the other two operators through the tier, not through a call.
    expect(sources.filter((s) => s === "SharedCache").length).toBeGreaterThanOrEqual((OPERATORS - 1) * M);
    for (const op of operators) expect(await op.metric("apptoken_shared_cache_up")).toBe(1);
  }, 300_000);

  it("a 429 with Retry-After seen by one operator stops every operator's calls for that key", async () => {
    const key = keys[0]!;
    const name = "r-0"; // request 0 of every namespace is on keys[0]
    service.addFault({ type: "throttle", status: 429, retryAfter: 120, match: { tenantId: key }, times: 1 });
    const before = issuedFor([key]);
    await forceRefresh(namespaces[0]!, name, "throttle-1");
    await eventually(
      async () => {
        const r = (await listRequests(namespaces[0]!)).find((x) => x.metadata.name === name);
        return r?.status?.throttle?.state === "Throttled" ? r : undefined;
      },
      "the first operator to be throttled",
      30_000,
    );
    expect(issuedFor([key])).toBe(before + 1);
    for (const ns of namespaces.slice(1)) await forceRefresh(ns, name, "throttle-1");
    for (const ns of namespaces.slice(1)) {
      const r = await eventually(
        async () => {
          const found = (await listRequests(ns)).find((x) => x.metadata.name === name);
          return found?.status?.throttle?.state === "Throttled" ? found : undefined;
        },
        `${ns}/${name} throttled by the fleet's verdict`,
        30_000,
      );
      expect(ready(r)).toMatchObject({ status: "True", reason: "RefreshThrottled" });
    }
    // No operator called for that key after the 429 (Retry-After is two minutes away).
    expect(issuedFor([key])).toBe(before + 1);
    service.clearFaults();
  }, 120_000);

  it("with Redis killed every request still becomes Ready, each operator calling directly; back, the tier is used again", async () => {
    // Earlier blips on a busy machine may have logged a state change already: count from here.
    const linesBefore = operators.map((op) => op.logs().length);
    const since = (i: number) => operators[i]!.logs().slice(linesBefore[i]);
    await redis.kill();
    const outage = TENANTS.slice(M, M + OUTAGE_KEYS);
    await Promise.all(namespaces.map((ns) => createRequests(ns, "down", outage, OUTAGE_KEYS)));
    await Promise.all(namespaces.map((ns) => allReady(ns, "down", OUTAGE_KEYS, 60_000)));
    expect(issuedFor(outage)).toBe(OPERATORS * OUTAGE_KEYS);
    for (const [i, op] of operators.entries()) {
      expect(await op.metric("apptoken_shared_cache_up")).toBe(0);
      const warnings = since(i).filter((l) => String(l.msg).startsWith("shared token cache unavailable"));
      expect(warnings).toHaveLength(1);
      expect(op.output()).not.toContain(REDIS_PASSWORD);
    }

    await redis.restart();
    // Every operator's client has reconnected (plus the probe's own connection).
    await eventually(
      async () => {
        const info = await redis.command<string>(["INFO", "clients"]);
        return Number(/connected_clients:(\d+)/.exec(info)?.[1]) >= OPERATORS + 1 ? true : undefined;
      },
      "the operators to reconnect to Redis",
      30_000,
      200,
    );
    const recovery = TENANTS.slice(M + OUTAGE_KEYS, M + OUTAGE_KEYS + RECOVERY_KEYS);
    await createRequests(namespaces[0]!, "back", recovery, RECOVERY_KEYS);
    await allReady(namespaces[0]!, "back", RECOVERY_KEYS, 60_000);
    expect((await redis.dump()).size).toBeGreaterThanOrEqual(RECOVERY_KEYS); // entries written
    await Promise.all(namespaces.slice(1).map((ns) => createRequests(ns, "back", recovery, RECOVERY_KEYS)));
    const others = await Promise.all(
      namespaces.slice(1).map((ns) => allReady(ns, "back", RECOVERY_KEYS, 60_000)),
    );
    expect(issuedFor(recovery)).toBe(RECOVERY_KEYS); // and read
    expect(others.flat().every((r) => r.status?.tokenSource === "SharedCache")).toBe(true);
    for (const [i, op] of operators.entries()) {
      expect(await op.metric("apptoken_shared_cache_up")).toBe(1);
      expect(since(i).filter((l) => l.msg === "shared token cache answers again: using it")).toHaveLength(1);
    }
  }, 180_000);

  it("an operator with another fleet key reads nothing, calls itself, and runs on", async () => {
    const ns = await prepareNamespace("fleet-stranger");
    const stranger = await launchOperator(ns, join(dir, "other.key"));
    const recovery = TENANTS.slice(M + OUTAGE_KEYS, M + OUTAGE_KEYS + RECOVERY_KEYS); // in Redis now
    const before = issuedFor(recovery);
    await createRequests(ns, "k", recovery, RECOVERY_KEYS);
    const items = await allReady(ns, "k", RECOVERY_KEYS, 60_000);
    expect(issuedFor(recovery)).toBe(before + RECOVERY_KEYS);
    expect(items.every((r) => r.status?.tokenSource === "IdentityProvider")).toBe(true);
    expect(stranger.child.exitCode).toBeNull();
    expect(await stranger.metric("apptoken_shared_cache_up")).toBe(1);
  }, 120_000);

  it("Redis holds no plaintext token and no tenant id", async () => {
    const tokens = new Set<string>();
    for (const ns of namespaces) {
      const secrets = await core.listNamespacedSecret({ namespace: ns });
      for (const s of secrets.items) {
        const t = s.data?.access_token;
        if (t !== undefined) tokens.add(Buffer.from(t, "base64").toString("utf8"));
      }
    }
    expect(tokens.size).toBeGreaterThanOrEqual(M);
    const stored = await redis.dump();
    expect(stored.size).toBeGreaterThan(0);
    for (const [key, value] of stored) {
      for (const t of tokens) {
        expect(value.includes(t)).toBe(false);
        // Not even a recognisable part of it (the JWT's payload segment).
        expect(value.includes(t.split(".")[1]!)).toBe(false);
      }
      for (const id of TENANTS) expect(key.includes(id) || value.includes(id)).toBe(false);
    }
  }, 60_000);
});
