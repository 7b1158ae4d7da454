import { CredentialError, type CredentialFacts } from "../errors.js";

/**
 * The one check that refuses a credential past its expiry (a certificate's notAfter, a client
 * secret's declared expiresAt), before anything is sent: `CredentialExpired`, carrying the expiry
 * so that the registration can still show it. `what` names the credential, never its value.
 */
export function refuseExpired(
  notAfter: number,
  now: number,
  what: string,
  facts: CredentialFacts = {},
): void {
  if (now < notAfter) return;
  throw new CredentialError(
    "CredentialExpired",
    `${what} expired at ${new Date(notAfter).toISOString()}`,
    undefined,
    { ...facts, notAfter },
  );
}
