import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { ConfigError, FLAGS, helpText, loadConfig } from "../../src/config.js";

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
