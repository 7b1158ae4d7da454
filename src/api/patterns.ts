/**
 * Every regular expression the apptoken.io API validates with, as source text shared by the CRDs'
 * CEL rules (RE2, via `matches()`) and the zod schemas (JavaScript RegExp). Each one is written in
 * the subset where RE2 and JavaScript agree: ASCII character classes, no look-around, no
 * back-references, no `\s`/`\w`/`\d` (whose Unicode meanings differ). The unit tests check that the
 * CRD quotes these strings verbatim, so a change here that is not made in the CRD fails the build.
 *
 * None contains a single quote, because the CRD embeds them in CEL raw strings `r'...'`.
 */

/** An application or tenant id: 8-4-4-4-12 hex digits, any case. */
export const GUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
export const GUID_RE = `^${GUID}$`;

/** One DNS label of at most 63 characters, any case (hostnames are case-insensitive). */
const DNS_LABEL = "[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?";

/**
 * A tenant's domain name, e.g. contoso.onmicrosoft.com: two or more labels, the last starting with a
 * letter so that an IP address is not taken for a domain.
 */
export const TENANT_DOMAIN_RE = `^(${DNS_LABEL}\\.)+[a-zA-Z]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$`;

/**
 * A scope for the client-credentials flow: exactly one resource followed by `/.default`. The resource
 * is an application id GUID, or an app ID URI with a scheme (`https://graph.microsoft.com`,
 * `api://<guid>`, `api://contoso.com/api`); a trailing slash in the URI is kept, which is how
 * resources such as `https://database.windows.net/` are asked for (`...//.default`). Spaces and commas,
 * which would separate a second scope, are not URI characters here.
 */
export const SCOPE_RE = `^(${GUID}|[a-zA-Z][-a-zA-Z0-9+.]*://[a-zA-Z0-9][-a-zA-Z0-9._~:/@!$&()*+;=%]*)/\\.default$`;

/** Matches (unanchored) when `/.default` occurs anywhere but at the very end: two scopes run together. */
export const DEFAULT_NOT_LAST_RE = "/\\.default.";

/** A port number 1-65535 without leading zeros. */
const PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";

/**
 * authorityHost: `https://host[:port][/path]`. The host is a DNS name (a single label such as
 * `localhost` is allowed, and so is an IPv4 address) or a bracketed IPv6 literal. The optional path is
 * kept as a prefix: the token endpoint is `<authorityHost without trailing slash>/<tenant>/oauth2/v2.0/token`.
 * No user info, query or fragment, which have no meaning for an authority.
 */
export const AUTHORITY_HOST_RE = `^https://(${DNS_LABEL}(\\.${DNS_LABEL})*|\\[[0-9a-fA-F:.]+\\])(:${PORT})?(/[-a-zA-Z0-9._~!$&()*+,;=:@%/]*)?$`;

/** Kubernetes' DNS-1123 subdomain (object names of Secrets and ServiceAccounts); length is checked apart. */
export const DNS1123_SUBDOMAIN_RE = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/** Kubernetes' Secret/ConfigMap data key charset; `.`, `..` and a `..` prefix are rejected apart. */
export const SECRET_KEY_RE = "^[-._a-zA-Z0-9]+$";

/**
 * refreshBefore: a Go duration restricted to the units that make sense for token refresh (h, m, s,
 * ms), unsigned, each number at most 6 digits with at most 9 decimals. The bounds keep every value
 * the pattern accepts far inside Go's (and CEL's) int64-nanosecond range, so `duration()` in the CRD
 * rule can never overflow.
 */
export const DURATION_RE = "^([0-9]{1,6}(\\.[0-9]{1,9})?(ms|h|m|s))+$";

/**
 * A template data value: a text in which every `{{` opens one of the three placeholders
 * `{{ .accessToken }}`, `{{ .tokenType }}`, `{{ .expiresAt }}` (spaces inside the braces optional).
 * A stray or unknown `{{` is rejected so that a typo cannot leak template syntax into the Secret.
 */
export const TEMPLATE_VALUE_RE =
  "^([^{]|\\{[^{]|\\{$|\\{\\{ *\\.(accessToken|tokenType|expiresAt) *\\}\\})*$";

/** A label or annotation key: optional DNS-1123 subdomain prefix and `/`, then a name of at most 63 characters. */
export const QUALIFIED_NAME_RE =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/** A label value: empty, or at most 63 characters that start and end alphanumeric (length checked apart). */
export const LABEL_VALUE_RE = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/** metav1.Condition's type: an optional DNS-1123 subdomain prefix and `/`, then a CamelCase-ish name. */
export const CONDITION_TYPE_RE =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/** metav1.Condition's reason: CamelCase, starting with a letter. */
export const CONDITION_REASON_RE = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

/**
 * The two halves of `format: date-time` as the apiserver checks it (kube-openapi's
 * strfmt.IsDateTime): a calendar date, and a time of day with a zone. Go's `.` in the original
 * (any character but a newline) is written `[^\n]` here, because JavaScript's `.` also refuses
 * \r, U+2028 and U+2029. Hour, minute and second are range-checked apart, as the apiserver does;
 * the zone offset is not range-checked at all, there either.
 */
export const OPENAPI_DATE_RE = "^([0-9]{4})-([0-9]{2})-([0-9]{2})$";
export const OPENAPI_TIME_RE =
  "^([0-9]{2}):([0-9]{2}):([0-9]{2})([^\\n][0-9]+)?([zZ]|[+-][0-9]{2}:[0-9]{2})$";

/** Compiles one of the patterns above for JavaScript, once, with Unicode semantics like RE2's. */
export function compile(source: string): RegExp {
  return new RegExp(source, "u");
}
