/**
 * Flags and environment, validated with zod. Flag names follow controller-runtime's where one
 * exists; every flag can also be set by an APPTOKEN_* environment variable (flags win).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseDuration, tryParseDuration } from "./api/duration.js";

const bindAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$|^0$/, "must be host:port, :port, or 0 to disable");

/** A host name, IPv4 or bracketed IPv6 literal, optionally with a port. */
const ALLOWED_HOST_RE =
  /^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?$/;

/** The token services of the three Entra ID clouds: where a credential may go unless told otherwise. */
export const DEFAULT_ALLOWED_AUTHORITY_HOSTS = [
  "login.microsoftonline.com",
  "login.chinacloudapi.cn",
  "login.microsoftonline.us",
];
/** The token-exchange audiences of the three clouds: what a service-account token may be minted for. */
export const DEFAULT_ALLOWED_TOKEN_AUDIENCES = [
  "api://AzureADTokenExchange",
  "api://AzureADTokenExchangeChina",
  "api://AzureADTokenExchangeUSGov",
];

/** Every level pino knows, most verbose first; "silent" turns logging off. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

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

interface FlagSpec {
  key: keyof z.infer<typeof ConfigSchema>;
  type: "string" | "boolean" | "number";
  multiple?: boolean;
  default: string | boolean | number | string[] | undefined;
  env: string;
  help: string;
}

export const FLAGS: Record<string, FlagSpec> = {
  kubeconfig: {
    key: "kubeconfig",
    type: "string",
    default: undefined,
    env: "KUBECONFIG",
    help: "path to a kubeconfig; else $KUBECONFIG, else in-cluster",
  },
  namespace: {
    key: "namespaces",
    type: "string",
    multiple: true,
    default: [],
    env: "APPTOKEN_NAMESPACES",
    help: "watch only this namespace (repeatable; env: comma-separated); default all",
  },
  "leader-elect": {
    key: "leaderElect",
    type: "boolean",
    default: false,
    env: "APPTOKEN_LEADER_ELECT",
    help: "elect a leader on a coordination.k8s.io Lease so only one replica writes",
  },
  "leader-election-namespace": {
    key: "leaderElectionNamespace",
    type: "string",
    default: undefined,
    env: "APPTOKEN_LEADER_ELECTION_NAMESPACE",
    help: "namespace of the Lease; default the pod's namespace, else apptoken-system",
  },
  "leader-election-id": {
    key: "leaderElectionId",
    type: "string",
    default: "apptoken-operator",
    env: "APPTOKEN_LEADER_ELECTION_ID",
    help: "name of the Lease",
  },
  "metrics-bind-address": {
    key: "metricsBindAddress",
    type: "string",
    default: ":8080",
    env: "APPTOKEN_METRICS_BIND_ADDRESS",
    help: "where /metrics is served; 0 disables",
  },
  "health-probe-bind-address": {
    key: "healthProbeBindAddress",
    type: "string",
    default: ":8081",
    env: "APPTOKEN_HEALTH_PROBE_BIND_ADDRESS",
    help: "where /healthz and /readyz are served; 0 disables",
  },
  "max-concurrent-reconciles": {
    key: "maxConcurrentReconciles",
    type: "number",
    default: 16,
    env: "APPTOKEN_MAX_CONCURRENT_RECONCILES",
    help: "reconciles running at once",
  },
  "kube-api-qps": {
    key: "kubeApiQps",
    type: "number",
    default: 50,
    env: "APPTOKEN_KUBE_API_QPS",
    help: "sustained requests per second to the Kubernetes API",
  },
  "kube-api-burst": {
    key: "kubeApiBurst",
    type: "number",
    default: 100,
    env: "APPTOKEN_KUBE_API_BURST",
    help: "burst of requests to the Kubernetes API",
  },
  "token-requests-per-second": {
    key: "tokenRequestsPerSecond",
    type: "number",
    default: 20,
    env: "APPTOKEN_TOKEN_REQUESTS_PER_SECOND",
    help: "global limit on calls to the token service (protects the app registration)",
  },
  "authority-ca-file": {
    key: "authorityCaFile",
    type: "string",
    default: undefined,
    env: "APPTOKEN_AUTHORITY_CA_FILE",
    help: "extra PEM CA bundle trusted for the token service's TLS",
  },
  "allow-insecure-loopback-authority": {
    key: "allowInsecureLoopbackAuthority",
    type: "boolean",
    default: false,
    env: "APPTOKEN_ALLOW_INSECURE_LOOPBACK_AUTHORITY",
    help: "dev only: allow http:// authorities on 127.0.0.0/8 and ::1",
  },
  "allowed-authority-hosts": {
    key: "allowedAuthorityHosts",
    type: "string",
    multiple: true,
    default: DEFAULT_ALLOWED_AUTHORITY_HOSTS,
    env: "APPTOKEN_ALLOWED_AUTHORITY_HOSTS",
    help: "the only token service hosts a credential is ever sent to: host (port 443) or host:port, comma-separated or repeated",
  },
  "allowed-token-audiences": {
    key: "allowedTokenAudiences",
    type: "string",
    multiple: true,
    default: DEFAULT_ALLOWED_TOKEN_AUDIENCES,
    env: "APPTOKEN_ALLOWED_TOKEN_AUDIENCES",
    help: "the only audiences a workload-identity service-account token is minted for, comma-separated or repeated",
  },
  "cluster-resource-namespace": {
    key: "clusterResourceNamespace",
    type: "string",
    default: undefined,
    env: "APPTOKEN_CLUSTER_RESOURCE_NAMESPACE",
    help: "where ClusterAppRegistrations' Secrets and ServiceAccounts live; default the pod's namespace, else apptoken-system",
  },
  "credential-expiry-warning": {
    key: "credentialExpiryWarning",
    type: "string",
    default: "30d",
    env: "APPTOKEN_CREDENTIAL_EXPIRY_WARNING",
    help: "how long before a registration's credential expires it shows CredentialExpiringSoon=True and emits a Warning Event (Go duration, or whole days as 30d)",
  },
  "per-request-metrics": {
    key: "perRequestMetrics",
    type: "boolean",
    default: false,
    env: "APPTOKEN_PER_REQUEST_METRICS",
    help: "export apptoken_request_ready and apptoken_token_expiration_timestamp_seconds per AppTokenRequest (a series each per request)",
  },
  "log-level": {
    key: "logLevel",
    type: "string",
    default: "info",
    env: "APPTOKEN_LOG_LEVEL",
    help: LOG_LEVELS.join("|"),
  },
  "log-format": {
    key: "logFormat",
    type: "string",
    default: "auto",
    env: "APPTOKEN_LOG_FORMAT",
    help: "json|pretty|auto (pretty on a terminal)",
  },
  "shared-cache-url": {
    key: "sharedCacheUrl",
    type: "string",
    default: undefined,
    env: "APPTOKEN_SHARED_CACHE_URL",
    help: "redis:// or rediss:// URL of the fleet's shared token cache; off when unset (see docs/fleet.md)",
  },
  "shared-cache-password-file": {
    key: "sharedCachePasswordFile",
    type: "string",
    default: undefined,
    env: "APPTOKEN_SHARED_CACHE_PASSWORD_FILE",
    help: "file holding the Redis password (wins over one in the URL)",
  },
  "shared-cache-key-secret": {
    key: "sharedCacheKeySecret",
    type: "string",
    default: undefined,
    env: "APPTOKEN_SHARED_CACHE_KEY_SECRET",
    help: 'namespace/name of the Secret whose key "key" holds the fleet key (base64 of 32 bytes) and "previous" an older one still read during a rotation; read again every minute',
  },
  "shared-cache-key-file": {
    key: "sharedCacheKeyFile",
    type: "string",
    default: undefined,
    env: "APPTOKEN_SHARED_CACHE_KEY_FILE",
    help: 'file holding the fleet key (base64 of 32 bytes), instead of --shared-cache-key-secret; a file named "previous" beside it is read during a rotation; read again every minute',
  },
  "force-refresh-min-interval": {
    key: "forceRefreshMinIntervalMs",
    type: "string",
    default: "30s",
    env: "APPTOKEN_FORCE_REFRESH_MIN_INTERVAL",
    help: "at most one forced refresh (annotation apptoken.io/force-refresh) per token per this duration; 0 disables coalescing",
  },
};

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
