import type { KeyObject } from "node:crypto";
import { createHash, generateKeyPair as generateKeyPairCb, randomUUID } from "node:crypto";
import { promisify } from "node:util";
import type { JWK, JWTPayload } from "jose";
import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, exportJWK, jwtVerify } from "jose";

const generateKeyPair = promisify(generateKeyPairCb);

export interface IssueRequest {
  /** Issuer base, e.g. https://127.0.0.1:41234 */
  origin: string;
  tenantId: string;
  clientId: string;
  resource: string;
  now: number;
  lifetimeSeconds: number;
}

/**
 * Signs app-only access tokens shaped like Entra's v2.0 tokens (aud = resource, tid, appid,
 * azp, idtyp=app) with one RSA key, published as a JWKS so tests can verify what they got.
 */
export class AccessTokenIssuer {
  private constructor(
    private readonly privateKey: KeyObject,
    private readonly publicJwk: JWK,
  ) {}

  static async create(): Promise<AccessTokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair("rsa", { modulusLength: 2048 });
    const jwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    return new AccessTokenIssuer(privateKey, { ...jwk, kid, use: "sig", alg: "RS256" });
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
  }

  issuerFor(origin: string, tenantId: string): string {
    return `${origin}/${tenantId}/v2.0`;
  }

  async issue(request: IssueRequest): Promise<string> {
    const iat = Math.floor(request.now / 1000);
    return new SignJWT({
      tid: request.tenantId,
      appid: request.clientId,
      azp: request.clientId,
      oid: objectIdFor(request.tenantId, request.clientId),
      idtyp: "app",
      ver: "2.0",
      uti: randomUUID(),
    })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.publicJwk.kid! })
      .setIssuer(this.issuerFor(request.origin, request.tenantId))
      .setAudience(request.resource)
      .setSubject(objectIdFor(request.tenantId, request.clientId))
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + request.lifetimeSeconds)
      .sign(this.privateKey);
  }

  /** For tests: verifies a token this service issued and returns its claims. */
  async verify(
    token: string,
    options: { origin: string; tenantId: string; now?: number },
  ): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, createLocalJWKSet(this.jwks()), {
      issuer: this.issuerFor(options.origin, options.tenantId),
      ...(options.now === undefined ? {} : { currentDate: new Date(options.now) }),
    });
    return payload;
  }
}

// The service principal's object id: stable per (tenant, app), GUID-shaped like Entra's.
function objectIdFor(tenantId: string, clientId: string): string {
  const hex = createHash("sha256").update(`${tenantId}\n${clientId}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
