import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

describe("hack/binaries.sh", () => {
  it("names the three ways to provide binaries, without a stack trace, when Go is missing", () => {
    const empty = mkdtempSync(join(tmpdir(), "apptoken-nobins-"));
    try {
      const res = spawnSync("bash", ["hack/binaries.sh"], {
        encoding: "utf8",
        // No Go on PATH, an empty cache and no KUBEBUILDER_ASSETS: nothing can be found or built.
        env: { PATH: "/usr/bin:/bin", HOME: empty, APPTOKEN_CACHE_DIR: empty },
      });
      expect(res.status).toBe(3);
      expect(res.stdout).toBe("");
      expect(res.stderr).toContain("KUBEBUILDER_ASSETS");
      expect(res.stderr).toContain("on your PATH");
      expect(res.stderr).toContain("install Go");
      expect(res.stderr).not.toMatch(/at .*\.(js|ts):\d+/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
