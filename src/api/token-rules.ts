/**
 * The rules on what a token is asked for and when: a request's tenant, scope and refreshBefore, and
 * a registration's client ID, authority host and allow-lists. Tenants and scopes sit together
 * because an allow-list must accept exactly the values a request may name.
 */
import type { CelRule } from "./cel-rule.js";
import { parseDurationNanos } from "./duration.js";
import {
  AUTHORITY_HOST_RE,
  compile,
  DEFAULT_NOT_LAST_RE,
  DURATION_RE,
  GUID_RE,
  SCOPE_RE,
  TENANT_DOMAIN_RE,
} from "./patterns.js";

const guid = compile(GUID_RE);
const tenantDomain = compile(TENANT_DOMAIN_RE);
const scope = compile(SCOPE_RE);
const defaultNotLast = compile(DEFAULT_NOT_LAST_RE);
const authorityHost = compile(AUTHORITY_HOST_RE);
const duration = compile(DURATION_RE);

/** CEL's lowerAscii(): only A-Z change, unlike String.prototype.toLowerCase(). */
const lowerAscii = (s: string): string =>
  s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));

const MULTI_TENANT_ALIASES = ["common", "organizations", "consumers"];
const isAlias = (s: string): boolean => MULTI_TENANT_ALIASES.includes(lowerAscii(s));
const isTenant = (s: string): boolean => guid.test(s) || tenantDomain.test(s);

export const tenantIdRules: readonly CelRule<string>[] = [
  {
    rule: "!(self.lowerAscii() in ['common', 'organizations', 'consumers'])",
    message:
      "must name one tenant, not common, organizations or consumers: the client-credentials flow needs a tenant GUID or domain",
    holds: (s) => !isAlias(s),
  },
  {
    rule: `self.lowerAscii() in ['common', 'organizations', 'consumers'] || self.matches(r'${GUID_RE}') || self.matches(r'${TENANT_DOMAIN_RE}')`,
    message: "must be a tenant GUID or a DNS domain name such as contoso.onmicrosoft.com",
    holds: (s) => isAlias(s) || isTenant(s),
  },
];

/** One entry of a registration's allowedTenants: a tenant as tenantId names it, or "*". */
export const allowedTenantRules: readonly CelRule<string>[] = [
  {
    rule: "!(self.lowerAscii() in ['common', 'organizations', 'consumers'])",
    message:
      'must name one tenant, not common, organizations or consumers: "*" is how every tenant is allowed',
    holds: (s) => !isAlias(s),
  },
  {
    rule: `self == '*' || self.lowerAscii() in ['common', 'organizations', 'consumers'] || self.matches(r'${GUID_RE}') || self.matches(r'${TENANT_DOMAIN_RE}')`,
    message: 'must be "*", a tenant GUID or a DNS domain name such as contoso.onmicrosoft.com',
    holds: (s) => s === "*" || isAlias(s) || isTenant(s),
  },
];

/**
 * An empty allow-list would be the one value whose meaning flips in transit: clients that omit
 * empty lists (Go's omitempty) turn "no tenant" into "unset", which allows every tenant.
 */
export const allowedTenantsRules: readonly CelRule<readonly string[]>[] = [
  {
    rule: "size(self) > 0",
    message:
      'must not be empty: list at least one tenant, or "*"; leave allowedTenants unset to allow any tenant',
    holds: (l) => l.length > 0,
  },
];

export const allowedScopesRules: readonly CelRule<readonly string[]>[] = [
  {
    rule: "size(self) > 0",
    message: "must not be empty: list at least one scope; leave allowedScopes unset to allow any scope",
    holds: (l) => l.length > 0,
  },
];

export const clientIdRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${GUID_RE}')`,
    message: "must be a GUID: the application (client) ID of the app registration",
    holds: (s) => guid.test(s),
  },
];

export const scopeRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${SCOPE_RE}') && !self.matches(r'${DEFAULT_NOT_LAST_RE}')`,
    message:
      "must end with /.default and name exactly one resource, such as https://graph.microsoft.com/.default or api://<app-id>/.default",
    holds: (s) => scope.test(s) && !defaultNotLast.test(s),
  },
];

export const authorityHostRules: readonly CelRule<string>[] = [
  {
    rule: "self.startsWith('https://')",
    message: "must start with https://: the token service is only called over TLS",
    holds: (s) => s.startsWith("https://"),
  },
  {
    rule: `!self.startsWith('https://') || self.matches(r'${AUTHORITY_HOST_RE}')`,
    message: "must be https://host[:port][/path], without user info, query or fragment",
    holds: (s) => !s.startsWith("https://") || authorityHost.test(s),
  },
];

const MAX_REFRESH_BEFORE_NS = 24n * 3_600_000_000_000n;

export const refreshBeforeRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${DURATION_RE}')`,
    message: "must be a duration such as 20m or 1h30m (units h, m, s, ms)",
    holds: (s) => duration.test(s),
  },
  {
    rule: `!self.matches(r'${DURATION_RE}') || (duration(self) > duration('0s') && duration(self) <= duration('24h'))`,
    message: "must be more than 0s and at most 24h: no access token lives longer than a day",
    holds: (s) => {
      if (!duration.test(s)) return true;
      // DURATION_RE keeps every accepted value in range, so this cannot throw.
      const ns = parseDurationNanos(s);
      return ns > 0n && ns <= MAX_REFRESH_BEFORE_NS;
    },
  },
];
