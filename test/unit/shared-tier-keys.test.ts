import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { addressOf, type FleetKeys } from "../../src/cache/shared-tier/sealed-token.js";
import {
  FLEET_KEY_RELOAD_MS,
  loadKeyring,
  reloadKeys,
  type SharedTierDeps,
} from "../../src/cache/shared-tier/setup.js";
import { FakeTimers } from "./kube/fake-timers.js";

const KEY_ID = "login.microsoftonline.com|contoso|client|https://graph.microsoft.com/.default|fp";
const newKey = (): string => randomBytes(32).toString("base64");
/** Keys are compared by where they address a key id (the derived keys are not exposed otherwise). */
const where = (k: FleetKeys | undefined): string | undefined => k && addressOf(k, KEY_ID);

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function deps(timers: FakeTimers, secret?: Record<string, string>) {
  const log = { warn: vi.fn(), info: vi.fn(), debug: vi.fn() };
  const d: SharedTierDeps = {
    clock: timers.clock,
    log,
    registry: undefined as never,
    readSecretData: () => Promise.resolve(secret),
    timers,
  };
  return { d, log };
}

describe("the fleet key source", () => {
  it("a mounted Secret's files: the key, and `previous` beside it during a rotation", async () => {
    dir = mkdtempSync(join(tmpdir(), "fleet-key-"));
    const [a, b] = [newKey(), newKey()];
    writeFileSync(join(dir, "key"), a);
    const { d } = deps(new FakeTimers());
    const flags = { sharedCacheUrl: "redis://x", sharedCacheKeyFile: join(dir, "key") };
    const one = await loadKeyring(flags, d);
    expect(one.previousKeys).toBeUndefined();
    writeFileSync(join(dir, "key"), b);
    writeFileSync(join(dir, "previous"), a);
    const two = await loadKeyring(flags, d);
    expect(where(two.previousKeys)).toBe(where(one.keys));
    expect(where(two.keys)).not.toBe(where(one.keys));
    expect(two.fingerprint).not.toBe(one.fingerprint);
  });

  it("a Secret's `previous` key, and a bad one refused with the key named, never its value", async () => {
    dir = mkdtempSync(join(tmpdir(), "fleet-key-"));
    const [a, b] = [newKey(), newKey()];
    const b64 = (v: string) => Buffer.from(v).toString("base64");
    const flags = { sharedCacheUrl: "redis://x", sharedCacheKeySecret: "ops/fleet" };
    const ring = await loadKeyring(flags, deps(new FakeTimers(), { key: b64(b), previous: b64(a) }).d);
    expect(ring.previousKeys).toBeDefined();
    const bad = loadKeyring(flags, deps(new FakeTimers(), { key: b64(b), previous: b64("short") }).d);
    await expect(bad).rejects.toThrow(/Secret ops\/fleet key "previous"/);
    await expect(bad).rejects.not.toThrow(/short/);
  });

  it("is read again every minute: a new key reaches the tier without a restart", async () => {
    dir = mkdtempSync(join(tmpdir(), "fleet-key-"));
    const [a, b] = [newKey(), newKey()];
    writeFileSync(join(dir, "key"), a);
    const timers = new FakeTimers();
    const { d, log } = deps(timers);
    const flags = { sharedCacheUrl: "redis://x", sharedCacheKeyFile: join(dir, "key") };
    const first = await loadKeyring(flags, d);
    const tier = { useKeys: vi.fn() };
    const stop = reloadKeys(flags, d, tier, first.fingerprint);
    await timers.advanceAsync(FLEET_KEY_RELOAD_MS);
    expect(tier.useKeys).not.toHaveBeenCalled(); // unchanged
    writeFileSync(join(dir, "key"), b);
    writeFileSync(join(dir, "previous"), a);
    await timers.advanceAsync(FLEET_KEY_RELOAD_MS);
    expect(tier.useKeys).toHaveBeenCalledTimes(1);
    const [keys, previous] = tier.useKeys.mock.calls[0] as [FleetKeys, FleetKeys];
    expect(where(previous)).toBe(where(first.keys));
    expect(where(keys)).not.toBe(where(first.keys));
    // An unreadable source keeps the keys in use, says so once, and recovers.
    writeFileSync(join(dir, "key"), "not a key");
    await timers.advanceAsync(3 * FLEET_KEY_RELOAD_MS);
    expect(tier.useKeys).toHaveBeenCalledTimes(1);
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(JSON.stringify(log.warn.mock.calls)).not.toContain("not a key");
    stop();
    expect(timers.pending).toBe(0);
  });
});
