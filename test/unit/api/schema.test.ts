import { describe, expect, it } from "vitest";
import { parseAppTokenRequestSpec, RULES_NOT_CHECKED } from "../../../src/api/schema.js";
import { baseSpec, invalidCases, validCases } from "../../fixtures/spec-cases.js";

describe("parseAppTokenRequestSpec over the shared spec table", () => {
  it.each(validCases.map((c) => [c.name, c] as const))("accepts: %s", (_name, c) => {
    const result = parseAppTokenRequestSpec(c.object.spec);
    expect(result.ok ? [] : result.issues).toEqual([]);
  });

  it.each(invalidCases.map((c) => [c.name, c] as const))("rejects: %s", (_name, c) => {
    const result = parseAppTokenRequestSpec(c.object.spec);
    expect(result.ok).toBe(false);
    const issues = result.ok ? [] : result.issues;
    expect(issues).toContainEqual({ path: c.field, message: expect.stringContaining(c.message) });
    // The message starts with the field, as the apiserver's do.
    for (const i of issues) expect(i.message.startsWith(`${i.path}: `)).toBe(true);
  });
});

describe("parseAppTokenRequestSpec", () => {
  it("applies the CRD's defaults", () => {
    const result = parseAppTokenRequestSpec({
      ...baseSpec(),
      credential: { certificate: { secretRef: { name: "app-cert" } } },
    });
    expect(result).toEqual({
      ok: true,
      spec: expect.objectContaining({
        cloud: "AzurePublic",
        credential: { certificate: { secretRef: { name: "app-cert" }, sendX5C: false } },
      }),
    });
    const wi = parseAppTokenRequestSpec({
      ...baseSpec(),
      credential: { workloadIdentity: { serviceAccountName: "sa" } },
    });
    expect(wi.ok && wi.spec.credential.workloadIdentity).toEqual({
      serviceAccountName: "sa",
      audience: "api://AzureADTokenExchange",
    });
  });

  it("drops unknown fields, as the apiserver prunes them", () => {
    const result = parseAppTokenRequestSpec({ ...baseSpec(), colour: "blue" });
    expect(result.ok && "colour" in result.spec).toBe(false);
  });

  it("skips the CEL rules when a structural error exists, and says so, like the apiserver", () => {
    const result = parseAppTokenRequestSpec({ ...baseSpec(), cloud: "Mars", scope: "no-default" });
    expect(result.ok).toBe(false);
    const messages = result.ok ? [] : result.issues.map((i) => i.message);
    expect(messages).toEqual([
      'spec.cloud: Unsupported value: "Mars": supported values: "AzurePublic", "AzureChina", "AzureUSGovernment"',
      `spec: ${RULES_NOT_CHECKED}`,
    ]);
  });

  it("reports every failed rule when there is no structural error", () => {
    const result = parseAppTokenRequestSpec({ ...baseSpec(), tenantId: "common", clientId: "x", scope: "y" });
    expect(result.ok ? [] : result.issues.map((i) => i.path)).toEqual([
      "spec.tenantId",
      "spec.clientId",
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
    for (const junk of [42, "spec", [], [baseSpec()], true, { credential: [] }, { tenantId: {} }]) {
      expect(parseAppTokenRequestSpec(junk).ok).toBe(false);
    }
  });
});
