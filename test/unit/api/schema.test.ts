import { describe, expect, it } from "vitest";
import {
  isApiserverDateTime,
  parseAppRegistrationSpec,
  parseAppTokenRequestSpec,
  parseClusterAppRegistrationSpec,
  RULES_NOT_CHECKED,
  type ParseSpecResult,
} from "../../../src/api/schema.js";
import {
  baseClusterRegistrationSpec,
  baseRegistrationSpec,
  baseSpec,
  invalidCases,
  SPEC_KINDS,
  validCases,
  type SpecKind,
} from "../../fixtures/spec-cases.js";

const PARSE: Readonly<Record<SpecKind, (spec: unknown) => ParseSpecResult<unknown>>> = {
  AppTokenRequest: parseAppTokenRequestSpec,
  AppRegistration: parseAppRegistrationSpec,
  ClusterAppRegistration: parseClusterAppRegistrationSpec,
};

describe("the parse functions over the shared spec table", () => {
  it.each(validCases.map((c) => [c.name, c] as const))("accepts: %s", (_name, c) => {
    const result = PARSE[c.kind](c.object.spec);
    expect(result.ok ? [] : result.issues).toEqual([]);
  });

  it.each(invalidCases.map((c) => [c.name, c] as const))("rejects: %s", (_name, c) => {
    const result = PARSE[c.kind](c.object.spec);
    expect(result.ok).toBe(false);
    const issues = result.ok ? [] : result.issues;
    expect(issues).toContainEqual({ path: c.field, message: expect.stringContaining(c.message) });
    // The message starts with the field, as the apiserver's do.
    for (const i of issues) expect(i.message.startsWith(`${i.path}: `)).toBe(true);
  });

  it("has valid and invalid cases of every kind", () => {
    for (const kind of SPEC_KINDS) {
      expect(validCases.filter((c) => c.kind === kind).length, kind).toBeGreaterThan(0);
      expect(invalidCases.filter((c) => c.kind === kind).length, kind).toBeGreaterThan(0);
    }
  });
});

describe("parseAppRegistrationSpec and parseClusterAppRegistrationSpec", () => {
  it("apply the CRD's defaults, and leave the workload-identity audience to the controller", () => {
    const cert = parseAppRegistrationSpec({
      ...baseRegistrationSpec(),
      credential: { certificate: { secretRef: { name: "app-cert" } } },
    });
    expect(cert).toEqual({
      ok: true,
      spec: {
        clientId: "00000000-0000-0000-0000-000000000000",
        cloud: "AzurePublic",
        credential: { certificate: { secretRef: { name: "app-cert" }, sendX5C: false } },
      },
    });
    const wi = parseClusterAppRegistrationSpec({
      ...baseClusterRegistrationSpec(),
      cloud: "AzureChina",
      credential: { workloadIdentity: { serviceAccountName: "sa" } },
    });
    expect(wi.ok && wi.spec.credential.workloadIdentity).toEqual({ serviceAccountName: "sa" });
  });

  it("keep the selector and the allow-lists as written", () => {
    const spec = {
      ...baseRegistrationSpec(),
      allowedTenants: ["*", "Contoso.com"],
      allowedScopes: ["https://graph.microsoft.com/.default"],
      namespaceSelector: {
        matchLabels: { team: "payments" },
        matchExpressions: [{ key: "tier", operator: "In", values: ["a", "b"] }],
      },
    };
    expect(parseClusterAppRegistrationSpec(spec)).toEqual({
      ok: true,
      spec: { ...spec, cloud: "AzurePublic" },
    });
    // The same object as an AppRegistration: the selector is not a field of that kind.
    const asNamespaced = parseAppRegistrationSpec(spec);
    expect(asNamespaced.ok && "namespaceSelector" in asNamespaced.spec).toBe(false);
  });

  it("skip the CEL rules after a format error, as after any type error", () => {
    const result = parseAppRegistrationSpec({
      clientId: "not-a-guid",
      credential: { clientSecret: { secretRef: { name: "c", key: "k" }, expiresAt: "soon" } },
    });
    const path = "spec.credential.clientSecret.expiresAt";
    expect(result.ok ? [] : result.issues.map((i) => i.message)).toEqual([
      `${path}: Invalid value: "soon": ${path} in body must be of type date-time: "soon"`,
      `spec: ${RULES_NOT_CHECKED}`,
    ]);
  });

  it("report a rule with a fieldPath on that field, inside a list", () => {
    const result = parseClusterAppRegistrationSpec({
      ...baseRegistrationSpec(),
      namespaceSelector: {
        matchExpressions: [
          { key: "a", operator: "Exists" },
          { key: "b", operator: "In" },
        ],
      },
    });
    expect(result.ok ? [] : result.issues).toEqual([
      {
        path: "spec.namespaceSelector.matchExpressions[1].values",
        message:
          "spec.namespaceSelector.matchExpressions[1].values: must be non-empty when operator is In or NotIn",
      },
    ]);
  });

  it("report a null list item as a type error, since the apiserver prunes nulls only from objects", () => {
    const result = parseAppRegistrationSpec({ ...baseRegistrationSpec(), allowedScopes: [null] });
    expect(result.ok ? [] : result.issues.map((i) => i.message)).toEqual([
      'spec.allowedScopes[0]: Invalid value: "null": spec.allowedScopes[0] in body must be of type string: "null"',
    ]);
  });

  it("refuse a list where a date-time belongs, which the apiserver lets through", () => {
    const result = parseAppRegistrationSpec({
      ...baseRegistrationSpec(),
      credential: {
        clientSecret: { secretRef: { name: "c", key: "k" }, expiresAt: ["2027-01-31T00:00:00Z"] },
      },
    });
    expect(result.ok).toBe(false);
  });

  it("never throw, whatever they are given", () => {
    for (const parse of [parseAppRegistrationSpec, parseClusterAppRegistrationSpec]) {
      for (const junk of [
        42,
        "spec",
        [],
        [baseRegistrationSpec()],
        true,
        { credential: [] },
        { allowedTenants: {} },
      ]) {
        expect(parse(junk).ok).toBe(false);
      }
    }
  });
});

describe("parseAppTokenRequestSpec", () => {
  it("drops unknown fields, as the apiserver prunes them", () => {
    const result = parseAppTokenRequestSpec({ ...baseSpec(), colour: "blue", clientId: "x" });
    expect(result).toEqual({ ok: true, spec: baseSpec() });
  });

  it("skips the CEL rules when a structural error exists, and says so, like the apiserver", () => {
    const result = parseAppTokenRequestSpec({
      ...baseSpec(),
      appRef: { kind: "Secret", name: "graph-app" },
      scope: "no-default",
    });
    expect(result.ok).toBe(false);
    const messages = result.ok ? [] : result.issues.map((i) => i.message);
    expect(messages).toEqual([
      'spec.appRef.kind: Unsupported value: "Secret": supported values: "AppRegistration", "ClusterAppRegistration"',
      `spec: ${RULES_NOT_CHECKED}`,
    ]);
  });

  it("reports every failed rule when there is no structural error", () => {
    const result = parseAppTokenRequestSpec({
      ...baseSpec(),
      appRef: { kind: "AppRegistration", name: "X" },
      tenantId: "common",
      scope: "y",
    });
    expect(result.ok ? [] : result.issues.map((i) => i.path)).toEqual([
      "spec.appRef.name",
      "spec.tenantId",
      "spec.scope",
    ]);
  });

  it("counts maxLength in code points, as the apiserver does", () => {
    const fits = "\u{1F511}".repeat(4096); // 4096 code points, 8192 UTF-16 units
    expect(parseAppTokenRequestSpec({ ...baseSpec(), target: { template: { data: { k: fits } } } }).ok).toBe(
      true,
    );
  });

  it("formats a wrong type like the apiserver", () => {
    const result = parseAppTokenRequestSpec({ ...baseSpec(), scope: 5 });
    expect(result.ok ? [] : result.issues).toEqual([
      {
        path: "spec.scope",
        message: 'spec.scope: Invalid value: "integer": spec.scope in body must be of type string: "integer"',
      },
    ]);
  });

  it("never throws, whatever it is given", () => {
    for (const junk of [42, "spec", [], [baseSpec()], true, { appRef: [] }, { tenantId: {} }]) {
      expect(parseAppTokenRequestSpec(junk).ok).toBe(false);
    }
  });
});

describe("isApiserverDateTime, the apiserver's format: date-time", () => {
  it.each([
    "2027-01-31T00:00:00Z",
    "2027-01-31t00:00:00z",
    "2027-01-31T23:59:59.999999999Z",
    "2027-01-31T08:00:00+08:00",
    "2028-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "0000-02-29T00:00:00Z",
    // Its quirks, kept so that the controller's verdict is the apiserver's (see the differential
    // test in test/integration/crd.test.ts): any one character before the fraction, an offset it
    // does not range-check, and nothing read after a second "t".
    "2027-01-31T00:00:00,5Z",
    "2027-01-31T00:00:00\r5Z",
    "2027-01-31T00:00:00+99:99",
    "2027-01-31T00:00:00Zt, and then anything",
  ])("accepts %j", (s) => {
    expect(isApiserverDateTime(s)).toBe(true);
  });

  it.each([
    "",
    "2027-01-31",
    "2027-01-31T00:00:00",
    "2027-01-31 00:00:00Z",
    "2027-1-31T00:00:00Z",
    "27-01-31T00:00:00Z",
    "2027-13-01T00:00:00Z",
    "2027-00-10T00:00:00Z",
    "2027-04-31T00:00:00Z",
    "2027-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2027-01-00T00:00:00Z",
    "2027-01-31T24:00:00Z",
    "2027-01-31T00:60:00Z",
    "2027-01-31T00:00:60Z",
    "2027-01-31T00:00:00.Z",
    "2027-01-31T00:00:00\n5Z",
    "2027-01-31T00:00:00+0800",
    "2027-01-31T00:00Z",
    "2027-01-31T00:00:00ZZ",
    "2027-01-31T00:00:00Z ",
    "\u0662027-01-31T00:00:00Z",
  ])("rejects %j", (s) => {
    expect(isApiserverDateTime(s)).toBe(false);
  });
});
