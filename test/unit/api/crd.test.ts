/**
 * The three CRDs' YAML, read as data: what `kubectl get` and `kubectl explain` will show, and a walk
 * of each schema against its zod schema so that the two cannot drift apart (a field, a default, an
 * enum value, a limit or a CEL rule added on one side only fails here, long before an apiserver is
 * run).
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { CEL_RULES_BY_PATH } from "../../../src/api/rules.js";
import {
  API_VERSION,
  appRegistrationSpecSchema,
  appRegistrationStatusSchema,
  appTokenRequestSpecSchema,
  appTokenRequestStatusSchema,
  clusterAppRegistrationSpecSchema,
  GROUP,
  KIND,
  PLURAL,
  SHORT_NAME,
  SINGULAR,
  VERSION,
} from "../../../src/api/schema.js";
import {
  APP_REGISTRATION_KIND,
  APP_REGISTRATION_PLURAL,
  APP_REGISTRATION_SHORT_NAME,
  CLUSTER_APP_REGISTRATION_KIND,
  CLUSTER_APP_REGISTRATION_PLURAL,
  CLUSTER_APP_REGISTRATION_SHORT_NAME,
} from "../../../src/api/types.js";

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

interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  priority?: number;
}
interface Crd {
  apiVersion: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: Record<string, unknown>;
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: unknown;
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: Schema };
    }>;
  };
}

const CRD_DIR = fileURLToPath(new URL("../../../crds/", import.meta.url));
const read = (file: string) => readFileSync(`${CRD_DIR}${file}`, "utf8");
const load = (file: string) => parse(read(file)) as Crd;

const REGISTRATION_COLUMNS = [
  { name: "Client", type: "string", jsonPath: ".spec.clientId" },
  { name: "Cloud", type: "string", jsonPath: ".spec.cloud" },
  { name: "Credential", type: "string", jsonPath: ".status.credential.kind" },
  { name: "Cred-Expires", type: "string", jsonPath: ".status.credential.expiresAt" },
  { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: "Requests", type: "integer", jsonPath: ".status.requests" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

const KINDS = [
  {
    file: "apptoken.io_apptokenrequests.yaml",
    kind: KIND,
    plural: PLURAL,
    singular: SINGULAR,
    shortName: SHORT_NAME,
    scope: "Namespaced",
    spec: appTokenRequestSpecSchema,
    status: appTokenRequestStatusSchema,
    rules: CEL_RULES_BY_PATH[KIND],
    columns: [
      { name: "App", type: "string", jsonPath: ".spec.appRef.name" },
      { name: "Tenant", type: "string", jsonPath: ".spec.tenantId" },
      { name: "Scope", type: "string", jsonPath: ".spec.scope" },
      { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: "Expires", type: "string", jsonPath: ".status.expiresAt" },
      { name: "Source", type: "string", jsonPath: ".status.tokenSource" },
      { name: "Hits", type: "integer", jsonPath: ".status.cache.hits" },
      { name: "Throttle", type: "string", jsonPath: ".status.throttle.state" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  },
  {
    file: "apptoken.io_appregistrations.yaml",
    kind: APP_REGISTRATION_KIND,
    plural: APP_REGISTRATION_PLURAL,
    singular: "appregistration",
    shortName: APP_REGISTRATION_SHORT_NAME,
    scope: "Namespaced",
    spec: appRegistrationSpecSchema,
    status: appRegistrationStatusSchema,
    rules: CEL_RULES_BY_PATH[APP_REGISTRATION_KIND],
    columns: REGISTRATION_COLUMNS,
  },
  {
    file: "apptoken.io_clusterappregistrations.yaml",
    kind: CLUSTER_APP_REGISTRATION_KIND,
    plural: CLUSTER_APP_REGISTRATION_PLURAL,
    singular: "clusterappregistration",
    shortName: CLUSTER_APP_REGISTRATION_SHORT_NAME,
    scope: "Cluster",
    spec: clusterAppRegistrationSpecSchema,
    status: appRegistrationStatusSchema,
    rules: CEL_RULES_BY_PATH[CLUSTER_APP_REGISTRATION_KIND],
    columns: REGISTRATION_COLUMNS,
  },
] as const;

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

/** A schema without its documentation, to compare what two CRDs accept. */
function undocumented(s: Schema): Schema {
  return JSON.parse(JSON.stringify(s, (k, v: unknown) => (k === "description" ? undefined : v))) as Schema;
}

describe.each(KINDS.map((k) => [k.kind, k] as const))("the %s CRD", (_kind, k) => {
  const crd = load(k.file);
  const version = crd.spec.versions[0]!;
  const root = version.schema.openAPIV3Schema;
  const specSchema = root.properties!.spec!;
  const statusSchema = root.properties!.status!;
  const nodes = [...walk(specSchema, "spec"), ...walk(statusSchema, "status")];

  it(`is ${GROUP}/${VERSION} ${k.kind}, ${k.scope}, short name ${k.shortName}, category apptoken`, () => {
    expect(crd.apiVersion).toBe("apiextensions.k8s.io/v1");
    expect(crd.metadata.name).toBe(`${k.plural}.${GROUP}`);
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe(k.scope);
    expect(crd.spec.names).toEqual({
      kind: k.kind,
      listKind: `${k.kind}List`,
      plural: k.plural,
      singular: k.singular,
      shortNames: [k.shortName],
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

  it("has exactly its printer columns, all shown by plain kubectl get", () => {
    expect(
      version.additionalPrinterColumns.map(({ name, type, jsonPath }) => ({ name, type, jsonPath })),
    ).toEqual(k.columns);
    // Priority 0 everywhere: all of them show in plain `kubectl get`, not only with -o wide.
    for (const c of version.additionalPrinterColumns) expect(c.priority ?? 0).toBe(0);
  });

  const zodSpec = z.toJSONSchema(k.spec, { io: "input" }) as Schema;
  const zodStatus = z.toJSONSchema(k.status, { io: "input" }) as Schema;

  it("describes the same spec as the zod schema: fields, required, enums, defaults, formats, limits", () => {
    expect(canonical(zodSpec)).toEqual(canonical(specSchema));
  });

  it("describes the same status as the zod schema", () => {
    expect(canonical(zodStatus)).toEqual(canonical(statusSchema));
  });

  it("has the same fields as the zod schema, walked one by one", () => {
    // Redundant with the deep comparison, but names the odd field out in one line.
    const paths = (s: Schema, p: string) => [...walk(s, p)].map(([path]) => path).sort();
    expect(paths(zodSpec, "spec")).toEqual(paths(specSchema, "spec"));
    expect(paths(zodStatus, "status")).toEqual(paths(statusSchema, "status"));
  });

  it("carries the CEL rules of rules.ts at the same places, verbatim", () => {
    const inCrd = nodes
      .filter(([, s]) => s["x-kubernetes-validations"] !== undefined)
      .map(([path, s]) => [path, s["x-kubernetes-validations"]]);
    const inTs = k.rules.map(([path, rules]) => [
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

  it("bounds every string, map and list, for the apiserver's CEL cost budget", () => {
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
    const missing = nodes
      .filter(([path, s]) => !path.endsWith(".*") && !path.endsWith("[]") && !s.description)
      .map(([path]) => path);
    expect(missing).toEqual([]);
    expect(root.description).toBeTruthy();
  });

  it("keeps conditions a map keyed by type, as metav1.Condition lists are", () => {
    expect(statusSchema.properties!.conditions).toMatchObject({
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    });
  });

  it("stands alone: points to no document outside the repository", () => {
    // Links to the Kubernetes docs are fine; a document path or a section sign is not.
    expect(read(k.file).replace(/https:\/\/\S+/g, "")).not.toMatch(/\.md\b|\.\.\/|§/);
  });
});

describe("the registration CRDs", () => {
  const spec = (file: string) => load(file).spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
  const namespaced = spec("apptoken.io_appregistrations.yaml");
  const cluster = spec("apptoken.io_clusterappregistrations.yaml");

  it("accept the same spec, but for the ClusterAppRegistration's required namespaceSelector", () => {
    const { namespaceSelector, ...rest } = undocumented(cluster).properties!;
    expect(namespaceSelector).toBeDefined();
    expect({ ...undocumented(cluster), properties: rest, required: ["clientId", "credential"] }).toEqual(
      undocumented(namespaced),
    );
    expect(cluster.required).toEqual(["clientId", "credential", "namespaceSelector"]);
  });

  it("have the same status", () => {
    const status = (file: string) => load(file).spec.versions[0]!.schema.openAPIV3Schema.properties!.status;
    expect(status("apptoken.io_clusterappregistrations.yaml")).toEqual(
      status("apptoken.io_appregistrations.yaml"),
    );
  });

  it("say where each kind's credential is read from", () => {
    const credential = (s: Schema) => s.properties!.credential!.description!;
    expect(credential(namespaced)).toContain("the registration's own namespace");
    expect(credential(cluster)).toContain("--cluster-resource-namespace");
    for (const s of [namespaced, cluster]) {
      expect(s.properties!.authorityHost!.description).toContain("--allowed-authority-hosts");
      const audience = s.properties!.credential!.properties!.workloadIdentity!.properties!.audience!;
      expect(audience.default).toBeUndefined();
      for (const word of [
        "--allowed-token-audiences",
        "api://AzureADTokenExchange (AzurePublic)",
        "api://AzureADTokenExchangeChina",
        "api://AzureADTokenExchangeUSGov",
      ]) {
        expect(audience.description).toContain(word);
      }
    }
  });
});

describe("the AppTokenRequest CRD's description", () => {
  const root = load("apptoken.io_apptokenrequests.yaml").spec.versions[0]!.schema.openAPIV3Schema;

  it("says a request carries no client ID, authority or credential", () => {
    expect(root.description).toContain("carries no client ID, authority or credential");
    expect(root.properties!.spec!.properties!.appRef!.description).toContain("the request's own namespace");
  });
});

describe("crds/", () => {
  it("holds exactly the three CRDs", () => {
    expect(readdirSync(CRD_DIR).sort()).toEqual(KINDS.map((k) => k.file).sort());
  });
});
