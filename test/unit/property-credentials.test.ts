/**
 * Property: whatever a credential Secret holds — a good certificate, an expired or not-yet-valid
 * one, a key that matches nothing, a PFX with any password, and any of those truncated, bit-flipped,
 * padded with binary junk, replaced by random bytes or blown up to a megabyte — the resolver either
 * builds a credential that can sign, or rejects with a CredentialError whose problem is one of the
 * known, actionable reasons. It never throws anything else, and no message quotes the secret, the
 * password or a line of the key.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { IssuedCertificate } from "../../hack/token-service/pki.js";
import { createClientCertificate, toPfx } from "../../hack/token-service/pki.js";
import type { Credential } from "../../src/api/types.js";
import { DEFAULT_ALLOWED_TOKEN_AUDIENCES } from "../../src/config.js";
import { CredentialResolver } from "../../src/controller/credential-resolver.js";
import {
  CredentialError,
  PermanentError,
  type ClientCredential,
  type CredentialProblem,
} from "../../src/identity/index.js";
import type { CredentialSecret } from "../../src/kube/credential-secrets.js";
import { FakeClock } from "../support/fake-clock.js";

const NS = "payments";
const DAY = 86_400_000;
const PASSWORD = "pfx-Pa55w0rd-prop";
const CLIENT_SECRET = "prop~s3cret.Value_0123456789";

const KNOWN_PROBLEMS: ReadonlySet<CredentialProblem> = new Set<CredentialProblem>([
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
]);

let good: IssuedCertificate;
let other: IssuedCertificate;
let expired: IssuedCertificate;
let future: IssuedCertificate;
let goodPfx: Buffer;

beforeAll(async () => {
  const now = Date.now();
  [good, other, expired, future] = await Promise.all([
    createClientCertificate({ commonName: "prop good" }),
    createClientCertificate({ commonName: "prop other" }),
    createClientCertificate({ notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
    createClientCertificate({ notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) }),
  ]);
  goodPfx = toPfx([good.certPem], good.keyPem, PASSWORD);
}, 60_000);

/** Lines of every private key and the secret values: none may appear in a message. */
function forbidden(): string[] {
  const keyLines = [good, other, expired, future].flatMap((c) =>
    c.keyPem.split("\n").filter((l) => l.length >= 40 && !l.startsWith("-----")),
  );
  return [...keyLines, PASSWORD, CLIENT_SECRET, goodPfx.toString("base64").slice(100, 160)];
}

class Secrets {
  private readonly map = new Map<string, CredentialSecret>();
  private rv = 1;
  put(name: string, data: Record<string, Buffer>): void {
    this.map.set(name, {
      namespace: NS,
      name,
      uid: `uid-${name}`,
      resourceVersion: String(++this.rv),
      type: "Opaque",
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString("base64")])),
    });
  }
  get(namespace: string, name: string): Promise<CredentialSecret | undefined> {
    return Promise.resolve(namespace === NS ? this.map.get(name) : undefined);
  }
}

function resolverWith(data: Record<string, Buffer>) {
  const secrets = new Secrets();
  secrets.put("cred", data);
  const clock = new FakeClock(Date.now());
  const resolver = new CredentialResolver({
    secrets,
    serviceAccountTokens: { createServiceAccountToken: () => Promise.reject(new Error("not used")) },
    clock,
    allowedAudiences: new Set(DEFAULT_ALLOWED_TOKEN_AUDIENCES),
  });
  return { resolver, clock };
}

/** Ways to damage a value, each a pure function of the value and some random numbers. */
const mutation: fc.Arbitrary<(v: Buffer) => Buffer> = fc.oneof(
  fc.constant((v: Buffer) => v),
  fc.nat().map((n) => (v: Buffer) => v.subarray(0, v.length === 0 ? 0 : n % v.length)),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([n, x]) => (v: Buffer) => {
    const c = Buffer.from(v);
    if (c.length > 0) c[n % c.length] = c[n % c.length]! ^ x;
    return c;
  }),
  fc.uint8Array({ maxLength: 512 }).map((junk) => (v: Buffer) => Buffer.concat([v, Buffer.from(junk)])),
  fc.uint8Array({ maxLength: 512 }).map((junk) => (v: Buffer) => Buffer.concat([Buffer.from(junk), v])),
  fc.uint8Array({ maxLength: 2048 }).map((junk) => () => Buffer.from(junk)),
  fc.constant(() => Buffer.alloc(0)),
  // Huge: a megabyte of PEM-looking text around the value.
  fc.constant((v: Buffer) => Buffer.concat([Buffer.from("A".repeat(1024 * 1024)), v])),
  fc.constant((v: Buffer) => Buffer.from(v.toString("utf8").replace(/\n/g, "\r\n"))),
  fc.constant((v: Buffer) => Buffer.from(v.toString("base64"))),
);

const certSource = fc.constantFrom<() => IssuedCertificate>(
  () => good,
  () => expired,
  () => future,
);
const keySource = fc.constantFrom<() => IssuedCertificate>(
  () => good,
  () => other,
);

async function outcome(
  promise: Promise<ClientCredential>,
  clock: FakeClock,
  known: ReadonlySet<CredentialProblem> = KNOWN_PROBLEMS,
  secrets: readonly string[] = forbidden(),
) {
  try {
    const credential = await promise;
    // A credential that was built must also sign (an assertion) or present its secret.
    await credential.formFields({
      tokenEndpoint: "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token",
      clientId: "6731de76-14a6-49ae-97bc-6eba6914391e",
      now: clock.now(),
    });
    return "built" as const;
  } catch (e) {
    if (!(e instanceof CredentialError)) throw e;
    expect(known).toContain(e.problem);
    for (let err: unknown = e; err instanceof Error; err = err.cause)
      for (const f of secrets) expect(err.message).not.toContain(f);
    return e.problem;
  }
}

describe("property: any certificate Secret ends in a credential or a known problem", () => {
  it("PEM certificate + key, each damaged independently", async () => {
    await fc.assert(
      fc.asyncProperty(
        certSource,
        keySource,
        mutation,
        mutation,
        fc.boolean(),
        async (c, k, mc, mk, combined) => {
          const cert = Buffer.from(c().certPem);
          const key = Buffer.from(k().keyPem);
          const data: Record<string, Buffer> = combined
            ? { "tls.crt": mc(Buffer.concat([cert, key])) }
            : { "tls.crt": mc(cert), "tls.key": mk(key) };
          const { resolver, clock } = resolverWith(data);
          const spec: Credential = {
            certificate: {
              secretRef: combined
                ? { name: "cred", certKey: "tls.crt", keyKey: "tls.crt" }
                : { name: "cred" },
              sendX5C: false,
            },
          };
          await outcome(resolver.resolve(NS, spec), clock);
        },
      ),
      { numRuns: 150, seed: 7 },
    );
  }, 120_000);

  it("undamaged inputs end in exactly the expected reason", async () => {
    const cases: [IssuedCertificate, IssuedCertificate, string][] = [
      [good, good, "built"],
      [expired, expired, "CredentialExpired"],
      [future, future, "CertificateNotYetValid"],
      [good, other, "KeyCertificateMismatch"],
    ];
    for (const [cert, key, expected] of cases) {
      const { resolver, clock } = resolverWith({
        "tls.crt": Buffer.from(cert.certPem),
        "tls.key": Buffer.from(key.keyPem),
      });
      const got = await outcome(
        resolver.resolve(NS, { certificate: { secretRef: { name: "cred" }, sendX5C: false } }),
        clock,
      );
      expect(got).toBe(expected);
    }
  });

  it("PFX with any password, damaged or not", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constant(PASSWORD), fc.string({ maxLength: 40 }), fc.constant(`${PASSWORD}\n`)),
        mutation,
        async (password, m) => {
          const { resolver, clock } = resolverWith({
            "cert.pfx": m(goodPfx),
            password: Buffer.from(password),
          });
          const got = await outcome(
            resolver.resolve(NS, {
              certificate: {
                secretRef: { name: "cred", pfxKey: "cert.pfx", passwordKey: "password" },
                sendX5C: true,
              },
            }),
            clock,
          );
          if (password !== PASSWORD) expect(got).not.toBe("built");
        },
      ),
      { numRuns: 60, seed: 11 },
    );
  }, 120_000);

  it("the right PFX password builds; a wrong one says WrongPfxPassword", async () => {
    const right = resolverWith({ "cert.pfx": goodPfx, password: Buffer.from(PASSWORD) });
    const spec: Credential = {
      certificate: {
        secretRef: { name: "cred", pfxKey: "cert.pfx", passwordKey: "password" },
        sendX5C: false,
      },
    };
    expect(await outcome(right.resolver.resolve(NS, spec), right.clock)).toBe("built");
    const wrong = resolverWith({ "cert.pfx": goodPfx, password: Buffer.from("not-it") });
    expect(await outcome(wrong.resolver.resolve(NS, spec), wrong.clock)).toBe("WrongPfxPassword");
  });
});

describe("property: any client-secret Secret ends in a credential or MissingCredentialKey", () => {
  it("binary junk, empty, huge, or a wrong key name", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
          fc.constant(Buffer.from(CLIENT_SECRET)),
          fc.constant(Buffer.alloc(2 * 1024 * 1024, 0xff)),
        ),
        fc.constantFrom("client-secret", "other-key"),
        async (value, key) => {
          const { resolver, clock } = resolverWith({ [key]: value });
          const got = await outcome(
            resolver.resolve(NS, { clientSecret: { secretRef: { name: "cred", key: "client-secret" } } }),
            clock,
          );
          if (key === "other-key") expect(got).toBe("MissingCredentialKey");
        },
      ),
      { numRuns: 80, seed: 3 },
    );
  });

  it("a name that exists only in another namespace is not found (refs carry no namespace)", async () => {
    const { resolver } = resolverWith({ "client-secret": Buffer.from(CLIENT_SECRET) });
    const err = await resolver
      .resolve("elsewhere", { clientSecret: { secretRef: { name: "cred", key: "client-secret" } } })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(CredentialError);
    expect((err as CredentialError).problem).toBe("CredentialSecretNotFound");
    expect((err as CredentialError).message).toContain("elsewhere/cred");
  });

  it("names that are not object names are InvalidSpec, never a read", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), async (name) => {
        fc.pre(
          !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name) ||
            name.length > 253,
        );
        const { resolver } = resolverWith({});
        const err = await resolver.resolve(NS, { clientSecret: { secretRef: { name, key: "k" } } }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(PermanentError);
        expect((err as PermanentError).reason).toBe("InvalidSpec");
      }),
      { numRuns: 100, seed: 5 },
    );
  });
});

describe("property: any client-assertion Secret ends in a credential or a known assertion problem", () => {
  const ASSERTION_PROBLEMS: ReadonlySet<CredentialProblem> = new Set<CredentialProblem>([
    "MissingCredentialKey",
    "MalformedAssertion",
    "AssertionExpired",
  ]);
  const segment = (value: unknown) => Buffer.from(JSON.stringify(value) ?? "").toString("base64url");
  const spec: Credential = { clientAssertion: { secretRef: { name: "cred", key: "token" } } };

  /** Any exp a JWT could carry: seconds near now, far either way, fractional, or not a number at all. */
  const exp = fc.oneof(
    fc.integer({ min: -7200, max: 7200 }).map((d) => ({ near: d })),
    fc.maxSafeInteger().map((n) => ({ value: n })),
    fc.double().map((n) => ({ value: n })),
    fc.oneof(fc.string(), fc.constant(null), fc.boolean(), fc.constant(undefined)).map((v) => ({ value: v })),
  );
  const claimValue = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.integer(),
    fc.constant(null),
    fc.object({ maxDepth: 1 }),
  );

  it("a JWT with any exp, issuer and subject, damaged or not", async () => {
    await fc.assert(
      fc.asyncProperty(exp, claimValue, claimValue, mutation, async (e, iss, sub, damage) => {
        const expClaim = "near" in e ? Math.floor(Date.now() / 1000) + e.near : e.value;
        const payload = segment({ iss, sub, exp: expClaim, jti: "prop-jti-0123456789" });
        const value = `${segment({ alg: "RS256", typ: "JWT" })}.${payload}.${segment("signature-bytes")}`;
        const { resolver, clock } = resolverWith({ token: damage(Buffer.from(value)) });
        await outcome(resolver.resolve(NS, spec), clock, ASSERTION_PROBLEMS, [payload]);
      }),
      { numRuns: 300, seed: 13 },
    );
  }, 120_000);
});
