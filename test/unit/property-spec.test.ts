/**
 * Property: the controller's spec validation (the second line after the CRD) never throws on
 * anything stored in an AppTokenRequest's spec — random JSON, valid specs with one field replaced
 * by junk, huge strings, prototype keys — and every refusal names the field it is about, so that
 * `Ready=False, reason=InvalidSpec` always says what to fix.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseAppTokenRequestSpec } from "../../src/api/schema.js";

const VALID = {
  tenantId: "7d0c9a1e-5b2f-4c3d-8e9f-0a1b2c3d4e5f",
  clientId: "11111111-aaaa-4bbb-8ccc-000000000001",
  scope: "https://graph.microsoft.com/.default",
  authorityHost: "https://login.example",
  credential: { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" } } },
  target: { name: "graph-token", template: { data: { authorization: "Bearer {{ .accessToken }}" } } },
  refreshBefore: "20m",
};

/** Paths into VALID that a mutation may replace. */
const PATHS: string[][] = [
  ["tenantId"],
  ["clientId"],
  ["scope"],
  ["cloud"],
  ["authorityHost"],
  ["credential"],
  ["credential", "clientSecret"],
  ["credential", "clientSecret", "secretRef", "name"],
  ["credential", "clientSecret", "secretRef", "key"],
  ["credential", "certificate"],
  ["credential", "workloadIdentity"],
  ["target"],
  ["target", "name"],
  ["target", "template", "type"],
  ["target", "template", "data"],
  ["target", "template", "data", "authorization"],
  ["refreshBefore"],
];

const junk = fc.oneof(
  fc.anything(),
  fc.string({ maxLength: 300 }),
  fc.constantFrom(
    "common",
    "organizations",
    "http://127.0.0.1:1",
    "https://graph.microsoft.com/User.Read",
    "../../etc",
    "kube-system/app-cred",
    "{{ .secret }}",
    "-1s",
    "999999999h",
    "x".repeat(100_000),
    "\u0000",
    "__proto__",
  ),
  fc.constant({ __proto__: { polluted: true } }),
  fc.constant(JSON.parse('{"__proto__": {"polluted": true}, "constructor": {}}')),
);

function withReplaced(path: string[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(VALID) as Record<string, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
  return copy;
}

describe("property: parseAppTokenRequestSpec on anything", () => {
  it("accepts the valid spec", () => {
    expect(parseAppTokenRequestSpec(VALID).ok).toBe(true);
  });

  it("never throws on arbitrary JSON, and every issue names a spec field", () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.object(), fc.jsonValue()), (spec) => {
        const r = parseAppTokenRequestSpec(spec);
        if (!r.ok) {
          expect(r.issues.length).toBeGreaterThan(0);
          for (const i of r.issues) {
            expect(i.path.startsWith("spec")).toBe(true);
            expect(i.message.startsWith(i.path)).toBe(true);
          }
        }
      }),
      { numRuns: 2000, seed: 1 },
    );
  });

  it("never throws when one field of a valid spec is replaced by junk; a refusal names that field", () => {
    fc.assert(
      fc.property(fc.constantFrom(...PATHS), junk, (path, value) => {
        const r = parseAppTokenRequestSpec(withReplaced(path, value));
        if (!r.ok) {
          expect(r.issues.length).toBeGreaterThan(0);
          const named = r.issues.some((i) => i.path.startsWith(`spec.${path[0]}`) || i.path === "spec");
          expect(named, JSON.stringify(r.issues.map((i) => i.path))).toBe(true);
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 3000, seed: 2 },
    );
  });
});
