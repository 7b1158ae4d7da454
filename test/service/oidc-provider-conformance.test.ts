/**
 * The same TokenClient, against a real and independent OAuth2 server: panva's oidc-provider,
 * configured for the client-credentials grant. Shows that nothing in the client is specific to
 * the local token service, and that the endpoint overrides (authorityHost, tokenEndpoint) work.
 *
 * How oidc-provider is set up so that an Entra-style request succeeds unchanged:
 * - features.clientCredentials enables the grant;
 * - features.resourceIndicators with a defaultResource makes every request without a `resource`
 *   parameter target RESOURCE, and getResourceServerInfo declares `${RESOURCE}/.default` as that
 *   resource server's scope, so `scope=${RESOURCE}/.default` is granted and the access token is a
 *   JWT with aud = RESOURCE (client_credentials keeps only scopes the resource server declares);
 * - routes.token puts the token endpoint at /{tenant}/oauth2/v2.0/token, so authorityHost alone
 *   finds it.
 * A second provider keeps oidc-provider's own layout (/token) and no default resource: there the
 * client uses tokenEndpoint and the documented `resource` option (RFC 8707) with a plain scope.
 */
import { X509Certificate } from "node:crypto";
import type { Server } from "node:https";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { JWK } from "jose";
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from "jose";
import Provider from "oidc-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CertificateAuthority, IssuedCertificate } from "../../hack/token-service/pki.js";
import { createCa, createClientCertificate, issueServerCertificate } from "../../hack/token-service/pki.js";
import { systemClock } from "../../src/clock.js";
import type { AuthorityPolicy } from "../../src/identity/authority.js";
import { allowedHostSet, tokenEndpointFor } from "../../src/identity/authority.js";
import { certificateCredential } from "../../src/identity/credentials/certificate.js";
import type { ClientCredential } from "../../src/identity/credentials/client-credential.js";
import { clientSecretCredential } from "../../src/identity/credentials/client-secret.js";
import { PermanentError } from "../../src/identity/errors.js";
import { TokenClient } from "../../src/identity/token-client.js";
import { START_TIMEOUT_MS, failureOf } from "./token-service-fixture.js";

const TENANT = "5a0c2e8f-0d1b-4f57-9b1e-2a4b6c8d0e1f";
const RESOURCE = "https://api.conformance.example";
const POST_SECRET = "post-client-secret-0123456789abcdef";
const BASIC_SECRET = "basic:client/secret+with=odd&chars";

interface RunningProvider {
  origin: string;
  server: Server;
}

let ca: CertificateAuthority;
let clientCert: IssuedCertificate;
let signingJwks: { keys: JWK[] };
let entraShaped: RunningProvider;
let plain: RunningProvider;
let client: TokenClient;
/** Both providers' host:port and nothing else, as an installer would allow them. */
let policy: AuthorityPolicy;

beforeAll(async () => {
  ca = await createCa({ commonName: "oidc-provider conformance CA" });
  const [tls, cert] = await Promise.all([
    issueServerCertificate(ca),
    createClientCertificate({ commonName: "jwt-client" }),
  ]);
  clientCert = cert;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: "conformance-1", alg: "RS256", use: "sig" };
  signingJwks = { keys: [publicPart(signingKey)] };
  const clientJwk = {
    ...(await exportJWK(new X509Certificate(clientCert.certPem).publicKey)),
    alg: "RS256",
    use: "sig",
  };

  const clients = [
    {
      client_id: "post-client",
      client_secret: POST_SECRET,
      token_endpoint_auth_method: "client_secret_post",
    },
    {
      client_id: "basic-client",
      client_secret: BASIC_SECRET,
      token_endpoint_auth_method: "client_secret_basic",
    },
    {
      client_id: "jwt-client",
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "RS256",
      jwks: { keys: [clientJwk] },
    },
  ].map((c) => ({ ...c, grant_types: ["client_credentials"], redirect_uris: [], response_types: [] }));

  const resourceServer = (scope: string) => ({
    scope,
    audience: RESOURCE,
    accessTokenFormat: "jwt",
    accessTokenTTL: 3600,
    jwt: { sign: { alg: "RS256" } },
  });

  // Without it oidc-provider logs that its default TTL function was used.
  const ttl = {
    ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
      token.resourceServer?.accessTokenTTL ?? 600,
  };

  entraShaped = await startProvider(tls, (origin) => ({
    clients,
    ttl,
    jwks: { keys: [signingKey] },
    routes: { token: `/${TENANT}/oauth2/v2.0/token` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource !== RESOURCE) throw new Error(`unknown resource ${resource} at ${origin}`);
          return resourceServer(`${RESOURCE}/.default`);
        },
      },
    },
  }));
  plain = await startProvider(tls, () => ({
    clients,
    ttl,
    jwks: { keys: [signingKey] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: () => resourceServer("api:read api:write"),
      },
    },
  }));
  policy = {
    allowInsecureLoopback: false,
    allowedHosts: allowedHostSet([new URL(entraShaped.origin).host, new URL(plain.origin).host]),
  };
  client = new TokenClient({
    clock: systemClock,
    caBundle: ca.certPem,
    allowedAuthorityHosts: policy.allowedHosts,
  });
}, START_TIMEOUT_MS);

afterAll(async () => {
  await client.close();
  for (const running of [entraShaped, plain]) {
    running.server.closeAllConnections();
    await new Promise((resolve) => running.server.close(resolve));
  }
});

function viaAuthorityHost(): URL {
  const authorityHost = new URL(entraShaped.origin).host;
  return tokenEndpointFor({ authorityHost, tenantId: TENANT }, policy);
}

async function claimsOf(accessToken: string, origin: string) {
  const { payload } = await jwtVerify(accessToken, createLocalJWKSet(signingJwks), {
    issuer: origin,
    audience: RESOURCE,
  });
  return payload;
}

describe("conformance with oidc-provider (client_credentials)", () => {
  const credentials: [string, string, () => ClientCredential][] = [
    ["client_secret_post", "post-client", () => clientSecretCredential(POST_SECRET)],
    [
      "client_secret_basic",
      "basic-client",
      () => clientSecretCredential(BASIC_SECRET, { clientAuthMethod: "client_secret_basic" }),
    ],
    [
      "private_key_jwt",
      "jwt-client",
      () => certificateCredential({ certPem: clientCert.certPem, keyPem: clientCert.keyPem }, systemClock),
    ],
  ];

  it.each(credentials)(
    "gets a token with %s through an authorityHost override",
    async (_method, clientId, credential) => {
      const token = await client.requestToken({
        endpoint: viaAuthorityHost(),
        clientId,
        scope: `${RESOURCE}/.default`,
        credential: credential(),
      });
      expect(token.tokenType).toBe("Bearer");
      expect(token.expiresAt - Math.floor(token.issuedAt / 1000) * 1000).toBe(3_600_000);
      const claims = await claimsOf(token.accessToken, entraShaped.origin);
      expect(claims).toMatchObject({ aud: RESOURCE, client_id: clientId, scope: `${RESOURCE}/.default` });
    },
  );

  it.each(credentials)(
    "gets a token with %s through a tokenEndpoint override and an RFC 8707 resource",
    async (_method, clientId, credential) => {
      const endpoint = tokenEndpointFor({ tokenEndpoint: `${plain.origin}/token`, tenantId: TENANT }, policy);
      const token = await client.requestToken({
        endpoint,
        clientId,
        scope: "api:read",
        resource: RESOURCE,
        credential: credential(),
      });
      expect(await claimsOf(token.accessToken, plain.origin)).toMatchObject({
        aud: RESOURCE,
        client_id: clientId,
        scope: "api:read",
      });
    },
  );

  it("presents a fresh private_key_jwt assertion each time (oidc-provider rejects replays)", async () => {
    const credential = certificateCredential(
      { certPem: clientCert.certPem, keyPem: clientCert.keyPem },
      systemClock,
    );
    for (let i = 0; i < 3; i++) {
      await client.requestToken({
        endpoint: viaAuthorityHost(),
        clientId: "jwt-client",
        scope: `${RESOURCE}/.default`,
        credential,
      });
    }
  });

  it("classifies a generic OAuth2 rejection without an AADSTS code as permanent", async () => {
    const error = await failureOf(
      client.requestToken({
        endpoint: viaAuthorityHost(),
        clientId: "post-client",
        scope: `${RESOURCE}/.default`,
        credential: clientSecretCredential("not-the-secret"),
      }),
    );
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ reason: "TokenRequestRejected", httpStatus: 401, aadsts: undefined });
    expect(error.message).toContain("invalid_client");
    expect(error.message).not.toContain("not-the-secret");
  });
});

async function startProvider(
  tls: IssuedCertificate,
  configuration: (origin: string) => Record<string, unknown>,
): Promise<RunningProvider> {
  // The issuer names the port, so the provider is built after the server is listening.
  const server = createServer({ key: tls.keyPem, cert: tls.certPem });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  server.on("request", new Provider(origin, configuration(origin)).callback());
  return { origin, server };
}

function publicPart(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...rest } = jwk;
  return rest;
}
