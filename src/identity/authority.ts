import { isIP } from "node:net";
import { PermanentError } from "./errors.js";

/**
 * Where tokens come from: the Entra ID cloud (or an override of its host) and the tenant. The only
 * output is the v2.0 token endpoint URL; everything that talks HTTP takes that URL.
 */
export type Cloud = "AzurePublic" | "AzureChina" | "AzureUSGovernment";

export const cloudAuthorityHosts: Readonly<Record<Cloud, string>> = {
  AzurePublic: "login.microsoftonline.com",
  AzureChina: "login.chinacloudapi.cn",
  AzureUSGovernment: "login.microsoftonline.us",
};

export interface AuthoritySpec {
  /** Default AzurePublic. Ignored when `authorityHost` or `tokenEndpoint` is given. */
  cloud?: Cloud | undefined;
  /**
   * Replaces the cloud's host, for private clouds and local services. Accepted forms:
   * `login.example`, `login.example:8443`, `https://login.example`, or `https://login.example/prefix`
   * (the endpoint becomes `https://login.example/prefix/{tenant}/oauth2/v2.0/token`).
   */
  authorityHost?: string | undefined;
  /**
   * Replaces the whole endpoint, for OAuth2 servers that are not Entra ID and do not use its path
   * layout (the oidc-provider conformance tests, a corporate gateway). `{tenant}` in it is
   * replaced by the URL-encoded tenant id. Takes precedence over `authorityHost` and `cloud`.
   */
  tokenEndpoint?: string | undefined;
  /** A GUID or a verified domain. */
  tenantId: string;
}

export interface AuthorityPolicy {
  /** Dev only: allow `http://` for hosts in 127.0.0.0/8 and ::1, and nowhere else. */
  allowInsecureLoopback: boolean;
  /**
   * The only token service hosts a credential may be sent to (--allowed-authority-hosts), from
   * allowedHostSet(); "any" only for library callers that pick the endpoint themselves (tests of
   * the generic OAuth2 path). Whoever writes an AppRegistration chooses its authority host; this
   * list is how the operator's installer bounds that choice.
   */
  allowedHosts: AllowedHosts;
}

/** Normalised `host:port` entries (see allowedHostSet), or no restriction at all. */
export type AllowedHosts = ReadonlySet<string> | "any";

/**
 * `host` or `host:port` entries as the flag takes them, normalised to lower-case `host:port`; an
 * entry without a port means 443 only, so allowing login.example never allows login.example:8443.
 */
export function allowedHostSet(entries: readonly string[]): ReadonlySet<string> {
  return new Set(
    entries.map((e) => {
      const lower = e.trim().toLowerCase();
      // Parsed as a URL would be, so that each address has one spelling ([0:0::1] is [::1]).
      try {
        const url = new URL(`https://${lower}`);
        return `${url.hostname}:${url.port === "" ? "443" : url.port}`;
      } catch {
        return lower;
      }
    }),
  );
}

/** The `host:port` an URL is sent to, as allowedHostSet writes it. */
function effectiveHost(url: URL): string {
  const port = url.port !== "" ? url.port : url.protocol === "http:" ? "80" : "443";
  return `${url.hostname.toLowerCase()}:${port}`;
}

/**
 * Refuses an endpoint whose host is not allowed, before anything is sent to it. Called where the
 * endpoint is built and again by the token client right before the call, so that no path to a
 * request can skip it.
 */
export function checkAllowedHost(url: URL, allowed: AllowedHosts): void {
  if (allowed === "any" || allowed.has(effectiveHost(url))) return;
  throw new PermanentError(
    `authority host ${url.host} is not in the operator's --allowed-authority-hosts; no credential is sent to it (ask the operator's installer to allow it, or use the registration's cloud)`,
    { reason: "AuthorityNotAllowed" },
  );
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
// Client credentials need one tenant's app registration; the multi-tenant aliases name none.
const MULTI_TENANT_ALIASES = new Set(["common", "organizations", "consumers"]);

export function tokenEndpointFor(spec: AuthoritySpec, policy: AuthorityPolicy): URL {
  const tenant = checkTenant(spec.tenantId);
  if (spec.tokenEndpoint !== undefined) {
    const filled = spec.tokenEndpoint.replaceAll("{tenant}", encodeURIComponent(tenant));
    const url = parseAbsolute(filled, "tokenEndpoint");
    checkTransport(url, policy);
    checkAllowedHost(url, policy.allowedHosts);
    if (url.hash !== "") {
      throw invalidAuthority(`tokenEndpoint must not have a fragment: ${describe(url)}`);
    }
    return url;
  }
  const base = authorityBaseFor(spec, policy);
  const prefix = base.pathname.replace(/\/+$/, "");
  return new URL(`${base.origin}${prefix}/${encodeURIComponent(tenant)}/oauth2/v2.0/token`);
}

/**
 * The authority (scheme, host, optional path prefix) a cloud or an authorityHost names, checked
 * against the transport rules and the allowed hosts: whether a registration may be used at all,
 * before any tenant is involved.
 */
export function authorityBaseFor(
  spec: Pick<AuthoritySpec, "cloud" | "authorityHost">,
  policy: AuthorityPolicy,
): URL {
  const base =
    spec.authorityHost === undefined
      ? new URL(`https://${cloudAuthorityHosts[spec.cloud ?? "AzurePublic"]}`)
      : parseAuthorityHost(spec.authorityHost);
  checkTransport(base, policy);
  checkAllowedHost(base, policy.allowedHosts);
  return base;
}

/**
 * True only for IP literals in 127.0.0.0/8 or ::1. Names such as "localhost" are refused on
 * purpose: what they resolve to is outside our control, and the point of the rule is that
 * plaintext credentials never leave the machine.
 */
export function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  switch (isIP(bare)) {
    case 4:
      return bare.split(".")[0] === "127";
    case 6:
      return normaliseIpv6(bare) === "0:0:0:0:0:0:0:1";
    default:
      return false;
  }
}

/** Refuses plain http unless the policy allows it and the host is a loopback literal. */
export function checkTransport(url: URL, policy: Pick<AuthorityPolicy, "allowInsecureLoopback">): void {
  if (url.protocol === "https:") return;
  if (url.protocol === "http:") {
    if (policy.allowInsecureLoopback && isLoopbackHost(url.hostname)) return;
    throw new PermanentError(
      policy.allowInsecureLoopback
        ? `plain http is allowed only for 127.0.0.0/8 and ::1, not ${url.host}`
        : `plain http authority ${url.host} refused: use https (http is allowed only for loopback with --allow-insecure-loopback-authority)`,
      { reason: "InsecureAuthority" },
    );
  }
  throw invalidAuthority(`unsupported scheme ${url.protocol} in ${describe(url)}`);
}

function checkTenant(tenantId: string): string {
  const tenant = tenantId.trim();
  if (MULTI_TENANT_ALIASES.has(tenant.toLowerCase())) {
    throw new PermanentError(
      `tenant "${tenant}" is a multi-tenant alias; client credentials need a tenant GUID or domain`,
      { reason: "InvalidTenant" },
    );
  }
  if (GUID.test(tenant) || isDomainName(tenant)) return tenant;
  throw new PermanentError(`tenant "${truncate(tenant)}" is neither a GUID nor a domain name`, {
    reason: "InvalidTenant",
  });
}

function isDomainName(value: string): boolean {
  if (value.length > 253) return false;
  const labels = value.split(".");
  return labels.length >= 2 && labels.every((label) => DNS_LABEL.test(label));
}

function parseAuthorityHost(value: string): URL {
  const trimmed = value.trim();
  if (trimmed.includes("://")) {
    const url = parseAbsolute(trimmed, "authorityHost");
    if (url.search !== "" || url.hash !== "") {
      throw invalidAuthority(`authorityHost must not have a query or fragment: ${describe(url)}`);
    }
    return url;
  }
  // A bare host or host:port; anything else (a path, credentials) is a typo worth reporting.
  if (/[/?#@\\\s]/.test(trimmed) || trimmed === "") {
    throw invalidAuthority(`authorityHost "${truncate(trimmed)}" is not a host, host:port or URL`);
  }
  return parseAbsolute(`https://${trimmed}`, "authorityHost");
}

function parseAbsolute(value: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidAuthority(`${field} "${truncate(value)}" is not a valid URL`);
  }
  if (url.username !== "" || url.password !== "") {
    throw invalidAuthority(`${field} must not carry credentials`);
  }
  return url;
}

function normaliseIpv6(address: string): string {
  const [head = "", tail] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(missing).fill("0"), ...right]
    .map((group) => (/^[0-9a-f]+$/i.test(group) ? parseInt(group, 16).toString(16) : group))
    .join(":");
}

function invalidAuthority(message: string): PermanentError {
  return new PermanentError(message, { reason: "InvalidAuthority" });
}

// The URL may carry a query someone pasted with a secret in it; only the origin and path go out.
function describe(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}
