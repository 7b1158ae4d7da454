/**
 * "Is the credential usable?": turns a registration's `spec.credential` into a ClientCredential
 * the token client can present, reading the credential Secret (or minting service-account tokens)
 * in the registration's namespace (the cluster resource namespace for a ClusterAppRegistration).
 *
 * - One namespace only. `resolve` takes the registration's credential namespace and the refs carry
 *   only a name, so no spec can make the operator read another namespace's Secret or
 *   ServiceAccount; and only a registration, which request creators cannot write, is resolved.
 * - A workload identity is minted only for an audience in --allowed-token-audiences (checked here
 *   and again at the TokenRequest call).
 * - Built credentials are memoized by what they were built from: the Secret's namespace/name and
 *   resourceVersion, the ref's fields and sendX5C. A reconcile of an unchanged Secret costs a Map
 *   lookup, however many of the 10^5 requests share it; a certificate is parsed (≈1 ms, a PFX far
 *   more) once per Secret version. A rotated Secret has a new resourceVersion, so it is built anew,
 *   and its new fingerprint makes a new token cache key: the rotation takes effect at once.
 * - Failures that depend only on the Secret's content (missing key, malformed PEM, wrong PFX
 *   password, key/certificate mismatch, expired certificate or client secret) are memoized the same way, so 10^5
 *   requests sharing a broken Secret do not each re-parse it. The one failure that time can cure,
 *   CertificateNotYetValid, is not. A memoized certificate is rebuilt (and so refused) once its
 *   notAfter has passed; the credential itself also refuses to sign after it (certificate.ts).
 * - Errors name the namespace/name, the spec field and key names, never a value, a private key or
 *   a token.
 */
import type { Cloud, Credential } from "../api/types.js";
import { TOKEN_EXCHANGE_AUDIENCES } from "../api/types.js";
import { DNS1123_SUBDOMAIN_RE } from "../api/patterns.js";
import type { Clock } from "../clock.js";
import type { ClientCredential } from "../identity/index.js";
import {
  CredentialError,
  PermanentError,
  clientAssertionCredential,
  workloadIdentityCredential,
} from "../identity/index.js";
import type { KubeApiClient } from "../kube/api-client.js";
import type { CredentialSecret, CredentialSecrets } from "../kube/credential-secrets.js";
import { kubernetesApiError } from "./credentials/kubernetes-api-error.js";
import { LruMap } from "./credentials/lru-map.js";
import {
  CERTIFICATE_REF,
  CLIENT_SECRET_REF,
  certificateFrom,
  clientSecretFrom,
  inContext,
} from "./credentials/secret-credentials.js";
import { secretValue } from "./credentials/secret-values.js";
import { ServiceAccountTokenCache, checkAudience } from "./credentials/service-account-tokens.js";

export { SERVICE_ACCOUNT_TOKEN_SECONDS } from "./credentials/service-account-tokens.js";

/** How many built credentials (and, apart, service-account tokens) are kept by default. */
export const DEFAULT_MAX_CREDENTIAL_ENTRIES = 10_000;

export interface CredentialResolverOptions {
  secrets: Pick<CredentialSecrets, "get">;
  serviceAccountTokens: Pick<KubeApiClient, "createServiceAccountToken">;
  clock: Clock;
  /** Bound on memoized credentials, least recently used dropped first; default 10 000. */
  maxEntries?: number;
  /** --allowed-token-audiences: a workload identity for any other audience is refused. */
  allowedAudiences: ReadonlySet<string>;
}

const WORKLOAD_IDENTITY = "spec.credential.workloadIdentity";
const CLIENT_ASSERTION_REF = "spec.credential.clientAssertion.secretRef";

const OBJECT_NAME = new RegExp(DNS1123_SUBDOMAIN_RE);
const MAX_OBJECT_NAME = 253;

/** What building a credential came to; `notAfter` (epoch ms) bounds how long it may be reused. */
type Outcome =
  { credential: ClientCredential; notAfter: number } | { error: CredentialError; notAfter: number };

/**
 * The workload-identity fingerprint (part of the token cache key): the ServiceAccount and the
 * audience, which is all that decides whose token it is. It never contains "|", the token cache
 * key's separator (cache-key.ts relies on the scope being the only part that can), so "|" and "%"
 * in the free-form audience are percent-encoded.
 */
export function workloadIdentityFingerprint(
  namespace: string,
  serviceAccountName: string,
  audience: string,
): string {
  const escaped = audience.replace(/[%|]/g, (c) => (c === "%" ? "%25" : "%7C"));
  return `sa:${namespace}/${serviceAccountName}@${escaped}`;
}

export class CredentialResolver {
  private readonly memo: LruMap<string, Outcome>;
  private readonly serviceAccountTokens: ServiceAccountTokenCache;

  constructor(private readonly o: CredentialResolverOptions) {
    const maxEntries = o.maxEntries ?? DEFAULT_MAX_CREDENTIAL_ENTRIES;
    this.memo = new LruMap(maxEntries);
    this.serviceAccountTokens = new ServiceAccountTokenCache({
      api: o.serviceAccountTokens,
      clock: o.clock,
      maxEntries,
      allowedAudiences: o.allowedAudiences,
    });
  }

  /**
   * The credential of a request in `namespace`. Rejects with
   * - CredentialError: the Secret, a key or the ServiceAccount is missing, or the certificate is
   *   unusable (`problem` says how); permanent until the Secret or the spec changes;
   * - TransientError (reason "KubernetesApiError"): the Secret could not be read;
   * - PermanentError (reason "InvalidSpec"): a spec that should not have passed validation;
   * - the signal's reason once `signal` aborts.
   * A workload-identity credential mints its service-account token when the token client asks for
   * an assertion, not here; failures to do so (ServiceAccountNotFound, KubernetesApiError) surface
   * from the token client.
   */
  async resolve(
    namespace: string,
    credential: Credential,
    signal?: AbortSignal,
    cloud: Cloud = "AzurePublic",
  ): Promise<ClientCredential> {
    signal?.throwIfAborted();
    const { clientSecret, certificate, workloadIdentity, clientAssertion } = credential;
    const members = [clientSecret, certificate, workloadIdentity, clientAssertion].filter(
      (m) => m !== undefined,
    ).length;
    if (members !== 1) {
      throw invalidSpec(
        `spec.credential must set exactly one of clientSecret, certificate, workloadIdentity and clientAssertion (${members} set)`,
      );
    }
    if (workloadIdentity) {
      return this.workloadIdentity(
        namespace,
        workloadIdentity.serviceAccountName,
        workloadIdentity.audience ?? TOKEN_EXCHANGE_AUDIENCES[cloud],
      );
    }
    if (clientAssertion) {
      const { name, key } = clientAssertion.secretRef;
      const secret = await this.readSecret(namespace, name, CLIENT_ASSERTION_REF, signal);
      return this.memoized("clientAssertion", secret, [key], () => {
        const jwt = secretValue(secret, { key, field: `${CLIENT_ASSERTION_REF}.key` }).toString("utf8");
        return inContext(secret, [key], () => clientAssertionCredential(jwt, this.o.clock.now()));
      });
    }
    if (clientSecret) {
      const { name, key } = clientSecret.secretRef;
      const secret = await this.readSecret(namespace, name, CLIENT_SECRET_REF, signal);
      return this.memoized("clientSecret", secret, [key, clientSecret.expiresAt ?? ""], () =>
        clientSecretFrom(secret, clientSecret, this.o.clock.now()),
      );
    }
    const spec = certificate!;
    const { name, certKey, keyKey, pfxKey, passwordKey } = spec.secretRef;
    const secret = await this.readSecret(namespace, name, CERTIFICATE_REF, signal);
    return this.memoized(
      "certificate",
      secret,
      [
        certKey ?? "",
        keyKey ?? "",
        pfxKey ?? "",
        passwordKey ?? "",
        spec.sendX5C ? "x5c" : "",
        spec.extraClaims ? JSON.stringify(spec.extraClaims) : "",
      ],
      () => certificateFrom(secret, spec, this.o.clock),
    );
  }

  private async readSecret(
    namespace: string,
    name: string,
    field: string,
    signal: AbortSignal | undefined,
  ): Promise<CredentialSecret> {
    checkObjectName(name, `${field}.name`);
    let secret: CredentialSecret | undefined;
    try {
      secret = await this.o.secrets.get(namespace, name);
    } catch (err) {
      signal?.throwIfAborted();
      throw kubernetesApiError(`reading Secret ${namespace}/${name} (${field})`, err);
    }
    signal?.throwIfAborted();
    if (secret === undefined) {
      throw new CredentialError(
        "CredentialSecretNotFound",
        `Secret ${namespace}/${name} named by ${field} does not exist (a registration's credential Secret must be in its own namespace, or for a ClusterAppRegistration in the cluster resource namespace)`,
      );
    }
    return secret;
  }

  /**
   * The memoized outcome of building a `kind` credential from this version of `secret` with the
   * ref's `fields`, else `build`'s. Names, keys and resourceVersions contain no NUL, so
   * the joined key is unambiguous.
   */
  private memoized(
    kind: "clientSecret" | "certificate" | "clientAssertion",
    secret: CredentialSecret,
    fields: string[],
    build: () => ClientCredential & { notAfter?: number },
  ): ClientCredential {
    const key = [kind, secret.namespace, secret.name, secret.resourceVersion, ...fields].join("\u0000");
    const now = this.o.clock.now();
    const hit = this.memo.get(key);
    if (hit && !(now > hit.notAfter)) {
      if ("error" in hit) throw hit.error;
      return hit.credential;
    }
    let outcome: Outcome;
    try {
      const credential = build();
      outcome = { credential, notAfter: credential.notAfter ?? Infinity };
    } catch (err) {
      // Time cures a certificate not yet valid; it cannot cure an expired assertion, but the
      // writer's next rotation changes the resourceVersion anyway.
      if (!(err instanceof CredentialError) || err.problem === "CertificateNotYetValid") throw err;
      // Expired stays expired: that failure, like the others, lasts until the Secret changes.
      outcome = { error: err, notAfter: Infinity };
    }
    // Without a resourceVersion a change could not be told apart: build every time.
    if (secret.resourceVersion !== "") this.memo.set(key, outcome);
    if ("error" in outcome) throw outcome.error;
    return outcome.credential;
  }

  private workloadIdentity(
    namespace: string,
    serviceAccountName: string,
    audience: string,
  ): ClientCredential {
    checkObjectName(serviceAccountName, `${WORKLOAD_IDENTITY}.serviceAccountName`);
    // An empty audience would get a token for the Kubernetes API itself: never send that to Entra ID.
    if (typeof audience !== "string" || audience === "") {
      throw invalidSpec(`${WORKLOAD_IDENTITY}.audience must not be empty`);
    }
    checkAudience(audience, this.o.allowedAudiences);
    const key = ["workloadIdentity", namespace, serviceAccountName, audience].join("\u0000");
    const hit = this.memo.get(key);
    if (hit && "credential" in hit) return hit.credential;
    const credential = workloadIdentityCredential({
      fingerprint: workloadIdentityFingerprint(namespace, serviceAccountName, audience),
      getAssertion: () => this.serviceAccountTokens.token(namespace, serviceAccountName, audience),
    });
    this.memo.set(key, { credential, notAfter: Infinity });
    return credential;
  }
}

function checkObjectName(name: string, field: string): void {
  if (typeof name !== "string" || name.length > MAX_OBJECT_NAME || !OBJECT_NAME.test(name)) {
    throw invalidSpec(`${field} must be a Kubernetes object name (DNS-1123 subdomain)`);
  }
}

function invalidSpec(message: string): PermanentError {
  return new PermanentError(message, { reason: "InvalidSpec" });
}
