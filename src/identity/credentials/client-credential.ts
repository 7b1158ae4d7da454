/**
 * How an app proves who it is at the token endpoint. Each kind contributes form fields (and, for
 * HTTP Basic, a header); the token client knows nothing else about it.
 */
export interface AssertionContext {
  /** The exact token endpoint URL: the audience of a client assertion. */
  tokenEndpoint: string;
  clientId: string;
  /** Epoch ms, from the injected clock. */
  now: number;
}

export type ClientAuthMethod = "client_secret_post" | "client_secret_basic";

export interface ClientCredential {
  readonly kind: "clientSecret" | "certificate" | "workloadIdentity" | "clientAssertion";
  /**
   * A stable identifier that is not a secret and changes when the credential does; part of the
   * token cache key, so rotating a credential never serves a token obtained with the old one.
   */
  readonly fingerprint: string;
  /** Form fields to add to the token request. Certificate credentials sign a fresh assertion. */
  formFields(ctx: AssertionContext): Promise<Record<string, string>>;
  /** An Authorization header value, for credentials that authenticate with HTTP Basic. */
  authorizationHeader?(clientId: string): string | undefined;
}

export const JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
