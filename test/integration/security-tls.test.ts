/**
 * The credential goes only to a token service whose TLS certificate is trusted and names the host:
 *
 * - a service with a certificate from an untrusted CA, or for another host name, is refused with
 *   a clear Permanent reason (UntrustedAuthorityCertificate, AuthorityCertificateNameMismatch)
 *   before a single byte of the request is sent: the service never sees a token request;
 * - this holds for a host the operator is allowed to call (--allowed-authority-hosts): being on the
 *   allow-list is no exemption from verifying the certificate;
 * - plain http is refused: by the CRD (a registration's authorityHost must be https://), and at the
 *   token client, which refuses http:// unless --allow-insecure-loopback-authority is set, and even
 *   then only for 127.0.0.0/8 and ::1 literals. The CRD makes the http case unreachable from a
 *   registration, so the client-level rule is shown on the client itself.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServerCertificate } from "../../hack/token-service/pki.js";
import { startTokenService, type TokenService } from "../../hack/token-service/server.js";
import { systemClock } from "../../src/clock.js";
import {
  clientSecretCredential,
  PermanentError,
  TokenClient,
  tokenEndpointFor,
} from "../../src/identity/index.js";
import { ChaosScenario, SCOPE, SECRET_APP, TENANT } from "../chaos/support/chaos.js";

describe("TLS to the token service is verified", () => {
  const s = new ChaosScenario({ prefix: "sec-tls" });
  let wrongName: TokenService;
  let untrusted: TokenService;
  beforeAll(async () => {
    await s.start();
    // Same tenants and apps; a certificate for another host, from a CA the operator trusts.
    const ca = await createCa({ commonName: "second trusted CA" });
    wrongName = await startTokenService(s.service.config, {
      tls: { ca, server: await issueServerCertificate(ca, { hosts: ["login.example"] }) },
    });
    // Same again, from a CA nobody told the operator about.
    untrusted = await startTokenService(s.service.config);
    const bundle = join(s.dir, "bundle.pem");
    writeFileSync(bundle, `${s.service.caPem}\n${ca.certPem}`);
    // Both hosts are on the allow-list: only TLS verification stands between them and a credential.
    await s.startReplica("a", {
      caFile: bundle,
      logLevel: "trace",
      args: [
        "--allowed-authority-hosts",
        untrusted.authorityHost,
        "--allowed-authority-hosts",
        wrongName.authorityHost,
      ],
    });
  }, 180_000);
  afterAll(async () => {
    await wrongName?.close();
    await untrusted?.close();
    await s.stop();
  });

  it("refuses an untrusted CA and a name mismatch with a Permanent reason, sending nothing", async () => {
    await s.createRequest("trusted", s.spec("clientSecret"));
    await s.createRequest(
      "untrusted-ca",
      await s.specWithRegistration("untrusted-ca-app", {
        ...s.registrationSpec("clientSecret"),
        authorityHost: untrusted.url,
      }),
    );
    await s.createRequest(
      "wrong-name",
      await s.specWithRegistration("wrong-name-app", {
        ...s.registrationSpec("clientSecret"),
        authorityHost: wrongName.url,
      }),
    );
    await s.waitFor("trusted", "True", "TokenIssued", 60_000);
    const a = await s.waitFor("untrusted-ca", "False", "UntrustedAuthorityCertificate", 60_000);
    const b = await s.waitFor("wrong-name", "False", "AuthorityCertificateNameMismatch", 60_000);
    for (const o of [a, b]) {
      expect(s.ready(o.status)?.message).toMatch(/127\.0\.0\.1/);
      expect(o.status?.throttle?.state).toBe("Backoff");
      expect(await s.secret(o.metadata.name)).toBeUndefined();
    }
    // The TLS handshake failed: no token request (and so no secret) ever reached either service.
    expect(untrusted.requests()).toBe(0);
    expect(wrongName.requests()).toBe(0);
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  }, 90_000);

  it("the CRDs refuse an http:// authorityHost on either kind of registration", async () => {
    for (const kind of ["AppRegistration", "ClusterAppRegistration"]) {
      const r = await s.kubectl(["create", "-n", s.ns, "-f", "-"], {
        input: JSON.stringify({
          apiVersion: "apptoken.io/v1alpha1",
          kind,
          metadata: { name: `${s.ns}-plain-http` },
          spec: {
            ...s.registrationSpec("clientSecret"),
            authorityHost: "http://127.0.0.1:8080",
            ...(kind === "ClusterAppRegistration" ? { namespaceSelector: {} } : {}),
          },
        }),
      });
      // (Had it been accepted, it must not outlive the test.)
      if (r.code === 0 && kind === "ClusterAppRegistration")
        await s.kubectl(["delete", "cappreg", `${s.ns}-plain-http`, "--ignore-not-found"]);
      expect(r.code, kind).not.toBe(0);
      expect(r.stderr).toContain("must start with https://");
    }
  });
});

describe("plain http at the token client", () => {
  let server: Server;
  let url: string;
  let received = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      received++;
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ token_type: "Bearer", expires_in: 3599, access_token: "plain-http-token" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((r) => server.close(() => r())));

  // Every host allowed (--allowed-authority-hosts has its own tests): what refuses here is the
  // transport rule alone.
  const ANY_HOST = { allowedAuthorityHosts: "any" } as const;

  const request = (client: TokenClient, endpoint: URL) =>
    client.requestToken({
      endpoint,
      clientId: SECRET_APP,
      scope: SCOPE,
      credential: clientSecretCredential("x".repeat(16)),
    });

  it("refuses http:// without the flag, before connecting", async () => {
    const client = new TokenClient({ clock: systemClock, ...ANY_HOST });
    const err = await request(client, new URL(`${url}/${TENANT}/oauth2/v2.0/token`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).reason).toBe("InsecureAuthority");
    expect((err as PermanentError).message).toContain("--allow-insecure-loopback-authority");
    expect(received).toBe(0);
    await client.close();
  });

  it("with --allow-insecure-loopback-authority: allowed for a loopback literal, refused for anything else", async () => {
    const client = new TokenClient({ clock: systemClock, allowInsecureLoopback: true, ...ANY_HOST });
    const token = await request(client, new URL(`${url}/${TENANT}/oauth2/v2.0/token`));
    expect(token.accessToken).toBe("plain-http-token");
    expect(received).toBe(1);
    for (const host of ["http://localhost:1", "http://10.0.0.1", "http://[::ffff:127.0.0.1]:1"]) {
      const err = await request(client, new URL(`${host}/${TENANT}/oauth2/v2.0/token`)).catch(
        (e: unknown) => e,
      );
      expect((err as PermanentError).reason, host).toBe("InsecureAuthority");
    }
    expect(received).toBe(1);
    // And the endpoint builder applies the same rule to a spec's authorityHost.
    expect(() =>
      tokenEndpointFor(
        { tenantId: TENANT, authorityHost: url },
        { allowInsecureLoopback: false, allowedHosts: ANY_HOST.allowedAuthorityHosts },
      ),
    ).toThrow(/plain http/);
    await client.close();
  });
});
