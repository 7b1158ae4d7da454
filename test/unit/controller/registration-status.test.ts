import { X509Certificate } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import type { IssuedCertificate } from "../../../hack/token-service/pki.js";
import { createClientCertificate } from "../../../hack/token-service/pki.js";
import type { AppRegistrationStatus, Credential, CredentialKind } from "../../../src/api/types.js";
import {
  credentialFacts,
  credentialKindOf,
  desiredRegistrationStatus,
  registrationStatusPatch,
  type RegistrationStatusInput,
} from "../../../src/controller/registrations/registration-status.js";
import type { ReadyVerdict } from "../../../src/controller/status.js";
import {
  certificateCredential,
  clientAssertionCredential,
  clientSecretCredential,
  workloadIdentityCredential,
} from "../../../src/identity/index.js";
import { FakeClock } from "../../support/fake-clock.js";

const CLIENT_SECRET = "s3cret~Value.With-Entropy_0123";
const DAY = 86_400_000;

const clientSecretSpec = (expiresAt?: string): Credential => ({
  clientSecret: {
    secretRef: { name: "app-cred", key: "client-secret" },
    ...(expiresAt ? { expiresAt } : {}),
  },
});
const certificateSpec: Credential = { certificate: { secretRef: { name: "app-cert" }, sendX5C: false } };
const workloadIdentitySpec: Credential = { workloadIdentity: { serviceAccountName: "payments-app" } };
const clientAssertionSpec: Credential = { clientAssertion: { secretRef: { name: "svid", key: "token" } } };

/** A compact JWT with these claims; nothing here verifies its signature. */
function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "RS256", typ: "JWT" })}.${part(claims)}.${Buffer.from("signature").toString("base64url")}`;
}

let cert: IssuedCertificate;
const clock = new FakeClock(Date.now());

beforeAll(async () => {
  cert = await createClientCertificate({
    commonName: "payments.contoso.example",
    notBefore: new Date(clock.now() - DAY),
    notAfter: new Date(clock.now() + 90 * DAY),
  });
});

describe("credentialKindOf", () => {
  it.each<[Credential, CredentialKind | undefined]>([
    [clientSecretSpec(), "ClientSecret"],
    [certificateSpec, "Certificate"],
    [workloadIdentitySpec, "WorkloadIdentity"],
    [clientAssertionSpec, "ClientAssertion"],
    [{}, undefined],
  ])("names %j as %s", (spec, kind) => {
    expect(credentialKindOf(spec)).toBe(kind);
  });
});

describe("credentialFacts", () => {
  it("shows a client secret's kind and the expiry its spec declares, in UTC, and nothing of the secret", () => {
    const loaded = clientSecretCredential(CLIENT_SECRET);
    const facts = credentialFacts(clientSecretSpec("2027-01-31T00:30:00+01:00"), loaded);
    expect(facts).toEqual({ kind: "ClientSecret", expiresAt: "2027-01-30T23:30:00.000Z" });
    expect(JSON.stringify(facts)).not.toContain(CLIENT_SECRET);
    expect(JSON.stringify(facts)).not.toContain(loaded.fingerprint);
  });

  it.each([
    ["declares no expiry", undefined],
    ["declares an expiry that is not a date", "next spring"],
  ])("shows only the kind of a client secret whose spec %s", (_what, expiresAt) => {
    expect(credentialFacts(clientSecretSpec(expiresAt), clientSecretCredential(CLIENT_SECRET))).toEqual({
      kind: "ClientSecret",
    });
  });

  it("shows a certificate's notAfter and its SHA-256 thumbprint as the portal and openssl write it", () => {
    const loaded = certificateCredential({ certPem: cert.certPem, keyPem: cert.keyPem }, clock);
    const x509 = new X509Certificate(cert.certPem);
    const facts = credentialFacts(certificateSpec, loaded);
    expect(facts).toEqual({
      kind: "Certificate",
      expiresAt: new Date(x509.validTo).toISOString(),
      thumbprintSHA256: x509.fingerprint256.replaceAll(":", ""),
    });
    expect(facts?.thumbprintSHA256).toMatch(/^[0-9A-F]{64}$/);
    const shown = JSON.stringify(facts);
    for (const line of cert.keyPem.split("\n").filter((l) => l.length > 20))
      expect(shown).not.toContain(line);
  });

  it("shows only the kind while the credential could not be loaded", () => {
    expect(credentialFacts(certificateSpec, undefined)).toEqual({ kind: "Certificate" });
    expect(credentialFacts(clientAssertionSpec, undefined)).toEqual({ kind: "ClientAssertion" });
    expect(credentialFacts(clientSecretSpec("2027-01-31T00:00:00Z"), undefined)).toEqual({
      kind: "ClientSecret",
      expiresAt: "2027-01-31T00:00:00.000Z",
    });
  });

  it("shows a workload identity's kind only: its tokens are minted as needed", () => {
    const loaded = workloadIdentityCredential({
      fingerprint: "sa:payments/payments-app@api://AzureADTokenExchange",
      getAssertion: () => Promise.resolve("sa-token"),
    });
    expect(credentialFacts(workloadIdentitySpec, loaded)).toEqual({ kind: "WorkloadIdentity" });
  });

  it("shows a client assertion's exp, and never the assertion", () => {
    const exp = Math.floor(clock.now() / 1000) + 600;
    const assertion = jwt({ iss: "spiffe://cluster", sub: "spiffe://cluster/ns/payments/sa/app", exp });
    const facts = credentialFacts(clientAssertionSpec, clientAssertionCredential(assertion, clock.now()));
    expect(facts).toEqual({ kind: "ClientAssertion", expiresAt: new Date(exp * 1000).toISOString() });
    expect(JSON.stringify(facts)).not.toContain(assertion.split(".")[1]);
  });

  it("does not fail on a client assertion whose exp lies beyond what a date can hold, and leaves expiresAt out", () => {
    // exp 10^13 s is past year 275760, the last date JavaScript can write; the assertion itself is accepted.
    const loaded = clientAssertionCredential(jwt({ iss: "i", sub: "s", exp: 1e13 }), clock.now());
    expect(credentialFacts(clientAssertionSpec, loaded)).toEqual({ kind: "ClientAssertion" });
  });

  it("has no facts for a credential of no known kind", () => {
    expect(credentialFacts({}, undefined)).toBeUndefined();
  });
});

const READY: ReadyVerdict = { status: "True", reason: "Ready", message: "the credential is usable" };
const BROKEN: ReadyVerdict = {
  status: "False",
  reason: "CredentialSecretNotFound",
  message: "Secret payments/app-cred does not exist",
};
const T0 = Date.parse("2026-11-24T11:00:00Z");

/** The same value with every object's keys in reverse order, as another writer might send it. */
function reordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reordered);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reordered(v)]),
  );
}

function input(overrides: Partial<RegistrationStatusInput> = {}): RegistrationStatusInput {
  return {
    previous: undefined,
    generation: 3,
    ready: READY,
    credential: { kind: "ClientSecret" },
    requests: 2,
    now: T0,
    ...overrides,
  };
}

describe("desiredRegistrationStatus", () => {
  it("writes Ready, the observed generation, the credential facts and the number of requests", () => {
    expect(desiredRegistrationStatus(input())).toEqual({
      observedGeneration: 3,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Ready",
          message: "the credential is usable",
          observedGeneration: 3,
          lastTransitionTime: "2026-11-24T11:00:00.000Z",
        },
      ],
      credential: { kind: "ClientSecret" },
      requests: 2,
    });
  });

  it("leaves out what it does not know: the generation and the credential", () => {
    const status = desiredRegistrationStatus(input({ generation: undefined, credential: undefined }));
    expect(status).not.toHaveProperty("observedGeneration");
    expect(status).not.toHaveProperty("credential");
    expect(status.conditions?.[0]).not.toHaveProperty("observedGeneration");
  });

  it("keeps lastTransitionTime while Ready's status stays, even as its reason and message change", () => {
    const first = desiredRegistrationStatus(input({ ready: BROKEN }));
    const later = desiredRegistrationStatus(
      input({
        previous: first,
        now: T0 + 3_600_000,
        ready: { ...BROKEN, reason: "MissingCredentialKey", message: 'no key "client-secret"' },
      }),
    );
    expect(later.conditions?.[0]).toMatchObject({
      status: "False",
      reason: "MissingCredentialKey",
      lastTransitionTime: "2026-11-24T11:00:00.000Z",
    });
  });

  it("moves lastTransitionTime when Ready flips", () => {
    const broken = desiredRegistrationStatus(input({ ready: BROKEN }));
    const fixed = desiredRegistrationStatus(input({ previous: broken, now: T0 + 60_000 }));
    expect(fixed.conditions?.[0]).toMatchObject({
      status: "True",
      lastTransitionTime: "2026-11-24T11:01:00.000Z",
    });
  });

  it("keeps conditions of other types that it does not own", () => {
    const previous: AppRegistrationStatus = {
      conditions: [
        {
          type: "Degraded",
          status: "False",
          reason: "AsExpected",
          message: "",
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
    };
    const status = desiredRegistrationStatus(input({ previous }));
    expect(status.conditions?.map((c) => c.type)).toEqual(["Degraded", "Ready"]);
  });
});

describe("registrationStatusPatch", () => {
  it("is undefined when a later reconcile comes to the same status: no write", () => {
    const first = desiredRegistrationStatus(input());
    const again = desiredRegistrationStatus(input({ previous: first, now: T0 + 3_600_000 }));
    expect(registrationStatusPatch(first, again)).toBeUndefined();
  });

  it("is undefined for the same status read back with its fields in another order", () => {
    const desired = desiredRegistrationStatus(
      input({
        credential: { kind: "Certificate", expiresAt: "2027-01-01T00:00:00.000Z", thumbprintSHA256: "AB12" },
      }),
    );
    expect(registrationStatusPatch(reordered(desired) as AppRegistrationStatus, desired)).toBeUndefined();
  });

  it("treats an absent requests count as zero", () => {
    const desired = desiredRegistrationStatus(input({ requests: 0 }));
    const { requests: _requests, ...withoutRequests } = desired;
    expect(registrationStatusPatch(withoutRequests, desired)).toBeUndefined();
  });

  it("writes the whole status, with every field, for a registration that has none yet", () => {
    const desired = desiredRegistrationStatus(input());
    expect(registrationStatusPatch(undefined, desired)).toEqual({
      observedGeneration: 3,
      conditions: desired.conditions,
      credential: { kind: "ClientSecret", expiresAt: null, thumbprintSHA256: null },
      requests: 2,
    });
  });

  it.each<[string, Partial<RegistrationStatusInput>]>([
    ["the number of requests changes", { requests: 3 }],
    ["the generation changes", { generation: 4 }],
    ["Ready's message changes", { ready: { ...READY, message: "another message" } }],
    [
      "the credential's expiry changes",
      { credential: { kind: "ClientSecret", expiresAt: "2027-01-01T00:00:00.000Z" } },
    ],
  ])("writes a patch when %s", (_what, change) => {
    const previous = desiredRegistrationStatus(input());
    const desired = desiredRegistrationStatus(input({ previous, ...change }));
    expect(registrationStatusPatch(previous, desired)).toBeDefined();
  });

  it("clears a certificate's thumbprint and expiry when the credential becomes a client secret", () => {
    const previous = desiredRegistrationStatus(
      input({
        credential: { kind: "Certificate", expiresAt: "2027-01-01T00:00:00.000Z", thumbprintSHA256: "AB" },
      }),
    );
    const patch = registrationStatusPatch(previous, desiredRegistrationStatus(input({ previous })));
    expect(patch?.credential).toEqual({ kind: "ClientSecret", expiresAt: null, thumbprintSHA256: null });
  });

  it("clears the credential facts and observedGeneration when they are no longer known", () => {
    const previous = desiredRegistrationStatus(input());
    const patch = registrationStatusPatch(
      previous,
      desiredRegistrationStatus(input({ previous, credential: undefined, generation: undefined })),
    );
    expect(patch).toMatchObject({ credential: null, observedGeneration: null });
  });
});
