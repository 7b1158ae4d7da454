/**
 * The CRD YAML, read as data: what `kubectl get` and `kubectl explain` will show, and a walk of its
 * schema against the zod schema's so that the two cannot drift apart (a field, a default, an enum
 * value, a limit or a CEL rule added on one side only fails here, long before an apiserver is run).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { CEL_RULES_BY_PATH } from "../../../src/api/rules.js";
import {
  API_VERSION,
  appTokenRequestSpecSchema,
  appTokenRequestStatusSchema,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
} from "../../../src/api/schema.js";

type Schema = {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  maxLength?: number;
  maxProperties?: number;
  maxItems?: number;
  minimum?: number;
  pattern?: string;
  format?: string;
  "x-kubernetes-validations"?: Array<{ rule: string; message?: string; reason?: string; fieldPath?: string }>;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  [k: string]: unknown;
};

const CRD_PATH = fileURLToPath(new URL("../../../crds/apptoken.io_apptokenrequests.yaml", import.meta.url));
const crd = parse(readFileSync(CRD_PATH, "utf8")) as any;
const version = crd.spec.versions[0];
const root = version.schema.openAPIV3Schema as Schema;
const specSchema = root.properties!.spec!;
const statusSchema = root.properties!.status!;

describe("the CRD's identity", () => {
  it("is apptoken.io/v1alpha1 AppTokenRequest, namespaced, short name atr", () => {
    expect(crd.apiVersion).toBe("apiextensions.k8s.io/v1");
    expect(crd.metadata.name).toBe(`${PLURAL}.${GROUP}`);
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe("Namespaced");
    expect(crd.spec.names).toEqual({
      kind: KIND,
      listKind: `${KIND}List`,
      plural: PLURAL,
      singular: "apptokenrequest",
      shortNames: ["atr"],
      categories: ["apptoken"],
    });
    expect(API_VERSION).toBe(`${GROUP}/${VERSION}`);
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({
      name: VERSION,
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  it("has exactly the printer columns of DESIGN §2", () => {
    expect(
      version.additionalPrinterColumns.map((c: any) => ({
        name: c.name,
        type: c.type,
        jsonPath: c.jsonPath,
      })),
    ).toEqual([
      { name: "Tenant", type: "string", jsonPath: ".spec.tenantId" },
      { name: "Scope", type: "string", jsonPath: ".spec.scope" },
      { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: "Expires", type: "string", jsonPath: ".status.expiresAt" },
      { name: "Source", type: "string", jsonPath: ".status.tokenSource" },
      { name: "Hits", type: "integer", jsonPath: ".status.cache.hits" },
      { name: "Throttle", type: "string", jsonPath: ".status.throttle.state" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ]);
    // Priority 0 everywhere: all of them show in plain `kubectl get`, not only with -o wide.
    for (const c of version.additionalPrinterColumns) expect(c.priority ?? 0).toBe(0);
  });
});

/** Every node of a schema with its path: "spec.credential", "spec.target.template.data.*", "status.conditions[]". */
function* walk(s: Schema, path: string): Generator<[string, Schema]> {
  yield [path, s];
  for (const [k, v] of Object.entries(s.properties ?? {})) yield* walk(v, `${path}.${k}`);
  if (typeof s.additionalProperties === "object") yield* walk(s.additionalProperties, `${path}.*`);
  if (s.items) yield* walk(s.items, `${path}[]`);
}

/**
 * The keywords both sides can express, in a canonical form. Left out: descriptions (CRD only), CEL
 * rules (compared below), integer formats (zod has one integer), and zod's safe-integer bounds.
 */
function canonical(s: Schema): unknown {
  const out: Record<string, unknown> = { type: s.type };
  if (s.properties)
    out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, canonical(v)]));
  if (s.required?.length) out.required = [...s.required].sort();
  if (typeof s.additionalProperties === "object")
    out.additionalProperties = canonical(s.additionalProperties);
  if (s.items) out.items = canonical(s.items);
  for (const k of ["enum", "default", "maxLength", "maxProperties", "maxItems", "pattern"] as const) {
    if (s[k] !== undefined) out[k] = s[k];
  }
  if (s.type === "string" && s.format !== undefined) out.format = s.format;
  if (s.minimum !== undefined && s.minimum > Number.MIN_SAFE_INTEGER) out.minimum = s.minimum;
  return out;
}

describe("the CRD schema and the zod schema", () => {
  const zodSpec = z.toJSONSchema(appTokenRequestSpecSchema, { io: "input" }) as Schema;
  const zodStatus = z.toJSONSchema(appTokenRequestStatusSchema, { io: "input" }) as Schema;

  it("describe the same spec: fields, required, enums, defaults, limits", () => {
    expect(canonical(zodSpec)).toEqual(canonical(specSchema));
  });

  it("describe the same status", () => {
    expect(canonical(zodStatus)).toEqual(canonical(statusSchema));
  });

  it("have the same fields, walked one by one", () => {
    // Redundant with the deep comparison, but names the odd field out in one line.
    const paths = (s: Schema, p: string) => [...walk(s, p)].map(([path]) => path).sort();
    expect(paths(zodSpec, "spec")).toEqual(paths(specSchema, "spec"));
    expect(paths(zodStatus, "status")).toEqual(paths(statusSchema, "status"));
  });

  it("carry the same CEL rules at the same places, verbatim", () => {
    const inCrd = [...walk(specSchema, "spec"), ...walk(statusSchema, "status")]
      .filter(([, s]) => s["x-kubernetes-validations"] !== undefined)
      .map(([path, s]) => [path, s["x-kubernetes-validations"]]);
    const inTs = CEL_RULES_BY_PATH.map(([path, rules]) => [
      path,
      rules.map(({ rule, message, reason, fieldPath }) => ({
        rule,
        message,
        ...(reason === undefined ? {} : { reason }),
        ...(fieldPath === undefined ? {} : { fieldPath }),
      })),
    ]);
    const byPath = (a: unknown[][]) => [...a].sort((x, y) => String(x[0]).localeCompare(String(y[0])));
    expect(byPath(inCrd)).toEqual(byPath(inTs));
  });
});

describe("the CRD stays within the apiserver's CEL cost budget and prunes unknown fields", () => {
  const nodes = [...walk(specSchema, "spec"), ...walk(statusSchema, "status")];

  it("bounds every string, map and list", () => {
    const unbounded = nodes
      .filter(([, s]) =>
        s.type === "string"
          ? s.maxLength === undefined && s.enum === undefined && s.format === undefined
          : s.type === "array"
            ? s.maxItems === undefined
            : s.type === "object" && typeof s.additionalProperties === "object"
              ? s.maxProperties === undefined
              : false,
      )
      .map(([path]) => path);
    expect(unbounded).toEqual([]);
  });

  it("never preserves unknown fields", () => {
    expect(nodes.filter(([, s]) => "x-kubernetes-preserve-unknown-fields" in s).map(([p]) => p)).toEqual([]);
  });

  it("describes every field, for kubectl explain", () => {
    const undocumented = nodes
      .filter(([path, s]) => !path.endsWith(".*") && !path.endsWith("[]") && !s.description)
      .map(([path]) => path);
    expect(undocumented).toEqual([]);
  });

  it("keeps conditions a map keyed by type, as metav1.Condition lists are", () => {
    expect(statusSchema.properties!.conditions).toMatchObject({
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    });
  });
});
