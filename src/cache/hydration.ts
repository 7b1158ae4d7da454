/**
 * The Secrets are the cache's persistent tier: after a restart the operator reads its
 * managed Secrets once, before reconciling, and keeps each still-usable token here by the cache-key
 * hash the Secret is annotated with. The first reconcile of a request whose key hashes the same
 * seeds the cache from it, so a restart with fresh tokens makes no call to the token service.
 *
 * Many requests share a key, so many Secrets hold the same token: one entry per hash is kept (the
 * newest), which bounds memory by the number of keys, not requests.
 */
import type { PersistedToken } from "./token-cache.js";

export const PERSISTED = {
  expiresAt: "apptoken.io/expires-at",
  refreshAt: "apptoken.io/refresh-at",
  issuedAt: "apptoken.io/issued-at",
  cacheKeyHash: "apptoken.io/cache-key-hash",
} as const;

interface SecretLike {
  metadata: { annotations?: Record<string, string> | undefined };
  data?: unknown;
}

/** Reads a token back from a managed Secret, or undefined when anything is missing or malformed. */
export function persistedTokenFromSecret(
  secret: SecretLike,
  now: number,
): { keyHash: string; token: PersistedToken } | undefined {
  const a = secret.metadata.annotations ?? {};
  const keyHash = a[PERSISTED.cacheKeyHash];
  const expiresAt = Date.parse(a[PERSISTED.expiresAt] ?? "");
  const refreshAt = Date.parse(a[PERSISTED.refreshAt] ?? "");
  const issuedAt = Date.parse(a[PERSISTED.issuedAt] ?? "");
  if (!keyHash || !/^[0-9a-f]{64}$/.test(keyHash)) return undefined;
  if (!Number.isFinite(expiresAt) || !Number.isFinite(refreshAt) || !Number.isFinite(issuedAt))
    return undefined;
  if (expiresAt <= now || issuedAt > expiresAt) return undefined;
  const data = secret.data;
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as Record<string, unknown>;
  const accessToken = decode(d.access_token);
  const tokenType = decode(d.token_type);
  if (!accessToken || !tokenType) return undefined;
  // The annotation and the data must describe the same token, or someone edited one of them.
  if (decode(d.expires_at) !== new Date(expiresAt).toISOString()) return undefined;
  return { keyHash, token: { accessToken, tokenType, issuedAt, expiresAt, refreshAt } };
}

function decode(v: unknown): string | undefined {
  if (typeof v !== "string" || v === "") return undefined;
  return Buffer.from(v, "base64").toString("utf8");
}

/**
 * Entries are keyed by namespace and hash: whoever can create a labelled Secret in one namespace
 * must not be able to plant a token that another namespace's requests would be served.
 */
export class PersistedTokens {
  private readonly byHash = new Map<string, PersistedToken>();

  add(namespace: string, keyHash: string, token: PersistedToken): void {
    const k = `${namespace}/${keyHash}`;
    const have = this.byHash.get(k);
    if (!have || have.issuedAt < token.issuedAt) this.byHash.set(k, token);
  }

  /** Hands the token out once; the cache owns it from then on. */
  take(namespace: string, keyHash: string): PersistedToken | undefined {
    if (this.byHash.size === 0) return undefined; // the usual case once seeded: no key built
    const k = `${namespace}/${keyHash}`;
    const t = this.byHash.get(k);
    if (t) this.byHash.delete(k);
    return t;
  }

  get size(): number {
    return this.byHash.size;
  }

  clear(): void {
    this.byHash.clear();
  }
}
