/**
 * Property: the controller's spec validation (the second line after the CRDs) never throws on
 * anything stored in an AppTokenRequest's, an AppRegistration's or a ClusterAppRegistration's spec —
 * random JSON, valid specs with one field replaced by junk, huge strings, prototype keys — and every
 * refusal names the field it is about, so that `Ready=False, reason=InvalidSpec` always says what to
 * fix.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  parseAppRegistrationSpec,
  parseAppTokenRequestSpec,
  parseClusterAppRegistrationSpec,
  type ParseSpecResult,
} from "../../src/api/schema.js";

const REQUEST = {
  appRef: { kind: "AppRegistration", name: "graph-app" },
  tenantId: "7d0c9a1e-5b2f-4c3d-8e9f-0a1b2c3d4e5f",
  scope: "https://graph.microsoft.com/.default",
  target: { name: "graph-token", template: { data: { authorization: "Bearer {{ .accessToken }}" } } },
  refreshBefore: "20m",
};

const REGISTRATION = {
  clientId: "11111111-aaaa-4bbb-8ccc-000000000001",
  authorityHost: "https://login.example",
  credential: {
    clientSecret: {
      secretRef: { name: "app-cred", key: "client-secret" },
      expiresAt: "2027-01-31T00:00:00Z",
    },
  },
  allowedTenants: ["*"],
  allowedScopes: ["https://graph.microsoft.com/.default"],
};

const CLUSTER_REGISTRATION = {
  ...REGISTRATION,
  namespaceSelector: {
    matchLabels: { "apptoken.io/tenant-tokens": "true" },
    matchExpressions: [{ key: "team", operator: "In", values: ["payments"] }],
  },
};

/** Paths into a registration spec that a mutation may replace. */
const REGISTRATION_PATHS: string[][] = [
  ["clientId"],
  ["cloud"],
  ["authorityHost"],
  ["credential"],
  ["credential", "clientSecret"],
  ["credential", "clientSecret", "secretRef", "name"],
  ["credential", "clientSecret", "secretRef", "key"],
  ["credential", "clientSecret", "expiresAt"],
  ["credential", "certificate"],
  ["credential", "workloadIdentity"],
  ["credential", "clientAssertion"],
  ["allowedTenants"],
  ["allowedTenants", "0"],
  ["allowedScopes"],
  ["allowedScopes", "0"],
];

const KINDS: ReadonlyArray<{
  kind: string;
  parse: (spec: unknown) => ParseSpecResult<unknown>;
  valid: Record<string, unknown>;
  paths: string[][];
}> = [
  {
    kind: "AppTokenRequest",
    parse: parseAppTokenRequestSpec,
    valid: REQUEST,
    paths: [
      ["appRef"],
      ["appRef", "kind"],
      ["appRef", "name"],
      ["tenantId"],
      ["scope"],
      ["target"],
      ["target", "name"],
      ["target", "template", "type"],
      ["target", "template", "data"],
      ["target", "template", "data", "authorization"],
      ["refreshBefore"],
    ],
  },
  {
    kind: "AppRegistration",
    parse: parseAppRegistrationSpec,
    valid: REGISTRATION,
    paths: REGISTRATION_PATHS,
  },
  {
    kind: "ClusterAppRegistration",
    parse: parseClusterAppRegistrationSpec,
    valid: CLUSTER_REGISTRATION,
    paths: [
      ...REGISTRATION_PATHS,
      ["namespaceSelector"],
      ["namespaceSelector", "matchLabels"],
      ["namespaceSelector", "matchLabels", "apptoken.io/tenant-tokens"],
      ["namespaceSelector", "matchExpressions"],
      ["namespaceSelector", "matchExpressions", "0"],
      ["namespaceSelector", "matchExpressions", "0", "operator"],
      ["namespaceSelector", "matchExpressions", "0", "values"],
    ],
  },
];

const junk = fc.oneof(
  fc.anything(),
  fc.string({ maxLength: 300 }),
  fc.constantFrom(
    "common",
    "organizations",
    "*",
    "http://127.0.0.1:1",
    "https://graph.microsoft.com/User.Read",
    "../../etc",
    "kube-system/app-cred",
    "{{ .secret }}",
    "-1s",
    "999999999h",
    "2027-02-30T00:00:00Z",
    "x".repeat(100_000),
    "\u0000",
    "__proto__",
    [],
    [null],
  ),
  fc.constant({ __proto__: { polluted: true } }),
  fc.constant(JSON.parse('{"__proto__": {"polluted": true}, "constructor": {}}')),
);

function withReplaced(
  valid: Record<string, unknown>,
  path: string[],
  value: unknown,
): Record<string, unknown> {
  const copy = structuredClone(valid);
  let node = copy;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
  return copy;
}

// CPU-bound, and slow where a CI machine is shared: a generous timeout rather than fewer runs.
describe.each(KINDS.map((k) => [k.kind, k] as const))("property: the %s parser on anything", (_kind, k) => {
  it("accepts the valid spec", () => {
    expect(k.parse(k.valid).ok).toBe(true);
  });

  it("never throws on arbitrary JSON, and every issue names a spec field", () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.object(), fc.jsonValue()), (spec) => {
        const r = k.parse(spec);
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
  }, 60_000);

  it("never throws when one field of a valid spec is replaced by junk; a refusal names that field", () => {
    fc.assert(
      fc.property(fc.constantFrom(...k.paths), junk, (path, value) => {
        const r = k.parse(withReplaced(k.valid, path, value));
        if (!r.ok) {
          expect(r.issues.length).toBeGreaterThan(0);
          const named = r.issues.some((i) => i.path.startsWith(`spec.${path[0]}`) || i.path === "spec");
          expect(named, JSON.stringify(r.issues.map((i) => i.path))).toBe(true);
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 3000, seed: 2 },
    );
  }, 60_000);
});
