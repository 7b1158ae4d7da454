/**
 * Hydration: the step a replica takes when it starts leading, before its first reconcile. The tokens
 * its managed Secrets hold are read back once, so that a restart or a failover with fresh tokens
 * makes no call to the token service (the Secrets are the cache's persistent tier).
 *
 * A list of its own, paged, runs beside the informers' sync: the managed-Secret informer keeps no
 * token bytes (at 10^5 Secrets that would be their whole data in memory for good), and its transform
 * stays a function of the object alone.
 */
import type { Clock } from "../clock.js";
import { type PersistedTokens, persistedTokenFromSecret } from "../cache/hydration.js";
import type { KubeLogger } from "../kube/log.js";
import { controllerOwnerKey } from "../kube/request-indexes.js";
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRETS, collectionPath } from "../kube/resources.js";
import { listPaged } from "../kube/paged-list.js";
import type { KubeTransport } from "../kube/transport.js";

export interface ReadBackOptions {
  transport: KubeTransport;
  /** The namespaces served; all when undefined. */
  namespaces: readonly string[] | undefined;
  clock: Clock;
  log: KubeLogger;
  /** Secrets per page: bounds what one page holds in memory at once. Default 500. */
  pageSize?: number;
}

export interface ReadBackReport {
  /** Managed Secrets listed. */
  secrets: number;
  /** Of those, the ones a request controls that hold a usable token. */
  tokens: number;
  /** False when a list failed: the tokens read until then are kept, the rest will be fetched. */
  complete: boolean;
}

/**
 * Reads the tokens of every managed Secret into `into` (by namespace and cache-key hash, the newest
 * per pair). Never rejects: a failed list is logged and costs calls, not correctness, since a token
 * read back is only ever a seed.
 */
export async function readTokensBack(
  o: ReadBackOptions,
  into: PersistedTokens,
  signal: AbortSignal,
): Promise<ReadBackReport> {
  const report: ReadBackReport = { secrets: 0, tokens: 0, complete: true };
  for (const namespace of o.namespaces ?? [undefined]) {
    try {
      await readNamespace(o, namespace, into, report, signal);
    } catch (err) {
      report.complete = false;
      if (signal.aborted) break;
      o.log.warn(
        { namespace: namespace ?? "(all)", err: err instanceof Error ? err.message : String(err) },
        "could not read tokens back from the managed Secrets; their requests will fetch new ones",
      );
    }
  }
  return report;
}

async function readNamespace(
  o: ReadBackOptions,
  namespace: string | undefined,
  into: PersistedTokens,
  report: ReadBackReport,
  signal: AbortSignal,
): Promise<void> {
  const list = {
    path: collectionPath(SECRETS, namespace),
    labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
    pageSize: o.pageSize ?? 500,
  };
  await listPaged(o.transport, list, signal, (items) => {
    const now = o.clock.now();
    for (const secret of items) {
      report.secrets++;
      // Only Secrets a request controls: a bare label is not proof the operator wrote it.
      if (controllerOwnerKey(secret) === undefined) continue;
      const persisted = persistedTokenFromSecret(secret, now);
      if (!persisted) continue;
      into.add(secret.metadata.namespace ?? "", persisted.keyHash, persisted.token);
      report.tokens++;
    }
  });
}
