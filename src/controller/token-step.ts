/**
 * "What token should the Secret hold?": the call to the token service the cache makes on a miss,
 * and the rule for tokens the cache was seeded with from Secrets after a restart.
 */
import type { Clock } from "../clock.js";
import type { TokenCache } from "../cache/index.js";
import type { PersistedToken } from "../cache/token-cache.js";
import type { ClientCredential, TokenClient, TokenResponse } from "../identity/index.js";
import { asTokenError } from "../cache/call-failure.js";
import type { Metrics } from "../observability/metrics.js";

export interface TokenCall {
  endpoint: URL;
  clientId: string;
  scope: string;
  credential: ClientCredential;
  signal: AbortSignal;
}

/**
 * One call to the token service, counted and timed; anything that is not already one of the
 * identity module's error classes becomes a TransientError (retried with backoff) that names only
 * its class.
 */
export async function fetchToken(
  tokenClient: Pick<TokenClient, "requestToken">,
  metrics: Metrics,
  call: TokenCall,
): Promise<TokenResponse> {
  const started = performance.now();
  try {
    const token = await tokenClient.requestToken(call);
    metrics.tokenRequests.inc({ result: "success", aadsts: "" });
    return token;
  } catch (e) {
    // Not one of the identity module's classes: a bug or a library's own error, whose message was
    // not written for a status. It is named by its class only, as the cache would name it.
    const err = asTokenError(e);
    metrics.tokenRequests.inc({ result: err.kind.toLowerCase(), aadsts: err.aadsts ?? "" });
    throw err;
  } finally {
    metrics.tokenRequestDuration.observe((performance.now() - started) / 1000);
  }
}

/**
 * After a restart the cache is seeded from the managed Secrets (no call for a fresh token). A
 * Secret is only as trustworthy as whoever may write Secrets in its namespace, and a key is shared
 * across namespaces: so a token read back from one namespace is served to another only when that
 * namespace's own Secret holds the very same token. Otherwise (a planted Secret on either side, or
 * no Secret here yet) the key fetches a fresh token, which every namespace may trust.
 */
export class ReadBackTrust {
  /**
   * keyId -> namespaces whose own Secrets hold the token the cache was seeded with, until the
   * key's next fetch. Empty in steady state.
   */
  private readonly vouchers = new Map<string, Set<string>>();

  constructor(
    private readonly cache: Pick<TokenCache, "inspect" | "seed">,
    private readonly clock: Clock,
  ) {}

  /** True when a request of `ns` must not be served the cached token as it stands. */
  distrusted(keyId: string, ns: string, seed: PersistedToken | undefined): boolean {
    // Without a token read back here, nothing to compare: no look at the cache (every reconcile
    // in steady state comes this way).
    if (seed === undefined) {
      const vouched = this.vouchers.get(keyId);
      return vouched !== undefined && !vouched.has(ns);
    }
    const cached = this.cache.inspect(keyId)?.token;
    if (!cached) {
      this.cache.seed([{ keyId, token: seed }]);
      this.vouchers.set(keyId, new Set([ns]));
      return false;
    }
    const vouched = this.vouchers.get(keyId);
    if (!vouched || vouched.has(ns)) return false;
    if (seed.accessToken === cached.accessToken) {
      vouched.add(ns);
      return false;
    }
    return true;
  }

  /** The key fetched a token of its own: every namespace may trust it. */
  fetched(keyId: string): void {
    this.vouchers.delete(keyId);
  }

  /**
   * Only the credential changed (a rotation): the old key's token is still valid for the same app,
   * tenant and scope. It goes to the new key marked due, so the new credential is used at once, yet
   * the Secret and Ready stay valid if that call must wait (global limit, throttling): rotating one
   * credential shared by 10^5 requests must not flip them all to Ready=False.
   */
  carryOverOnRotation(previousKeyId: string, keyId: string): void {
    const identity = (id: string) => id.slice(0, id.lastIndexOf("|"));
    if (identity(previousKeyId) !== identity(keyId)) return;
    const previous = this.cache.inspect(previousKeyId);
    if (!previous?.usable || !previous.token || this.cache.inspect(keyId)?.token) return;
    this.cache.seed([{ keyId, token: { ...previous.token, refreshAt: this.clock.now() } }]);
    const vouched = this.vouchers.get(previousKeyId);
    if (vouched) this.vouchers.set(keyId, new Set(vouched));
  }
}
