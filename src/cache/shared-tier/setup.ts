/**
 * From flags to a running tier: the fleet key (a Secret, or a file), the Redis password (a file, or
 * the URL), the store and the tier. Nothing here waits for Redis: an operator whose Redis is down
 * at start runs without the tier until it answers.
 */
import { readFileSync } from "node:fs";
import type { Registry } from "prom-client";
import type { Clock } from "../../clock.js";
import { RedisStore, readPasswordFile } from "./redis-store.js";
import { deriveFleetKeys, parseFleetKey } from "./sealed-token.js";
import { SharedTier, type TierLog } from "./shared-tier.js";

export interface SharedTierFlags {
  sharedCacheUrl: string;
  sharedCachePasswordFile?: string | undefined;
  sharedCacheKeySecret?: string | undefined;
  sharedCacheKeyFile?: string | undefined;
}

/** The key a fleet-key Secret holds the base64 key under. */
export const FLEET_KEY_SECRET_KEY = "key";

export interface SharedTierDeps {
  clock: Clock;
  log: TierLog;
  registry: Registry;
  /** Reads a Secret's data (base64 values), for --shared-cache-key-secret. */
  readSecretData: (namespace: string, name: string) => Promise<Record<string, string> | undefined>;
}

export interface RunningTier {
  tier: SharedTier;
  close(): Promise<void>;
}

export async function startSharedTier(flags: SharedTierFlags, deps: SharedTierDeps): Promise<RunningTier> {
  const fleetKey = await loadFleetKey(flags, deps);
  const password =
    flags.sharedCachePasswordFile === undefined ? undefined : readPasswordFile(flags.sharedCachePasswordFile);
  const store = new RedisStore({
    url: flags.sharedCacheUrl,
    password,
    // Called on connection events, after `tier` below exists.
    onConnectionError: (message) => tier.connectionFailed(message),
    onReady: () => tier.connectionReady(),
  });
  const tier = new SharedTier({
    store,
    keys: deriveFleetKeys(fleetKey),
    clock: deps.clock,
    log: deps.log,
    registry: deps.registry,
  });
  fleetKey.fill(0);
  store.start();
  deps.log.info({ redis: redactedUrl(flags.sharedCacheUrl) }, "fleet tier: sharing tokens through Redis");
  return { tier, close: () => store.close() };
}

async function loadFleetKey(flags: SharedTierFlags, deps: SharedTierDeps): Promise<Buffer> {
  if (flags.sharedCacheKeyFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.sharedCacheKeyFile, "utf8");
    } catch (e) {
      throw new Error(
        `--shared-cache-key-file: cannot read ${flags.sharedCacheKeyFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      );
    }
    return parseFleetKey(text, `--shared-cache-key-file ${flags.sharedCacheKeyFile}`);
  }
  const ref = flags.sharedCacheKeySecret ?? "";
  const [namespace, name] = ref.split("/");
  if (!namespace || !name) throw new Error("--shared-cache-key-secret must be namespace/name");
  const data = await deps.readSecretData(namespace, name);
  const value = data?.[FLEET_KEY_SECRET_KEY];
  if (value === undefined) {
    throw new Error(`--shared-cache-key-secret: Secret ${ref} has no key "${FLEET_KEY_SECRET_KEY}"`);
  }
  return parseFleetKey(
    Buffer.from(value, "base64").toString("utf8"),
    `Secret ${ref} key "${FLEET_KEY_SECRET_KEY}"`,
  );
}

/** scheme://host:port only: the URL may carry a user and password. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "(unparseable URL)";
  }
}
