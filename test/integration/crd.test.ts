/**
 * The CRD against a real kube-apiserver: it installs, it accepts and rejects exactly the shared
 * table (test/fixtures/spec-cases.ts) with the field named, it defaults as the zod schema does, and
 * kubectl shows what DESIGN §2 promises. A differential run then feeds generated near-miss values
 * to both validators and requires the same verdict, which is what keeps RE2 (CEL) and JavaScript
 * regular expressions honest with each other.
 */
import { ApiException, ApiextensionsV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appTokenRequestStatusSchema, parseAppTokenRequestSpec } from "../../src/api/schema.js";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../../src/api/types.js";
import {
  baseSpec,
  invalidCases,
  validCases,
  type AppTokenRequestManifest,
  type Json,
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

let kc: KubeConfig;
let ns: string;
let objects: CustomObjectsApi;

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createTestNamespace(kc, "crdtest");
  objects = kc.makeApiClient(CustomObjectsApi);
});
afterAll(async () => {
  if (ns) await deleteTestNamespace(kc, ns);
});

function create(body: AppTokenRequestManifest, dryRun = false): Promise<Json> {
  return objects.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body,
    ...(dryRun ? { dryRun: "All" } : {}),
  }) as Promise<Json>;
}

/** The apiserver's rejection, or undefined when it accepted. Anything but a 422 is a test failure. */
async function rejection(body: AppTokenRequestManifest, dryRun = false): Promise<StatusBody | undefined> {
  try {
    await create(body, dryRun);
    return undefined;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const status = (typeof e.body === "string" ? JSON.parse(e.body) : e.body) as StatusBody;
    expect(e.code, status.message).toBe(422);
    return status;
  }
}

describe("the AppTokenRequest CRD", () => {
  it("is Established under apptoken.io/v1alpha1 with short name atr and category apptoken", async () => {
    const crd = await kc
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: `${PLURAL}.${GROUP}` });
    expect(crd.status?.conditions?.find((c) => c.type === "Established")?.status).toBe("True");
    expect(crd.spec.names).toMatchObject({ kind: KIND, shortNames: ["atr"], categories: ["apptoken"] });
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([[VERSION, true, true]]);
  });

  it.each(validCases.map((c) => [c.name, c] as const))(
    "accepts, with the zod schema's defaults: %s",
    async (_name, c) => {
      const created = await create(c.object);
      const parsed = parseAppTokenRequestSpec(c.object.spec);
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

  it("shows tenant, scope, Ready, expiry, source, hits and throttle in kubectl get atr", async () => {
    const name = "printer-columns";
    await create({ apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec: baseSpec() });
    const status = {
      observedGeneration: 1,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "TokenIssued",
          message: "token issued",
          lastTransitionTime: "2026-11-24T11:00:00Z",
          observedGeneration: 1,
        },
      ],
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
    const patched = await kubectl([
      "patch",
      "atr",
      name,
      "-n",
      ns,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status }),
    ]);
    expect(patched.stderr).toBe("");

    const got = await kubectl(["get", "atr", "-n", ns, name]);
    expect(got.code, got.stderr).toBe(0);
    const [header, row] = got.stdout.trim().split("\n");
    expect(header?.split(/\s+/)).toEqual([
      "NAME",
      "TENANT",
      "SCOPE",
      "READY",
      "EXPIRES",
      "SOURCE",
      "HITS",
      "THROTTLE",
      "AGE",
    ]);
    const cells = row?.split(/\s+/) ?? [];
    expect(cells.slice(0, 4)).toEqual([
      name,
      "contoso.onmicrosoft.com",
      "https://graph.microsoft.com/.default",
      "True",
    ]);
    expect(cells.slice(5, 8)).toEqual(["Cache", "41", "Throttled"]);

    // The category works too.
    const byCategory = await kubectl(["get", "apptoken", "-n", ns, "-o", "name"]);
    expect(byCategory.stdout).toContain(`apptokenrequest.apptoken.io/${name}`);
  });

  it("explains its fields with kubectl explain", async () => {
    const credential = await kubectl(["explain", "apptokenrequest.spec.credential"]);
    expect(credential.code, credential.stderr).toBe(0);
    for (const word of ["clientSecret", "certificate", "workloadIdentity", "Exactly one of"]) {
      expect(credential.stdout).toContain(word);
    }
    const certificate = await kubectl(["explain", "atr.spec.credential.certificate.secretRef"]);
    for (const word of ["pfxKey", "passwordKey", "tls.crt"]) expect(certificate.stdout).toContain(word);
    const status = await kubectl(["explain", "atr.status.throttle.state"]);
    expect(status.stdout).toContain("Throttled");
  });
});

/**
 * Generated values near the edges of each rule: pieces that the patterns treat specially, glued
 * together at random. The seed is fixed so a failure reproduces; change it to explore.
 */
describe("CRD and zod schema agree on generated values", () => {
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
  const fields: Array<[field: string, values: fc.Arbitrary<string>, place: (v: string) => Json]> = [
    [
      "tenantId",
      fc.oneof(
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
      ),
      (v) => ({ tenantId: v }),
    ],
    [
      "scope",
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
      "authorityHost",
      concat(
        one("https://", "https://", "https://", "http://", "HTTPS://", "https:/", "https://user@", ""),
        fc.oneof(domain, one("[::1]", "[fe80::1%25eth0]", "127.0.0.1", "[]", "::1", "")),
        one("", "", "", ":443", ":0", ":1", ":65535", ":65536", ":08443", ":", ":99999"),
        one("", "", "", "/", "/a/b/", "/a?b", "/#x", "/a b", "/%41", "/\u{1F600}", "//", "/a:b@c"),
      ),
      (v) => ({ authorityHost: v }),
    ],
    [
      "refreshBefore",
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
      "secret key",
      pieces("a", "Z", "0", ".", "..", "-", "_", " ", "/", "é"),
      (v) => ({ credential: { clientSecret: { secretRef: { name: "app-cred", key: v } } } }),
    ],
    [
      "label key",
      concat(
        fc.oneof(one(""), concat(domain, one("/", "//", ""))),
        fc.oneof(label, pieces("a", "_", ".", "A", "-")),
      ),
      (v) => ({ target: { template: { metadata: { labels: { [v]: "v" } } } } }),
    ],
  ];

  it.each(fields)("%s", async (_field, values, place) => {
    const samples = [...new Set(fc.sample(values, { numRuns: 250, seed: 20261124 }))];
    const disagreements: string[] = [];
    let accepted = 0;
    // A few requests in flight at a time; dry-run, so nothing is stored.
    for (let i = 0; i < samples.length; i += 8) {
      await Promise.all(
        samples.slice(i, i + 8).map(async (v) => {
          const spec = { ...baseSpec(), ...place(v) };
          const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name: "generated" }, spec };
          const apiserverAccepts = (await rejection(body, true)) === undefined;
          const zodAccepts = parseAppTokenRequestSpec(spec).ok;
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
