import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import { Pool } from "undici";
import type { Clock } from "../clock.js";
import { checkAllowedHost, checkTransport, type AllowedHosts } from "./authority.js";
import type { ClientCredential } from "./credentials/client-credential.js";
import { TransientError } from "./errors.js";
import type { RawTokenResponse, TokenResponse } from "./token-response.js";
import { classifyTokenResponse } from "./token-response.js";
import { classifyTokenError } from "./transport-error.js";

export interface TokenClientOptions {
  clock: Clock;
  /** Extra PEM CA certificates to trust besides the system roots (private authorities, tests). */
  caBundle?: string | undefined;
  /** Dev only: allow http:// endpoints on 127.0.0.0/8 and ::1. */
  allowInsecureLoopback?: boolean | undefined;
  /**
   * The only hosts a credential is ever sent to (allowedHostSet of --allowed-authority-hosts).
   * Required, and checked on every call: whatever built the endpoint, nothing reaches another host.
   */
  allowedAuthorityHosts: AllowedHosts;
  connectTimeoutMs?: number | undefined;
  headersTimeoutMs?: number | undefined;
  bodyTimeoutMs?: number | undefined;
  /** Token responses are a few KiB; anything far larger is a broken or hostile server. */
  maxResponseBytes?: number | undefined;
  userAgent?: string | undefined;
  /** Concurrent connections per authority origin; the cache's rate limit keeps real use far lower. */
  connectionsPerAuthority?: number | undefined;
  keepAliveTimeoutMs?: number | undefined;
}

export interface TokenRequest {
  /** From tokenEndpointFor(). */
  endpoint: URL;
  clientId: string;
  /** For Entra ID: exactly one `{resource}/.default`. */
  scope: string;
  credential: ClientCredential;
  signal?: AbortSignal | undefined;
  /**
   * RFC 8707 resource indicator. Entra ID v2.0 does not use it (the resource is in `scope`);
   * generic OAuth2 servers such as oidc-provider may need it to pick the audience.
   */
  resource?: string | undefined;
}

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 15_000,
  bodyTimeoutMs: 15_000,
  maxResponseBytes: 256 * 1024,
  userAgent: "apptoken-operator",
  connectionsPerAuthority: 16,
  keepAliveTimeoutMs: 60_000,
};

/**
 * The OAuth2 client-credentials grant against Entra ID (or any RFC 6749 server), over one
 * keep-alive connection pool per authority origin. Every failure comes out as a
 * ThrottledError, TransientError or PermanentError; an abort through `signal` rethrows the
 * signal's reason unchanged, because the caller asked for it.
 */
export class TokenClient {
  private readonly options: typeof DEFAULTS & {
    clock: Clock;
    allowInsecureLoopback: boolean;
    allowedAuthorityHosts: AllowedHosts;
  };
  /**
   * Built once: handing undici the CA list instead makes every new connection parse ~150 root
   * certificates again (a millisecond of CPU each, hundreds of times in a cold start).
   */
  private readonly secureContext: SecureContext | undefined;
  private readonly pools = new Map<string, Pool>();
  private closed = false;

  constructor(options: TokenClientOptions) {
    this.options = {
      ...DEFAULTS,
      ...withoutUndefined(options),
      clock: options.clock,
      allowInsecureLoopback: options.allowInsecureLoopback === true,
      allowedAuthorityHosts: options.allowedAuthorityHosts,
    };
    this.secureContext =
      options.caBundle === undefined
        ? undefined
        : createSecureContext({ ca: [...rootCertificates, options.caBundle] });
  }

  async requestToken(request: TokenRequest): Promise<TokenResponse> {
    if (this.closed) throw new Error("TokenClient is closed");
    const { endpoint, clientId, credential } = request;
    checkTransport(endpoint, this.options);
    // Before the credential produces anything: a minted service-account token or a signed
    // assertion must not even be created for a host that may not receive it.
    checkAllowedHost(endpoint, this.options.allowedAuthorityHosts);
    const { clock } = this.options;

    const fields = await credential.formFields({ tokenEndpoint: endpoint.href, clientId, now: clock.now() });
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      scope: request.scope,
    });
    if (request.resource !== undefined) form.set("resource", request.resource);
    for (const [name, value] of Object.entries(fields)) form.set(name, value);

    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
      "user-agent": this.options.userAgent,
    };
    const authorization = credential.authorizationHeader?.(clientId);
    if (authorization !== undefined) headers.authorization = authorization;
    const redact = [...Object.values(fields), ...(authorization === undefined ? [] : [authorization])];

    const sentAt = clock.now();
    let raw: RawTokenResponse;
    try {
      raw = await this.post(endpoint, headers, form.toString(), request.signal);
    } catch (error) {
      if (request.signal?.aborted === true) throw request.signal.reason;
      throw classifyTokenError(error, endpoint.host);
    }
    const outcome = classifyTokenResponse(raw, { now: clock.now(), sentAt, redact });
    if (!outcome.ok) throw outcome.error;
    return outcome.token;
  }

  /** Closes every pool; in-flight requests fail. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy()));
  }

  private async post(
    endpoint: URL,
    headers: Record<string, string>,
    body: string,
    signal: AbortSignal | undefined,
  ): Promise<RawTokenResponse> {
    const response = await this.poolFor(endpoint.origin).request({
      method: "POST",
      path: `${endpoint.pathname}${endpoint.search}`,
      headers,
      body,
      signal,
    });
    const limit = this.options.maxResponseBytes;
    const declared = Number(response.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      response.body.destroy();
      throw tooLarge(limit);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > limit) {
        response.body.destroy();
        throw tooLarge(limit);
      }
      chunks.push(buffer);
    }
    return {
      status: response.statusCode,
      headers: response.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
  }

  private poolFor(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.options.connectionsPerAuthority,
        connect: {
          timeout: this.options.connectTimeoutMs,
          ...(this.secureContext === undefined ? {} : { secureContext: this.secureContext }),
        },
        headersTimeout: this.options.headersTimeoutMs,
        bodyTimeout: this.options.bodyTimeoutMs,
        keepAliveTimeout: this.options.keepAliveTimeoutMs,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }
}

function tooLarge(limit: number): TransientError {
  return new TransientError(`the token response exceeded ${limit} bytes`, { reason: "ResponseTooLarge" });
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
