/** The fleet tier: a shared, encrypted token cache on Redis in front of the token service. */
export { SharedTier, SharedTierTokenCache } from "./shared-tier.js";
export type { SharedTierOptions, TierLog } from "./shared-tier.js";
export { startSharedTier, redactedUrl, FLEET_KEY_SECRET_KEY } from "./setup.js";
export type { RunningTier, SharedTierFlags } from "./setup.js";
export { RedisStore } from "./redis-store.js";
export type { SharedStore, EntryRead } from "./store.js";
