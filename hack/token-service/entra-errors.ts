import { randomUUID } from "node:crypto";

/**
 * Entra ID's failures, with the status, OAuth `error`, AADSTS code and description text that the
 * real service sends (texts from the Entra error code reference and from real responses quoted
 * in MSAL, Azure SDK and azure-workload-identity issues; trimmed where they link to docs).
 */
export interface EntraFailure {
  status: number;
  error: string;
  code: number;
  description: string;
  headers?: Record<string, string>;
}

/** The JSON body Entra sends with every failure. */
export function entraErrorBody(failure: EntraFailure, now: number, origin: string): Record<string, unknown> {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date(now)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d{3}Z$/, "Z");
  return {
    error: failure.error,
    error_description: `AADSTS${failure.code}: ${failure.description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [failure.code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `${origin}/error?code=${failure.code}`,
  };
}

const FIC_HINT =
  "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.";

export const entra = {
  postOnly: (method: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 900561,
    description: `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`,
  }),
  missingParameter: (name: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 900144,
    description: `The request body must contain the following parameter: '${name}'.`,
  }),
  duplicateParameter: (name: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 9000411,
    description: `The request is not properly formatted. The parameter '${name}' is duplicated.`,
  }),
  unsupportedGrantType: (): EntraFailure => ({
    status: 400,
    error: "unsupported_grant_type",
    code: 70003,
    description: "The app requested an unsupported grant type.",
  }),
  invalidTenantIdentifier: (tenant: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 900023,
    description: `Specified tenant identifier '${tenant}' is neither a valid DNS name, nor a valid external domain.`,
  }),
  unknownTenant: (tenant: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 90002,
    description: `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
  }),
  unknownClient: (clientId: string, tenant: string): EntraFailure => ({
    status: 400,
    error: "unauthorized_client",
    code: 700016,
    description: `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  }),
  invalidScope: (scope: string): EntraFailure => ({
    status: 400,
    error: "invalid_scope",
    code: 70011,
    description: `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
  }),
  scopeWithoutDefault: (scope: string): EntraFailure => ({
    status: 400,
    error: "invalid_scope",
    code: 1002012,
    description: `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
  }),
  unknownResource: (resource: string, tenant: string): EntraFailure => ({
    status: 400,
    error: "invalid_resource",
    code: 500011,
    description: `The resource principal named ${resource} was not found in the tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
  }),
  missingCredential: (): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 7000218,
    description:
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
  }),
  invalidSecret: (clientId: string): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 7000215,
    description: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
  }),
  malformedAssertion: (): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 50027,
    description: "JWT token is invalid or malformed.",
  }),
  unsupportedAlgorithm: (alg: string): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 5002738,
    description: `Invalid JWT token. '${alg}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256,RS384,RS512,PS256,PS384,PS512'`,
  }),
  certificateNotRegistered: (thumbprint: string, clientId: string): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 700027,
    description: `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${clientId}'.]`,
  }),
  badSignature: (): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 700027,
    description: "Client assertion failed signature validation.",
  }),
  assertionIssuerMismatch: (): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 700021,
    description: "Client assertion application identifier doesn't match 'client_id' parameter.",
  }),
  assertionAudienceMismatch: (): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 700023,
    description: "Client assertion audience claim does not match Realm issuer.",
  }),
  assertionTimeRange: (now: number, nbf: number | undefined, exp: number | undefined): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 700024,
    description: `Client assertion is not within its valid time range. Current time: ${iso(now)}, assertion valid from ${nbf === undefined ? "(none)" : iso(nbf * 1000)}, expiry time of assertion ${exp === undefined ? "(none)" : iso(exp * 1000)}.`,
  }),
  /**
   * Not an Entra code. Entra evidently accepts a repeated assertion (msal-node reuses one for up
   * to ten minutes); this service refuses, to prove our client never presents one twice.
   */
  assertionReplayed: (): EntraFailure => ({
    status: 401,
    error: "invalid_client",
    code: 999999,
    description: "(local token service only) The client assertion jti has already been used.",
  }),
  federatedIssuerMismatch: (issuer: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 700211,
    description: `No matching federated identity record found for presented assertion issuer '${issuer}'. ${FIC_HINT}`,
  }),
  federatedNoMatch: (issuer: string, subject: string, audience: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 70021,
    description: `No matching federated identity record found for presented assertion. Assertion Issuer: '${issuer}'. Assertion Subject: '${subject}'. Assertion Audience: '${audience}'.`,
  }),
  federatedKeysUnavailable: (issuer: string): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 50166,
    description: `Request to External OIDC endpoint failed. Issuer: '${issuer}'.`,
  }),
  loopDetected: (): EntraFailure => ({
    status: 400,
    error: "invalid_request",
    code: 50196,
    description:
      "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.",
  }),
  transient: (status: number): EntraFailure => ({
    status,
    error: "temporarily_unavailable",
    code: 90033,
    description: "A transient error has occurred. Please try again.",
  }),
};

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
