import type { Clock } from "../../clock.js";
import { CredentialError } from "../../identity/errors.js";
import type { KubeApiClient } from "../../kube/api-client.js";
import { findKubeApiError, kubernetesApiError } from "./kubernetes-api-error.js";
import { LruMap } from "./lru-map.js";

/** Lifetime asked of the TokenRequest API (the apiserver may grant more; we use what it grants). */
export const SERVICE_ACCOUNT_TOKEN_SECONDS = 3600;

/**
 * A token whose refresh failed is still presented while it has this long left: long enough for
 * Entra ID to receive and check it, as kubelet keeps serving a projected token it could not renew.
 */
const MIN_REMAINING_MS = 5 * 60_000;

interface MintedToken {
  token: string;
  /** Half-way through the lifetime the apiserver granted, measured with the injected clock. */
  refreshAt: number;
  expiresAt: number;
}

export interface ServiceAccountTokenCacheOptions {
  api: Pick<KubeApiClient, "createServiceAccountToken">;
  clock: Clock;
  maxEntries: number;
  /**
   * The only audiences a token is minted for (--allowed-token-audiences). Checked here, at the
   * TokenRequest call itself, so no path can mint a token for, say, the Kubernetes API's audience.
   */
  allowedAudiences: ReadonlySet<string>;
}

/**
 * Service-account tokens minted with the TokenRequest API, one per (namespace, service account,
 * audience), reused until half their lifetime has passed. Concurrent requests for one key share a
 * single call. Only the token service's calls for new app tokens ask for these, so with a shared
 * credential this is one TokenRequest per half hour, not one per AppTokenRequest.
 */
export class ServiceAccountTokenCache {
  private readonly tokens: LruMap<string, MintedToken>;
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly o: ServiceAccountTokenCacheOptions) {
    this.tokens = new LruMap(o.maxEntries);
  }

  /**
   * A token for `audience`. Rejects with CredentialError("ServiceAccountNotFound") on 404 and with
   * TransientError(reason "KubernetesApiError") on any other failure.
   */
  token(namespace: string, serviceAccountName: string, audience: string): Promise<string> {
    try {
      checkAudience(audience, this.o.allowedAudiences);
    } catch (err) {
      return Promise.reject(err);
    }
    // Names are DNS-1123 (no NUL); the audience is last, so the key is unambiguous.
    const key = `${namespace}\u0000${serviceAccountName}\u0000${audience}`;
    const cached = this.tokens.get(key);
    if (cached && this.o.clock.now() < cached.refreshAt) return Promise.resolve(cached.token);
    const running = this.inflight.get(key);
    if (running) return running;
    const flight = this.mint(key, namespace, serviceAccountName, audience, cached).finally(() =>
      this.inflight.delete(key),
    );
    this.inflight.set(key, flight);
    return flight;
  }

  private async mint(
    key: string,
    namespace: string,
    serviceAccountName: string,
    audience: string,
    previous: MintedToken | undefined,
  ): Promise<string> {
    let minted: { token: string; expiresAt: number };
    try {
      minted = await this.o.api.createServiceAccountToken(
        namespace,
        serviceAccountName,
        audience,
        SERVICE_ACCOUNT_TOKEN_SECONDS,
      );
    } catch (err) {
      if (findKubeApiError(err)?.statusCode === 404) {
        // A token of a deleted ServiceAccount is worthless: Entra ID would refuse it too.
        this.tokens.delete(key);
        throw new CredentialError(
          "ServiceAccountNotFound",
          `ServiceAccount ${namespace}/${serviceAccountName} named by spec.credential.workloadIdentity.serviceAccountName does not exist (a registration's ServiceAccount must be in its own namespace, or for a ClusterAppRegistration in the cluster resource namespace)`,
          err,
        );
      }
      if (previous && previous.expiresAt - this.o.clock.now() >= MIN_REMAINING_MS) return previous.token;
      throw kubernetesApiError(
        `minting a token for ServiceAccount ${namespace}/${serviceAccountName} (audience ${audience})`,
        err,
      );
    }
    const now = this.o.clock.now();
    const lifetime = minted.expiresAt - now;
    if (lifetime > 0) {
      this.tokens.set(key, {
        token: minted.token,
        refreshAt: now + lifetime / 2,
        expiresAt: minted.expiresAt,
      });
    } else {
      // Clocks disagree: use it once and let Entra ID judge, but do not keep it.
      this.tokens.delete(key);
    }
    return minted.token;
  }
}

/** Throws CredentialError("AudienceNotAllowed") unless `audience` is one the operator may mint for. */
export function checkAudience(audience: string, allowed: ReadonlySet<string>): void {
  if (allowed.has(audience)) return;
  throw new CredentialError(
    "AudienceNotAllowed",
    `a service-account token for audience ${JSON.stringify(audience.slice(0, 200))} is not minted: it is not in the operator's --allowed-token-audiences`,
  );
}
