import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cacheKeyHash, cacheKeyId } from "../../../src/cache/cache-key.js";
import type { CacheKeyParts } from "../../../src/cache/cache-key.js";

const parts: CacheKeyParts = {
  authorityHost: "login.microsoftonline.com",
  tenantId: "contoso.onmicrosoft.com",
  clientId: "0a1b2c3d-0000-4000-8000-00000000abcd",
  scope: "https://graph.microsoft.com/.default",
  credentialFingerprint: "sha256:3f9a",
};

describe("cacheKeyId", () => {
  it("is the same for requests that differ only in the case of host, tenant and client id", () => {
    const shouted = {
      ...parts,
      authorityHost: "LOGIN.MicrosoftOnline.com",
      tenantId: "Contoso.OnMicrosoft.COM",
      clientId: "0A1B2C3D-0000-4000-8000-00000000ABCD",
    };
    expect(cacheKeyId(shouted)).toBe(cacheKeyId(parts));
  });

  it("keeps the scope as given, since scopes are case-sensitive", () => {
    expect(cacheKeyId({ ...parts, scope: "https://Graph.microsoft.com/.default" })).not.toBe(
      cacheKeyId(parts),
    );
  });

  it("differs when any one of the five parts differs", () => {
    const variants: CacheKeyParts[] = [
      { ...parts, authorityHost: "login.microsoftonline.us" },
      { ...parts, tenantId: "fabrikam.onmicrosoft.com" },
      { ...parts, clientId: "0a1b2c3d-0000-4000-8000-00000000abce" },
      { ...parts, scope: "https://vault.azure.net/.default" },
      { ...parts, credentialFingerprint: "sha256:3f9b" },
    ];
    const ids = new Set([cacheKeyId(parts), ...variants.map(cacheKeyId)]);
    expect(ids.size).toBe(6);
  });

  it("never maps two different keys to one id, even when the scope contains the separator", () => {
    // Hosts, tenants, GUIDs and fingerprints cannot contain "|"; only the scope (as given) may.
    const noBar = fc.stringMatching(/^[a-z0-9.:-]{1,12}$/);
    const tuple = fc.record({
      authorityHost: noBar,
      tenantId: noBar,
      clientId: noBar,
      scope: fc.stringMatching(/^[a-z|/.:]{1,12}$/),
      credentialFingerprint: noBar,
    });
    // Injective because it parses back one way: three separators from the left, one from the right.
    const parse = (id: string): CacheKeyParts => {
      const [authorityHost = "", tenantId = "", clientId = "", ...rest] = id.split("|");
      const tail = rest.join("|");
      const cut = tail.lastIndexOf("|");
      return {
        authorityHost,
        tenantId,
        clientId,
        scope: tail.slice(0, cut),
        credentialFingerprint: tail.slice(cut + 1),
      };
    };
    fc.assert(
      fc.property(tuple, (t) => {
        expect(parse(cacheKeyId(t))).toEqual(t);
      }),
    );
  });
});

describe("cacheKeyHash", () => {
  it("is the sha256 hex of the id, stable across restarts", () => {
    const id = cacheKeyId(parts);
    expect(cacheKeyHash(id)).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKeyHash(id)).toBe(
      cacheKeyHash(cacheKeyId({ ...parts, tenantId: "CONTOSO.onmicrosoft.com" })),
    );
  });

  it("reveals none of the key's parts", () => {
    const hash = cacheKeyHash(cacheKeyId(parts));
    expect(hash).not.toContain("contoso");
    expect(hash).not.toContain("graph");
  });
});
