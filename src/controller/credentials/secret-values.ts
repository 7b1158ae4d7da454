import { CredentialError } from "../../identity/errors.js";
import type { CredentialSecret } from "../../kube/credential-secrets.js";

/** One key of a credential Secret, and the spec field that named it (for messages). */
export interface SecretKeyRef {
  key: string;
  /** e.g. "spec.credential.clientSecret.secretRef.key". */
  field: string;
  /** The spec left the field out and `key` is its default (tls.crt, tls.key). */
  defaulted?: boolean;
}

const MAX_LISTED_KEYS = 20;

/**
 * The decoded bytes under `ref.key`. A missing key, or an empty value unless `allowEmpty`, is a
 * CredentialError("MissingCredentialKey") that lists the keys the Secret does have (names only:
 * the usual mistake is a key named differently, e.g. `clientSecret` for `client-secret`).
 */
export function secretValue(
  secret: CredentialSecret,
  ref: SecretKeyRef,
  options: { allowEmpty?: boolean } = {},
): Buffer {
  const where = ref.defaulted ? `the default of ${ref.field}` : ref.field;
  // Object.hasOwn: a key may be named "constructor" or "__proto__".
  const encoded = Object.hasOwn(secret.data, ref.key) ? secret.data[ref.key] : undefined;
  if (typeof encoded !== "string") {
    throw new CredentialError(
      "MissingCredentialKey",
      `Secret ${secret.namespace}/${secret.name} has no key "${ref.key}" (${where}); ${keysPresent(secret)}`,
    );
  }
  const value = Buffer.from(encoded, "base64");
  if (value.length === 0 && options.allowEmpty !== true) {
    throw new CredentialError(
      "MissingCredentialKey",
      `key "${ref.key}" of Secret ${secret.namespace}/${secret.name} is empty (${where})`,
    );
  }
  return value;
}

export function endsWithNewline(text: string): boolean {
  return text.endsWith("\n");
}

function keysPresent(secret: CredentialSecret): string {
  const keys = Object.keys(secret.data).sort();
  if (keys.length === 0) return "the Secret has no data";
  const listed = keys
    .slice(0, MAX_LISTED_KEYS)
    .map((k) => `"${k}"`)
    .join(", ");
  const more = keys.length > MAX_LISTED_KEYS ? ` and ${keys.length - MAX_LISTED_KEYS} more` : "";
  return `keys present: ${listed}${more}`;
}
