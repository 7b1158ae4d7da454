/**
 * From flags to a running tier: the fleet key (a Secret, or a file), the Redis password (a file, or
 * the URL), the store and the tier. Nothing here waits for Redis: an operator whose Redis is down
 * at start runs without the tier until it answers.
 *
 * The key source is read again every minute, so a rotation needs no restart. It may hold the key
 * before the current one as `previous` (a Secret's data key, or a file of that name beside the key
 * file, which is how a mounted Secret appears): tokens sealed under it are still read, so that a
 * fleet can switch cluster by cluster without a burst of calls.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Registry } from "prom-client";
import type { Clock } from "../../clock.js";
import { RedisStore, readPasswordFile } from "./redis-store.js";
import { systemTimers, type CancelTimer, type TimerScheduler } from "../../kube/timers.js";
import { deriveFleetKeys, parseFleetKey, type FleetKeys } from "./sealed-token.js";
import { SharedTier, type TierLog } from "./shared-tier.js";

export interface SharedTierFlags {
  sharedCacheUrl: string;
  sharedCachePasswordFile?: string | undefined;
  sharedCacheKeySecret?: string | undefined;
  sharedCacheKeyFile?: string | undefined;
}

/** The key a fleet-key Secret holds the base64 key under. */
export const FLEET_KEY_SECRET_KEY = "key";
/** The key (and file name) of the fleet key before the current one, during a rotation. */
export const PREVIOUS_FLEET_KEY = "previous";
/** How often the key source is read again. */
export const FLEET_KEY_RELOAD_MS = 60_000;

export interface SharedTierDeps {
  clock: Clock;
  log: TierLog;
  registry: Registry;
  /** Reads a Secret's data (base64 values), for --shared-cache-key-secret. */
  readSecretData: (namespace: string, name: string) => Promise<Record<string, string> | undefined>;
  /** Schedules the key reloads; Node's timers by default. */
  timers?: TimerScheduler | undefined;
}

export interface RunningTier {
  tier: SharedTier;
  close(): Promise<void>;
}

export async function startSharedTier(flags: SharedTierFlags, deps: SharedTierDeps): Promise<RunningTier> {
  const loaded = await loadKeyring(flags, deps);
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
    keys: loaded.keys,
    previousKeys: loaded.previousKeys,
    clock: deps.clock,
    log: deps.log,
    registry: deps.registry,
  });
  store.start();
  deps.log.info(
    { redis: redactedUrl(flags.sharedCacheUrl), previousKey: loaded.previousKeys !== undefined },
    "fleet tier: sharing tokens through Redis",
  );
  const stopReloading = reloadKeys(flags, deps, tier, loaded.fingerprint);
  return {
    tier,
    close: () => {
      stopReloading();
      return store.close();
    },
  };
}

export interface Keyring {
  keys: FleetKeys;
  previousKeys: FleetKeys | undefined;
  /** A digest of both keys, to tell a change; the keys themselves are not kept. */
  fingerprint: string;
}

/** Reads the key source every FLEET_KEY_RELOAD_MS and hands a changed keyring to the tier. */
export function reloadKeys(
  flags: SharedTierFlags,
  deps: SharedTierDeps,
  tier: Pick<SharedTier, "useKeys">,
  fingerprint: string,
): () => void {
  const timers = deps.timers ?? systemTimers;
  let current = fingerprint;
  let failing = false;
  let cancel: CancelTimer = () => undefined;
  let stopped = false;
  const tick = async (): Promise<void> => {
    try {
      const next = await loadKeyring(flags, deps);
      if (failing) deps.log.info({}, "fleet key source readable again");
      failing = false;
      if (next.fingerprint !== current) {
        current = next.fingerprint;
        tier.useKeys(next.keys, next.previousKeys);
        deps.log.info(
          { previousKey: next.previousKeys !== undefined },
          "fleet key changed: sealing with the new key from now on",
        );
      }
    } catch (e) {
      // The keys in use stay; said once until the source is readable again.
      if (!failing)
        deps.log.warn({ err: (e as Error).message }, "fleet key source unreadable: keeping the key in use");
      failing = true;
    }
    if (!stopped) cancel = timers.schedule(() => void tick(), FLEET_KEY_RELOAD_MS);
  };
  cancel = timers.schedule(() => void tick(), FLEET_KEY_RELOAD_MS);
  return () => {
    stopped = true;
    cancel();
  };
}

export async function loadKeyring(flags: SharedTierFlags, deps: SharedTierDeps): Promise<Keyring> {
  const { current, previous } = await loadFleetKeys(flags, deps);
  const digest = createHash("sha256").update(current);
  if (previous) digest.update(previous);
  const ring: Keyring = {
    keys: deriveFleetKeys(current),
    previousKeys: previous && !previous.equals(current) ? deriveFleetKeys(previous) : undefined,
    fingerprint: digest.digest("hex"),
  };
  current.fill(0);
  previous?.fill(0);
  return ring;
}

async function loadFleetKeys(
  flags: SharedTierFlags,
  deps: SharedTierDeps,
): Promise<{ current: Buffer; previous: Buffer | undefined }> {
  const file = flags.sharedCacheKeyFile;
  if (file !== undefined) {
    const beside = join(dirname(file), PREVIOUS_FLEET_KEY);
    const hasPrevious = basename(file) !== PREVIOUS_FLEET_KEY && existsSync(beside);
    return {
      current: parseFleetKey(readKeyFile(file, "--shared-cache-key-file"), `--shared-cache-key-file ${file}`),
      previous: hasPrevious
        ? parseFleetKey(readKeyFile(beside, "previous fleet key"), `previous fleet key ${beside}`)
        : undefined,
    };
  }
  const ref = flags.sharedCacheKeySecret ?? "";
  const [namespace, name] = ref.split("/");
  if (!namespace || !name) throw new Error("--shared-cache-key-secret must be namespace/name");
  const data = await deps.readSecretData(namespace, name);
  const value = data?.[FLEET_KEY_SECRET_KEY];
  if (value === undefined) {
    throw new Error(`--shared-cache-key-secret: Secret ${ref} has no key "${FLEET_KEY_SECRET_KEY}"`);
  }
  const fromSecret = (k: string, v: string): Buffer =>
    parseFleetKey(Buffer.from(v, "base64").toString("utf8"), `Secret ${ref} key "${k}"`);
  const previous = data?.[PREVIOUS_FLEET_KEY];
  return {
    current: fromSecret(FLEET_KEY_SECRET_KEY, value),
    previous: previous === undefined ? undefined : fromSecret(PREVIOUS_FLEET_KEY, previous),
  };
}

function readKeyFile(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
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
