/**
 * The floor: the writes no implementation can avoid for N new requests, done by a plain script at
 * the operator's concurrency: for each request, create its Secret, then merge-patch its status to
 * Ready. Bodies are built with the operator's own functions (targetSecretFor, desiredStatus,
 * statusPatch) and sent through its own KubeApiClient (same HTTP stack, same client-side rate
 * limit), so the operator/floor ratio measures only what the operator adds: its watches, token
 * calls, decisions, Events and any extra writes.
 *
 * It runs as its own process, like the operator (`node --import tsx bench/scale/floor-main.ts JOB`,
 * answering one JSON line), so neither shares an event loop with the harness's watchers or the
 * token service.
 */

import type { AppTokenRequest } from "../../src/api/types.js";
import { cacheKeyHash } from "../../src/cache/cache-key.js";
import { refreshSchedule } from "../../src/cache/refresh-schedule.js";
import { systemClock } from "../../src/clock.js";
import { TOKEN_ISSUED_MESSAGE, desiredStatus, statusPatch } from "../../src/controller/status.js";
import { targetSecretFor } from "../../src/controller/target-secret.js";
import { KubeApiClient } from "../../src/kube/api-client.js";
import type { KubeTransport } from "../../src/kube/transport.js";
import type { RawObject } from "../../src/kube/types.js";
import { pool, withRetry } from "./kube.js";

/** What the harness hands the floor process. */
export interface FloorJob {
  kubeconfigPath: string;
  requests: { namespace: string; name: string; uid: string; generation: number; tenant: number }[];
  token: string;
  concurrency: number;
  qps: number;
  burst: number;
  /**
   * Also watch what any controller of these objects must watch, as the operator does: every
   * AppTokenRequest and the managed Secrets, full objects, from before the first write. A
   * diagnostic (BENCH_FLOOR_WATCH=1): it splits what watching costs from what the operator does.
   */
  watch?: boolean;
}

export interface FloorResult {
  startedAt: number;
  endedAt: number;
  /** Mean latency of its writes, from send to answer (the operator's rest_client_request_duration). */
  writeMeanMs: number;
}

export async function runFloor(o: {
  transport: KubeTransport;
  requests: RawObject[];
  /** Tenant index of each request (cache key). */
  tenantOf: (i: number) => number;
  token: string;
  concurrency: number;
  qps: number;
  burst: number;
}): Promise<FloorResult> {
  let writeSeconds = 0;
  let written = 0;
  const api = new KubeApiClient({
    transport: o.transport,
    clock: systemClock,
    qps: o.qps,
    burst: o.burst,
    onAnswered: (_verb, _resource, seconds) => {
      writeSeconds += seconds;
      written++;
    },
  });
  const startedAt = Date.now();
  await pool(o.requests.length, o.concurrency, async (i) => {
    const req = o.requests[i] as unknown as AppTokenRequest;
    const issuedAt = Date.now();
    const expiresAt = issuedAt + 3599_000;
    const { refreshAt } = refreshSchedule({ issuedAt, expiresAt }, Math.random);
    const token = { accessToken: o.token, tokenType: "Bearer", issuedAt, expiresAt, refreshAt };
    const keyHash = cacheKeyHash(`bench-floor-${o.tenantOf(i)}`);
    const desired = targetSecretFor(req, token, keyHash, undefined);
    await withRetry("floor create secret", () =>
      api.createSecret({ apiVersion: "v1", kind: "Secret", ...desired } as unknown as RawObject),
    );
    const status = desiredStatus({
      previous: undefined,
      generation: req.metadata.generation,
      secretName: desired.metadata.name,
      token: { expiresAt, refreshAt, issuedAt, source: i === 0 ? "IdentityProvider" : "Cache" },
      throttle: undefined,
      ready: {
        status: "True",
        reason: "TokenIssued",
        message: TOKEN_ISSUED_MESSAGE.Cache,
      },
      hits: 1,
      misses: 0,
      now: Date.now(),
    });
    await withRetry("floor patch status", () =>
      api.patchRequestStatus(
        req.metadata.namespace,
        req.metadata.name,
        req.metadata.uid,
        statusPatch(undefined, status),
      ),
    );
  });
  return { startedAt, endedAt: Date.now(), writeMeanMs: (1000 * writeSeconds) / Math.max(1, written) };
}
