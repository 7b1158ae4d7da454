/**
 * Flags and environment, validated with zod; the flags themselves are in config-flags.ts. Flag
 * names follow controller-runtime's where one exists; every flag can also be set by an APPTOKEN_*
 * environment variable (flags win).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseDuration, tryParseDuration } from "./api/duration.js";
import { FLAGS, LOG_LEVELS, type FlagSpec } from "./config-flags.js";

export {
  DEFAULT_ALLOWED_AUTHORITY_HOSTS,
  DEFAULT_ALLOWED_TOKEN_AUDIENCES,
  FLAGS,
  LOG_LEVELS,
} from "./config-flags.js";

const bindAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$|^0$/, "must be host:port, :port, or 0 to disable");

/** A host name, IPv4 or bracketed IPv6 literal, optionally with a port. */
const ALLOWED_HOST_RE =
  /^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?$/;

const ConfigSchema = z.object({
  kubeconfig: z.string().optional(),
  namespaces: z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name")),
  leaderElect: z.boolean(),
  leaderElectionNamespace: z.string().min(1).optional(),
  leaderElectionId: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a Lease name"),
  metricsBindAddress: bindAddress,
  healthProbeBindAddress: bindAddress,
  maxConcurrentReconciles: z.number().int().min(1).max(1024),
  kubeApiQps: z.number().positive().max(100_000),
  kubeApiBurst: z.number().int().min(1).max(100_000),
  tokenRequestsPerSecond: z.number().positive().max(100_000),
  authorityCaFile: z.string().optional(),
  allowInsecureLoopbackAuthority: z.boolean(),
  allowedAuthorityHosts: z
    .array(z.string().regex(ALLOWED_HOST_RE, "each entry must be host or host:port (no scheme, no path)"))
    .min(1, "must name at least one host"),
  allowedTokenAudiences: z.array(z.string().min(1).max(253)).min(1, "must name at least one audience"),
  clusterResourceNamespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name")
    .optional(),
  credentialExpiryWarning: z.string().transform((text, ctx) => {
    const ms = durationMs(text);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: "custom", message: "must be a positive duration such as 720h or 30d" });
      return z.NEVER;
    }
    return ms;
  }),
  perRequestMetrics: z.boolean(),
  logLevel: z.enum(LOG_LEVELS),
  /** Pretty logs for people at a terminal; JSON otherwise. */
  logFormat: z.enum(["json", "pretty", "auto"]),
  sharedCacheUrl: z
    .string()
    .regex(/^rediss?:\/\/[^\s]+$/, "must be a redis:// or rediss:// URL")
    .optional(),
  sharedCachePasswordFile: z.string().min(1).optional(),
  sharedCacheKeySecret: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be namespace/name")
    .optional(),
  sharedCacheKeyFile: z.string().min(1).optional(),
  /** Milliseconds; parsed from a Go duration such as "30s". */
  forceRefreshMinIntervalMs: z.string().transform((text, ctx) => {
    try {
      const ms = parseDuration(text);
      if (ms >= 0) return ms;
      ctx.addIssue({ code: "custom", message: "must not be negative" });
    } catch (e) {
      ctx.addIssue({ code: "custom", message: e instanceof Error ? e.message : String(e) });
    }
    return z.NEVER;
  }),
});

export type Config = z.infer<typeof ConfigSchema> & { authorityCa?: string };

export class ConfigError extends Error {}

/** A Go duration, or whole days ("30d"), which Go durations lack, in ms; undefined when invalid. */
function durationMs(text: string): number | undefined {
  const days = /^(\d{1,5})d$/.exec(text);
  if (days) return Number(days[1]) * 86_400_000;
  return tryParseDuration(text);
}

export function helpText(): string {
  const lines = [
    "Usage: apptoken-operator [flags]",
    "",
    "Keeps Microsoft Entra ID app tokens fresh in Kubernetes Secrets.",
    "",
    "Flags:",
  ];
  for (const [name, f] of Object.entries(FLAGS)) {
    const def =
      f.default === undefined || (Array.isArray(f.default) && f.default.length === 0)
        ? ""
        : ` (default ${JSON.stringify(f.default)})`;
    const kind = f.type === "boolean" ? "" : ` ${f.type}`;
    lines.push(`  --${name}${kind}`, `        ${f.help}${def} [env ${f.env}]`);
  }
  lines.push("  -h, --help", "        print this help");
  return lines.join("\n") + "\n";
}

function fromEnv(f: FlagSpec, raw: string, flag: string): unknown {
  if (f.multiple) return splitList(raw);
  if (f.type === "boolean") {
    if (/^(1|true|yes)$/i.test(raw)) return true;
    if (/^(0|false|no|)$/i.test(raw)) return false;
    throw new ConfigError(`${f.env} (for --${flag}): ${JSON.stringify(raw)} is not a boolean`);
  }
  if (f.type === "number") return toNumber(raw, `${f.env} (for --${flag})`);
  return raw;
}

function splitList(raw: string): string[] {
  return raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function toNumber(raw: string, what: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n))
    throw new ConfigError(`${what}: ${JSON.stringify(raw)} is not a number`);
  return n;
}

/** Returns the config, or "help"; throws ConfigError with one line for a bad value. */
// Stays whole: it reads top to bottom in the order it applies: flag, env, default, schema, cross-flag rules.
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config | "help" {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, f] of Object.entries(FLAGS)) {
    options[name] = { type: f.type === "boolean" ? "boolean" : "string", multiple: f.multiple ?? false };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options,
      allowPositionals: false,
      strict: true,
      allowNegative: true,
    } as Parameters<typeof parseArgs>[0]);
  } catch (e) {
    throw new ConfigError((e as Error).message.split("\n")[0] ?? "bad arguments");
  }
  if (parsed.values.help) return "help";
  const raw: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(FLAGS)) {
    const v = parsed.values[name];
    if (v !== undefined) {
      raw[f.key] =
        f.type === "number"
          ? toNumber(String(v), `--${name}`)
          : f.multiple && Array.isArray(v)
            ? v.flatMap((item) => splitList(String(item)))
            : v;
    } else if (env[f.env] !== undefined && env[f.env] !== "") {
      raw[f.key] = fromEnv(f, env[f.env]!, name);
    } else {
      raw[f.key] = f.default;
    }
  }
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0]);
    const flag = Object.entries(FLAGS).find(([, f]) => f.key === key)?.[0] ?? key;
    throw new ConfigError(`--${flag}: ${issue.message} (got ${JSON.stringify(raw[key])})`);
  }
  const config: Config = result.data;
  if (config.sharedCacheUrl && !config.sharedCacheKeySecret === !config.sharedCacheKeyFile) {
    throw new ConfigError(
      "--shared-cache-url needs exactly one of --shared-cache-key-secret and --shared-cache-key-file",
    );
  }
  if (config.authorityCaFile) {
    try {
      config.authorityCa = readFileSync(config.authorityCaFile, "utf8");
    } catch (e) {
      throw new ConfigError(
        `--authority-ca-file: cannot read ${config.authorityCaFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      );
    }
    if (!config.authorityCa.includes("-----BEGIN CERTIFICATE-----")) {
      throw new ConfigError(`--authority-ca-file: ${config.authorityCaFile} holds no PEM certificate`);
    }
  }
  return config;
}
