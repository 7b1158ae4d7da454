/**
 * RequestMemory.keyFor: a request's cache key is built once per (spec generation, registration
 * version, credential fingerprint) and otherwise comes from the memo. The key builder is injected
 * so the tests count its calls.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { TokenCache, cacheKeyHash, cacheKeyId, type CacheKeyParts } from "../../../src/cache/index.js";
import {
  RELEASE_GRACE_MS,
  RequestMemory,
  cacheKeyParts,
  type KeySource,
  type RequestMemo,
} from "../../../src/controller/request-memory.js";
import type { RawObject } from "../../../src/kube/types.js";
import { USABLE_REGISTRATION } from "./support.js";

const KEY = "payments/graph";
const ENDPOINT = new URL("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");

function requestObject(generation: number, scope = "https://graph.microsoft.com/.default"): RawObject {
  return {
    apiVersion: "apptoken.io/v1alpha1",
    kind: "AppTokenRequest",
    metadata: { name: "graph", namespace: "payments", uid: "uid-graph", generation },
    spec: { tenantId: "contoso.onmicrosoft.com", scope },
  };
}

function source(
  obj: RawObject,
  registrationSpec = USABLE_REGISTRATION.spec,
  fingerprint = "sha256:credential-1",
): KeySource {
  return {
    snap: { req: obj as unknown as KeySource["snap"]["req"] },
    registration: { spec: registrationSpec },
    credential: { endpoint: ENDPOINT, credential: { fingerprint } },
  };
}

describe("RequestMemory.keyFor", () => {
  let built: CacheKeyParts[];
  let memory: RequestMemory;
  let cache: TokenCache;
  let now: number;

  beforeEach(() => {
    built = [];
    now = 0;
    const clock = { now: () => now };
    cache = new TokenCache({ clock, limiter: { reserve: () => 0 } });
    memory = new RequestMemory({
      clock,
      cache,
      events: { forget: () => undefined },
      cacheKeyId: (parts) => {
        built.push(parts);
        return cacheKeyId(parts);
      },
    });
  });

  function keyOf(obj: RawObject, src: KeySource): { memo: RequestMemo; keyId: string; keyHash: string } {
    const memo = memory.memoFor(KEY, obj);
    const { keyId, keyHash } = memory.keyFor(KEY, memo, src);
    return { memo, keyId, keyHash };
  }

  it("builds the key from the request, the registration and the credential, and hashes it", () => {
    const obj = requestObject(1);
    const src = source(obj);
    const { keyId, keyHash } = keyOf(obj, src);
    expect(keyId).toBe(cacheKeyId(cacheKeyParts(src)));
    expect(keyId).toContain("|sha256:credential-1");
    expect(keyHash).toBe(cacheKeyHash(keyId));
    expect(built).toHaveLength(1);
  });

  it("builds nothing again while generation, registration and fingerprint are as they were", () => {
    const obj = requestObject(1);
    const first = keyOf(obj, source(obj));
    // A later reconcile: a new snapshot and a new resolved credential, the same three facts.
    const again = keyOf(requestObject(1), source(requestObject(1)));
    expect(again.memo).toBe(first.memo);
    expect(again.keyId).toBe(first.keyId); // the very same string, not an equal one
    expect(again.keyHash).toBe(first.keyHash);
    expect(built).toHaveLength(1);
  });

  it("builds a new key when the spec generation changes", () => {
    const first = keyOf(requestObject(1), source(requestObject(1)));
    const other = "api://payments/.default";
    const next = keyOf(requestObject(2, other), source(requestObject(2, other)));
    expect(built).toHaveLength(2);
    expect(next.keyId).not.toBe(first.keyId);
    expect(next.keyId).toContain(other);
  });

  it("holds the key again when the cache evicted it (idle), through a new handle", () => {
    const obj = requestObject(1);
    const first = memory.keyFor(KEY, memory.memoFor(KEY, obj), source(obj));
    const firstHeld = first.held;
    now += 25 * 60 * 60_000;
    expect(cache.sweep()).toBe(1);
    const again = memory.keyFor(KEY, memory.memoFor(KEY, obj), source(obj));
    expect(again.held).not.toBe(firstHeld);
    expect(again.held.evicted).toBe(false);
    expect([...cache.holdersOf(again.keyId)]).toEqual([KEY]);
    // The same parts: the key id is rebuilt (the cache no longer had it) and is the same.
    expect(again.keyId).toBe(first.keyId);
    expect(built).toHaveLength(2);
  });

  it("builds the key again when the registration is updated, and keeps it when the key is the same", () => {
    const obj = requestObject(1);
    const first = keyOf(obj, source(obj));
    // A status-only update of the registration: a new object version, the same client id.
    const sameClient = { ...USABLE_REGISTRATION.spec };
    expect(keyOf(obj, source(obj, sameClient)).keyId).toBe(first.keyId);
    expect(built).toHaveLength(2);

    const newClient = { ...USABLE_REGISTRATION.spec, clientId: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0" };
    const next = keyOf(obj, source(obj, newClient));
    expect(built).toHaveLength(3);
    expect(next.keyId).toContain("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0");
    expect(next.keyHash).toBe(cacheKeyHash(next.keyId));
  });

  it("builds a new key when the credential is rotated", () => {
    const obj = requestObject(1);
    const first = keyOf(obj, source(obj));
    const next = keyOf(obj, source(obj, USABLE_REGISTRATION.spec, "sha256:credential-2"));
    expect(built).toHaveLength(2);
    expect(next.keyId).not.toBe(first.keyId);
    expect(next.keyId).toContain("|sha256:credential-2");
  });

  it("builds every time for an object without a generation (a change could not be told apart)", () => {
    const obj = requestObject(1);
    delete obj.metadata.generation;
    keyOf(obj, source(obj));
    keyOf(obj, source(obj));
    expect(built).toHaveLength(2);
  });

  it("starts over for a recreated request of the same name", () => {
    const obj = requestObject(1);
    const first = keyOf(obj, source(obj));
    const recreated = { ...obj, metadata: { ...obj.metadata, uid: "uid-graph-2" } };
    const next = keyOf(recreated, source(recreated));
    expect(next.memo).not.toBe(first.memo);
    expect(next.keyId).toBe(first.keyId);
    expect(built).toHaveLength(2);
  });

  it("never hands out a forgotten or replaced memo through the object it was found for", () => {
    const obj = requestObject(1);
    const first = memory.memoFor(KEY, obj);
    expect(memory.memoFor(KEY, obj)).toBe(first);
    first.hits = 7;
    memory.forget(KEY);
    const afterForget = memory.memoFor(KEY, obj);
    expect(afterForget).not.toBe(first);
    expect(memory.get(KEY)).toBe(afterForget);
    // The name now belongs to a new object: the old object's memo is replaced, and the new one is
    // what the name and the new object both find.
    const recreated = { ...obj, metadata: { ...obj.metadata, uid: "uid-graph-2" } };
    const replaced = memory.memoFor(KEY, recreated);
    expect(replaced).not.toBe(afterForget);
    expect(memory.memoFor(KEY, recreated)).toBe(replaced);
    expect(memory.get(KEY)).toBe(replaced);
    expect(replaced.hits).toBe(0);
  });

  it("shares one copy of a key between the requests that use it, and drops it with the last", () => {
    const a = requestObject(1);
    const b = { ...a, metadata: { ...a.metadata, name: "graph-b", uid: "uid-b" } };
    const ka = keyOf(a, source(a));
    const memoB = memory.memoFor("payments/graph-b", b);
    const kb = memory.keyFor("payments/graph-b", memoB, source(b));
    expect(kb.keyId).toBe(ka.keyId);
    expect([...memory.othersOn(ka.keyId, KEY)]).toEqual(["payments/graph-b"]);
    // Rotation of a's credential moves a to a new key; b stays on the old one.
    const rotated = keyOf(a, source(a, USABLE_REGISTRATION.spec, "sha256:credential-2"));
    expect([...memory.othersOn(ka.keyId, KEY)]).toEqual(["payments/graph-b"]);
    expect([...memory.othersOn(rotated.keyId, "payments/graph-b")]).toEqual([KEY]);
  });

  it("keeps a deleted request's key for its grace period, counted from when it was first found gone", () => {
    const a = requestObject(1);
    const b = { ...a, metadata: { ...a.metadata, name: "graph-b", uid: "uid-b" } };
    const ka = keyOf(a, source(a));
    memory.keyFor("payments/graph-b", memory.memoFor("payments/graph-b", b), source(b));
    memory.forget(KEY);
    // Still held through the grace, but a new token is not fanned out to a deleted request.
    expect([...cache.holdersOf(ka.keyId)]).toEqual([KEY, "payments/graph-b"]);
    expect([...memory.othersOn(ka.keyId, "payments/graph-b")]).toEqual([]);
    now += RELEASE_GRACE_MS - 1;
    memory.forget(KEY); // found gone again (another reconcile of the name): the grace does not restart
    expect(memory.releaseForgotten()).toBe(0);
    now += 1;
    expect(memory.releaseForgotten()).toBe(1);
    expect([...cache.holdersOf(ka.keyId)]).toEqual(["payments/graph-b"]);
  });
});
