/**
 * What the target Secret must look like for a request and a token (see README "Using it"),
 * and whether the Secret that exists already is that. Pure: the reconciler does the I/O.
 */
import { createHash } from "node:crypto";
import type { AppTokenRequest } from "../api/types.js";
import { API_VERSION, KIND } from "../api/types.js";
import { renderTemplate } from "./template.js";

export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "apptoken-operator";
export const ANNOTATION = {
  expiresAt: "apptoken.io/expires-at",
  refreshAt: "apptoken.io/refresh-at",
  issuedAt: "apptoken.io/issued-at",
  cacheKeyHash: "apptoken.io/cache-key-hash",
  /** Hash of the template and the Secret format, so a template edit rewrites the Secret. */
  templateHash: "apptoken.io/template-hash",
  /** Set on the request by a person; copied to the Secret once handled. */
  forceRefresh: "apptoken.io/force-refresh",
} as const;

/** Bumped when the layout of the Secret changes, so every Secret is rewritten once. */
const SECRET_FORMAT = "1";

export interface TokenForSecret {
  accessToken: string;
  tokenType: string;
  issuedAt: number;
  expiresAt: number;
  refreshAt: number;
}

/** A Secret as the informer keeps it (metadata and type, no data), or as read from the API. */
export interface SecretLike {
  metadata: {
    labels?: Record<string, string> | undefined;
    annotations?: Record<string, string> | undefined;
    ownerReferences?:
      { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[] | undefined;
  };
  type?: string | undefined;
  /** secretDataDigest() of the Secret's data, when known. */
  dataDigest?: number | undefined;
}

/**
 * A digest of a Secret's base64 data, so a change by someone else is seen without keeping data: the
 * first 48 bits of its SHA-256, as a number. 10^5 Secrets keep one each: a number costs 16 bytes
 * where a hex string sliced from the full digest kept both, ~120. (A collision would only delay the
 * repair of a hand-edited Secret to its next refresh.)
 */
export function secretDataDigest(data: unknown): number {
  const entries =
    typeof data === "object" && data !== null ? Object.entries(data as Record<string, unknown>) : [];
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const h = createHash("sha256");
  for (const [k, v] of entries) h.update(`${k}\u0000${typeof v === "string" ? v : ""}\u0000`);
  return h.digest().readUIntBE(0, 6);
}

export interface DesiredSecret {
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller: boolean;
      blockOwnerDeletion: boolean;
    }[];
  };
  type: string;
  /** base64, as the API wants it. */
  data: Record<string, string>;
  dataDigest: number;
}

export function targetSecretName(req: AppTokenRequest): string {
  return req.spec.target?.name ?? req.metadata.name;
}

/**
 * The same few times are formatted again and again (a token's expiry by its Secret, its status, its
 * log line, for every request that shares it): remember the latest ones. Cleared whole when full, so
 * it never grows past ISO_REMEMBERED strings.
 */
const isoStrings = new Map<number, string>();
const ISO_REMEMBERED = 4096;

export function iso(ms: number): string {
  let s = isoStrings.get(ms);
  if (s === undefined) {
    if (isoStrings.size >= ISO_REMEMBERED) isoStrings.clear();
    s = new Date(ms).toISOString();
    isoStrings.set(ms, s);
  }
  return s;
}

function hashTemplate(template: unknown): string {
  return createHash("sha256")
    .update(SECRET_FORMAT + JSON.stringify(template ?? null))
    .digest("hex")
    .slice(0, 16);
}

/** Most requests have no template: their hash is the same for all of them. */
const NO_TEMPLATE_HASH = hashTemplate(undefined);
/** The informer's objects are replaced, never changed in place: a template object keeps its hash. */
const templateHashes = new WeakMap<object, string>();

export function templateHash(req: AppTokenRequest): string {
  const t = req.spec.target?.template;
  if (t === undefined || t === null) return NO_TEMPLATE_HASH;
  let h = templateHashes.get(t);
  if (h === undefined) templateHashes.set(t, (h = hashTemplate(t)));
  return h;
}

export function targetSecretFor(
  req: AppTokenRequest,
  token: TokenForSecret,
  keyHash: string,
  forceRefreshHandled: string | undefined,
): DesiredSecret {
  const template = req.spec.target?.template;
  const expiresAt = iso(token.expiresAt);
  const extra = template?.data
    ? renderTemplate(template.data, { accessToken: token.accessToken, tokenType: token.tokenType, expiresAt })
    : {};
  // The three token keys come last so a template cannot shadow them.
  const plain: Record<string, string> = {
    ...extra,
    access_token: token.accessToken,
    token_type: token.tokenType,
    expires_at: expiresAt,
  };
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(plain)) data[k] = Buffer.from(v, "utf8").toString("base64");
  const annotations: Record<string, string> = {
    ...(template?.metadata?.annotations ?? {}),
    [ANNOTATION.expiresAt]: expiresAt,
    [ANNOTATION.refreshAt]: iso(token.refreshAt),
    [ANNOTATION.issuedAt]: iso(token.issuedAt),
    [ANNOTATION.cacheKeyHash]: keyHash,
    [ANNOTATION.templateHash]: templateHash(req),
  };
  if (forceRefreshHandled !== undefined) annotations[ANNOTATION.forceRefresh] = forceRefreshHandled;
  return {
    metadata: {
      name: targetSecretName(req),
      namespace: req.metadata.namespace,
      labels: { ...(template?.metadata?.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY },
      annotations,
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: KIND,
          name: req.metadata.name,
          uid: req.metadata.uid ?? "",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    type: template?.type ?? "Opaque",
    data,
    dataDigest: secretDataDigest(data),
  };
}

/** The controller owner of a Secret, if any. */
export function controllerOf(secret: SecretLike): { name: string; uid: string; kind: string } | undefined {
  return secret.metadata.ownerReferences?.find((o) => o.controller === true);
}

export function isOwnedBy(secret: SecretLike, req: AppTokenRequest): boolean {
  const owner = controllerOf(secret);
  return owner !== undefined && owner.kind === KIND && owner.uid === req.metadata.uid;
}

/**
 * Whether the Secret already carries this token and layout: the issued-at/expires-at pair
 * identifies the token, and the data digest (the informer keeps a digest, never the data) catches
 * a rewrite by someone else.
 */
export function secretIsCurrent(secret: SecretLike, desired: DesiredSecret): boolean {
  if ((secret.type ?? "Opaque") !== desired.type) return false;
  // Someone rewrote the data (kubectl edit, a GitOps tool) while our annotations stayed.
  if (secret.dataDigest !== undefined && secret.dataDigest !== desired.dataDigest) return false;
  const have = secret.metadata.annotations ?? {};
  for (const [k, v] of Object.entries(desired.metadata.annotations)) if (have[k] !== v) return false;
  const labels = secret.metadata.labels ?? {};
  for (const [k, v] of Object.entries(desired.metadata.labels)) if (labels[k] !== v) return false;
  return true;
}
