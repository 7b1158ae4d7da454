import { createHash } from "node:crypto";

/**
 * The identity of a cached token: two requests share a token exactly when these five agree
 * (docs/design.md#the-cache). The credential is represented by a fingerprint (a hash of the
 * secret, a certificate thumbprint, a service account's identity), never by the credential itself.
 */
export interface CacheKeyParts {
  /** host[:port] of the authority, e.g. "login.microsoftonline.com". */
  authorityHost: string;
  /** Tenant GUID or verified domain. */
  tenantId: string;
  /** Application (client) id, a GUID. */
  clientId: string;
  /** The single `/.default` scope, as the spec gives it. */
  scope: string;
  /** A stable, non-secret fingerprint of the credential. */
  credentialFingerprint: string;
}

/**
 * Only the scope (a URI, as given) could contain the separator; every other part is a host, a
 * GUID/domain or a fingerprint. With at most one part able to contain it the id still parses one
 * way (three separators from the left, one from the right), so distinct keys never collide.
 */
const SEP = "|";

/**
 * The canonical cache key id. Hosts, tenants (GUIDs and domain names) and client GUIDs are
 * case-insensitive, so they are lower-cased; the scope is case-sensitive in Entra's eyes and is kept
 * as given. Build it once per request and pass the string to the cache: it is the Map key, so a hit
 * costs one string hash, not a rebuild of the tuple. `join` makes one flat string; a chain of `+`
 * would make a rope that V8 flattens on the first lookup and then keeps an extra indirection to (and
 * a Map of 500 000 ropes is ~30 MB larger and measurably slower to search).
 */
export function cacheKeyId(parts: CacheKeyParts): string {
  return [
    parts.authorityHost.toLowerCase(),
    parts.tenantId.toLowerCase(),
    parts.clientId.toLowerCase(),
    parts.scope,
    parts.credentialFingerprint,
  ].join(SEP);
}

/**
 * sha256 (hex) of a cache key id, for the target Secret's annotation: a restarted operator matches a
 * persisted token to its key without the Secret revealing tenant/client pairs in clear, and the hash
 * never involves the token itself.
 */
export function cacheKeyHash(keyId: string): string {
  return createHash("sha256").update(keyId, "utf8").digest("hex");
}
