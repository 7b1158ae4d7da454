import { describe, expect, it } from "vitest";
import type { AppTokenRequest } from "../../../src/api/types.js";
import {
  isOwnedBy,
  iso,
  secretIsCurrent,
  targetSecretFor,
  targetSecretName,
  templateHash,
} from "../../../src/controller/target-secret.js";
import { checkTemplate, renderTemplate, TemplateError } from "../../../src/controller/template.js";

const req: AppTokenRequest = {
  apiVersion: "apptoken.io/v1alpha1",
  kind: "AppTokenRequest",
  metadata: { name: "graph", namespace: "payments", uid: "uid-1", generation: 1 },
  spec: {
    appRef: { kind: "ClusterAppRegistration", name: "graph-app" },
    tenantId: "contoso.onmicrosoft.com",
    scope: "https://graph.microsoft.com/.default",
  },
};
const token = {
  accessToken: "eyJ.token.sig",
  tokenType: "Bearer",
  issuedAt: Date.parse("2026-11-24T11:00:00Z"),
  expiresAt: Date.parse("2026-11-24T12:00:00Z"),
  refreshAt: Date.parse("2026-11-24T11:30:00Z"),
};
const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("targetSecretFor", () => {
  it("writes access_token, token_type and expires_at, owned by the request and labelled as managed", () => {
    const s = targetSecretFor(req, token, "a".repeat(64), undefined);
    expect(s.metadata.name).toBe("graph");
    expect(s.type).toBe("Opaque");
    expect(s.data).toEqual({
      access_token: b64(token.accessToken),
      token_type: b64("Bearer"),
      expires_at: b64("2026-11-24T12:00:00.000Z"),
    });
    expect(s.metadata.labels["app.kubernetes.io/managed-by"]).toBe("apptoken-operator");
    expect(s.metadata.ownerReferences).toEqual([
      {
        apiVersion: "apptoken.io/v1alpha1",
        kind: "AppTokenRequest",
        name: "graph",
        uid: "uid-1",
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(s.metadata.annotations["apptoken.io/cache-key-hash"]).toBe("a".repeat(64));
    expect(JSON.stringify(s.metadata)).not.toContain(token.accessToken);
  });

  it("renders template keys, and the token keys always win", () => {
    const templated: AppTokenRequest = {
      ...req,
      spec: {
        ...req.spec,
        target: {
          name: "other",
          template: {
            type: "Opaque",
            data: { authorization: "Bearer {{ .accessToken }}", access_token: "shadow" },
          },
        },
      },
    };
    const s = targetSecretFor(templated, token, "b".repeat(64), undefined);
    expect(targetSecretName(templated)).toBe("other");
    expect(s.data.authorization).toBe(b64(`Bearer ${token.accessToken}`));
    expect(s.data.access_token).toBe(b64(token.accessToken));
  });

  it("is current only when it carries this token, template and labels", () => {
    const desired = targetSecretFor(req, token, "a".repeat(64), undefined);
    const have = {
      metadata: {
        labels: desired.metadata.labels,
        annotations: { ...desired.metadata.annotations, extra: "kept" },
      },
      type: "Opaque",
    };
    expect(secretIsCurrent(have, desired)).toBe(true);
    const next = targetSecretFor(req, { ...token, issuedAt: token.issuedAt + 1 }, "a".repeat(64), undefined);
    expect(secretIsCurrent(have, next)).toBe(false);
  });

  it("recognises its own Secrets by the controller owner's uid", () => {
    const desired = targetSecretFor(req, token, "a".repeat(64), undefined);
    expect(isOwnedBy({ metadata: { ownerReferences: desired.metadata.ownerReferences } }, req)).toBe(true);
    expect(
      isOwnedBy(
        { metadata: { ownerReferences: [{ ...desired.metadata.ownerReferences[0]!, uid: "someone-else" }] } },
        req,
      ),
    ).toBe(false);
    expect(isOwnedBy({ metadata: {} }, req)).toBe(false);
  });
});

describe("templateHash and iso, remembered", () => {
  const withTemplate = (template: object | undefined): AppTokenRequest => ({
    ...req,
    spec: { ...req.spec, target: template ? { template } : undefined },
  });

  it("hashes equal templates alike and different ones apart, with or without a remembered hash", () => {
    const a = templateHash(withTemplate({ type: "Opaque", data: { k: "{{ .accessToken }}" } }));
    const again = templateHash(withTemplate({ type: "Opaque", data: { k: "{{ .accessToken }}" } }));
    const other = templateHash(withTemplate({ type: "Opaque", data: { j: "{{ .accessToken }}" } }));
    const none = templateHash(withTemplate(undefined));
    expect(again).toBe(a);
    expect(new Set([a, other, none]).size).toBe(3);
    expect(templateHash(withTemplate(undefined))).toBe(none);
  });

  it("formats every time right, past the number of strings it remembers", () => {
    const t0 = Date.parse("2026-11-24T11:00:00Z");
    for (let i = 0; i < 10_000; i += 7)
      expect(iso(t0 + i * 1000)).toBe(new Date(t0 + i * 1000).toISOString());
    expect(iso(t0)).toBe("2026-11-24T11:00:00.000Z");
  });
});

describe("the template renderer", () => {
  it("knows exactly three placeholders", () => {
    expect(
      renderTemplate(
        { a: "{{ .tokenType }} {{.accessToken}} until {{ .expiresAt }}" },
        { accessToken: "T", tokenType: "Bearer", expiresAt: "E" },
      ),
    ).toEqual({ a: "Bearer T until E" });
    expect(() => checkTemplate({ a: "{{ .clientSecret }}" })).toThrow(TemplateError);
    expect(() => checkTemplate({ a: "{{ index . 1 }}" })).toThrow(/unknown placeholder/);
  });
});
