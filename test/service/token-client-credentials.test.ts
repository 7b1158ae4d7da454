import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { issueServerCertificate, toPfx } from "../../hack/token-service/pki.js";
import { certificateCredential } from "../../src/identity/credentials/certificate.js";
import { clientSecretCredential } from "../../src/identity/credentials/client-secret.js";
import { workloadIdentityCredential } from "../../src/identity/credentials/workload-identity.js";
import { PermanentError } from "../../src/identity/errors.js";
import type { Fixture } from "./token-service-fixture.js";
import {
  CERT_APP,
  CLUSTER_ISSUER,
  DOMAIN,
  FEDERATED_APP,
  RESOURCE,
  SA_SUBJECT,
  SECRET,
  SECRET_APP,
  SNI_APP,
  START_TIMEOUT_MS,
  TENANT,
  failureOf,
  startFixture,
} from "./token-service-fixture.js";

let fx: Fixture;

beforeAll(async () => {
  fx = await startFixture();
}, START_TIMEOUT_MS);
afterAll(async () => {
  await fx.close();
});
beforeEach(() => {
  fx.service.resetCounters();
  fx.service.clearFaults();
});

describe("TokenClient against the local token service over HTTPS", () => {
  it("gets a token with a client secret, timed from the send", async () => {
    const token = await fx.request(clientSecretCredential(SECRET));
    expect(token.tokenType).toBe("Bearer");
    expect(token.issuedAt).toBe(fx.clock.now());
    // Whole seconds from the send, like the JWT's own exp.
    expect(token.expiresAt).toBe(Math.floor(fx.clock.now() / 1000) * 1000 + 3_599_000);
    expect(token.refreshIn).toBeUndefined();
    const claims = await fx.service.verifyAccessToken(token.accessToken, TENANT);
    expect(claims).toMatchObject({ aud: RESOURCE, tid: TENANT, appid: SECRET_APP, idtyp: "app" });
    expect(fx.service.issued({ tenantId: TENANT, clientId: SECRET_APP })).toBe(1);
  });

  it("names the tenant by its domain as well as its GUID", async () => {
    const token = await fx.request(clientSecretCredential(SECRET), { endpoint: fx.endpoint(DOMAIN) });
    expect((await fx.service.verifyAccessToken(token.accessToken, TENANT)).tid).toBe(TENANT);
    expect(fx.service.requests({ tenantId: TENANT })).toBe(1);
  });

  it("can send the secret with HTTP Basic", async () => {
    const credential = clientSecretCredential(SECRET, { clientAuthMethod: "client_secret_basic" });
    await expect(fx.request(credential)).resolves.toMatchObject({ tokenType: "Bearer" });
  });

  it("gets a token with a PEM certificate (key first, as some Secrets hold it)", async () => {
    const credential = certificateCredential(
      { pem: `${fx.appCert.keyPem}\n${fx.appCert.certPem}` },
      fx.clock,
    );
    const token = await fx.request(credential, { clientId: CERT_APP });
    expect((await fx.service.verifyAccessToken(token.accessToken, TENANT)).appid).toBe(CERT_APP);
  });

  it("gets a token with a PFX certificate", async () => {
    const pfx = toPfx([fx.appCert.certPem], fx.appCert.keyPem, "pfx-password");
    const credential = certificateCredential({ pfx, password: "pfx-password" }, fx.clock);
    await expect(fx.request(credential, { clientId: CERT_APP })).resolves.toMatchObject({
      tokenType: "Bearer",
    });
  });

  it("signs a new assertion for every request, which the service accepts each time", async () => {
    const credential = certificateCredential(
      { certPem: fx.appCert.certPem, keyPem: fx.appCert.keyPem },
      fx.clock,
    );
    for (let i = 0; i < 3; i++) await fx.request(credential, { clientId: CERT_APP });
    expect(fx.service.issued({ clientId: CERT_APP })).toBe(3);
  });

  it("authenticates by subject name and issuer only when the chain is sent in x5c", async () => {
    const pem = [fx.sniCert.certPem, ...fx.sniCert.chainPem, fx.sniCert.keyPem].join("\n");
    const withoutChain = certificateCredential({ pem }, fx.clock);
    const error = await failureOf(fx.request(withoutChain, { clientId: SNI_APP }));
    expect(error).toMatchObject({ reason: "CertificateNotRegistered", aadsts: "700027" });

    const withChain = certificateCredential({ pem, sendX5C: true }, fx.clock);
    await expect(fx.request(withChain, { clientId: SNI_APP })).resolves.toMatchObject({
      tokenType: "Bearer",
    });
  });

  it("gets a token with a federated service-account token", async () => {
    const credential = workloadIdentityCredential({
      fingerprint: "sa:payments/payments-app",
      getAssertion: () => fx.mintServiceAccountToken(),
    });
    const token = await fx.request(credential, { clientId: FEDERATED_APP });
    expect((await fx.service.verifyAccessToken(token.accessToken, TENANT)).appid).toBe(FEDERATED_APP);
  });

  it("rejects a federated token for another subject, audience or issuer", async () => {
    const forSubject = (sub: string, aud?: string) =>
      workloadIdentityCredential({
        fingerprint: "sa:x",
        getAssertion: () => fx.mintServiceAccountToken({ sub, ...(aud ? { aud } : {}) }),
      });
    const wrongSubject = await failureOf(
      fx.request(forSubject("system:serviceaccount:other:app"), { clientId: FEDERATED_APP }),
    );
    expect(wrongSubject).toBeInstanceOf(PermanentError);
    expect(wrongSubject).toMatchObject({ reason: "FederatedIdentityMismatch", aadsts: "70021" });
    const wrongAudience = await failureOf(
      fx.request(forSubject(SA_SUBJECT, "api://other"), { clientId: FEDERATED_APP }),
    );
    expect(wrongAudience).toMatchObject({ reason: "FederatedIdentityMismatch", aadsts: "70021" });

    const foreign = workloadIdentityCredential({
      fingerprint: "sa:x",
      getAssertion: () =>
        fx
          .mintServiceAccountToken()
          .then(() => "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V2aWwuZXhhbXBsZSIsInN1YiI6IngifQ.c2ln"),
    });
    expect(await failureOf(fx.request(foreign, { clientId: FEDERATED_APP }))).toMatchObject({
      reason: "FederatedIdentityMismatch",
      aadsts: "700211",
    });
  });

  it("verifies federated tokens against a JWKS fetched from the issuer's URL", async () => {
    const tls = await issueServerCertificate(fx.ca);
    const jwksServer = createServer({ key: tls.keyPem, cert: tls.certPem }, (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(fx.clusterJwks));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
    const jwksUrl = `https://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/openid/v1/jwks`;
    const original = fx.service.config.jwks;
    fx.service.setConfig({ ...fx.service.config, jwks: { [CLUSTER_ISSUER]: jwksUrl } });
    try {
      const credential = workloadIdentityCredential({
        fingerprint: "sa:payments/payments-app",
        getAssertion: () => fx.mintServiceAccountToken(),
      });
      await expect(fx.request(credential, { clientId: FEDERATED_APP })).resolves.toMatchObject({
        tokenType: "Bearer",
      });
    } finally {
      fx.service.setConfig({ ...fx.service.config, jwks: original });
      jwksServer.closeAllConnections();
      await new Promise((resolve) => jwksServer.close(resolve));
    }
  });

  it("rejects an expired federated token as outside its valid time range", async () => {
    const credential = workloadIdentityCredential({
      fingerprint: "sa:x",
      getAssertion: () => fx.mintServiceAccountToken({ expiresInSeconds: -600 }),
    });
    expect(await failureOf(fx.request(credential, { clientId: FEDERATED_APP }))).toMatchObject({
      reason: "AssertionNotInValidTimeRange",
      aadsts: "700024",
    });
  });

  it("follows a rotated client secret", async () => {
    const rotated = "r0tated~secret-value";
    fx.service.updateApp({ clientId: SECRET_APP }, (app) => {
      app.secrets = [rotated];
    });
    try {
      const old = await failureOf(fx.request(clientSecretCredential(SECRET)));
      expect(old).toMatchObject({ reason: "InvalidClientSecret", aadsts: "7000215" });
      await expect(fx.request(clientSecretCredential(rotated))).resolves.toMatchObject({
        tokenType: "Bearer",
      });
    } finally {
      fx.service.updateApp({ clientId: SECRET_APP }, (app) => {
        app.secrets = [SECRET];
      });
    }
  });

  it("follows a certificate registered and unregistered at runtime", async () => {
    const credential = certificateCredential(
      { certPem: fx.strangerCert.certPem, keyPem: fx.strangerCert.keyPem },
      fx.clock,
    );
    expect(await failureOf(fx.request(credential, { clientId: CERT_APP }))).toMatchObject({
      aadsts: "700027",
    });
    fx.service.updateApp({ clientId: CERT_APP }, (app) => app.certificates.push(fx.strangerCert.certPem));
    await expect(fx.request(credential, { clientId: CERT_APP })).resolves.toMatchObject({
      tokenType: "Bearer",
    });
    fx.service.updateApp({ clientId: CERT_APP }, (app) => {
      app.certificates = [fx.appCert.certPem];
    });
    expect(await failureOf(fx.request(credential, { clientId: CERT_APP }))).toMatchObject({
      aadsts: "700027",
    });
  });

  it("passes refresh_in through when the service sends it", async () => {
    fx.service.setConfig({ ...fx.service.config, tokenLifetimeSeconds: 86_399, refreshInSeconds: 43_199 });
    try {
      const token = await fx.request(clientSecretCredential(SECRET));
      expect(token.expiresAt - Math.floor(token.issuedAt / 1000) * 1000).toBe(86_399_000);
      expect(token.refreshIn).toBe(43_199);
    } finally {
      fx.service.setConfig({ ...fx.service.config, tokenLifetimeSeconds: 3599, refreshInSeconds: undefined });
    }
  });

  it("reuses keep-alive connections instead of connecting per request", async () => {
    const client = fx.newClient();
    const credential = clientSecretCredential(SECRET);
    for (let i = 0; i < 10; i++) {
      await client.requestToken({
        endpoint: fx.endpoint(),
        clientId: SECRET_APP,
        scope: `${RESOURCE}/.default`,
        credential,
      });
    }
    expect(fx.service.requests()).toBe(10);
    // undici's pool may open a second connection while the first is being released; never ten.
    expect(fx.service.connections()).toBeLessThanOrEqual(2);
  });

  it("refuses the service's certificate unless its CA is configured", async () => {
    const untrusting = fx.newClient({ caBundle: undefined });
    const error = await failureOf(
      untrusting.requestToken({
        endpoint: fx.endpoint(),
        clientId: SECRET_APP,
        scope: `${RESOURCE}/.default`,
        credential: clientSecretCredential(SECRET),
      }),
    );
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ reason: "UntrustedAuthorityCertificate" });
    expect(fx.service.requests()).toBe(0);
  });
});
