import { X509Certificate, createHash } from "node:crypto";
import { decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { CertificateAuthority, IssuedCertificate } from "../../../hack/token-service/pki.js";
import { createCa, createClientCertificate, toPfx } from "../../../hack/token-service/pki.js";
import type { Cloud, Credential } from "../../../src/api/types.js";
import { TOKEN_EXCHANGE_AUDIENCES } from "../../../src/api/types.js";
import { DEFAULT_ALLOWED_TOKEN_AUDIENCES } from "../../../src/config.js";
import {
  CredentialResolver,
  SERVICE_ACCOUNT_TOKEN_SECONDS,
  workloadIdentityFingerprint,
} from "../../../src/controller/credential-resolver.js";
import type { ClientCredential, CredentialProblem } from "../../../src/identity/index.js";
import {
  CredentialError,
  JWT_BEARER_ASSERTION_TYPE,
  PermanentError,
  TransientError,
} from "../../../src/identity/index.js";
import type { CredentialSecret } from "../../../src/kube/credential-secrets.js";
import { KubeApiError } from "../../../src/kube/transport.js";
import { checkAudience } from "../../../src/controller/credentials/service-account-tokens.js";
import { FakeClock } from "../../support/fake-clock.js";

const NS = "payments";
const CLIENT_SECRET = "s3cret~Value.With-Entropy_0123";
const PFX_PASSWORD = "pfx-pa55word";
const MINUTE = 60_000;
const DAY = 86_400_000;

/** Every value that must never appear in an error message. */
const SECRETS: string[] = [CLIENT_SECRET, PFX_PASSWORD, b64(CLIENT_SECRET), b64(PFX_PASSWORD)];

function b64(value: string | Buffer): string {
  return (typeof value === "string" ? Buffer.from(value, "utf8") : value).toString("base64");
}

/** The credential Secrets the resolver can see: our narrow `get`, in memory. */
class InMemorySecrets {
  private readonly secrets = new Map<string, CredentialSecret>();
  private version = 100;
  readonly reads: string[] = [];
  failure: Error | undefined;

  put(namespace: string, name: string, data: Record<string, string | Buffer>): CredentialSecret {
    const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)]));
    const secret: CredentialSecret = {
      namespace,
      name,
      uid: `uid-${namespace}-${name}`,
      resourceVersion: String(++this.version),
      type: "Opaque",
      data: encoded,
    };
    this.secrets.set(`${namespace}/${name}`, secret);
    return secret;
  }

  get(namespace: string, name: string): Promise<CredentialSecret | undefined> {
    this.reads.push(`${namespace}/${name}`);
    if (this.failure) return Promise.reject(this.failure);
    return Promise.resolve(this.secrets.get(`${namespace}/${name}`));
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The TokenRequest API as the resolver sees it: mints numbered tokens that live as long as asked. */
class InMemoryServiceAccountTokens {
  readonly calls: {
    namespace: string;
    serviceAccount: string;
    audience: string;
    expirationSeconds: number;
  }[] = [];
  readonly serviceAccounts = new Set<string>();
  /** Makes the next calls fail with this error. */
  failure: Error | undefined;
  /** Holds the next call until the test releases it. */
  gate: Deferred<void> | undefined;

  constructor(private readonly clock: FakeClock) {}

  async createServiceAccountToken(
    namespace: string,
    serviceAccount: string,
    audience: string,
    expirationSeconds: number,
  ): Promise<{ token: string; expiresAt: number }> {
    this.calls.push({ namespace, serviceAccount, audience, expirationSeconds });
    const n = this.calls.length;
    if (this.gate) await this.gate.promise;
    if (this.failure) throw this.failure;
    if (!this.serviceAccounts.has(`${namespace}/${serviceAccount}`)) {
      throw apiError(404, "NotFound", `serviceaccounts "${serviceAccount}" not found`);
    }
    return { token: `sa-token-${n}`, expiresAt: this.clock.now() + expirationSeconds * 1000 };
  }
}

function apiError(statusCode: number, reason: string, message: string): KubeApiError {
  return new KubeApiError("POST", "/api/v1/some/path", statusCode, { reason, message, code: statusCode });
}

/** The operator's default --allowed-token-audiences, plus the odd ones some cases mint for. */
const ALLOWED_AUDIENCES: ReadonlySet<string> = new Set([
  ...DEFAULT_ALLOWED_TOKEN_AUDIENCES,
  "api://other",
  "a|b%c",
]);

function setup(maxEntries?: number, allowedAudiences = ALLOWED_AUDIENCES) {
  const clock = new FakeClock(Date.now());
  const secrets = new InMemorySecrets();
  const serviceAccountTokens = new InMemoryServiceAccountTokens(clock);
  const resolver = new CredentialResolver({
    secrets,
    serviceAccountTokens,
    clock,
    allowedAudiences,
    ...(maxEntries !== undefined && { maxEntries }),
  });
  const ctx = () => ({
    tokenEndpoint: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
    clientId: "6731de76-14a6-49ae-97bc-6eba6914391e",
    now: clock.now(),
  });
  return { clock, secrets, serviceAccountTokens, resolver, ctx };
}

/**
 * The error `promise` rejects with, after checking that neither it nor any error in its cause
 * chain quotes a secret value, PEM text or a service-account token.
 */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => expect.fail("expected a rejection"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    for (const value of SECRETS) expect(e.message).not.toContain(value);
    expect(e.message).not.toMatch(/-----BEGIN|MII[A-Za-z0-9+/]{16}|sa-token-/);
  }
  return err as Error;
}

async function problemOf(promise: Promise<unknown>): Promise<CredentialProblem> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(CredentialError);
  return (err as CredentialError).problem;
}

const clientSecretRef = (name = "app-cred", key = "client-secret"): Credential => ({
  clientSecret: { secretRef: { name, key } },
});

const certificateRef = (
  secretRef: NonNullable<Credential["certificate"]>["secretRef"] = { name: "app-cert" },
  sendX5C = false,
): Credential => ({ certificate: { secretRef, sendX5C } });

const workloadIdentityRef = (
  serviceAccountName = "payments-app",
  audience = "api://AzureADTokenExchange",
): Credential => ({ workloadIdentity: { serviceAccountName, audience } });

function thumbprint(certPem: string): string {
  return createHash("sha256").update(new X509Certificate(certPem).raw).digest("base64url");
}

let root: CertificateAuthority;
let leaf: IssuedCertificate;
let other: IssuedCertificate;
let shortLived: IssuedCertificate;
let expired: IssuedCertificate;
let future: IssuedCertificate;

beforeAll(async () => {
  root = await createCa({ commonName: "test root" });
  const now = Date.now();
  [leaf, other, shortLived, expired, future] = await Promise.all([
    createClientCertificate({ commonName: "payments.contoso.example", issuer: root }),
    createClientCertificate({ commonName: "another app" }),
    createClientCertificate({ notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) }),
    createClientCertificate({ notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
    createClientCertificate({ notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) }),
  ]);
});

describe("CredentialResolver: client secrets", () => {
  it("presents the Secret's value exactly, a trailing newline included", async () => {
    const { secrets, resolver, ctx } = setup();
    secrets.put(NS, "app-cred", { "client-secret": `${CLIENT_SECRET}\n` });
    const credential = await resolver.resolve(NS, clientSecretRef());
    expect(credential.kind).toBe("clientSecret");
    await expect(credential.formFields(ctx())).resolves.toEqual({ client_secret: `${CLIENT_SECRET}\n` });
    expect(credential.fingerprint).not.toContain(CLIENT_SECRET);
  });

  it("reads the Secret from the request's namespace only", async () => {
    const { secrets, resolver } = setup();
    secrets.put("other-team", "app-cred", { "client-secret": CLIENT_SECRET });
    const err = await rejection(resolver.resolve(NS, clientSecretRef()));
    expect(err).toMatchObject({ problem: "CredentialSecretNotFound", reason: "CredentialSecretNotFound" });
    expect(secrets.reads).toEqual([`${NS}/app-cred`]);
  });

  it("names the missing Secret and the field that refers to it", async () => {
    const { resolver } = setup();
    const err = await rejection(resolver.resolve(NS, clientSecretRef()));
    expect(err).toBeInstanceOf(CredentialError);
    expect(err.message).toContain("Secret payments/app-cred");
    expect(err.message).toContain("spec.credential.clientSecret.secretRef");
  });

  it("names a missing key and lists the keys present, by name only", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cred", { clientSecret: CLIENT_SECRET, "tenant-id": "contoso" });
    const err = await rejection(resolver.resolve(NS, clientSecretRef()));
    expect(err).toMatchObject({ problem: "MissingCredentialKey" });
    expect(err.message).toContain('no key "client-secret"');
    expect(err.message).toContain("spec.credential.clientSecret.secretRef.key");
    expect(err.message).toContain('keys present: "clientSecret", "tenant-id"');
    expect(err.message).not.toContain("contoso");
  });

  it("says so when the Secret has no data at all", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cred", {});
    const err = await rejection(resolver.resolve(NS, clientSecretRef()));
    expect(err.message).toContain("the Secret has no data");
  });

  it("refuses an empty value as a missing key", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cred", { "client-secret": "" });
    const err = await rejection(resolver.resolve(NS, clientSecretRef()));
    expect(err).toMatchObject({ problem: "MissingCredentialKey" });
    expect(err.message).toContain('key "client-secret" of Secret payments/app-cred is empty');
  });

  it("finds a key named like an Object.prototype member only when the Secret has it", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cred", { other: "x" });
    expect(await problemOf(resolver.resolve(NS, clientSecretRef("app-cred", "constructor")))).toBe(
      "MissingCredentialKey",
    );
    secrets.put(NS, "app-cred", { constructor: CLIENT_SECRET });
    const credential = await resolver.resolve(NS, clientSecretRef("app-cred", "constructor"));
    expect(credential.kind).toBe("clientSecret");
  });

  it("reports a failed read as a transient KubernetesApiError naming the Secret, never its data", async () => {
    const { secrets, resolver } = setup();
    secrets.failure = new Error("reading credential Secret payments/app-cred: HTTP 500", {
      cause: apiError(500, "InternalError", "etcdserver: request timed out"),
    });
    const err = await rejection(resolver.resolve(NS, clientSecretRef()));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ reason: "KubernetesApiError", httpStatus: 500 });
    expect(err.message).toBe(
      "reading Secret payments/app-cred (spec.credential.clientSecret.secretRef): HTTP 500 InternalError",
    );
  });

  it("reports a failure without an HTTP answer by its innermost message", async () => {
    const { secrets, resolver } = setup();
    secrets.failure = new Error("reading credential Secret payments/app-cred: reset", {
      cause: new Error("socket hang up"),
    });
    const err = await rejection(resolver.resolve(NS, clientSecretRef()));
    expect(err).toMatchObject({ reason: "KubernetesApiError", httpStatus: undefined });
    expect(err.message).toMatch(/: socket hang up$/);
  });
});

describe("CredentialResolver: memoization", () => {
  it("returns the same credential while the Secret's resourceVersion is unchanged", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cred", { "client-secret": CLIENT_SECRET });
    secrets.put(NS, "app-cert", { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem });
    const a = await resolver.resolve(NS, clientSecretRef());
    const b = await resolver.resolve(NS, clientSecretRef());
    expect(b).toBe(a);
    const c = await resolver.resolve(NS, certificateRef());
    const d = await resolver.resolve(NS, certificateRef());
    expect(d).toBe(c);
  });

  it("builds a new credential, with a new fingerprint, for a new resourceVersion", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem });
    const before = await resolver.resolve(NS, certificateRef());
    secrets.put(NS, "app-cert", { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem }); // e.g. a label changed
    const rebuilt = await resolver.resolve(NS, certificateRef());
    expect(rebuilt).not.toBe(before);
    expect(rebuilt.fingerprint).toBe(before.fingerprint);
    secrets.put(NS, "app-cert", { "tls.crt": other.certPem, "tls.key": other.keyPem });
    const after = await resolver.resolve(NS, certificateRef());
    expect(after).not.toBe(before);
    expect(after.fingerprint).toBe(thumbprint(other.certPem));
    expect(after.fingerprint).not.toBe(before.fingerprint);
  });

  it("builds a new credential when the ref or sendX5C changes", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", {
      "tls.crt": leaf.certPem,
      "tls.key": leaf.keyPem,
      "cert.pem": leaf.certPem,
    });
    const plain = await resolver.resolve(NS, certificateRef());
    expect(await resolver.resolve(NS, certificateRef({ name: "app-cert" }, true))).not.toBe(plain);
    expect(await resolver.resolve(NS, certificateRef({ name: "app-cert", certKey: "cert.pem" }))).not.toBe(
      plain,
    );
  });

  it("remembers a failure that only a change to the Secret can cure", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", { "tls.crt": leaf.certPem, "tls.key": other.keyPem });
    const first = await rejection(resolver.resolve(NS, certificateRef()));
    expect(first).toMatchObject({ problem: "KeyCertificateMismatch" });
    expect(await rejection(resolver.resolve(NS, certificateRef()))).toBe(first);
    secrets.put(NS, "app-cert", { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem });
    await expect(resolver.resolve(NS, certificateRef())).resolves.toMatchObject({ kind: "certificate" });
  });

  it("keeps at most maxEntries credentials, dropping the least recently used", async () => {
    const { secrets, resolver } = setup(2);
    for (const name of ["a", "b", "c"])
      secrets.put(NS, name, { "client-secret": `${CLIENT_SECRET}-${name}` });
    const a = await resolver.resolve(NS, clientSecretRef("a"));
    const b = await resolver.resolve(NS, clientSecretRef("b"));
    expect(await resolver.resolve(NS, clientSecretRef("a"))).toBe(a); // a is now the most recent
    await resolver.resolve(NS, clientSecretRef("c")); // drops b
    expect(await resolver.resolve(NS, clientSecretRef("a"))).toBe(a);
    const b2 = await resolver.resolve(NS, clientSecretRef("b"));
    expect(b2).not.toBe(b);
    expect(b2.fingerprint).toBe(b.fingerprint);
  });

  it("refuses a non-positive bound", () => {
    expect(() => setup(0)).toThrow(RangeError);
  });
});

describe("CredentialResolver: certificates", () => {
  it("reads a kubernetes.io/tls Secret (tls.crt and tls.key) and signs assertions for the leaf", async () => {
    const { secrets, resolver, ctx } = setup();
    secrets.put(NS, "app-cert", { "tls.crt": `${leaf.certPem}${root.certPem}`, "tls.key": leaf.keyPem });
    const credential = await resolver.resolve(NS, certificateRef({ name: "app-cert" }, true));
    expect(credential.kind).toBe("certificate");
    expect(credential.fingerprint).toBe(thumbprint(leaf.certPem));
    const fields = await credential.formFields(ctx());
    expect(fields.client_assertion_type).toBe(JWT_BEARER_ASSERTION_TYPE);
    const header = decodeProtectedHeader(fields.client_assertion!);
    expect(header["x5t#S256"]).toBe(thumbprint(leaf.certPem));
    expect(header.x5c).toHaveLength(2);
  });

  it("reads custom certKey and keyKey", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", { "cert.pem": leaf.certPem, "key.pem": leaf.keyPem });
    const credential = await resolver.resolve(
      NS,
      certificateRef({ name: "app-cert", certKey: "cert.pem", keyKey: "key.pem" }),
    );
    expect(credential.fingerprint).toBe(thumbprint(leaf.certPem));
  });

  it("reads certificate and key from one key when certKey and keyKey name the same one", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", { "app.pem": `${leaf.keyPem}${leaf.certPem}` });
    const credential = await resolver.resolve(
      NS,
      certificateRef({ name: "app-cert", certKey: "app.pem", keyKey: "app.pem" }),
    );
    expect(credential.fingerprint).toBe(thumbprint(leaf.certPem));
  });

  it("names a missing default key as the default of its field", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", { "tls.crt": leaf.certPem, "ca.crt": root.certPem });
    const err = await rejection(resolver.resolve(NS, certificateRef()));
    expect(err).toMatchObject({ problem: "MissingCredentialKey" });
    expect(err.message).toContain(
      'no key "tls.key" (the default of spec.credential.certificate.secretRef.keyKey)',
    );
    expect(err.message).toContain('keys present: "ca.crt", "tls.crt"');
  });

  it("passes certificate problems through: malformed PEM", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", {
      "tls.crt": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
      "tls.key": leaf.keyPem,
    });
    const err = await rejection(resolver.resolve(NS, certificateRef()));
    expect(err).toMatchObject({ problem: "MalformedPem" });
    expect(err.message).toMatch(/^Secret payments\/app-cert \(keys "tls.crt", "tls.key"\): /);
  });

  it("opens a PFX with its password", async () => {
    const { secrets, resolver } = setup();
    const pfx = toPfx([leaf.certPem, root.certPem], leaf.keyPem, PFX_PASSWORD);
    secrets.put(NS, "app-pfx", { "app.pfx": pfx, password: PFX_PASSWORD });
    const credential = await resolver.resolve(
      NS,
      certificateRef({ name: "app-pfx", pfxKey: "app.pfx", passwordKey: "password" }),
    );
    expect(credential.fingerprint).toBe(thumbprint(leaf.certPem));
  });

  it("opens a PFX whose password is empty", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-pfx", { "app.pfx": toPfx([leaf.certPem], leaf.keyPem, ""), password: "" });
    const credential = await resolver.resolve(
      NS,
      certificateRef({ name: "app-pfx", pfxKey: "app.pfx", passwordKey: "password" }),
    );
    expect(credential.fingerprint).toBe(thumbprint(leaf.certPem));
  });

  it("refuses a wrong PFX password with WrongPfxPassword", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-pfx", {
      "app.pfx": toPfx([leaf.certPem], leaf.keyPem, PFX_PASSWORD),
      password: `${PFX_PASSWORD}-wrong`,
    });
    const err = await rejection(
      resolver.resolve(NS, certificateRef({ name: "app-pfx", pfxKey: "app.pfx", passwordKey: "password" })),
    );
    expect(err).toMatchObject({ problem: "WrongPfxPassword" });
    expect(err.message).not.toContain("newline");
  });

  it("points out a PFX password that fails because it ends with a newline", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-pfx", {
      "app.pfx": toPfx([leaf.certPem], leaf.keyPem, PFX_PASSWORD),
      password: `${PFX_PASSWORD}\n`,
    });
    const err = await rejection(
      resolver.resolve(NS, certificateRef({ name: "app-pfx", pfxKey: "app.pfx", passwordKey: "password" })),
    );
    expect(err).toMatchObject({ problem: "WrongPfxPassword" });
    expect(err.message).toContain('the value of key "password" ends with a newline');
  });

  it("names a missing password key", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-pfx", { "app.pfx": toPfx([leaf.certPem], leaf.keyPem, PFX_PASSWORD) });
    const err = await rejection(
      resolver.resolve(NS, certificateRef({ name: "app-pfx", pfxKey: "app.pfx", passwordKey: "password" })),
    );
    expect(err).toMatchObject({ problem: "MissingCredentialKey" });
    expect(err.message).toContain("spec.credential.certificate.secretRef.passwordKey");
  });

  it("refuses pfxKey together with certKey as AmbiguousCertificateSource", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-pfx", {
      "app.pfx": toPfx([leaf.certPem], leaf.keyPem, ""),
      "tls.crt": leaf.certPem,
    });
    expect(
      await problemOf(
        resolver.resolve(NS, certificateRef({ name: "app-pfx", pfxKey: "app.pfx", certKey: "tls.crt" })),
      ),
    ).toBe("AmbiguousCertificateSource");
  });

  it("refuses an expired certificate with CredentialExpired", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cert", { "tls.crt": expired.certPem, "tls.key": expired.keyPem });
    const first = await rejection(resolver.resolve(NS, certificateRef()));
    expect(first).toMatchObject({ problem: "CredentialExpired" });
    expect(await rejection(resolver.resolve(NS, certificateRef()))).toBe(first);
  });

  it("stops handing out a remembered certificate once it expires, and the credential stops signing", async () => {
    const { clock, secrets, resolver, ctx } = setup();
    secrets.put(NS, "app-cert", { "tls.crt": shortLived.certPem, "tls.key": shortLived.keyPem });
    const credential = await resolver.resolve(NS, certificateRef());
    clock.advance(DAY - MINUTE);
    expect(await resolver.resolve(NS, certificateRef())).toBe(credential);
    clock.advance(2 * MINUTE);
    expect(await problemOf(resolver.resolve(NS, certificateRef()))).toBe("CredentialExpired");
    expect(await problemOf(credential.formFields(ctx()))).toBe("CredentialExpired");
  });

  it("accepts a not-yet-valid certificate once its notBefore has passed", async () => {
    const { clock, secrets, resolver } = setup();
    secrets.put(NS, "app-cert", { "tls.crt": future.certPem, "tls.key": future.keyPem });
    expect(await problemOf(resolver.resolve(NS, certificateRef()))).toBe("CertificateNotYetValid");
    clock.advance(DAY + MINUTE);
    await expect(resolver.resolve(NS, certificateRef())).resolves.toMatchObject({
      fingerprint: thumbprint(future.certPem),
    });
  });
});

describe("CredentialResolver: workload identity", () => {
  async function workloadSetup() {
    const s = setup();
    s.serviceAccountTokens.serviceAccounts.add(`${NS}/payments-app`);
    const credential = await s.resolver.resolve(NS, workloadIdentityRef());
    const assertion = async (c: ClientCredential = credential) => {
      const fields = await c.formFields(s.ctx());
      expect(fields.client_assertion_type).toBe(JWT_BEARER_ASSERTION_TYPE);
      return fields.client_assertion;
    };
    return { ...s, credential, assertion };
  }

  it("presents a TokenRequest token for the service account and audience, minted on first use", async () => {
    const { serviceAccountTokens, credential, assertion } = await workloadSetup();
    expect(credential.kind).toBe("workloadIdentity");
    expect(serviceAccountTokens.calls).toEqual([]);
    expect(await assertion()).toBe("sa-token-1");
    expect(serviceAccountTokens.calls).toEqual([
      {
        namespace: NS,
        serviceAccount: "payments-app",
        audience: "api://AzureADTokenExchange",
        expirationSeconds: SERVICE_ACCOUNT_TOKEN_SECONDS,
      },
    ]);
    expect(SERVICE_ACCOUNT_TOKEN_SECONDS).toBe(3600);
  });

  it("is fingerprinted by namespace, service account and audience, without the cache key's separator", async () => {
    const { resolver, credential } = await workloadSetup();
    expect(credential.fingerprint).toBe("sa:payments/payments-app@api://AzureADTokenExchange");
    expect(credential.fingerprint).toBe(
      workloadIdentityFingerprint(NS, "payments-app", "api://AzureADTokenExchange"),
    );
    const odd = await resolver.resolve(NS, workloadIdentityRef("payments-app", "a|b%c"));
    expect(odd.fingerprint).toBe("sa:payments/payments-app@a%7Cb%25c");
    const other = await resolver.resolve("billing", workloadIdentityRef());
    expect(other.fingerprint).not.toBe(credential.fingerprint);
  });

  it("returns the same credential for the same service account and audience", async () => {
    const { resolver, credential } = await workloadSetup();
    expect(await resolver.resolve(NS, workloadIdentityRef())).toBe(credential);
    expect(await resolver.resolve(NS, workloadIdentityRef("payments-app", "api://other"))).not.toBe(
      credential,
    );
  });

  it("reuses the token until half its lifetime has passed, then mints a new one", async () => {
    const { clock, serviceAccountTokens, assertion } = await workloadSetup();
    expect(await assertion()).toBe("sa-token-1");
    clock.advance(30 * MINUTE - 1);
    expect(await assertion()).toBe("sa-token-1");
    expect(serviceAccountTokens.calls).toHaveLength(1);
    clock.advance(1);
    expect(await assertion()).toBe("sa-token-2");
    expect(serviceAccountTokens.calls).toHaveLength(2);
  });

  it("mints once for concurrent requests, across resolves", async () => {
    const { resolver, serviceAccountTokens, assertion } = await workloadSetup();
    serviceAccountTokens.gate = deferred();
    const again = await resolver.resolve(NS, workloadIdentityRef());
    const pending = [assertion(), assertion(again), assertion(), assertion(again)];
    serviceAccountTokens.gate.resolve();
    expect(await Promise.all(pending)).toEqual(["sa-token-1", "sa-token-1", "sa-token-1", "sa-token-1"]);
    expect(serviceAccountTokens.calls).toHaveLength(1);
  });

  it("mints separately per audience", async () => {
    const { resolver, serviceAccountTokens, assertion } = await workloadSetup();
    const other = await resolver.resolve(NS, workloadIdentityRef("payments-app", "api://other"));
    expect(await Promise.all([assertion(), assertion(other)])).toEqual(["sa-token-1", "sa-token-2"]);
    expect(serviceAccountTokens.calls.map((c) => c.audience)).toEqual([
      "api://AzureADTokenExchange",
      "api://other",
    ]);
  });

  it("refuses a ServiceAccount that does not exist with ServiceAccountNotFound", async () => {
    const { resolver } = await workloadSetup();
    const missing = await resolver.resolve(NS, workloadIdentityRef("nobody"));
    const err = await rejection(missing.formFields({ tokenEndpoint: "https://x/t", clientId: "c", now: 0 }));
    expect(err).toMatchObject({ problem: "ServiceAccountNotFound", reason: "ServiceAccountNotFound" });
    expect(err.message).toContain("ServiceAccount payments/nobody");
    expect(err.message).toContain("spec.credential.workloadIdentity.serviceAccountName");
  });

  it("reports other API failures as a transient KubernetesApiError, and tries again next time", async () => {
    const { serviceAccountTokens, credential, ctx, assertion } = await workloadSetup();
    serviceAccountTokens.failure = apiError(500, "InternalError", "etcd is sad");
    const err = await rejection(credential.formFields(ctx()));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ reason: "KubernetesApiError", httpStatus: 500 });
    expect(err.message).toBe(
      "minting a token for ServiceAccount payments/payments-app (audience api://AzureADTokenExchange): HTTP 500 InternalError",
    );
    serviceAccountTokens.failure = undefined;
    expect(await assertion()).toBe("sa-token-2");
  });

  it("keeps presenting a still-valid token when its refresh fails, until 5 minutes before it expires", async () => {
    const { clock, serviceAccountTokens, credential, ctx, assertion } = await workloadSetup();
    expect(await assertion()).toBe("sa-token-1");
    serviceAccountTokens.failure = apiError(503, "ServiceUnavailable", "");
    clock.advance(55 * MINUTE);
    expect(await assertion()).toBe("sa-token-1");
    clock.advance(1);
    expect(await rejection(credential.formFields(ctx()))).toMatchObject({ reason: "KubernetesApiError" });
  });
});

describe("CredentialResolver: the spec's shape", () => {
  it("refuses a credential with no member or two as InvalidSpec", async () => {
    const { resolver } = setup();
    for (const credential of [{}, { ...clientSecretRef(), ...workloadIdentityRef() }]) {
      const err = await rejection(resolver.resolve(NS, credential));
      expect(err).toBeInstanceOf(PermanentError);
      expect(err).toMatchObject({ reason: "InvalidSpec" });
    }
  });

  it.each(["../kube-system/secrets/x", "kube-system/x", "", "UPPER"])(
    "never reads a Secret named %j",
    async (name) => {
      const { secrets, resolver } = setup();
      expect(await rejection(resolver.resolve(NS, clientSecretRef(name)))).toMatchObject({
        reason: "InvalidSpec",
      });
      expect(secrets.reads).toEqual([]);
    },
  );

  it("refuses a bad service-account name or an empty audience before minting anything", async () => {
    const { resolver, serviceAccountTokens } = setup();
    for (const credential of [workloadIdentityRef("kube-system/default"), workloadIdentityRef("app", "")]) {
      expect(await rejection(resolver.resolve(NS, credential))).toMatchObject({ reason: "InvalidSpec" });
    }
    expect(serviceAccountTokens.calls).toEqual([]);
  });

  it("stops with the signal's reason once aborted", async () => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "app-cred", { "client-secret": CLIENT_SECRET });
    const abort = new AbortController();
    abort.abort();
    await expect(resolver.resolve(NS, clientSecretRef(), abort.signal)).rejects.toMatchObject({
      name: "AbortError",
    });
    expect(secrets.reads).toEqual([]);
  });
});

describe("CredentialResolver: workload identity audiences (--allowed-token-audiences)", () => {
  const serviceAccountOnly: Credential = { workloadIdentity: { serviceAccountName: "payments-app" } };

  async function mintedAudience(s: ReturnType<typeof setup>, credential: ClientCredential): Promise<string> {
    s.serviceAccountTokens.serviceAccounts.add(`${NS}/payments-app`);
    await credential.formFields(s.ctx());
    return s.serviceAccountTokens.calls.at(-1)!.audience;
  }

  it.each(Object.entries(TOKEN_EXCHANGE_AUDIENCES) as [Cloud, string][])(
    "mints for the %s cloud's token-exchange audience when the spec names none",
    async (cloud, audience) => {
      const s = setup();
      const credential = await s.resolver.resolve(NS, serviceAccountOnly, undefined, cloud);
      expect(credential.fingerprint).toBe(workloadIdentityFingerprint(NS, "payments-app", audience));
      expect(await mintedAudience(s, credential)).toBe(audience);
    },
  );

  it("takes the public cloud's audience when no cloud is given", async () => {
    const s = setup();
    const credential = await s.resolver.resolve(NS, serviceAccountOnly);
    expect(await mintedAudience(s, credential)).toBe("api://AzureADTokenExchange");
  });

  it("mints for the audience the spec names, whatever the cloud", async () => {
    const s = setup();
    const credential = await s.resolver.resolve(
      NS,
      workloadIdentityRef("payments-app", "api://AzureADTokenExchange"),
      undefined,
      "AzureChina",
    );
    expect(await mintedAudience(s, credential)).toBe("api://AzureADTokenExchange");
  });

  it("keeps the defaulted and the spelled-out audience apart from another cloud's in the cache key", async () => {
    const { resolver } = setup();
    const implicit = await resolver.resolve(NS, serviceAccountOnly, undefined, "AzurePublic");
    const explicit = await resolver.resolve(NS, workloadIdentityRef());
    const china = await resolver.resolve(NS, serviceAccountOnly, undefined, "AzureChina");
    expect(explicit).toBe(implicit);
    expect(china.fingerprint).not.toBe(implicit.fingerprint);
  });

  it.each([
    ["the Kubernetes API's own audience", "https://kubernetes.default.svc.cluster.local"],
    ["a case variant of an allowed one", "api://azureadtokenexchange"],
    ["an allowed one with a trailing space", "api://AzureADTokenExchange "],
    ["an attacker's relying party", "https://evil.example"],
  ])("refuses to mint for %s: AudienceNotAllowed, and no TokenRequest is made", async (_what, audience) => {
    const { resolver, serviceAccountTokens } = setup();
    serviceAccountTokens.serviceAccounts.add(`${NS}/payments-app`);
    for (let i = 0; i < 2; i++) {
      const err = await rejection(resolver.resolve(NS, workloadIdentityRef("payments-app", audience)));
      expect(err).toBeInstanceOf(CredentialError);
      expect(err).toMatchObject({
        problem: "AudienceNotAllowed",
        reason: "AudienceNotAllowed",
        kind: "Permanent",
      });
      expect(err.message).toContain("--allowed-token-audiences");
    }
    expect(serviceAccountTokens.calls).toEqual([]);
  });

  it("refuses a cloud's default audience the installer did not allow", async () => {
    const { resolver, serviceAccountTokens } = setup(undefined, new Set(["api://AzureADTokenExchange"]));
    serviceAccountTokens.serviceAccounts.add(`${NS}/payments-app`);
    expect(await problemOf(resolver.resolve(NS, serviceAccountOnly, undefined, "AzureChina"))).toBe(
      "AudienceNotAllowed",
    );
    expect(await problemOf(resolver.resolve(NS, workloadIdentityRef("payments-app", "api://other")))).toBe(
      "AudienceNotAllowed",
    );
    await expect(resolver.resolve(NS, serviceAccountOnly, undefined, "AzurePublic")).resolves.toMatchObject({
      kind: "workloadIdentity",
    });
    expect(serviceAccountTokens.calls).toEqual([]);
  });

  it("mints for nothing when no audience is allowed", async () => {
    const { resolver, serviceAccountTokens } = setup(undefined, new Set());
    for (const cloud of Object.keys(TOKEN_EXCHANGE_AUDIENCES) as Cloud[]) {
      expect(await problemOf(resolver.resolve(NS, serviceAccountOnly, undefined, cloud))).toBe(
        "AudienceNotAllowed",
      );
    }
    expect(serviceAccountTokens.calls).toEqual([]);
  });

  it("checks the audience at the TokenRequest call too (checkAudience)", () => {
    expect(() => checkAudience("api://AzureADTokenExchange", ALLOWED_AUDIENCES)).not.toThrow();
    expect(() => checkAudience("api://elsewhere", ALLOWED_AUDIENCES)).toThrow(
      expect.objectContaining({ problem: "AudienceNotAllowed" }) as Error,
    );
  });
});

/** A compact JWT with these claims; nothing local checks its signature (Entra ID does). */
function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "RS256", typ: "JWT" })}.${part(claims)}.${Buffer.from("sig-bytes").toString("base64url")}`;
}

const clientAssertionRef = (name = "svid", key = "token"): Credential => ({
  clientAssertion: { secretRef: { name, key } },
});

describe("CredentialResolver: client assertions", () => {
  const SUBJECT = "spiffe://cluster.local/ns/payments/sa/payments-app";

  /** An assertion from the SPIFFE issuer for SUBJECT, valid for `seconds` from the clock's now. */
  function assertion(clock: FakeClock, seconds = 300, claims: Record<string, unknown> = {}): string {
    const now = Math.floor(clock.now() / 1000);
    return jwt({
      iss: "spiffe://cluster.local",
      sub: SUBJECT,
      aud: "api://AzureADTokenExchange",
      exp: now + seconds,
      ...claims,
    });
  }

  /** The error, after checking that no message in its chain quotes the assertion or its payload. */
  async function refusal(promise: Promise<unknown>, value: string): Promise<CredentialError> {
    const err = await rejection(promise);
    expect(err).toBeInstanceOf(CredentialError);
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      for (const part of value.split(".").filter((p) => p.length > 8)) expect(e.message).not.toContain(part);
    }
    return err as CredentialError;
  }

  it("reads the JWT from the Secret in the request's namespace and presents it unchanged", async () => {
    const { clock, secrets, resolver, ctx } = setup();
    const value = assertion(clock);
    secrets.put(NS, "svid", { token: `${value}\n` });
    const credential = await resolver.resolve(NS, clientAssertionRef());
    expect(credential.kind).toBe("clientAssertion");
    await expect(credential.formFields(ctx())).resolves.toEqual({
      client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
      client_assertion: value,
    });
    expect(credential.fingerprint).not.toContain(value.split(".")[1]);
    expect(secrets.reads).toEqual([`${NS}/svid`]);
  });

  it("returns the same credential while the Secret's resourceVersion is unchanged", async () => {
    const { clock, secrets, resolver } = setup();
    secrets.put(NS, "svid", { token: assertion(clock) });
    const first = await resolver.resolve(NS, clientAssertionRef());
    expect(await resolver.resolve(NS, clientAssertionRef())).toBe(first);
  });

  it("keeps the fingerprint when the Secret is rotated with a fresh JWT of the same identity, and sends the fresh one", async () => {
    const { clock, secrets, resolver, ctx } = setup();
    secrets.put(NS, "svid", { token: assertion(clock, 300, { jti: "first" }) });
    const before = await resolver.resolve(NS, clientAssertionRef());
    clock.advance(2 * MINUTE);
    const fresh = assertion(clock, 300, { jti: "second" });
    secrets.put(NS, "svid", { token: fresh });
    const after = await resolver.resolve(NS, clientAssertionRef());
    expect(after).not.toBe(before);
    expect(after.fingerprint).toBe(before.fingerprint);
    expect((await after.formFields(ctx())).client_assertion).toBe(fresh);
  });

  it("changes the fingerprint when the rotated JWT is for another subject", async () => {
    const { clock, secrets, resolver } = setup();
    secrets.put(NS, "svid", { token: assertion(clock) });
    const before = await resolver.resolve(NS, clientAssertionRef());
    secrets.put(NS, "svid", {
      token: assertion(clock, 300, { sub: "spiffe://cluster.local/ns/payments/sa/other" }),
    });
    expect((await resolver.resolve(NS, clientAssertionRef())).fingerprint).not.toBe(before.fingerprint);
  });

  it("refuses an expired assertion with AssertionExpired, naming the Secret and key, until the Secret changes", async () => {
    const { clock, secrets, resolver } = setup();
    const stale = assertion(clock, -60);
    secrets.put(NS, "svid", { token: stale });
    const first = await refusal(resolver.resolve(NS, clientAssertionRef()), stale);
    expect(first.problem).toBe("AssertionExpired");
    expect(first.message).toMatch(/^Secret payments\/svid \(key "token"\): the client assertion expired at /);
    expect(await rejection(resolver.resolve(NS, clientAssertionRef()))).toBe(first);
    secrets.put(NS, "svid", { token: assertion(clock) });
    await expect(resolver.resolve(NS, clientAssertionRef())).resolves.toMatchObject({
      kind: "clientAssertion",
    });
  });

  it("stops presenting a remembered assertion 30 s before its exp, and refuses it once past", async () => {
    const { clock, secrets, resolver, ctx } = setup();
    secrets.put(NS, "svid", { token: assertion(clock, 120) });
    const credential = await resolver.resolve(NS, clientAssertionRef());
    clock.advance(100_000);
    expect(await resolver.resolve(NS, clientAssertionRef())).toBe(credential);
    expect(await problemOf(Promise.resolve().then(() => credential.formFields(ctx())))).toBe(
      "AssertionExpired",
    );
    clock.advance(21_000);
    expect(await problemOf(resolver.resolve(NS, clientAssertionRef()))).toBe("AssertionExpired");
  });

  it.each([
    ["text that is not a JWT", "not-a-jwt"],
    ["a JWT without exp", jwt({ iss: "spiffe://cluster.local", sub: SUBJECT })],
  ])("refuses %s with MalformedAssertion, without quoting it", async (_what, value) => {
    const { secrets, resolver } = setup();
    secrets.put(NS, "svid", { token: value });
    const err = await refusal(resolver.resolve(NS, clientAssertionRef()), value);
    expect(err.problem).toBe("MalformedAssertion");
    expect(err.message).toMatch(/^Secret payments\/svid \(key "token"\): /);
    expect(err.message).not.toContain(value);
  });

  it("names a missing key by the field that names it", async () => {
    const { clock, secrets, resolver } = setup();
    secrets.put(NS, "svid", { "other-key": assertion(clock) });
    const err = await rejection(resolver.resolve(NS, clientAssertionRef()));
    expect(err).toMatchObject({ problem: "MissingCredentialKey" });
    expect(err.message).toContain("spec.credential.clientAssertion.secretRef.key");
  });

  it("refuses a Secret that does not exist, naming the field that refers to it", async () => {
    const { resolver } = setup();
    const err = await rejection(resolver.resolve(NS, clientAssertionRef()));
    expect(err).toMatchObject({ problem: "CredentialSecretNotFound" });
    expect(err.message).toContain("Secret payments/svid");
    expect(err.message).toContain("spec.credential.clientAssertion.secretRef");
  });

  it("counts clientAssertion as a member: with another one set, the spec is InvalidSpec", async () => {
    const { resolver, secrets } = setup();
    const err = await rejection(resolver.resolve(NS, { ...clientAssertionRef(), ...clientSecretRef() }));
    expect(err).toMatchObject({ reason: "InvalidSpec" });
    expect(err.message).toContain("clientAssertion");
    expect(secrets.reads).toEqual([]);
  });
});
