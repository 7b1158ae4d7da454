/** The identity module's public surface: what the controller and the cache code against. */
export type { AllowedHosts, AuthorityPolicy, AuthoritySpec, Cloud } from "./authority.js";
export {
  allowedHostSet,
  authorityBaseFor,
  checkAllowedHost,
  checkTransport,
  cloudAuthorityHosts,
  isLoopbackHost,
  tokenEndpointFor,
} from "./authority.js";
export type { AadstsMeaning } from "./aadsts.js";
export { aadstsMeaning } from "./aadsts.js";
export type {
  AssertionContext,
  ClientAuthMethod,
  ClientCredential,
} from "./credentials/client-credential.js";
export { JWT_BEARER_ASSERTION_TYPE } from "./credentials/client-credential.js";
export type { ClientSecretOptions } from "./credentials/client-secret.js";
export { clientSecretCredential } from "./credentials/client-secret.js";
export type { CertificateCredential, CertificateCredentialOptions } from "./credentials/certificate.js";
export { certificateCredential } from "./credentials/certificate.js";
export type { ClientAssertionCredential } from "./credentials/client-assertion.js";
export { clientAssertionCredential } from "./credentials/client-assertion.js";
export type { WorkloadIdentityOptions } from "./credentials/workload-identity.js";
export { workloadIdentityCredential } from "./credentials/workload-identity.js";
export { refuseExpired } from "./credentials/expiry.js";
export * from "./errors.js";
export { parseRetryAfter } from "./retry-after.js";
export type { ClassifyContext, RawTokenResponse, TokenOutcome, TokenResponse } from "./token-response.js";
export { classifyTokenResponse } from "./token-response.js";
export { classifyTokenError } from "./transport-error.js";
export type { TokenClientOptions, TokenRequest } from "./token-client.js";
export { TokenClient } from "./token-client.js";
