/**
 * What the cache takes in and hands out. `TokenResponse` is structurally the token client's result
 * (src/identity/), declared here so the cache does not depend on the client's module.
 */

/** A successful answer from the token service, times already converted to epoch ms by the client. */
export interface TokenResponse {
  accessToken: string;
  tokenType: string;
  /** When the client received the answer (epoch ms); the start of the token's lifetime for us. */
  issuedAt: number;
  /** issuedAt + expires_in (epoch ms). */
  expiresAt: number;
  /** The service's `refresh_in`, in seconds, when it sent one. */
  refreshIn?: number | undefined;
  /** Set by the fleet tier when it answered from its shared store instead of calling the service. */
  source?: "SharedCache" | undefined;
}

/** A token as the cache holds it and hands it to the controller for the target Secret. */
export interface CachedToken {
  readonly accessToken: string;
  readonly tokenType: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** When this token becomes due for replacement (epoch ms), from refreshSchedule. */
  readonly refreshAt: number;
}
