/**
 * docs/api.md is generated from crds/ by hack/api-docs.ts: it must be what the generator makes of
 * today's CRDs, and the generator must say what the CRDs say.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import {
  API_DOC,
  fieldRows,
  readCrdFiles,
  renderApiDocs,
  text,
  typeOf,
  type Schema,
} from "../../hack/api-docs.js";

const crds = readCrdFiles();

/** A CRD small enough to read, with each construct the generator handles once. */
const SAMPLE = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.io}
spec:
  group: example.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions:
    - name: v1
      served: true
      storage: true
      additionalPrinterColumns:
        - {name: Size, type: integer, jsonPath: .spec.size, description: How big.}
      schema:
        openAPIV3Schema:
          type: object
          description: A widget.
          properties:
            spec:
              type: object
              required: [size]
              x-kubernetes-validations:
                - rule: "!has(self.pfx) || !has(self.pem)"
                  message: not with pem
                  fieldPath: .pfx
              properties:
                size: {type: integer, minimum: 1, description: "How big | in __units__ <n>."}
                pfx: {type: string, description: A PFX.}
                pem: {type: string, description: A PEM.}
                mode: {type: string, enum: [Fast, Slow], default: Fast, description: How.}
                labels:
                  type: object
                  maxProperties: 4
                  description: Labels.
                  additionalProperties: {type: string, x-kubernetes-validations: [{rule: "size(self) < 9"}]}
`;

describe("docs/api.md", () => {
  it("is what hack/api-docs.ts makes of crds/", () => {
    expect(
      readFileSync(API_DOC, "utf8"),
      "docs/api.md is stale: run `make api-docs` and commit the result",
    ).toBe(renderApiDocs(crds));
  });

  it("has a section and a spec and status table for each of the three kinds", () => {
    const doc = renderApiDocs(crds);
    for (const kind of ["AppRegistration", "ClusterAppRegistration", "AppTokenRequest"]) {
      expect(doc).toContain(`\n## ${kind}\n`);
      expect(doc).toContain(`\n### ${kind} spec\n`);
      expect(doc).toContain(`\n### ${kind} status\n`);
    }
    expect(doc.indexOf("## ClusterAppRegistration")).toBeLessThan(doc.indexOf("## AppTokenRequest"));
  });

  it("does not depend on the order the CRD files are read in", () => {
    expect(renderApiDocs([...crds].reverse())).toBe(renderApiDocs(crds));
  });
});

describe("hack/api-docs.ts", () => {
  const doc = renderApiDocs([SAMPLE]);

  it("lists group, version, scope, names and printer columns", () => {
    expect(doc).toContain("| API version | `example.io/v1` |");
    expect(doc).toContain("| Scope | Namespaced |");
    expect(doc).toContain("| Short names | `wd` |");
    expect(doc).toContain("| Size | integer | `.spec.size` | How big. |");
  });

  it("gives each field its type, whether it is required, its default and its enum", () => {
    expect(doc).toContain('| `spec.mode` | string |  | `"Fast"` | `Fast`, `Slow` | How. |  |');
    expect(doc).toMatch(/\| `spec\.size` \| integer \| yes \|/);
    expect(doc).toMatch(/\| `spec\.pem` \| string \| {2}\|/);
  });

  it("puts a rule with a fieldPath on the field it names, and a rule without a message as its rule", () => {
    const rows = fieldRows("spec", parseSpec(SAMPLE), true);
    const byPath = Object.fromEntries(rows.map((r) => [r.path, r.messages]));
    expect(byPath["spec.pfx"]).toEqual(["not with pem"]);
    expect(byPath["spec"]).toEqual([]);
    expect(byPath["spec.labels.*"]).toEqual(["failed rule: size(self) < 9"]);
  });

  it("names map and list types as kubectl explain does", () => {
    expect(typeOf({ type: "object", additionalProperties: { type: "string" } })).toBe("map[string]string");
    expect(typeOf({ type: "array", items: { type: "string", format: "date-time" } })).toBe(
      "[]string (date-time)",
    );
  });

  it("keeps descriptions from being read as markup", () => {
    expect(text("How big | in __units__ <n>.")).toBe("How big \\| in \\_\\_units\\_\\_ &lt;n&gt;.");
    expect(doc).toContain("How big \\| in \\_\\_units\\_\\_ &lt;n&gt;.");
  });
});

/** The spec schema of a one-version CRD. */
function parseSpec(yamlText: string): Schema {
  const crd = parse(yamlText) as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  return crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
}
