import { describe, expect, it } from "vitest";
import { clientSecretCredential } from "../../../src/identity/credentials/client-secret.js";
import { JWT_BEARER_ASSERTION_TYPE } from "../../../src/identity/credentials/client-credential.js";
import { workloadIdentityCredential } from "../../../src/identity/credentials/workload-identity.js";
import { CredentialError, TransientError } from "../../../src/identity/errors.js";

const ctx = { tokenEndpoint: "https://login.example/t/oauth2/v2.0/token", clientId: "app", now: 0 };

describe("clientSecretCredential", () => {
  it("posts the secret in the form by default", async () => {
    const credential = clientSecretCredential("s3cret~value");
    expect(credential.kind).toBe("clientSecret");
    await expect(credential.formFields(ctx)).resolves.toEqual({ client_secret: "s3cret~value" });
    expect(credential.authorizationHeader).toBeUndefined();
  });

  it("has a stable fingerprint that changes with the secret and does not reveal it", () => {
    const a = clientSecretCredential("s3cret~value");
    expect(a.fingerprint).toMatch(/^[0-9a-f]{32}$/);
    expect(clientSecretCredential("s3cret~value").fingerprint).toBe(a.fingerprint);
    expect(clientSecretCredential("s3cret~valuf").fingerprint).not.toBe(a.fingerprint);
    expect(a.fingerprint).not.toContain("s3cret");
    expect(JSON.stringify(a)).not.toContain("s3cret");
  });

  it("uses HTTP Basic with form-encoded parts for client_secret_basic", async () => {
    const credential = clientSecretCredential("a:b+c d", { clientAuthMethod: "client_secret_basic" });
    await expect(credential.formFields(ctx)).resolves.toEqual({});
    const header = credential.authorizationHeader!("my app");
    expect(header).toBe(`Basic ${Buffer.from("my+app:a%3Ab%2Bc+d").toString("base64")}`);
    expect(credential.fingerprint).toBe(clientSecretCredential("a:b+c d").fingerprint);
  });

  it("refuses an empty secret", () => {
    expect(() => clientSecretCredential("")).toThrow(CredentialError);
  });
});

describe("workloadIdentityCredential", () => {
  it("presents the provider's token as a jwt-bearer assertion, fetched on every request", async () => {
    let calls = 0;
    const credential = workloadIdentityCredential({
      fingerprint: "sa:payments/payments-app",
      getAssertion: () => Promise.resolve(`sa-token-${++calls}`),
    });
    expect(credential.fingerprint).toBe("sa:payments/payments-app");
    await expect(credential.formFields(ctx)).resolves.toEqual({
      client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
      client_assertion: "sa-token-1",
    });
    await credential.formFields(ctx);
    expect(calls).toBe(2);
  });

  it("reports a provider failure as AssertionUnavailable", async () => {
    const credential = workloadIdentityCredential({
      fingerprint: "sa:x/y",
      getAssertion: () => Promise.reject(new Error('serviceaccounts "y" not found')),
    });
    await expect(credential.formFields(ctx)).rejects.toMatchObject({ problem: "AssertionUnavailable" });
  });

  it("passes through a classified provider failure", async () => {
    const transient = new TransientError("apiserver unavailable", { reason: "KubernetesUnavailable" });
    const credential = workloadIdentityCredential({
      fingerprint: "sa:x/y",
      getAssertion: () => Promise.reject(transient),
    });
    await expect(credential.formFields(ctx)).rejects.toBe(transient);
  });

  it("refuses an empty assertion", async () => {
    const credential = workloadIdentityCredential({
      fingerprint: "sa:x/y",
      getAssertion: () => Promise.resolve(""),
    });
    await expect(credential.formFields(ctx)).rejects.toMatchObject({ problem: "AssertionUnavailable" });
  });
});
