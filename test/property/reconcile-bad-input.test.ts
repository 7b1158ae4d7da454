/**
 * Property, against the real operator on the real apiserver: for generated bad input — credential
 * Secrets (each named by a registration of its own) holding broken PEM, damaged or
 * wrongly-passworded PFX files, mismatched keys, expired or not-yet-valid certificates, huge values
 * and binary junk; and specs the CRDs accept but that cannot work (unknown tenant, app or resource,
 * templates the apiserver refuses for a Secret type, a registration that does not exist or does
 * not allow the tenant or scope) — every request ends in Ready with a specific reason (or a token,
 * when the damage happened to be harmless), a credential problem shows on the registration too,
 * with the same reason, the operator never throws out of a reconcile, never restarts, and a healthy
 * request beside them stays Ready throughout. Cases are drawn by fast-check with a fixed seed
 * (PROPERTY_SEED / PROPERTY_CASES override), so a failure names a reproducible case.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuedCertificate } from "../../hack/token-service/pki.js";
import { createClientCertificate, toPfx } from "../../hack/token-service/pki.js";
import {
  CERT_APP,
  ChaosScenario,
  PFX_PASSWORD,
  RESOURCE,
  SECRET_APP,
  TENANT,
  report,
} from "../chaos/support/chaos.js";

const SEED = Number(process.env.PROPERTY_SEED ?? 20261125);
const CASES = Number(process.env.PROPERTY_CASES ?? 40);
const DAY = 86_400_000;

/** Reasons a bad credential or spec may end in: each names what to fix. */
const SPECIFIC_REASONS = new Set([
  "MissingCredentialKey",
  "MalformedPem",
  "MalformedPfx",
  "WrongPfxPassword",
  "WrongKeyPassword",
  "KeyCertificateMismatch",
  "UnsupportedKeyType",
  "CredentialExpired",
  "CertificateNotYetValid",
  "MissingPrivateKey",
  "MissingCertificate",
  "CredentialSecretNotFound",
  "InvalidClientSecret",
  "CertificateNotRegistered",
  "UnknownTenant",
  "UnknownClient",
  "UnknownResource",
  "InvalidSpec",
  // The local token service refuses a body over 64 KiB (a huge client secret) as Entra's front
  // door would, with AADSTS900144; the reason is the service's own.
  "MissingRequestParameter",
  // The apiserver refused the target Secret (a template type whose keys are missing or invalid).
  "SecretRejected",
  // What a request may ask of a registration, and which registration it names.
  "AppRegistrationNotFound",
  "TenantNotAllowed",
  "ScopeNotAllowed",
]);

/**
 * Reasons found in the credential Secret itself, before any call: the registration, which loads
 * the credential, reports them too (the request's message names it: "AppRegistration <name>: ").
 */
const CREDENTIAL_REASONS = new Set([
  "MissingCredentialKey",
  "MalformedPem",
  "MalformedPfx",
  "WrongPfxPassword",
  "WrongKeyPassword",
  "KeyCertificateMismatch",
  "UnsupportedKeyType",
  "CredentialExpired",
  "CertificateNotYetValid",
  "MissingPrivateKey",
  "MissingCertificate",
  "CredentialSecretNotFound",
]);

/** On the way to an outcome a request may pass through these (a retry follows): not outcomes. */
const TRANSIENT_REASONS = new Set([
  "Pending",
  "ConnectionReset",
  "Timeout",
  "NetworkError",
  "TokenServiceUnavailable",
]);

type Damage = "none" | "truncate" | "flip" | "junk" | "random" | "empty" | "huge";

interface Case {
  kind: "pem" | "pfx" | "secret" | "spec";
  damage: Damage;
  data: Record<string, Buffer>;
  /** For a spec case: fields of the request's spec... */
  spec?: Record<string, unknown>;
  /** ...and of its registration's. */
  registration?: Record<string, unknown>;
  describe: string;
}

function damage(v: Buffer, how: Damage, n: number): Buffer {
  switch (how) {
    case "none":
      return v;
    case "truncate":
      return v.subarray(0, n % Math.max(1, v.length));
    case "flip": {
      const c = Buffer.from(v);
      c[n % c.length] = c[n % c.length]! ^ 0x5a;
      return c;
    }
    case "junk":
      return Buffer.concat([v, Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + n) % 256))]);
    case "random":
      return Buffer.from(Array.from({ length: 300 + (n % 300) }, (_, i) => (i * 131 + n * 7) % 256));
    case "empty":
      return Buffer.alloc(0);
    case "huge":
      // Secrets are capped at 1 MiB in total: 700 KiB of junk around the value still fits.
      return Buffer.concat([Buffer.alloc(700 * 1024, 0x41), v]);
  }
}

describe("property: generated bad input against the real operator", () => {
  const s = new ChaosScenario({ prefix: "prop-input" });
  const certs: Record<string, IssuedCertificate> = {};
  let cases: Case[] = [];
  beforeAll(async () => {
    await s.start();
    const now = Date.now();
    certs.good = s.cert; // registered with the token service
    [certs.unregistered, certs.expired, certs.future] = await Promise.all([
      createClientCertificate({ commonName: "prop unregistered" }),
      createClientCertificate({ notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
      createClientCertificate({ notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) }),
    ]);
    const goodPfx = toPfx([s.cert.certPem], s.cert.keyPem, PFX_PASSWORD);
    const damageArb = fc.constantFrom<Damage>("none", "truncate", "flip", "junk", "random", "empty", "huge");
    const caseArb: fc.Arbitrary<Case> = fc.oneof(
      fc
        .tuple(
          fc.constantFrom("good", "unregistered", "expired", "future"),
          fc.constantFrom("good", "unregistered"),
          damageArb,
          damageArb,
          fc.nat(),
        )
        .map(([c, k, dc, dk, n]) => ({
          kind: "pem" as const,
          damage: dc,
          data: {
            "tls.crt": damage(Buffer.from(certs[c]!.certPem), dc, n),
            "tls.key": damage(Buffer.from(certs[k]!.keyPem), dk, n + 1),
          },
          describe: `PEM cert ${c} (${dc}) + key ${k} (${dk})`,
        })),
      fc
        .tuple(
          fc.oneof(fc.constant(PFX_PASSWORD), fc.string({ maxLength: 20 }), fc.constant(`${PFX_PASSWORD}\n`)),
          damageArb,
          fc.nat(),
        )
        .map(([password, d, n]) => ({
          kind: "pfx" as const,
          damage: d,
          data: { "cert.pfx": damage(goodPfx, d, n), password: Buffer.from(password) },
          describe: `PFX (${d}) with password ${JSON.stringify(password)}`,
        })),
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 200 }), damageArb, fc.nat()).map(([bytes, d, n]) => ({
        kind: "secret" as const,
        damage: d,
        data: { "client-secret": damage(Buffer.from(bytes), d, n) },
        describe: `client secret of ${bytes.length} random bytes (${d})`,
      })),
      fc
        .constantFrom<[string, Pick<Case, "spec" | "registration">]>(
          ["unknown tenant", { spec: { tenantId: "00000000-0000-4000-8000-00000000dead" } }],
          ["unknown app", { registration: { clientId: "00000000-0000-4000-8000-00000000beef" } }],
          ["unknown resource", { spec: { scope: "https://unknown.example/.default" } }],
          [
            "TLS Secret type without its keys",
            { spec: { target: { template: { type: "kubernetes.io/tls" } } } },
          ],
          [
            "SSH Secret type without its key",
            { spec: { target: { template: { type: "kubernetes.io/ssh-auth" } } } },
          ],
          [
            "docker config type with a token as its JSON",
            {
              spec: {
                target: {
                  template: {
                    type: "kubernetes.io/dockerconfigjson",
                    data: { ".dockerconfigjson": "{{ .accessToken }}" },
                  },
                },
              },
            },
          ],
          ["refreshBefore longer than the token lives", { spec: { refreshBefore: "23h" } }],
          [
            "a registration that does not exist",
            { spec: { appRef: { kind: "AppRegistration", name: "no-such-registration" } } },
          ],
          [
            "a tenant the registration does not allow",
            { registration: { allowedTenants: ["contoso.example"] } },
          ],
          [
            "a scope the registration does not allow",
            { registration: { allowedScopes: ["api://another-resource/.default"] } },
          ],
        )
        .map(([what, patch]) => ({
          kind: "spec" as const,
          damage: "none" as const,
          data: { "client-secret": Buffer.from("unused") },
          ...patch,
          describe: `spec: ${what}`,
        })),
    );
    cases = fc.sample(caseArb, { numRuns: CASES, seed: SEED });
    await s.startReplica("a", { logLevel: "debug" });
    await s.createRequest("healthy", s.spec("pfx"));
    await s.waitFor("healthy", "True", "TokenIssued", 60_000);
  }, 180_000);
  afterAll(async () => s.stop());

  it("every case ends in a token or a specific reason; nothing throws; the healthy request stays Ready", async () => {
    // Each case has a registration of its own, reading its own credential Secret.
    for (const [i, c] of cases.entries()) {
      await s.putSecret(`cred-${i}`, c.data);
      const registration =
        c.kind === "pem"
          ? {
              ...s.registrationSpec("certificate"),
              credential: { certificate: { secretRef: { name: `cred-${i}` } } },
            }
          : c.kind === "pfx"
            ? {
                ...s.registrationSpec("pfx"),
                credential: {
                  certificate: {
                    secretRef: { name: `cred-${i}`, pfxKey: "cert.pfx", passwordKey: "password" },
                  },
                },
              }
            : c.kind === "secret"
              ? {
                  ...s.registrationSpec("clientSecret"),
                  credential: { clientSecret: { secretRef: { name: `cred-${i}`, key: "client-secret" } } },
                }
              : { ...s.registrationSpec("clientSecret"), ...c.registration };
      const spec = await s.specWithRegistration(`case-${i}-app`, registration);
      await s.createRequest(`case-${i}`, { ...spec, ...c.spec });
    }
    const outcomes: { case: string; ready: string }[] = [];
    let transientOnTheWay = 0;
    for (const [i, c] of cases.entries()) {
      const v = await s.requests.seen(
        `case-${i}`,
        (v) => v.ready !== undefined && !TRANSIENT_REASONS.has(v.ready.reason),
        `an outcome for case ${i}: ${c.describe}`,
        90_000,
      );
      transientOnTheWay += s.requests
        .readyPath(`case-${i}`)
        .filter((r) => TRANSIENT_REASONS.has(r.split(":")[1]!)).length;
      outcomes.push({ case: c.describe, ready: `${v.ready!.status}:${v.ready!.reason}` });
      if (v.ready!.status === "True") expect.soft(v.ready!.reason, c.describe).toBe("TokenIssued");
      else
        expect
          .soft(SPECIFIC_REASONS, `case ${i}: ${c.describe} -> ${v.ready!.reason}: ${v.ready!.message}`)
          .toContain(v.ready!.reason);
      if (c.kind === "pfx" && !c.data.password!.equals(Buffer.from(PFX_PASSWORD)) && c.damage === "none")
        expect.soft(v.ready!.reason, c.describe).toBe("WrongPfxPassword");
      // A problem of the credential itself is the registration's: it says so with the same reason,
      // and the request names it.
      if (v.ready!.status === "False" && CREDENTIAL_REASONS.has(v.ready!.reason)) {
        expect.soft(v.ready!.message, c.describe).toMatch(new RegExp(`^AppRegistration case-${i}-app: `));
        const reg = await s
          .waitForRegistration(`case-${i}-app`, "False", v.ready!.reason, 30_000)
          .catch((e: unknown) => e as Error);
        expect.soft(reg instanceof Error ? reg.message : "ok", `case ${i}: ${c.describe}`).toBe("ok");
      }
    }
    const op = s.replicas[0]!.op;
    // Nothing was thrown out of a reconcile (that would log "reconcile failed"), nothing crashed.
    const thrown = op
      .logs()
      .filter((l) => l.msg === "reconcile failed; retrying with backoff")
      .map((l) => `${String(l.request)}: ${String(l.err)}`);
    expect(thrown).toEqual([]);
    expect(op.child.exitCode).toBeNull();
    expect(s.requests.readyPath("healthy")).toEqual(["none", "True:TokenIssued"]);
    expect(s.service.issued({ clientId: SECRET_APP, tenantId: TENANT })).toBeGreaterThanOrEqual(0);
    expect(s.service.issued({ clientId: CERT_APP })).toBeGreaterThanOrEqual(1);
    report({
      suite: "property-reconcile",
      seed: SEED,
      cases: CASES,
      outcomes,
      transientOnTheWay,
      resource: RESOURCE,
    });
    const leaks = await s.scanForLeaks();
    expect(leaks.findings).toEqual([]);
  }, 300_000);
});
