/**
 * The shipped dist/main.js, as the image holds it: `npm run build`'s bundler writes it into a fresh
 * temporary directory that holds only package.json ("type": "module") and dist/ (bundle, source map,
 * licence notices), with no node_modules in it or in any directory above it. Run there with plain
 * node (no tsx), it must print its help fast, reject a bad flag with one line, name the bundled
 * packages' licences, import nothing but Node's built-in modules, and do the real job: a
 * clientSecret and a certificate request become Ready with a token in their Secrets, JSON logs
 * (pino-pretty is not there, so even `--log-format pretty`), and exit 0 on SIGTERM.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, parse, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { helpText } from "../../src/config.js";
import { kubeconfigPath } from "../support/kube.js";
import { CERT_APP, SECRET_APP, Scenario, TENANT } from "../support/scenario.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * Modules the bundle may name without having them: optional dependencies that their packages load
 * inside try/catch and do without (ws's native speed-ups, node-fetch's legacy charset support, our
 * logger's pino-pretty, the Redis client's xxhash), and undici's SQLite cache store, loaded only when one is created (a Node.js
 * built-in from 22.5, not in Node 20).
 */
const OPTIONAL: Record<string, "try" | "lazy"> = {
  bufferutil: "try",
  "utf-8-validate": "try",
  encoding: "try",
  "pino-pretty": "try",
  // @redis/client's digest() (client-side DIGEST for IFDEQ/IFDNE), which the fleet tier never calls.
  "@node-rs/xxhash": "try",
  "node:sqlite": "lazy",
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node ...args` to completion (killed after `timeoutMs`). */
function runNode(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<Run> {
  const started = performance.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...process.env, NODE_PATH: "", NODE_OPTIONS: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

describe("the shipped dist/main.js", () => {
  const dir = mkdtempSync(join(tmpdir(), "apptoken-bundle-"));
  const entry = join(dir, "dist/main.js");
  const s = new Scenario({ prefix: "bundle", operator: false });

  beforeAll(async () => {
    const [bundled] = await Promise.all([
      runNode(["--import", "tsx", "hack/build/bundle.ts", "--outfile", entry], ROOT, {}, 60_000),
      s.start(),
    ]);
    expect(bundled.code, bundled.stdout + bundled.stderr).toBe(0);
    // What the image's runtime stage holds besides dist/: package.json, for "type": "module".
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  }, 120_000);

  afterAll(async () => {
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sits where no node_modules can be found: none in its directory or any above", () => {
    for (let d = join(dir, "dist"); ; d = dirname(d)) {
      expect(existsSync(join(d, "node_modules")), `${d}/node_modules`).toBe(false);
      if (d === parse(d).root) break;
    }
    expect(readFileSync(entry, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(readFileSync(entry, "utf8").trimEnd().endsWith("//# sourceMappingURL=main.js.map")).toBe(true);
    expect(existsSync(`${entry}.map`)).toBe(true);
  });

  it("prints its help fast, listing every flag, and exits 0", async () => {
    const r = await runNode([entry, "--help"], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(helpText());
    for (const flag of [
      "--kubeconfig",
      "--namespace",
      "--leader-elect",
      "--metrics-bind-address",
      "--health-probe-bind-address",
      "--max-concurrent-reconciles",
      "--kube-api-qps",
      "--kube-api-burst",
      "--token-requests-per-second",
      "--authority-ca-file",
      "--allowed-authority-hosts",
      "--allowed-token-audiences",
      "--cluster-resource-namespace",
      "--log-level",
      "--log-format",
    ]) {
      expect(r.stdout).toContain(`  ${flag}`);
    }
    // ~0.3 s when idle (0.9 s unbundled); generous, since other test files share the CPUs.
    expect(r.ms).toBeLessThan(3_000);
  });

  it("exits 2 with one line naming the flag on a bad value", async () => {
    const r = await runNode([entry, "--token-requests-per-second", "abc"], dir);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe('apptoken-operator: --token-requests-per-second: "abc" is not a number\n');
  });

  it("ships the licences of the packages it bundles in THIRD_PARTY_NOTICES.txt", () => {
    const notices = readFileSync(join(dir, "dist/THIRD_PARTY_NOTICES.txt"), "utf8");
    const sections = notices.split(/\n-{60}\n/);
    for (const [name, licence, text] of [
      ["@kubernetes/client-node", "Apache-2.0", /Apache License/],
      ["pino", "MIT", /Permission is hereby granted/],
      ["undici", "MIT", /Permission is hereby granted/],
      ["zod", "MIT", /Permission is hereby granted/],
      ["jose", "MIT", /Permission is hereby granted/],
      ["prom-client", "Apache-2.0", /Apache License/],
    ] as const) {
      const { version } = JSON.parse(
        readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8"),
      ) as { version: string };
      // The first section follows the file's title.
      const head = `\n${name}@${version} (${licence})\n`;
      const section = sections.find((x) => `\n${x}`.includes(head));
      expect(section, `${name}@${version} (${licence}) in the notices`).toBeDefined();
      expect(section).toMatch(text);
    }
    // pino-pretty is not bundled (loaded only if installed), nor is any dev dependency.
    expect(notices).not.toMatch(/^(pino-pretty|tsx|esbuild|vitest|typescript)@/m);
  });

  it("imports nothing but Node's built-in modules (and optional ones it can do without)", async () => {
    // esbuild parses the bundle (comments and strings hold many import-like texts) and reports
    // every import, export-from, import() and require() it contains...
    const found = new Set<string>();
    await build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      logLevel: "silent",
      plugins: [
        {
          name: "record",
          setup(b) {
            b.onResolve({ filter: /.*/ }, (a) => {
              if (a.kind === "entry-point") return undefined;
              found.add(a.path);
              return { path: a.path, external: true };
            });
          },
        },
      ],
    });
    expect(found.size).toBeGreaterThan(0);
    // ...except calls through the bundle's own require: esbuild's __require and createRequire.
    const code = readFileSync(entry, "utf8");
    const calls = [
      ...code.matchAll(/\b(?:__require|createRequire\(import\.meta\.url\))\(\s*["']([^"']+)["']\s*\)/g),
    ];
    expect(calls.length).toBeGreaterThan(0);
    for (const m of calls) found.add(m[1]!);
    const foreign = [...found].filter((spec) => !isBuiltin(spec)).sort();
    expect(foreign.filter((spec) => !(spec in OPTIONAL))).toEqual([]);
    // The optional ones are loaded inside try/catch (or only on demand).
    for (const m of calls.filter((c) => OPTIONAL[c[1]!] === "try")) {
      expect(code.slice(Math.max(0, m.index - 200), m.index), `${m[0]} inside try`).toMatch(/\btry \{/);
    }
  });

  it("runs the operator from there: requests become Ready, JSON logs, exit 0 on SIGTERM", async () => {
    const op = await s.startOperator({
      entry,
      cwd: dir,
      // Asks for pretty logs, which need pino-pretty: not resolvable from here, so JSON.
      args: ["--log-format", "pretty"],
      env: { NODE_PATH: "", NODE_OPTIONS: "" },
    });
    expect(op.child.spawnargs.slice(1, 2)).toEqual([entry]);
    expect(op.child.spawnargs).not.toContain("tsx");

    await s.createRequest("from-bundle-secret", s.spec("clientSecret"));
    await s.createRequest("from-bundle-cert", s.spec("certificate"));
    for (const [name, app] of [
      ["from-bundle-secret", SECRET_APP],
      ["from-bundle-cert", CERT_APP],
    ] as const) {
      await s.waitFor(name, "True", "TokenIssued");
      const token = s.decoded(await s.secret(name), "access_token");
      expect(token, `${name}'s Secret holds access_token`).toBeTruthy();
      expect((await s.service.verifyAccessToken(token!, TENANT)).appid).toBe(app);
    }
    // prom-client, bundled, serves the operator's metrics: two tokens fetched from the service.
    expect(await op.metric("apptoken_token_requests_total")).toBeGreaterThanOrEqual(2);

    expect(await op.stop("SIGTERM")).toBe(0);
    // Every line, stdout and stderr alike, is a JSON log line: no pretty output, no warnings.
    const lines = op
      .output()
      .split("\n")
      .filter((l) => l.trim() !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line) as unknown, line).not.toThrow();
    expect(op.logs().map((l) => l.msg)).toContain("stopped");
  });

  it("does write pretty logs when pino-pretty can be found (so the JSON above is not chance)", async () => {
    // NODE_PATH makes the repository's devDependency pino-pretty resolvable; a metrics address
    // already taken makes the operator log one fatal line and exit at once.
    const taken = createServer();
    await new Promise<void>((ok) => taken.listen(0, "127.0.0.1", ok));
    const { port } = taken.address() as AddressInfo;
    const r = await runNode(
      [
        entry,
        "--log-format",
        "pretty",
        "--kubeconfig",
        kubeconfigPath(),
        "--metrics-bind-address",
        `127.0.0.1:${port}`,
        "--health-probe-bind-address",
        "0",
      ],
      dir,
      { NODE_PATH: join(ROOT, "node_modules") },
    ).finally(() => taken.close());
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FATAL: operator failed/);
    expect(r.stdout.trimStart().startsWith("{")).toBe(false);
  });
});
