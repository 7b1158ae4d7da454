import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { KubeconfigError, loadKubeConfig } from "../../../src/kube/kubeconfig.js";

let dir: string;
let savedEnv: string | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "apptoken-kubeconfig-"));
  savedEnv = process.env.KUBECONFIG;
});
afterEach(() => {
  if (savedEnv === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = savedEnv;
  rmSync(dir, { recursive: true, force: true });
});

/** A kubeconfig with one cluster, user and context per name, all called after `names`. */
function kubeconfig(
  file: string,
  opts: { names: string[]; server: string; currentContext?: string; caFile?: string },
): string {
  const path = join(dir, file);
  writeFileSync(
    path,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: opts.names.map((n) => ({
        name: n,
        cluster: {
          server: `${opts.server}/${n}`,
          ...(opts.caFile ? { "certificate-authority": opts.caFile } : {}),
        },
      })),
      users: opts.names.map((n) => ({ name: n, user: { token: `${file}-${n}` } })),
      contexts: opts.names.map((n) => ({ name: n, context: { cluster: n, user: n } })),
      ...(opts.currentContext ? { "current-context": opts.currentContext } : {}),
    }),
  );
  return path;
}

describe("loadKubeConfig", () => {
  it("uses the files it is given, not $KUBECONFIG, when given a list", () => {
    const a = kubeconfig("a.yaml", { names: ["a"], server: "https://a.example", currentContext: "a" });
    const b = kubeconfig("b.yaml", { names: ["b"], server: "https://b.example" });
    process.env.KUBECONFIG = kubeconfig("env.yaml", {
      names: ["env"],
      server: "https://env.example",
      currentContext: "env",
    });
    const kc = loadKubeConfig(`${a}:${b}`);
    expect(kc.getCurrentCluster()?.server).toBe("https://a.example/a");
    expect(kc.getClusters().map((c) => c.name)).toEqual(["a", "b"]);
    expect(kc.getContextObject("env")).toBeNull();
  });

  it("merges like kubectl: the first file wins a repeated name and sets current-context", () => {
    const first = kubeconfig("first.yaml", { names: ["shared", "one"], server: "https://first.example" });
    const second = kubeconfig("second.yaml", {
      names: ["shared", "two"],
      server: "https://second.example",
      currentContext: "two",
    });
    const third = kubeconfig("third.yaml", {
      names: ["three"],
      server: "https://third.example",
      currentContext: "three",
    });
    const kc = loadKubeConfig([first, second, third].join(":"));
    expect(kc.getCluster("shared")?.server).toBe("https://first.example/shared");
    expect(kc.getUser("shared")?.token).toBe("first.yaml-shared");
    expect(kc.getClusters().map((c) => c.name)).toEqual(["shared", "one", "two", "three"]);
    // The first file sets no current-context; the second is the first that does.
    expect(kc.getCurrentContext()).toBe("two");
    expect(kc.getCurrentCluster()?.server).toBe("https://second.example/two");
  });

  it("resolves each file's relative paths against that file's directory", () => {
    const a = kubeconfig("a.yaml", {
      names: ["a"],
      server: "https://a.example",
      currentContext: "a",
      caFile: "ca.pem",
    });
    const kc = loadKubeConfig(`${join(dir, "missing.yaml")}:${a}`);
    expect(kc.getCurrentCluster()?.caFile).toBe(join(dir, "ca.pem"));
  });

  it("skips missing files, as kubectl does, and refuses when none exists", () => {
    const a = kubeconfig("a.yaml", { names: ["a"], server: "https://a.example", currentContext: "a" });
    expect(loadKubeConfig(`${join(dir, "nope.yaml")}:${a}`).getCurrentContext()).toBe("a");
    const none = `${join(dir, "x.yaml")}:${join(dir, "y.yaml")}`;
    expect(() => loadKubeConfig(none)).toThrow(KubeconfigError);
    expect(() => loadKubeConfig(none)).toThrow(
      `no such kubeconfig file: ${join(dir, "x.yaml")}, ${join(dir, "y.yaml")}`,
    );
  });

  it("refuses a kubeconfig with no current context, and a file that is not a kubeconfig, naming it", () => {
    const a = kubeconfig("a.yaml", { names: ["a"], server: "https://a.example" });
    expect(() => loadKubeConfig(a)).toThrow(/no current context with a cluster/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "clusters: [\n");
    expect(() => loadKubeConfig(bad)).toThrow(new RegExp(`cannot load kubeconfig ${bad}`));
  });
});
