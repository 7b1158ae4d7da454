import { CredentialError, isTokenAcquisitionError } from "../errors.js";
import type { ClientCredential } from "./client-credential.js";
import { JWT_BEARER_ASSERTION_TYPE } from "./client-credential.js";

export interface WorkloadIdentityOptions {
  /** Stable and not secret, e.g. "sa:payments/payments-app"; the caller decides. */
  fingerprint: string;
  /**
   * Returns a token from the trusted issuer (the controller mints a service-account token with
   * the TokenRequest API, audience api://AzureADTokenExchange). May throw a TransientError or
   * ThrottledError to say so; any other failure becomes CredentialError("AssertionUnavailable").
   */
  getAssertion: () => Promise<string>;
}

/** Secretless: a federated token from another issuer stands in for the app's credential. */
export function workloadIdentityCredential(options: WorkloadIdentityOptions): ClientCredential {
  if (options.fingerprint === "") throw new TypeError("workload identity fingerprint must not be empty");
  return {
    kind: "workloadIdentity",
    fingerprint: options.fingerprint,
    formFields: async () => {
      let assertion: string;
      try {
        assertion = await options.getAssertion();
      } catch (cause) {
        if (isTokenAcquisitionError(cause)) throw cause;
        throw new CredentialError(
          "AssertionUnavailable",
          "the federated assertion could not be obtained",
          cause,
        );
      }
      if (assertion === "")
        throw new CredentialError("AssertionUnavailable", "the federated assertion is empty");
      return { client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: assertion };
    },
  };
}
