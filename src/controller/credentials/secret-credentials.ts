/**
 * Building a client-secret or certificate credential from the keys of its Secret, apart from the
 * resolver (credential-resolver.ts), which decides when to build and memoizes the outcome. Errors
 * name the Secret, the spec field and key names, never a value.
 */
import type { CertificateCredential as CertificateSpec, ClientSecretCredential } from "../../api/types.js";
import { DEFAULT_CERT_KEY, DEFAULT_KEY_KEY } from "../../api/types.js";
import type { Clock } from "../../clock.js";
import type { ClientCredential, CredentialProblem } from "../../identity/index.js";
import {
  CredentialError,
  certificateCredential,
  clientSecretCredential,
  refuseExpired,
} from "../../identity/index.js";
import type { CredentialSecret } from "../../kube/credential-secrets.js";
import { endsWithNewline, secretValue } from "./secret-values.js";

export const CLIENT_SECRET_REF = "spec.credential.clientSecret.secretRef";
export const CERTIFICATE_REF = "spec.credential.certificate.secretRef";

/**
 * A client secret, refused once past the expiresAt its registration declares (Entra ID would
 * refuse it too, with AADSTS7000222); the memo rebuilds it then, as it does a certificate.
 */
export function clientSecretFrom(
  secret: CredentialSecret,
  spec: ClientSecretCredential,
  now: number,
): ClientCredential & { notAfter?: number } {
  const notAfter = spec.expiresAt === undefined ? NaN : Date.parse(spec.expiresAt);
  if (Number.isFinite(notAfter))
    refuseExpired(notAfter, now, `the client secret in Secret ${secret.namespace}/${secret.name}`);
  const value = secretValue(secret, { key: spec.secretRef.key, field: `${CLIENT_SECRET_REF}.key` });
  // Used exactly as stored, as MSAL does: Entra ID compares the secret byte for byte, so trimming
  // could turn a correct secret into a wrong one. A trailing newline (`kubectl create secret
  // --from-file` keeps the file's) is the classic mistake, but nothing local can tell it from a
  // secret that really ends so; Entra ID answers AADSTS7000215 (invalid client secret), which the
  // Ready condition shows.
  const credential = clientSecretCredential(value.toString("utf8"));
  return Number.isFinite(notAfter) ? { ...credential, notAfter } : credential;
}

// Stays whole: one line over 60; its PFX and PEM branches are two halves of one choice, read side by side.
export function certificateFrom(
  secret: CredentialSecret,
  spec: CertificateSpec,
  clock: Clock,
): ClientCredential & { notAfter: number } {
  const { certKey, keyKey, pfxKey, passwordKey } = spec.secretRef;
  const sendX5C = spec.sendX5C;
  const extraClaims = spec.extraClaims;
  if (pfxKey !== undefined) {
    if (certKey !== undefined || keyKey !== undefined) {
      throw new CredentialError(
        "AmbiguousCertificateSource",
        `${CERTIFICATE_REF} sets pfxKey and certKey/keyKey; give either a PFX or a PEM certificate and key`,
      );
    }
    const pfx = secretValue(secret, { key: pfxKey, field: `${CERTIFICATE_REF}.pfxKey` });
    // An empty password is a real one (PFX files exported without a password use it).
    const password =
      passwordKey === undefined
        ? undefined
        : secretValue(
            secret,
            { key: passwordKey, field: `${CERTIFICATE_REF}.passwordKey` },
            { allowEmpty: true },
          ).toString("utf8");
    // A wrong PFX password is found here, locally, so unlike a client secret it can be explained.
    const hint =
      password !== undefined && endsWithNewline(password)
        ? `; note that the value of key "${passwordKey}" ends with a newline, which counts as part of the password (kubectl create secret --from-file keeps a file's final newline)`
        : "";
    return inContext(
      secret,
      [pfxKey],
      () => certificateCredential({ pfx, password, sendX5C, extraClaims }, clock),
      {
        WrongPfxPassword: hint,
      },
    );
  }
  const certRef = {
    key: certKey ?? DEFAULT_CERT_KEY,
    field: `${CERTIFICATE_REF}.certKey`,
    defaulted: certKey === undefined,
  };
  const keyRef = {
    key: keyKey ?? DEFAULT_KEY_KEY,
    field: `${CERTIFICATE_REF}.keyKey`,
    defaulted: keyKey === undefined,
  };
  const certPem = secretValue(secret, certRef).toString("utf8");
  // Certificate and key in one key (a combined PEM): read it once, or the key would appear twice.
  if (certRef.key === keyRef.key) {
    return inContext(secret, [certRef.key], () =>
      certificateCredential({ pem: certPem, sendX5C, extraClaims }, clock),
    );
  }
  const keyPem = secretValue(secret, keyRef).toString("utf8");
  return inContext(secret, [certRef.key, keyRef.key], () =>
    certificateCredential({ certPem, keyPem, sendX5C, extraClaims }, clock),
  );
}

/**
 * Runs `build`, prefixing a CredentialError's message with the Secret and keys it read from (the
 * certificate code knows neither), plus an optional hint per problem. The problem is unchanged.
 */
export function inContext<T>(
  secret: CredentialSecret,
  keys: string[],
  build: () => T,
  hints: Partial<Record<CredentialProblem, string>> = {},
): T {
  try {
    return build();
  } catch (err) {
    if (!(err instanceof CredentialError)) throw err;
    const named = keys.map((k) => `"${k}"`).join(", ");
    const where = `Secret ${secret.namespace}/${secret.name} (${keys.length === 1 ? "key" : "keys"} ${named})`;
    throw new CredentialError(
      err.problem,
      `${where}: ${err.message}${hints[err.problem] ?? ""}`,
      err,
      err.facts,
    );
  }
}
