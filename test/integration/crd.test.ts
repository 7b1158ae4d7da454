/**
 * The three CRDs against a real kube-apiserver: they install, they accept and reject exactly the
 * shared table (test/fixtures/spec-cases.ts) with the field named, they default as the zod schemas
 * do, and kubectl shows the promised columns and explanations. A differential run then feeds
 * generated near-miss values to both validators and requires the same verdict, which is what keeps
 * RE2 (CEL), the apiserver's formats and JavaScript honest with each other.
 *
 * ClusterAppRegistrations are cluster-scoped and outlive the test namespace, so the table creates
 * them with dryRun (the apiserver validates, defaults and answers as for a real create, but stores
 * nothing); the one real object is deleted afterwards.
 */
import { ApiException, ApiextensionsV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appRegistrationStatusSchema,
  appTokenRequestStatusSchema,
  parseAppRegistrationSpec,
  parseAppTokenRequestSpec,
  parseClusterAppRegistrationSpec,
  type ParseSpecResult,
} from "../../src/api/schema.js";
import {
  API_VERSION,
  APP_REGISTRATION_KIND,
  APP_REGISTRATION_PLURAL,
  CLUSTER_APP_REGISTRATION_KIND,
  CLUSTER_APP_REGISTRATION_PLURAL,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
} from "../../src/api/types.js";
import {
  BASE_SPECS,
  baseClusterRegistrationSpec,
  baseRegistrationSpec,
  baseSpec,
  invalidCases,
  validCases,
  type Json,
  type Manifest,
  type SpecKind,
} from "../fixtures/spec-cases.js";
import { createTestNamespace, deleteTestNamespace, kubectl, testKubeConfig } from "../support/kube.js";

interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}
interface StatusBody {
  code?: number;
  message?: string;
  details?: { causes?: StatusCause[] };
}

const PLURALS: Readonly<Record<SpecKind, string>> = {
  AppTokenRequest: PLURAL,
  AppRegistration: APP_REGISTRATION_PLURAL,
  ClusterAppRegistration: CLUSTER_APP_REGISTRATION_PLURAL,
};

const PARSE: Readonly<Record<SpecKind, (spec: unknown) => ParseSpecResult<unknown>>> = {
  AppTokenRequest: parseAppTokenRequestSpec,
  AppRegistration: parseAppRegistrationSpec,
  ClusterAppRegistration: parseClusterAppRegistrationSpec,
};

let kc: KubeConfig;
let ns: string;
let objects: CustomObjectsApi;
const clusterObjects: string[] = [];

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createTestNamespace(kc, "crdtest");
  objects = kc.makeApiClient(CustomObjectsApi);
});
afterAll(async () => {
  for (const name of clusterObjects) {
    await objects
      .deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: CLUSTER_APP_REGISTRATION_PLURAL,
        name,
      })
      .catch(() => undefined);
  }
  if (ns) await deleteTestNamespace(kc, ns);
});

/** Creates the object; a ClusterAppRegistration only ever with dryRun unless `store` says so. */
function create(body: Manifest, opts: { dryRun?: boolean; store?: boolean } = {}): Promise<Json> {
  const common = { group: GROUP, version: VERSION, plural: PLURALS[body.kind], body };
  if (body.kind === CLUSTER_APP_REGISTRATION_KIND) {
    const dryRun = opts.store === true ? {} : { dryRun: "All" };
    return objects.createClusterCustomObject({ ...common, ...dryRun }) as Promise<Json>;
  }
  const dryRun = opts.dryRun === true ? { dryRun: "All" } : {};
  return objects.createNamespacedCustomObject({ ...common, namespace: ns, ...dryRun }) as Promise<Json>;
}

/** The apiserver's rejection, or undefined when it accepted. Anything but a 422 is a test failure. */
async function rejection(body: Manifest, dryRun = false): Promise<StatusBody | undefined> {
  try {
    await create(body, { dryRun });
    return undefined;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const status = (typeof e.body === "string" ? JSON.parse(e.body) : e.body) as StatusBody;
    expect(e.code, status.message).toBe(422);
    return status;
  }
}

const CONDITION = {
  type: "Ready",
  status: "True",
  message: "ok",
  lastTransitionTime: "2026-11-24T11:00:00Z",
  observedGeneration: 1,
};

async function patchStatus(resource: string, name: string, namespaced: boolean, status: Json): Promise<void> {
  const where = namespaced ? ["-n", ns] : [];
  const patched = await kubectl([
    "patch",
    resource,
    name,
    ...where,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status }),
  ]);
  expect(patched.stderr).toBe("");
}

/** kubectl explain wraps its text; words are compared with single spaces. */
const oneLine = (s: string) => s.replace(/\s+/g, " ");

/** `kubectl get`'s header and first row, split into cells. */
async function table(args: string[]): Promise<{ header: string[]; cells: string[] }> {
  const got = await kubectl(["get", ...args]);
  expect(got.code, got.stderr).toBe(0);
  const [header, row] = got.stdout.trim().split("\n");
  return { header: header?.split(/\s+/) ?? [], cells: row?.split(/\s+/) ?? [] };
}

describe("the CRDs", () => {
  it.each([
    [PLURAL, KIND, "Namespaced", "atr"],
    [APP_REGISTRATION_PLURAL, APP_REGISTRATION_KIND, "Namespaced", "appreg"],
    [CLUSTER_APP_REGISTRATION_PLURAL, CLUSTER_APP_REGISTRATION_KIND, "Cluster", "cappreg"],
  ])("%s is Established, %s, %s, short name %s, category apptoken", async (plural, kind, scope, short) => {
    const crd = await kc
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: `${plural}.${GROUP}` });
    expect(crd.status?.conditions?.find((c) => c.type === "Established")?.status).toBe("True");
    expect(crd.spec.scope).toBe(scope);
    expect(crd.spec.names).toMatchObject({ kind, shortNames: [short], categories: ["apptoken"] });
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([[VERSION, true, true]]);
  });

  it.each(validCases.map((c) => [c.name, c] as const))(
    "accepts, with the zod schema's defaults: %s",
    async (_name, c) => {
      const created = await create(c.object);
      const parsed = PARSE[c.kind](c.object.spec);
      expect(parsed.ok).toBe(true);
      // Defaulting and pruning agree: what the apiserver stored is what zod produced.
      expect(created.spec).toEqual(parsed.ok ? parsed.spec : undefined);
    },
  );

  it.each(invalidCases.map((c) => [c.name, c] as const))(
    "rejects with 422 naming the field: %s",
    async (_name, c) => {
      const status = await rejection(c.object);
      expect(status, "the apiserver accepted it").toBeDefined();
      expect(status?.message).toContain(c.field);
      expect(status?.details?.causes).toContainEqual(
        expect.objectContaining({ field: c.field, message: expect.stringContaining(c.message) }),
      );
    },
  );
});

describe("kubectl", () => {
  it("shows app, tenant, scope, Ready, expiry, source, hits and throttle in kubectl get atr", async () => {
    const name = "printer-columns";
    await create({ apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec: baseSpec() });
    const status = {
      observedGeneration: 1,
      conditions: [{ ...CONDITION, reason: "TokenIssued", message: "token issued" }],
      secretName: name,
      expiresAt: "2099-11-24T12:00:00Z",
      refreshAt: "2099-11-24T11:30:00Z",
      lastRefreshTime: "2026-11-24T11:00:00Z",
      tokenSource: "Cache",
      cache: { hits: 41, misses: 2 },
      throttle: {
        state: "Throttled",
        retryAfter: "2026-11-24T11:31:00Z",
        consecutiveFailures: 3,
        lastError: "AADSTS50196: loop detected",
      },
    };
    // The status the controller would write passes its own schema and the apiserver's.
    expect(appTokenRequestStatusSchema.safeParse(status).success).toBe(true);
    await patchStatus("atr", name, true, status);

    const { header, cells } = await table(["atr", "-n", ns, name]);
    expect(header).toEqual([
      "NAME",
      "APP",
      "TENANT",
      "SCOPE",
      "READY",
      "EXPIRES",
      "SOURCE",
      "HITS",
      "THROTTLE",
      "AGE",
    ]);
    expect(cells.slice(0, 5)).toEqual([
      name,
      "graph-app",
      "contoso.onmicrosoft.com",
      "https://graph.microsoft.com/.default",
      "True",
    ]);
    expect(cells.slice(5, 9)).toEqual(["2099-11-24T12:00:00Z", "Cache", "41", "Throttled"]);
  });

  const registrationStatus = {
    observedGeneration: 1,
    conditions: [{ ...CONDITION, reason: "CredentialLoaded" }],
    credential: { kind: "Certificate", expiresAt: "2099-01-31T00:00:00Z", thumbprintSHA256: "AB".repeat(32) },
    requests: 3,
  };
  const REGISTRATION_HEADER = [
    "NAME",
    "CLIENT",
    "CLOUD",
    "CREDENTIAL",
    "CRED-EXPIRES",
    "READY",
    "REQUESTS",
    "AGE",
  ];
  const registrationCells = (name: string) => [
    name,
    "00000000-0000-0000-0000-000000000000",
    "AzurePublic",
    "Certificate",
    "2099-01-31T00:00:00Z",
    "True",
    "3",
  ];

  it("shows client, cloud, credential, its expiry, Ready and requests in kubectl get appreg", async () => {
    const name = "printer-columns";
    await create({
      apiVersion: API_VERSION,
      kind: APP_REGISTRATION_KIND,
      metadata: { name },
      spec: baseRegistrationSpec(),
    });
    expect(appRegistrationStatusSchema.safeParse(registrationStatus).success).toBe(true);
    await patchStatus("appreg", name, true, registrationStatus);
    const { header, cells } = await table(["appreg", "-n", ns, name]);
    expect(header).toEqual(REGISTRATION_HEADER);
    expect(cells.slice(0, 7)).toEqual(registrationCells(name));
  });

  it("shows the same columns in kubectl get cappreg, for an object without namespace", async () => {
    const name = `${ns}-printer-columns`;
    clusterObjects.push(name);
    await create(
      {
        apiVersion: API_VERSION,
        kind: CLUSTER_APP_REGISTRATION_KIND,
        metadata: { name },
        spec: baseClusterRegistrationSpec(),
      },
      { store: true },
    );
    await patchStatus("cappreg", name, false, registrationStatus);
    const { header, cells } = await table(["cappreg", name]);
    expect(header).toEqual(REGISTRATION_HEADER);
    expect(cells.slice(0, 7)).toEqual(registrationCells(name));
  });

  it("lists every kind under the category apptoken", async () => {
    await create({
      apiVersion: API_VERSION,
      kind: APP_REGISTRATION_KIND,
      metadata: { name: "by-category" },
      spec: baseRegistrationSpec(),
    });
    await create({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: "by-category" },
      spec: baseSpec(),
    });
    const byCategory = await kubectl(["get", "apptoken", "-n", ns, "-o", "name"]);
    expect(byCategory.code, byCategory.stderr).toBe(0);
    expect(byCategory.stdout).toContain("apptokenrequest.apptoken.io/by-category");
    expect(byCategory.stdout).toContain("appregistration.apptoken.io/by-category");
  });

  it("explains the request's appRef and the registrations' credentials", async () => {
    const appRef = await kubectl(["explain", "atr.spec.appRef"]);
    expect(appRef.code, appRef.stderr).toBe(0);
    for (const word of ["AppRegistration", "ClusterAppRegistration", "namespaceSelector"]) {
      expect(oneLine(appRef.stdout)).toContain(word);
    }
    const request = await kubectl(["explain", "apptokenrequest"]);
    expect(oneLine(request.stdout)).toContain("no client ID, authority or credential");

    const credential = await kubectl(["explain", "appregistration.spec.credential"]);
    expect(credential.code, credential.stderr).toBe(0);
    for (const word of [
      "clientSecret",
      "certificate",
      "workloadIdentity",
      "clientAssertion",
      "Exactly one of",
    ]) {
      expect(oneLine(credential.stdout)).toContain(word);
    }
    const certificate = await kubectl(["explain", "appreg.spec.credential.certificate.secretRef"]);
    for (const word of ["pfxKey", "passwordKey", "tls.crt"])
      expect(oneLine(certificate.stdout)).toContain(word);
    const audience = await kubectl(["explain", "cappreg.spec.credential.workloadIdentity.audience"]);
    expect(oneLine(audience.stdout)).toContain("--allowed-token-audiences");
    const clusterCredential = await kubectl(["explain", "cappreg.spec.credential"]);
    expect(oneLine(clusterCredential.stdout)).toContain("--cluster-resource-namespace");
    const selector = await kubectl(["explain", "cappreg.spec.namespaceSelector.matchExpressions.operator"]);
    expect(oneLine(selector.stdout)).toContain("DoesNotExist");
    const status = await kubectl(["explain", "atr.status.throttle.state"]);
    expect(oneLine(status.stdout)).toContain("Throttled");
  });
});

/**
 * Generated values near the edges of each rule: pieces that the patterns treat specially, glued
 * together at random. The seed is fixed so a failure reproduces; change it to explore.
 */
describe("CRDs and zod schemas agree on generated values", () => {
  const GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  const one = (...p: string[]) => fc.constantFrom(...p);
  const pieces = (...p: string[]) => fc.array(fc.constantFrom(...p), { maxLength: 6 }).map((a) => a.join(""));
  const concat = (...parts: fc.Arbitrary<string>[]) => fc.tuple(...parts).map((a) => a.join(""));
  // Valid choices are listed more than once so that both verdicts come up often.
  const label = fc.oneof(
    one(
      "login",
      "login",
      "a",
      "x-y",
      "x-y",
      "xn--p1ai",
      "Example",
      "1",
      "-a",
      "a-",
      "_",
      "x".repeat(63),
      "x".repeat(64),
    ),
    pieces("a", "-", "1", "é"),
  );
  const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((a) => a.join("."));
  const tenant = fc.oneof(
    one(
      GUID,
      GUID.toUpperCase(),
      `{${GUID}}`,
      GUID.slice(1),
      `${GUID}0`,
      "common",
      "cOmMoN",
      "consumers ",
      "organizations.com",
    ),
    concat(domain, one("", ".com", ".onmicrosoft.com", ".", ".1", ".c0m")),
    pieces(GUID, "contoso", ".", "com", "-", "common", "1", "{", " ", "é"),
  );
  const labelKey = concat(
    fc.oneof(one(""), concat(domain, one("/", "//", ""))),
    fc.oneof(label, pieces("a", "_", ".", "A", "-")),
  );
  const twoDigits = (...extra: string[]) =>
    one("00", "09", "12", "23", "24", "29", "30", "31", "59", "60", ...extra);
  const fields: Array<
    [field: string, kind: SpecKind, values: fc.Arbitrary<string>, place: (v: string) => Json]
  > = [
    ["tenantId", KIND, tenant, (v) => ({ tenantId: v })],
    [
      "scope",
      KIND,
      concat(
        fc.oneof(
          one("https://", "api://", "http://", "urn:", "HTTPS://", "a+b.c-d://", "1a://", "://", ""),
          pieces("x", ":", "/"),
        ),
        fc.oneof(
          domain,
          one(GUID, `${GUID}/x`, "graph.microsoft.com/", "a b", "a,b", "a/.default", "%41", "~!$&()*+;=@"),
        ),
        one(
          "/.default",
          "//.default",
          "/.default ",
          ".default",
          "/.Default",
          "",
          "/.default\n",
          "/.default/.default",
        ),
      ),
      (v) => ({ scope: v }),
    ],
    [
      "refreshBefore",
      KIND,
      concat(
        one("", "", "", "-", "+"),
        fc
          .array(
            concat(
              one(
                "0",
                "1",
                "20",
                "24",
                "25",
                "999999",
                "1000000",
                ".5",
                "1.",
                "1.5",
                "0.000000001",
                "0.0000000001",
                "",
              ),
              one("h", "m", "s", "ms", "us", "ns", "d", "", " "),
            ),
            { minLength: 1, maxLength: 4 },
          )
          .map((a) => a.join("")),
      ),
      (v) => ({ refreshBefore: v }),
    ],
    [
      "template data value",
      KIND,
      pieces(
        "{{",
        "}}",
        "{",
        "}",
        " ",
        ".accessToken",
        ".tokenType",
        ".expiresAt",
        ".other",
        "Bearer",
        "\n",
        "😀",
      ),
      (v) => ({ target: { template: { data: { value: v } } } }),
    ],
    [
      "template label key",
      KIND,
      labelKey,
      (v) => ({ target: { template: { metadata: { labels: { [v]: "v" } } } } }),
    ],
    [
      "authorityHost",
      APP_REGISTRATION_KIND,
      concat(
        one("https://", "https://", "https://", "http://", "HTTPS://", "https:/", "https://user@", ""),
        fc.oneof(domain, one("[::1]", "[fe80::1%25eth0]", "127.0.0.1", "[]", "::1", "")),
        one("", "", "", ":443", ":0", ":1", ":65535", ":65536", ":08443", ":", ":99999"),
        one("", "", "", "/", "/a/b/", "/a?b", "/#x", "/a b", "/%41", "/\u{1F600}", "//", "/a:b@c"),
      ),
      (v) => ({ authorityHost: v }),
    ],
    [
      "secret key",
      APP_REGISTRATION_KIND,
      pieces("a", "Z", "0", ".", "..", "-", "_", " ", "/", "é"),
      (v) => ({ credential: { clientSecret: { secretRef: { name: "app-cred", key: v } } } }),
    ],
    [
      "client secret expiresAt",
      APP_REGISTRATION_KIND,
      concat(
        fc.oneof(
          concat(
            one("2027", "2028", "1900", "2000", "0000", "202"),
            one("-"),
            twoDigits("02", "13"),
            one("-"),
            twoDigits(),
          ),
          one("", "2027-01-31", "2027/01/31"),
        ),
        one("T", "T", "T", "t", " ", ""),
        concat(twoDigits(), one(":"), twoDigits(), one(":", ""), twoDigits()),
        one("", "", ".5", ".123456789", ",5", ".", "\r5", "\n5", "é5"),
        one("Z", "Z", "z", "+08:00", "-99:99", "+0800", "", "ZZ", "Z ", "Zt trailing", "T"),
      ),
      (v) => ({
        credential: { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" }, expiresAt: v } },
      }),
    ],
    [
      "allowed tenant",
      APP_REGISTRATION_KIND,
      fc.oneof(tenant, one("*", "*", "* ", "**", "*.contoso.com")),
      (v) => ({ allowedTenants: [v] }),
    ],
    [
      "namespaceSelector label key",
      CLUSTER_APP_REGISTRATION_KIND,
      labelKey,
      (v) => ({ namespaceSelector: { matchExpressions: [{ key: v, operator: "Exists" }] } }),
    ],
    [
      "namespaceSelector label value",
      CLUSTER_APP_REGISTRATION_KIND,
      fc.oneof(label, pieces("a", "_", ".", "A", "-", " ", "/")),
      (v) => ({ namespaceSelector: { matchLabels: { team: v } } }),
    ],
  ];

  it.each(fields)("%s (%s)", async (_field, kind, values, place) => {
    const samples = [...new Set(fc.sample(values, { numRuns: 250, seed: 20261124 }))];
    const disagreements: string[] = [];
    let accepted = 0;
    // A few requests in flight at a time; dry-run, so nothing is stored.
    for (let i = 0; i < samples.length; i += 8) {
      await Promise.all(
        samples.slice(i, i + 8).map(async (v) => {
          const spec = { ...BASE_SPECS[kind](), ...place(v) };
          const body: Manifest = { apiVersion: API_VERSION, kind, metadata: { name: "generated" }, spec };
          const apiserverAccepts = (await rejection(body, true)) === undefined;
          const zodAccepts = PARSE[kind](spec).ok;
          if (apiserverAccepts) accepted++;
          if (apiserverAccepts !== zodAccepts) {
            disagreements.push(`${JSON.stringify(v)}: apiserver ${apiserverAccepts}, zod ${zodAccepts}`);
          }
        }),
      );
    }
    expect(disagreements).toEqual([]);
    // Both verdicts must occur, or the comparison proved nothing.
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(samples.length);
  });
});
