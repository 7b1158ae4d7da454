/**
 * The flag table: every flag's name, config key, default, environment variable and help text,
 * apart from config.ts so that what a flag means reads in one place and its parsing and
 * validation in another. --help is printed from it.
 */
import type { Config } from "./config.js";

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

export interface FlagSpec {
  key: Exclude<keyof Config, "authorityCa">;
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
