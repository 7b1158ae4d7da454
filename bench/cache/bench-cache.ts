/**
 * Cache-hit latency of our TokenCache against @azure/msal-node's own cache (`make bench-cache`).
 *
 *   npx tsx bench/cache/bench-cache.ts            # all sizes
 *   node --expose-gc --import tsx bench/cache/bench-cache.ts --only=apptoken --token-bytes=1500
 *
 * One JSON line per (impl, tenants) on stdout:
 *   {"impl":"apptoken","tenants":N,"usPerHit":X, ...extra fields}
 * usPerHit is CPU µs per hit (this process, GC threads included; robust to other load on a shared
 * machine), the median of 5 timed rounds (after a warm-up round) of sequential, awaited hits on keys
 * picked at random among the N cached ones. For apptoken it is the controller's own hit path: the
 * request's memo, its cache key as RequestMemo.keyFor keeps it, TokenCache.acquireHeld. Extra fields:
 * wall-clock µs, the key rebuilt on every hit (the controller before keyFor), the precomputed-key
 * figure and the bare Map.get floor, msal's one-CCA-per-tenant figure, and heap figures (per-key
 * bytes only with --expose-gc). See bench/README.md.
 */
import { performance } from "node:perf_hooks";
import type { ConfidentialClientApplication } from "@azure/msal-node";
import { cacheKeyId } from "../../src/cache/cache-key.js";
import { RequestMemory, cacheKeyParts, type KeySource } from "../../src/controller/request-memory.js";
import type { RawObject } from "../../src/kube/types.js";
import { unlimited } from "../../src/rate/token-bucket.js";
import { TokenCache } from "../../src/cache/token-cache.js";
import type { TokenResponse } from "../../src/cache/token-response.js";
import { systemClock } from "../../src/clock.js";
import {
  CLIENT_ID,
  CannedEntraNetwork,
  HOST,
  SCOPE,
  newCca,
  opaqueToken,
  tenantGuid,
} from "./msal-node-harness.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v = "true"] = a.replace(/^--/, "").split("=");
    return [k!, v];
  }),
);
const only = args.get("only");
const TOKEN_BYTES = Number(args.get("token-bytes") ?? 64);
const ROUND_MS = Number(args.get("round-ms") ?? 400);
const OURS_SIZES = (args.get("sizes") ?? "1,1000,10000,100000,500000").split(",").map(Number);
const MSAL_SIZES = (args.get("msal-sizes") ?? "1,1000,10000").split(",").map(Number);

const gc = (globalThis as { gc?: () => void }).gc;
function heapMB(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}
const round1 = (n: number) => Math.round(n * 10) / 10;
const round3 = (n: number) => Math.round(n * 1000) / 1000;

/** Random key indices, precomputed so the timed loop spends nothing on the RNG. */
function randomOrder(n: number): Uint32Array {
  let len = 1 << 16;
  while (len < Math.min(2 * n, 1 << 21)) len <<= 1;
  const order = new Uint32Array(len);
  let x = 0x9e3779b9;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    order[i] = (x >>> 0) % n;
  }
  return order;
}

interface Timing {
  /** CPU time (user + system, all threads of this process: GC included) per hit, µs. */
  cpu: number;
  /** Wall-clock time per hit, µs: the same on an idle machine, inflated by other load on a busy one. */
  wall: number;
}

/** A stream of random key indices and a timed round over it. */
function rounds(hit: (i: number) => unknown, n: number, batch: number): (ms: number) => Promise<Timing> {
  const order = randomOrder(n);
  const mask = order.length - 1;
  let cursor = 0;
  return async (ms) => {
    let iterations = 0;
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    let elapsed = 0;
    do {
      for (let k = 0; k < batch; k++) await hit(order[cursor++ & mask]!);
      iterations += batch;
      elapsed = performance.now() - start;
    } while (elapsed < ms);
    const cpu = process.cpuUsage(cpuStart);
    return { cpu: (cpu.user + cpu.system) / iterations, wall: (elapsed * 1000) / iterations };
  };
}

const ROUNDS = 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** Median µs per hit over 5 rounds of ROUND_MS, after a warm-up round. */
async function measure(hit: (i: number) => unknown, n: number, batch: number): Promise<Timing> {
  const round = rounds(hit, n, batch);
  gc?.(); // start every measurement from a collected heap, so one's garbage is not billed to the next
  await round(ROUND_MS);
  const samples: Timing[] = [];
  for (let r = 0; r < ROUNDS; r++) samples.push(await round(ROUND_MS));
  return { cpu: median(samples.map((t) => t.cpu)), wall: median(samples.map((t) => t.wall)) };
}

/**
 * Like `measure` for several ways of making the same hit, which take turns round by round (after a
 * warm-up round each), and each one's CPU ratio to `floor` in the same turn, the median over the
 * turns: other jobs on the machine, which make one round slower than the next, weigh on both
 * sides of a ratio instead of on whichever way happened to run then.
 */
async function measureInTurns<K extends string>(
  hits: Record<K, (i: number) => unknown>,
  floor: NoInfer<K>,
  n: number,
  batch: number,
): Promise<Record<K, Timing & { overFloor: number }>> {
  const names = Object.keys(hits) as K[];
  const run = new Map(names.map((k) => [k, rounds(hits[k], n, batch)]));
  const samples = new Map<K, Timing[]>(names.map((k) => [k, []]));
  for (let r = 0; r <= ROUNDS; r++) {
    for (const k of names) {
      gc?.(); // one way's garbage is not billed to the next
      const t = await run.get(k)!(ROUND_MS);
      if (r > 0) samples.get(k)!.push(t);
    }
  }
  const floorCpu = samples.get(floor)!.map((t) => t.cpu);
  const out = {} as Record<K, Timing & { overFloor: number }>;
  for (const k of names) {
    const ts = samples.get(k)!;
    out[k] = {
      cpu: median(ts.map((t) => t.cpu)),
      wall: median(ts.map((t) => t.wall)),
      overFloor: median(ts.map((t, i) => t.cpu / floorCpu[i]!)),
    };
  }
  return out;
}

function emit(line: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

/** What the controller holds per AppTokenRequest: its queue key and the informer's object. */
interface RequestLike {
  holder: string;
  obj: RawObject;
  refreshBeforeMs: number | undefined;
}

// One registration and one credential for every tenant: the registration directory hands out one
// parsed spec per registration version, the credential resolver one credential per Secret version.
const REGISTRATION_SPEC = { clientId: CLIENT_ID } as unknown as KeySource["registration"]["spec"];
const CREDENTIAL = { fingerprint: "sha256:5f4dcc3b5aa765d61d8327deb882cf99" };

/**
 * What a reconcile that passed every check has for the key step: fresh objects every time (a new
 * snapshot, registration lookup and resolved credential) around the informer's and resolvers' own.
 */
function sourceOf(r: RequestLike, endpoint: URL): KeySource {
  return {
    snap: { req: r.obj as unknown as KeySource["snap"]["req"] },
    registration: { spec: REGISTRATION_SPEC },
    credential: { endpoint, credential: CREDENTIAL },
  };
}

async function benchApptoken(n: number): Promise<void> {
  const requests: RequestLike[] = Array.from({ length: n }, (_, i) => {
    const metadata = { namespace: `tenant-${i}`, name: "graph", uid: `uid-${i}`, generation: 1 };
    const spec = { tenantId: tenantGuid(i), scope: SCOPE };
    return {
      holder: `tenant-${i}/graph`,
      obj: { apiVersion: "apptoken.io/v1alpha1", kind: "AppTokenRequest", metadata, spec },
      refreshBeforeMs: undefined,
    };
  });
  // Made fresh by every reconcile (resolveCredential) in the controller; kept apart here so that
  // these large objects do not spread the requests' own objects across memory.
  const endpoints = requests.map((_, i) => new URL(`https://${HOST}/${tenantGuid(i)}/oauth2/v2.0/token`));
  const cache = new TokenCache({ clock: systemClock, limiter: unlimited });
  const memory = new RequestMemory({ clock: systemClock, cache, events: { forget: () => undefined } });
  // The first reconcile of each request builds its key; the same strings key the cache.
  const keyIds = requests.map(
    (r, i) => memory.keyFor(r.holder, memory.memoFor(r.holder, r.obj), sourceOf(r, endpoints[i]!)).keyId,
  );
  const before = heapMB();

  let calls = 0;
  const respond = (i: number) => async (): Promise<TokenResponse> => {
    calls++;
    const now = Date.now();
    return {
      accessToken: opaqueToken(i, TOKEN_BYTES),
      tokenType: "Bearer",
      issuedAt: now,
      expiresAt: now + 3_600_000,
    };
  };
  for (let i = 0; i < n; i++) {
    const r = requests[i]!;
    await cache.acquire(keyIds[i]!, respond(i), { holder: r.holder, refreshBeforeMs: r.refreshBeforeMs });
  }
  const after = heapMB();
  const filled = calls;

  const neverCalled = respond(-1);
  const memos = requests.map((r) => memory.memoFor(r.holder, r.obj));
  const index = new Map(keyIds.map((id, i) => [id, i]));
  const t = await measureInTurns(
    {
      // As the controller runs it on every reconcile: the request's memo (found by the informer's
      // object), its key as keyFor keeps it (four comparisons while the spec, the registration and
      // the credential are unchanged and the key is cached, the key held in the cache when it was
      // built), acquireHeld on the cache's handle.
      fullPath: (i) => {
        const r = requests[i]!;
        const { held } = memory.keyFor(r.holder, memory.memoFor(r.holder, r.obj), sourceOf(r, endpoints[i]!));
        return cache.acquireHeld(held, neverCalled, { holder: r.holder, refreshBeforeMs: r.refreshBeforeMs });
      },
      // The same from the request's memo on: what the cache's side of the path costs, once the
      // reconciler has found the request's memo (which it does for every reconcile, hit or not).
      fromMemo: (i) => {
        const r = requests[i]!;
        const { held } = memory.keyFor(r.holder, memos[i]!, sourceOf(r, endpoints[i]!));
        return cache.acquireHeld(held, neverCalled, { holder: r.holder, refreshBeforeMs: r.refreshBeforeMs });
      },
      // As the controller ran it before keyFor: the key built from the request's fields on every hit.
      keyRebuilt: (i) => {
        const r = requests[i]!;
        return cache.acquire(cacheKeyId(cacheKeyParts(sourceOf(r, endpoints[i]!))), neverCalled, {
          holder: r.holder,
          refreshBeforeMs: r.refreshBeforeMs,
        });
      },
      // The lookup alone, with the key built once per request generation.
      precomputed: (i) => cache.acquire(keyIds[i]!, neverCalled),
      // The floor: a bare Map.get of the same keys in the same order (what any Map-based cache pays).
      mapGet: (i) => index.get(keyIds[i]!),
    },
    "mapGet",
    n,
    1024,
  );
  const fullPath = t.fullPath;

  const stats = cache.stats();
  if (calls !== filled || stats.misses !== n || stats.keys !== n) {
    throw new Error(`apptoken: hits made calls (calls ${calls}, filled ${filled}, misses ${stats.misses})`);
  }
  emit({
    impl: "apptoken",
    tenants: n,
    usPerHit: round3(fullPath.cpu),
    usPerHitWall: round3(fullPath.wall),
    usPerHitFromMemo: round3(t.fromMemo.cpu),
    usPerHitKeyRebuilt: round3(t.keyRebuilt.cpu),
    usPerHitPrecomputedKey: round3(t.precomputed.cpu),
    usPerMapGet: round3(t.mapGet.cpu),
    fullPathOverMapGet: round1(fullPath.overFloor),
    fromMemoOverMapGet: round1(t.fromMemo.overFloor),
    heapUsedMB: round1(after),
    ...(gc && n >= 1000 ? { cacheBytesPerKey: Math.round(((after - before) * 2 ** 20) / n) } : {}),
    tokenBytes: TOKEN_BYTES,
  });
}

/**
 * Fills one application's cache with a token per tenant. Through acquireTokenByClientCredential
 * that is itself O(N) per miss (2.5 minutes of CPU for 10^4 tenants), so only tenant 0's token is
 * acquired that way; every other tenant gets a copy of the entry MSAL stored for it, with only the
 * tenant (realm) and the token changed, through MSAL's own deserialize: the entries the calls
 * would have stored. Checked on a sample: each is a cache hit returning its own token.
 */
async function fillMsalCache(cca: ConfidentialClientApplication, authorities: string[]): Promise<void> {
  await cca.acquireTokenByClientCredential({ scopes: [SCOPE], authority: authorities[0]! });
  if (authorities.length === 1) return;
  const cache = JSON.parse(cca.getTokenCache().serialize()) as {
    AccessToken: Record<string, { realm: string; secret: string }>;
  };
  const [[key0, entry0]] = Object.entries(cache.AccessToken) as [[string, { realm: string; secret: string }]];
  const realm0 = entry0.realm;
  for (let i = 1; i < authorities.length; i++) {
    const realm = tenantGuid(i);
    cache.AccessToken[key0.replace(realm0, realm)] = { ...entry0, realm, secret: `${entry0.secret}.${i}` };
  }
  cca.getTokenCache().deserialize(JSON.stringify(cache));
  for (const i of [1, authorities.length >> 1, authorities.length - 1]) {
    const r = await cca.acquireTokenByClientCredential({ scopes: [SCOPE], authority: authorities[i]! });
    if (!r?.fromCache || r.accessToken !== `${entry0.secret}.${i}`)
      throw new Error(`msal-node: the filled cache does not answer tenant ${i} from its own entry`);
  }
}

async function benchMsal(n: number): Promise<void> {
  const authorities = Array.from({ length: n }, (_, i) => `https://${HOST}/${tenantGuid(i)}`);
  const before = heapMB();

  // msal-node's multi-tenant way: one application, the tenant's authority on each request.
  const network = new CannedEntraNetwork(TOKEN_BYTES);
  const shared = newCca(network);
  await fillMsalCache(shared, authorities);
  const after = heapMB();
  const posts = network.posts;
  const oneCca = await measure(
    async (i) => {
      const result = await shared.acquireTokenByClientCredential({
        scopes: [SCOPE],
        authority: authorities[i]!,
      });
      if (!result?.fromCache) throw new Error("msal-node: expected a cache hit");
    },
    n,
    n >= 1000 ? 4 : 64,
  );
  if (network.posts !== posts || posts !== 1)
    throw new Error(`msal-node: hits made calls (${network.posts} posts)`);

  // The alternative: one application (and so one cache) per tenant, found through a Map.
  const perTenantNetwork = new CannedEntraNetwork(TOKEN_BYTES);
  const ccas = new Map(authorities.map((a, i) => [a, newCca(perTenantNetwork, tenantGuid(i))]));
  for (const [authority, cca] of ccas)
    await cca.acquireTokenByClientCredential({ scopes: [SCOPE], authority });
  const perTenantPosts = perTenantNetwork.posts;
  const ccaPerTenant = await measure(
    async (i) => {
      const authority = authorities[i]!;
      const result = await ccas
        .get(authority)!
        .acquireTokenByClientCredential({ scopes: [SCOPE], authority });
      if (!result?.fromCache) throw new Error("msal-node: expected a cache hit");
    },
    n,
    64,
  );
  if (perTenantNetwork.posts !== perTenantPosts)
    throw new Error("msal-node (CCA per tenant): hits made calls");

  emit({
    impl: "msal-node",
    tenants: n,
    usPerHit: round3(oneCca.cpu),
    usPerHitWall: round3(oneCca.wall),
    usPerHitCcaPerTenant: round3(ccaPerTenant.cpu),
    heapUsedMB: round1(after),
    ...(gc && n >= 1000 ? { cacheBytesPerKey: Math.round(((after - before) * 2 ** 20) / n) } : {}),
    tokenBytes: TOKEN_BYTES,
  });
}

if (only === undefined || only === "apptoken") for (const n of OURS_SIZES) await benchApptoken(n);
if (only === undefined || only === "msal-node") for (const n of MSAL_SIZES) await benchMsal(n);
