/**
 * What CI and releases run is checked here, where a mistake is cheap: every workflow passes the
 * real actionlint (with shellcheck over each `run:` block), every shell script passes shellcheck,
 * and the release workflow still does what docs/versioning.md promises. Both tools must be present
 * (`make tools` provides them); a missing one fails the test instead of skipping it.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REPO_ROOT } from "../../hack/dev/deploy-manifests.js";

function run(cmd: string, args: string[]): { code: number; stdout: string; out: string } {
  const r = spawnSync(cmd, args, { cwd: REPO_ROOT, encoding: "utf8", timeout: 600_000 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { code: r.status ?? 1, stdout: r.stdout, out: `${r.stdout}${r.stderr}` };
}

/** The path of a tool on PATH, or a failed expectation naming how to get it. */
function toolOnPath(name: string, install: string): string {
  const r = run("bash", ["-c", `command -v ${name}`]);
  expect(r.code, `${name} is not installed: ${install}`).toBe(0);
  return r.stdout.trim();
}

function shellScripts(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".sh"))
    .map((e) => relative(REPO_ROOT, join(e.parentPath, e.name)))
    .sort();
}

const WORKFLOWS = join(REPO_ROOT, ".github/workflows");
const workflow = (name: string) =>
  parse(readFileSync(join(WORKFLOWS, name), "utf8")) as {
    on: Record<string, unknown>;
    permissions: Record<string, string>;
    jobs: Record<
      string,
      {
        permissions?: Record<string, string>;
        steps: { uses?: string; run?: string; with?: Record<string, unknown> }[];
      }
    >;
  };

describe("CI and release workflows", () => {
  it("every shell script (hack/**/*.sh, .ci/run) passes shellcheck", () => {
    toolOnPath("shellcheck", "apt-get install shellcheck (make tools does it)");
    const scripts = [...shellScripts("hack"), ".ci/run"];
    expect(scripts).toEqual(
      expect.arrayContaining(["hack/node.sh", "hack/tools.sh", "hack/e2e-kind.sh", "hack/dev.sh"]),
    );
    const r = run("shellcheck", ["-x", ...scripts]);
    expect(r.code, r.out).toBe(0);
  });

  it("every workflow passes actionlint, with shellcheck over its run: blocks", () => {
    const shellcheck = toolOnPath("shellcheck", "apt-get install shellcheck (make tools does it)");
    const tool = run("bash", ["hack/tools.sh", "actionlint"]);
    expect(tool.code, `hack/tools.sh actionlint: ${tool.out}`).toBe(0);
    const files = readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
    expect(files.sort()).toEqual(["ci.yaml", "e2e-kind.yaml", "release.yaml"]);
    const r = run(tool.stdout.trim(), [
      "-no-color",
      "-oneline",
      "-shellcheck",
      shellcheck,
      ...files.map((f) => join(".github/workflows", f)),
    ]);
    expect(r.code, r.out).toBe(0);
    // A cold machine builds actionlint first (make tools does it before the tests).
  }, 600_000);

  it("CI runs .ci/run on pushes and pull requests with read-only permissions", () => {
    const ci = workflow("ci.yaml");
    expect(Object.keys(ci.on)).toEqual(expect.arrayContaining(["push", "pull_request"]));
    expect(ci.permissions).toEqual({ contents: "read" });
    const runs = Object.values(ci.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ""));
    expect(runs).toContain("bash .ci/run");
  });

  it("a release builds both architectures, attaches an SBOM, signs image and chart, and pushes the chart", () => {
    const rel = workflow("release.yaml");
    expect(rel.on).toEqual({ push: { tags: ["v*"] } });
    expect(rel.permissions).toEqual({ contents: "read" });
    const job = Object.values(rel.jobs)[0]!;
    expect(job.permissions).toEqual({ contents: "read", packages: "write", "id-token": "write" });
    const build = job.steps.find((s) => s.uses?.startsWith("docker/build-push-action@"));
    expect(build?.with).toMatchObject({ platforms: "linux/amd64,linux/arm64", push: true, sbom: true });
    expect(job.steps.some((s) => s.uses?.startsWith("sigstore/cosign-installer@"))).toBe(true);
    const script = job.steps.map((s) => s.run ?? "").join("\n");
    expect(script.match(/cosign sign --yes/g)).toHaveLength(2);
    expect(script).toContain("package charts/apptoken-operator");
    expect(script).toMatch(/push "dist\/chart\/apptoken-operator-\$VERSION\.tgz" "\$CHART_REPO"/);
  });
});
