import type { CryptoKey, JWK } from "jose";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import type { CertificateAuthority, IssuedCertificate } from "../../hack/token-service/pki.js";
import { createCa, createClientCertificate, issueServerCertificate } from "../../hack/token-service/pki.js";
import type { TokenService, TokenServiceOptions } from "../../hack/token-service/server.js";
import { startTokenService } from "../../hack/token-service/server.js";
import { allowedHostSet, tokenEndpointFor } from "../../src/identity/authority.js";
import type { ClientCredential } from "../../src/identity/credentials/client-credential.js";
import type { TokenClientOptions } from "../../src/identity/token-client.js";
import { TokenClient } from "../../src/identity/token-client.js";
import { FakeClock } from "../support/fake-clock.js";

/**
 * For a beforeAll that starts a fixture: it generates a few RSA keys, which takes far more than
 * vitest's default 10 s hook timeout on a busy machine.
 */
export const START_TIMEOUT_MS = 60_000;

/** One local token service with a tenant, a resource and an app per credential kind. */
export const TENANT = "4f1c2f5e-7b1a-4a53-9a51-6d6b3c7d9e01";
export const DOMAIN = "contoso.example";
export const RESOURCE = "https://graph.microsoft.com";
export const SCOPE = `${RESOURCE}/.default`;
export const SECRET_APP = "0c3b8a5e-1111-4c1e-8c5b-5d7a0e3f9a11";
export const CERT_APP = "0c3b8a5e-2222-4c1e-8c5b-5d7a0e3f9a22";
export const SNI_APP = "0c3b8a5e-3333-4c1e-8c5b-5d7a0e3f9a33";
export const FEDERATED_APP = "0c3b8a5e-4444-4c1e-8c5b-5d7a0e3f9a44";
export const SECRET = "s3cret~Q8r.VALUE-not-the-id";
export const CLUSTER_ISSUER = "https://kubernetes.default.svc.cluster.local";
export const SA_SUBJECT = "system:serviceaccount:payments:payments-app";

export interface Fixture {
  service: TokenService;
  clock: FakeClock;
  /** The local token service's host:port, as --allowed-authority-hosts would allow it. */
  allowedHosts: ReadonlySet<string>;
  /** Allows only the local token service. */
  client: TokenClient;
  /** Registered with CERT_APP. */
  appCert: IssuedCertificate;
  /** Not registered anywhere. */
  strangerCert: IssuedCertificate;
  /** Issued under `sniRoot`; SNI_APP trusts its subject under that root. */
  sniCert: IssuedCertificate;
  sniRoot: CertificateAuthority;
  /** Issued the service's TLS certificate; also trusted by the service for JWKS URLs. */
  ca: CertificateAuthority;
  /** The cluster issuer's public keys (what its /openid/v1/jwks would serve). */
  clusterJwks: { keys: JWK[] };
  /** Signs service-account tokens as the cluster's issuer. */
  mintServiceAccountToken(claims?: {
    sub?: string;
    aud?: string;
    expiresInSeconds?: number;
  }): Promise<string>;
  endpoint(tenant?: string): URL;
  request(
    credential: ClientCredential,
    overrides?: { clientId?: string; scope?: string; endpoint?: URL },
  ): ReturnType<TokenClient["requestToken"]>;
  /** A client of the fixture's clock and CA; it allows only the local token service unless told otherwise. */
  newClient(options?: Partial<TokenClientOptions>): TokenClient;
  close(): Promise<void>;
}

export async function startFixture(options: TokenServiceOptions = {}): Promise<Fixture> {
  const clock = new FakeClock(Date.now());
  const ca = await createCa({ commonName: "apptoken test token service CA" });
  const serverCert = await issueServerCertificate(ca);
  const sniRoot = await createCa({ commonName: "apptoken test partner CA" });
  const sniIntermediate = await createCa({ commonName: "apptoken test partner issuing CA", issuer: sniRoot });
  const [appCert, strangerCert, sniCert] = await Promise.all([
    createClientCertificate({ commonName: "cert app" }),
    createClientCertificate({ commonName: "stranger" }),
    createClientCertificate({ commonName: "payments.contoso.example", issuer: sniIntermediate }),
  ]);
  const clusterKeys = await generateKeyPair("RS256");
  const clusterJwk: JWK = {
    ...(await exportJWK(clusterKeys.publicKey)),
    kid: "cluster-key-1",
    alg: "RS256",
    use: "sig",
  };

  const service = await startTokenService(
    {
      tenants: [{ id: TENANT, domains: [DOMAIN] }],
      resources: [RESOURCE],
      apps: [
        { tenantId: TENANT, clientId: SECRET_APP, secrets: [SECRET] },
        { tenantId: TENANT, clientId: CERT_APP, certificates: [appCert.certPem] },
        {
          tenantId: TENANT,
          clientId: SNI_APP,
          trustedSubjects: [{ subject: "CN=payments.contoso.example", caPem: sniRoot.certPem }],
        },
        {
          tenantId: TENANT,
          clientId: FEDERATED_APP,
          federated: [{ issuer: CLUSTER_ISSUER, subject: SA_SUBJECT }],
        },
      ],
      jwks: { [CLUSTER_ISSUER]: { keys: [clusterJwk as Record<string, unknown>] } },
    },
    { clock, tls: { ca, server: serverCert }, jwksCaPem: ca.certPem, ...options },
  );
  const allowedHosts = allowedHostSet([service.authorityHost]);
  const clients: TokenClient[] = [];
  const newClient = (overrides: Partial<TokenClientOptions> = {}) => {
    const client = new TokenClient({
      clock,
      caBundle: service.caPem,
      ...overrides,
      allowedAuthorityHosts: overrides.allowedAuthorityHosts ?? allowedHosts,
    });
    clients.push(client);
    return client;
  };
  const client = newClient();
  const endpoint = (tenant = TENANT) =>
    tokenEndpointFor(
      { authorityHost: service.authorityHost, tenantId: tenant },
      { allowInsecureLoopback: false, allowedHosts },
    );

  return {
    service,
    clock,
    allowedHosts,
    client,
    appCert,
    strangerCert,
    sniCert,
    sniRoot,
    ca,
    clusterJwks: { keys: [clusterJwk] },
    mintServiceAccountToken: (claims = {}) => mintToken(clusterKeys.privateKey, clock, claims),
    endpoint,
    newClient,
    request: (credential, overrides = {}) =>
      client.requestToken({
        endpoint: overrides.endpoint ?? endpoint(),
        clientId: overrides.clientId ?? SECRET_APP,
        scope: overrides.scope ?? SCOPE,
        credential,
      }),
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
      await service.close();
    },
  };
}

function mintToken(
  key: CryptoKey,
  clock: FakeClock,
  claims: { sub?: string; aud?: string; expiresInSeconds?: number },
): Promise<string> {
  const now = Math.floor(clock.now() / 1000);
  return new SignJWT({ "kubernetes.io": { namespace: "payments", serviceaccount: { name: "payments-app" } } })
    .setProtectedHeader({ alg: "RS256", kid: "cluster-key-1" })
    .setIssuer(CLUSTER_ISSUER)
    .setSubject(claims.sub ?? SA_SUBJECT)
    .setAudience([claims.aud ?? "api://AzureADTokenExchange"])
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + (claims.expiresInSeconds ?? 3600))
    .sign(key);
}

/** Catches the rejection so tests can inspect the error's class and fields. */
export async function failureOf(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error("expected the request to fail");
}
