import { createHash } from "node:crypto";
import { CredentialError } from "../errors.js";
import type { AssertionContext, ClientAuthMethod, ClientCredential } from "./client-credential.js";

export interface ClientSecretOptions {
  /**
   * Entra ID takes the secret in the form (client_secret_post, the default). Generic OAuth2
   * servers may want HTTP Basic (client_secret_basic, RFC 6749 §2.3.1).
   */
  clientAuthMethod?: ClientAuthMethod;
}

// Versioned so that a future change of derivation cannot collide with old cache keys.
const FINGERPRINT_LABEL = "apptoken-operator/client-secret/v1\u0000";

export function clientSecretCredential(secret: string, options: ClientSecretOptions = {}): ClientCredential {
  if (secret === "") throw new CredentialError("MissingCredentialKey", "the client secret is empty");
  const method = options.clientAuthMethod ?? "client_secret_post";
  const fingerprint = createHash("sha256")
    .update(FINGERPRINT_LABEL)
    .update(secret)
    .digest("hex")
    .slice(0, 32);

  if (method === "client_secret_basic") {
    return {
      kind: "clientSecret",
      fingerprint,
      formFields: () => Promise.resolve({}),
      authorizationHeader: (clientId: string) =>
        // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`).toString("base64")}`,
    };
  }
  return {
    kind: "clientSecret",
    fingerprint,
    formFields: (_ctx: AssertionContext) => Promise.resolve({ client_secret: secret }),
  };
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}
