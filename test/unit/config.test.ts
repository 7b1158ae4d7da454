import { spawnSync } from "node:child_process";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { TOKEN_EXCHANGE_AUDIENCES } from "../../src/api/types.js";
import type { Config } from "../../src/config.js";
import {
  ConfigError,
  DEFAULT_ALLOWED_AUTHORITY_HOSTS,
  DEFAULT_ALLOWED_TOKEN_AUDIENCES,
  FLAGS,
  LOG_LEVELS,
  helpText,
  loadConfig,
} from "../../src/config.js";
import { cloudAuthorityHosts } from "../../src/identity/authority.js";

function load(argv: string[], env: NodeJS.ProcessEnv = {}): Config {
  const config = loadConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
}

describe("configuration", () => {
  it("has controller-runtime's defaults", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({
      metricsBindAddress: ":8080",
      healthProbeBindAddress: ":8081",
      leaderElect: false,
      leaderElectionId: "apptoken-operator",
      namespaces: [],
      logLevel: "info",
    });
  });

  it("reads flags, repeated --namespace, and APPTOKEN_* environment variables, flags winning", () => {
    const c = loadConfig(
      ["--namespace", "a", "--namespace", "b", "--leader-elect", "--max-concurrent-reconciles", "4"],
      {
        APPTOKEN_MAX_CONCURRENT_RECONCILES: "9",
        APPTOKEN_TOKEN_REQUESTS_PER_SECOND: "2.5",
        KUBECONFIG: "/tmp/kc",
      },
    );
    expect(c).toMatchObject({
      namespaces: ["a", "b"],
      leaderElect: true,
      maxConcurrentReconciles: 4,
      tokenRequestsPerSecond: 2.5,
      kubeconfig: "/tmp/kc",
    });
    expect(loadConfig([], { APPTOKEN_NAMESPACES: "x, y" })).toMatchObject({ namespaces: ["x", "y"] });
  });

  it.each([
    [["--max-concurrent-reconciles", "zero"], /--max-concurrent-reconciles: "zero" is not a number/],
    [["--max-concurrent-reconciles", "0"], /--max-concurrent-reconciles/],
    [["--metrics-bind-address", "localhost"], /--metrics-bind-address: must be host:port/],
    [["--log-level", "loud"], /--log-level/],
    [["--namespace", "Not_A_Namespace"], /--namespace: must be a namespace name/],
    [["--no-such-flag"], /Unknown option '--no-such-flag'/],
    [["--authority-ca-file", "/nonexistent/ca.pem"], /--authority-ca-file: cannot read/],
  ])("refuses %j with one clear line", (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it("accepts every level pino has for --log-level, and --help and the refusal name them all", () => {
    const pinoLevels = [...Object.keys(pino.levels.values), "silent"];
    expect([...LOG_LEVELS].sort()).toEqual(pinoLevels.sort());
    const helpLine = helpText()
      .split("\n")
      .find((_, i, all) => all[i - 1]?.trim() === "--log-level string");
    for (const level of pinoLevels) {
      expect(load(["--log-level", level]).logLevel).toBe(level);
      expect(load([], { APPTOKEN_LOG_LEVEL: level }).logLevel).toBe(level);
      expect(helpLine).toContain(level);
    }
    expect(helpLine).toContain("trace|debug|info|warn|error|fatal|silent");
    expect(() => loadConfig(["--log-level", "verbose"], {})).toThrow(/--log-level: .*"fatal".*"silent"/);
  });

  it("lists every flag with its default in --help", () => {
    const help = helpText();
    for (const name of Object.keys(FLAGS)) expect(help).toContain(`--${name}`);
    expect(help).toContain('(default ":8080")');
  });

  it("exits 2 with one line for a bad value, and 0 with the help text for --help (the real binary)", () => {
    const bad = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "--kube-api-qps", "fast"], {
      encoding: "utf8",
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("--kube-api-qps");
    const help = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "--help"], {
      encoding: "utf8",
    });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("--token-requests-per-second");
  }, 60_000);
});

describe("configuration: where credentials may go (--allowed-authority-hosts)", () => {
  it("allows the three Entra ID clouds' token services by default, and nothing else", () => {
    expect(load([]).allowedAuthorityHosts).toEqual(DEFAULT_ALLOWED_AUTHORITY_HOSTS);
    expect([...DEFAULT_ALLOWED_AUTHORITY_HOSTS].sort()).toEqual(Object.values(cloudAuthorityHosts).sort());
  });

  it("takes the flag repeated, comma-separated, or both", () => {
    expect(
      load([
        "--allowed-authority-hosts",
        "login.microsoftonline.com",
        "--allowed-authority-hosts",
        "login.contoso.example:8443, 127.0.0.1:9443,[::1]:8443",
      ]).allowedAuthorityHosts,
    ).toEqual(["login.microsoftonline.com", "login.contoso.example:8443", "127.0.0.1:9443", "[::1]:8443"]);
  });

  it("replaces the defaults rather than adding to them", () => {
    expect(load(["--allowed-authority-hosts", "login.contoso.example"]).allowedAuthorityHosts).toEqual([
      "login.contoso.example",
    ]);
  });

  it("reads APPTOKEN_ALLOWED_AUTHORITY_HOSTS comma-separated, the flag winning", () => {
    const env = { APPTOKEN_ALLOWED_AUTHORITY_HOSTS: " login.contoso.example , gw.contoso.example:8443 " };
    expect(load([], env).allowedAuthorityHosts).toEqual(["login.contoso.example", "gw.contoso.example:8443"]);
    expect(load(["--allowed-authority-hosts", "other.example"], env).allowedAuthorityHosts).toEqual([
      "other.example",
    ]);
  });

  it.each([
    ["a scheme", "https://login.example"],
    ["a path", "login.example/tenant"],
    ["a scheme, host and path", "https://login.example/prefix"],
    ["user information", "user@login.example"],
    ["a port that is not a number", "login.example:https"],
    ["a wildcard", "*.login.example"],
    ["a query", "login.example?x=1"],
  ])("refuses an entry with %s, naming the flag, in one line", (_what, entry) => {
    const run = () => loadConfig(["--allowed-authority-hosts", `login.microsoftonline.com,${entry}`], {});
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(
      /^--allowed-authority-hosts: each entry must be host or host:port \(no scheme, no path\)/,
    );
  });

  it("refuses an entry with a scheme given in the environment, naming the flag", () => {
    expect(() => loadConfig([], { APPTOKEN_ALLOWED_AUTHORITY_HOSTS: "https://login.example" })).toThrow(
      /--allowed-authority-hosts: each entry must be host or host:port/,
    );
  });

  it.each([
    ["an empty flag", ["--allowed-authority-hosts", ""], {}],
    ["only commas", ["--allowed-authority-hosts", " , ,"], {}],
    ["an environment variable of only commas", [], { APPTOKEN_ALLOWED_AUTHORITY_HOSTS: "," }],
  ])("refuses %s rather than allow nothing (or everything)", (_what, argv, env) => {
    expect(() => loadConfig(argv, env)).toThrow(/--allowed-authority-hosts: must name at least one host/);
  });
});

describe("configuration: which service-account tokens may be minted (--allowed-token-audiences)", () => {
  it("allows the three clouds' token-exchange audiences by default, and nothing else", () => {
    expect(load([]).allowedTokenAudiences).toEqual(DEFAULT_ALLOWED_TOKEN_AUDIENCES);
    expect([...DEFAULT_ALLOWED_TOKEN_AUDIENCES].sort()).toEqual(
      Object.values(TOKEN_EXCHANGE_AUDIENCES).sort(),
    );
  });

  it("takes the flag repeated, comma-separated, or both, replacing the defaults", () => {
    expect(
      load([
        "--allowed-token-audiences",
        "api://AzureADTokenExchange",
        "--allowed-token-audiences",
        "api://contoso-exchange, https://sts.contoso.example",
      ]).allowedTokenAudiences,
    ).toEqual(["api://AzureADTokenExchange", "api://contoso-exchange", "https://sts.contoso.example"]);
  });

  it("reads APPTOKEN_ALLOWED_TOKEN_AUDIENCES comma-separated, the flag winning", () => {
    const env = { APPTOKEN_ALLOWED_TOKEN_AUDIENCES: "api://a,api://b" };
    expect(load([], env).allowedTokenAudiences).toEqual(["api://a", "api://b"]);
    expect(load(["--allowed-token-audiences", "api://c"], env).allowedTokenAudiences).toEqual(["api://c"]);
  });

  it.each([
    [
      "an empty list",
      ["--allowed-token-audiences", ""],
      /--allowed-token-audiences: must name at least one audience/,
    ],
    [
      "an audience longer than 253 characters",
      ["--allowed-token-audiences", `api://${"a".repeat(250)}`],
      /--allowed-token-audiences/,
    ],
  ])("refuses %s, naming the flag", (_what, argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });
});

describe("configuration: --cluster-resource-namespace", () => {
  it("is unset by default (the pod's namespace is used), and read from the flag or APPTOKEN_CLUSTER_RESOURCE_NAMESPACE", () => {
    expect(load([]).clusterResourceNamespace).toBeUndefined();
    expect(load(["--cluster-resource-namespace", "apptoken-system"]).clusterResourceNamespace).toBe(
      "apptoken-system",
    );
    expect(load([], { APPTOKEN_CLUSTER_RESOURCE_NAMESPACE: "identity" }).clusterResourceNamespace).toBe(
      "identity",
    );
  });

  it.each(["Apptoken-System", "kube_system", "trailing-dash-"])(
    "refuses %j as a namespace name",
    (namespace) => {
      expect(() => loadConfig(["--cluster-resource-namespace", namespace], {})).toThrow(
        /^--cluster-resource-namespace: must be a namespace name/,
      );
    },
  );
});

describe("configuration: --credential-expiry-warning and --per-request-metrics", () => {
  it("warns 30 days ahead and exports no per-request series by default", () => {
    expect(load([])).toMatchObject({ credentialExpiryWarning: 30 * 86_400_000, perRequestMetrics: false });
  });

  it("takes a Go duration or whole days, from the flag or the environment", () => {
    expect(load(["--credential-expiry-warning", "336h"]).credentialExpiryWarning).toBe(14 * 86_400_000);
    expect(load(["--credential-expiry-warning", "45d"]).credentialExpiryWarning).toBe(45 * 86_400_000);
    expect(load([], { APPTOKEN_CREDENTIAL_EXPIRY_WARNING: "90m" }).credentialExpiryWarning).toBe(5_400_000);
    expect(load(["--per-request-metrics"]).perRequestMetrics).toBe(true);
    expect(load([], { APPTOKEN_PER_REQUEST_METRICS: "true" }).perRequestMetrics).toBe(true);
  });

  it.each(["soon", "-1h", "0s", "3w"])("refuses %j as a warning window, naming the flag", (value) => {
    expect(() => loadConfig([`--credential-expiry-warning=${value}`], {})).toThrow(
      /^--credential-expiry-warning: must be a positive duration/,
    );
  });
});

describe("configuration: --force-refresh-min-interval", () => {
  it("is 30 s by default, takes a Go duration from the flag or APPTOKEN_FORCE_REFRESH_MIN_INTERVAL, and 0 turns coalescing off", () => {
    expect(load([]).forceRefreshMinIntervalMs).toBe(30_000);
    expect(load(["--force-refresh-min-interval", "1m30s"]).forceRefreshMinIntervalMs).toBe(90_000);
    expect(load(["--force-refresh-min-interval=0"]).forceRefreshMinIntervalMs).toBe(0);
    expect(load([], { APPTOKEN_FORCE_REFRESH_MIN_INTERVAL: "3s" }).forceRefreshMinIntervalMs).toBe(3_000);
    expect(helpText()).toContain("--force-refresh-min-interval string\n        at most one forced refresh");
  });

  it.each([
    ["30", /^--force-refresh-min-interval: time: missing unit in duration "30"/],
    ["-5s", /^--force-refresh-min-interval: must not be negative/],
    ["soon", /^--force-refresh-min-interval: time: invalid duration "soon"/],
  ])("refuses %j, naming the flag", (value, message) => {
    expect(() => loadConfig([`--force-refresh-min-interval=${value}`], {})).toThrow(message);
  });
});
