import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "apptoken-node-sh-"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A `node` that only answers --version, in a directory of its own. */
function fakeNode(dir: string, version: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "node"), `#!/bin/bash\necho ${version}\n`);
  chmodSync(join(dir, "node"), 0o755);
  return dir;
}

/** A PATH with only the fake node and the few commands the script needs before it fetches. */
function minimalPath(nodeDir: string): string {
  const tools = join(root, "tools");
  mkdirSync(tools);
  for (const cmd of ["bash", "uname", "dirname"]) {
    const which = spawnSync("bash", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).stdout.trim();
    symlinkSync(which, join(tools, cmd));
  }
  return `${nodeDir}:${tools}`;
}

function nodeSh(path: string) {
  return spawnSync("bash", ["hack/node.sh"], {
    encoding: "utf8",
    env: { PATH: path, HOME: root, APPTOKEN_CACHE_DIR: join(root, "cache") },
  });
}

describe("hack/node.sh", () => {
  it("uses the node on PATH when it is of the 24 line", () => {
    const dir = fakeNode(join(root, "path-node"), "v24.1.0");
    const r = nodeSh(minimalPath(dir));
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${dir}\n`);
  });

  it("prefers the cached Node.js 24 to another major on PATH", () => {
    const cached = fakeNode(join(root, "cache/node/24.22.3/bin"), "v24.22.3");
    const r = nodeSh(minimalPath(fakeNode(join(root, "path-node"), "v20.20.2")));
    expect(r.stdout).toBe(`${cached}\n`);
  });

  it("fails with one clear message, and prints no path, when it can neither find nor fetch Node.js 24", () => {
    const r = nodeSh(minimalPath(fakeNode(join(root, "path-node"), "v20.20.2")));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("no npm to fetch node-linux-");
    expect(r.stderr).toContain("Node.js 24 is needed");
  });
});
