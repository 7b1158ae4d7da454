import type { JWTVerifyGetKey } from "jose";
import { createLocalJWKSet } from "jose";
import { Agent, request } from "undici";
import type { JsonWebKeySet, TokenServiceConfig } from "./config.js";

const CACHE_MS = 5 * 60_000;

/**
 * The signing keys of each federated issuer: the configured JWKS object, or the JWKS fetched
 * from the configured URL (cached for five minutes).
 */
export class FederatedKeys {
  private readonly fetched = new Map<string, { at: number; keys: JWTVerifyGetKey }>();
  private readonly dispatcher: Agent | undefined;

  constructor(
    private readonly config: () => TokenServiceConfig,
    options: { caPem?: string | undefined } = {},
  ) {
    this.dispatcher = options.caPem === undefined ? undefined : new Agent({ connect: { ca: options.caPem } });
  }

  async keysFor(issuer: string): Promise<JWTVerifyGetKey | undefined> {
    const source = this.config().jwks[issuer];
    if (source === undefined) return undefined;
    if (typeof source !== "string")
      return createLocalJWKSet(source as Parameters<typeof createLocalJWKSet>[0]);
    const cached = this.fetched.get(issuer);
    if (cached !== undefined && Date.now() - cached.at < CACHE_MS) return cached.keys;
    const keys = createLocalJWKSet(await this.fetch(source));
    this.fetched.set(issuer, { at: Date.now(), keys });
    return keys;
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private async fetch(url: string): Promise<Parameters<typeof createLocalJWKSet>[0]> {
    const response = await request(url, {
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
      ...(this.dispatcher === undefined ? {} : { dispatcher: this.dispatcher }),
    });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`JWKS ${url} answered ${response.statusCode}`);
    }
    const body = (await response.body.json()) as JsonWebKeySet;
    return body as Parameters<typeof createLocalJWKSet>[0];
  }
}
