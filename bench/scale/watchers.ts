/**
 * What the harness observes, through the operator's own Informer (list + watch, re-list on 410)
 * fed by a separate connection, timestamped when each event arrives here:
 * - ReadyWatcher: when each AppTokenRequest is first seen with Ready=True (time-to-Ready).
 * - SecretWatcher: every managed Secret's token: each replacement is a refresh (with its lateness
 *   against the refresh-at the previous token carried), and no Secret may ever be seen holding an
 *   expired token (checked at every event and, for Secrets that do not change, once a second).
 */
import { Informer } from "../../src/kube/informer.js";
import { objectKey } from "../../src/kube/object-key.js";
import { APP_TOKEN_REQUESTS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRETS } from "../../src/kube/resources.js";
import type { KubeTransport } from "../../src/kube/transport.js";
import type { KubeObject, RawObject } from "../../src/kube/types.js";

interface ReadyProjection extends KubeObject {
  ready: boolean;
}

export class ReadyWatcher {
  readonly readyAt = new Map<string, number>();
  private readonly informer: Informer<ReadyProjection>;
  private readonly waiters = new Set<() => void>();

  constructor(transport: KubeTransport) {
    this.informer = new Informer<ReadyProjection>({
      name: "bench-ready",
      transport,
      resource: APP_TOKEN_REQUESTS,
      transform: (raw: RawObject) => {
        const conditions = (raw.status as { conditions?: { type: string; status: string }[] } | undefined)
          ?.conditions;
        return {
          metadata: {
            name: raw.metadata.name ?? "",
            namespace: raw.metadata.namespace ?? "",
            resourceVersion: raw.metadata.resourceVersion ?? "",
          },
          ready: conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
        };
      },
    });
    const seen = (obj: ReadyProjection): void => {
      const key = objectKey(obj.metadata.namespace, obj.metadata.name ?? "");
      if (obj.ready && !this.readyAt.has(key)) {
        this.readyAt.set(key, Date.now());
        for (const w of this.waiters) w();
      }
    };
    this.informer.addEventHandler({
      onAdd: (obj) => {
        seen(obj);
        for (const w of this.waiters) w();
      },
      onUpdate: (_old, obj) => seen(obj),
      onDelete: (obj) => this.readyAt.delete(objectKey(obj.metadata.namespace, obj.metadata.name ?? "")),
    });
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  /** Objects the watch has seen (in namespaces starting with `prefix`). */
  count(prefix = ""): number {
    let n = 0;
    for (const k of this.informer.keys()) if (k.startsWith(prefix)) n++;
    return n;
  }

  readyCount(prefix = ""): number {
    let n = 0;
    for (const k of this.readyAt.keys()) if (k.startsWith(prefix)) n++;
    return n;
  }

  /** Resolves when `done()` holds, re-checked at every event and every second. */
  async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (done()) return;
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        cleanup();
        resolve();
      };
      const tick = setInterval(check, 1000);
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearInterval(tick);
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }
}

interface SecretProjection extends KubeObject {
  issuedAt: number;
  refreshAt: number;
  /** From the data key `expires_at`, what a consumer reads. */
  expiresAt: number;
}

export interface RefreshObservation {
  at: number;
  /** The Secret's resourceVersion after the refresh (an etcd revision: orders writes across objects). */
  rv: number;
  /** at − the refresh-at of the token it replaced (ms); negative when refreshed early (forced). */
  latenessMs: number;
}

export class SecretWatcher {
  readonly refreshes: RefreshObservation[] = [];
  /** Distinct Secrets ever observed holding an expired token, and the worst overdue time seen. */
  readonly expired = new Set<string>();
  worstExpiredByMs = 0;
  checks = 0;
  private readonly informer: Informer<SecretProjection>;
  private timer: NodeJS.Timeout | undefined;

  constructor(transport: KubeTransport) {
    this.informer = new Informer<SecretProjection>({
      name: "bench-secrets",
      transport,
      resource: SECRETS,
      labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
      transform: (raw: RawObject) => {
        const a = raw.metadata.annotations ?? {};
        const data = (raw.data ?? {}) as Record<string, string>;
        const expires = data.expires_at ? Buffer.from(data.expires_at, "base64").toString("utf8") : "";
        return {
          metadata: {
            name: raw.metadata.name ?? "",
            namespace: raw.metadata.namespace ?? "",
            resourceVersion: raw.metadata.resourceVersion ?? "",
          },
          issuedAt: Date.parse(a["apptoken.io/issued-at"] ?? ""),
          refreshAt: Date.parse(a["apptoken.io/refresh-at"] ?? ""),
          expiresAt: Date.parse(expires),
        };
      },
    });
    this.informer.addEventHandler({
      onAdd: (s) => this.check(s, Date.now()),
      onUpdate: (old, s) => {
        const now = Date.now();
        this.check(s, now);
        if (s.issuedAt !== old.issuedAt && Number.isFinite(old.refreshAt))
          this.refreshes.push({
            at: now,
            rv: Number(s.metadata.resourceVersion),
            latenessMs: now - old.refreshAt,
          });
      },
    });
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync();
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const k of this.informer.keys()) {
        const s = this.informer.getByKey(k);
        if (s) this.check(s, now);
      }
    }, 1000);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.informer.stop();
  }

  get size(): number {
    return this.informer.size;
  }

  /** The earliest `expires_at` among the Secrets (+∞ with none). */
  soonestExpiry(): number {
    let soonest = Number.POSITIVE_INFINITY;
    for (const k of this.informer.keys())
      soonest = Math.min(soonest, this.informer.getByKey(k)?.expiresAt ?? soonest);
    return soonest;
  }

  private check(s: SecretProjection, now: number): void {
    this.checks++;
    if (!(s.expiresAt > now)) {
      this.expired.add(objectKey(s.metadata.namespace, s.metadata.name ?? ""));
      this.worstExpiredByMs = Math.max(this.worstExpiredByMs, now - (s.expiresAt || 0));
    }
  }
}
