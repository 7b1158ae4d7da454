/**
 * The target Secret's template data (ESO-like): `{{ .accessToken }}`, `{{ .tokenType }}` and
 * `{{ .expiresAt }}` and nothing else. A tiny renderer on purpose: a general template engine in
 * an operator that handles credentials is an attack surface we do not need.
 */
export const PLACEHOLDERS = ["accessToken", "tokenType", "expiresAt"] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type TemplateValues = Record<Placeholder, string>;

const ANY_ACTION = /\{\{(.*?)\}\}/g;
const KNOWN = /^\s*\.(accessToken|tokenType|expiresAt)\s*$/;

export class TemplateError extends Error {}

/** Throws TemplateError naming the key and the bad action; never echoes a value. */
export function checkTemplate(data: Record<string, string>): void {
  for (const [key, text] of Object.entries(data)) {
    for (const m of text.matchAll(ANY_ACTION)) {
      if (!KNOWN.test(m[1] ?? "")) {
        throw new TemplateError(
          `template key ${JSON.stringify(key)}: unknown placeholder {{${m[1]}}}; use {{ .accessToken }}, {{ .tokenType }} or {{ .expiresAt }}`,
        );
      }
    }
  }
}

export function renderTemplate(data: Record<string, string>, values: TemplateValues): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, text] of Object.entries(data)) {
    out[key] = text.replace(ANY_ACTION, (_whole, inner: string) => {
      const m = KNOWN.exec(inner);
      if (!m)
        throw new TemplateError(`template key ${JSON.stringify(key)}: unknown placeholder {{${inner}}}`);
      return values[m[1] as Placeholder];
    });
  }
  return out;
}
