/**
 * The rules on Kubernetes objects the operator reads or writes by name: object names, the keys of a
 * Secret's data, and the target Secret's template. The template's key rule reuses the Secret key
 * rule, so both live here.
 */
import { codePoints, type CelRule } from "./cel-rule.js";
import { compile, DNS1123_SUBDOMAIN_RE, SECRET_KEY_RE, TEMPLATE_VALUE_RE } from "./patterns.js";

const dns1123Subdomain = compile(DNS1123_SUBDOMAIN_RE);
const secretKey = compile(SECRET_KEY_RE);
const templateValue = compile(TEMPLATE_VALUE_RE);

/** Names of Secrets, ServiceAccounts, registrations and the target Secret. */
export const objectNameRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${DNS1123_SUBDOMAIN_RE}')`,
    message:
      "must be a DNS-1123 subdomain (lowercase letters, digits, - and .), as Kubernetes object names are",
    holds: (s) => dns1123Subdomain.test(s),
  },
];

const isSecretKey = (s: string): boolean => secretKey.test(s) && s !== "." && !s.startsWith("..");

/** Keys read from or written to a Secret's data. */
export const secretKeyRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${SECRET_KEY_RE}') && self != '.' && !self.startsWith('..')`,
    message: "must be a valid Secret key: letters, digits, -, _ and ., neither . nor starting with ..",
    holds: isSecretKey,
  },
];

export const secretTypeRules: readonly CelRule<string>[] = [
  {
    rule: "self != 'kubernetes.io/service-account-token'",
    message:
      "must not be kubernetes.io/service-account-token: the operator does not write service-account token Secrets",
    reason: "FieldValueForbidden",
    holds: (s) => s !== "kubernetes.io/service-account-token",
  },
];

const RESERVED_KEYS = ["access_token", "token_type", "expires_at"];

export const templateDataRules: readonly CelRule<Record<string, string>>[] = [
  {
    // __proto__ is a valid Secret key, but not one a JavaScript object can carry as data: the
    // operator (and zod) would drop it silently, so it is refused here instead.
    rule: `self.all(k, size(k) <= 253 && k.matches(r'${SECRET_KEY_RE}') && k != '.' && !k.startsWith('..') && k != '__proto__')`,
    message:
      "keys must be valid Secret keys: at most 253 letters, digits, -, _ and ., neither . nor starting with .., nor __proto__",
    holds: (d) => Object.keys(d).every((k) => codePoints(k) <= 253 && isSecretKey(k) && k !== "__proto__"),
  },
  {
    rule: "!self.exists(k, k in ['access_token', 'token_type', 'expires_at'])",
    message: "must not redefine access_token, token_type or expires_at, which the operator always writes",
    reason: "FieldValueForbidden",
    holds: (d) => !Object.keys(d).some((k) => RESERVED_KEYS.includes(k)),
  },
];

export const templateValueRules: readonly CelRule<string>[] = [
  {
    rule: `self.matches(r'${TEMPLATE_VALUE_RE}')`,
    message: "may only use the placeholders {{ .accessToken }}, {{ .tokenType }} and {{ .expiresAt }}",
    holds: (s) => templateValue.test(s),
  },
];
