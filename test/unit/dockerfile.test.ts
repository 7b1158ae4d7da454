/**
 * The Dockerfile cannot be built here (no Docker engine), so it is parsed and held to the rules
 * the image must keep: multi-stage; the runtime stage distroless (no shell, so no RUN), non-root
 * numeric USER, only package.json and dist/ (the bundle built by `npm run build`, which holds every
 * runtime dependency) and no node_modules, exec-form CMD, no init process, OCI labels; nothing
 * fetched with ADD; no secrets in ENV/ARG; and a build context (.dockerignore) that admits exactly
 * what the COPYs need. (hadolint would be a second opinion, but Debian has no
 * package for it and nothing may be skipped here.)
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, normalize, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

// ---- a small Dockerfile parser ------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  index: number;
  name: string | undefined;
  /** FROM's image with ARG defaults substituted. */
  image: string;
  instructions: Instruction[];
}

interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Joins continuation lines, drops comments (also inside continuations, as Docker does). */
function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = "";
  let start = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (buf === "" && trimmed === "") return;
    if (trimmed.startsWith("#")) return;
    if (buf === "") start = i + 1;
    if (trimmed.endsWith("\\")) {
      buf += trimmed.slice(0, -1).trimEnd() + " ";
      return;
    }
    buf += trimmed;
    const m = /^(\S+)\s*(.*)$/s.exec(buf.trim());
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buf = "";
  });
  return out;
}

function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (whole, name: string) => vars[name] ?? whole);
}

function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: cannot parse FROM ${ins.args}`);
      stages.push({
        index: stages.length,
        name: m[2],
        image: substitute(m[1]!, globalArgs),
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (ins.keyword === "ARG") {
        const [k, v = ""] = ins.args.split("=", 2);
        globalArgs[k!.trim()] = v.trim().replace(/^"(.*)"$/, "$1");
      }
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** KEY=VALUE pairs of LABEL/ENV (quoted values allowed). */
function keyValues(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z0-9_.\-/]+)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (const m of args.matchAll(re)) out[m[1]!] = m[2]!.replace(/^"(.*)"$/s, "$1");
  return out;
}

function execForm(args: string): string[] | undefined {
  try {
    const v = JSON.parse(args) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === "COPY")
    .map((i) => {
      const words = i.args.split(/\s+/);
      const flags = words.filter((w) => w.startsWith("--"));
      const rest = words.filter((w) => !w.startsWith("--"));
      const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
      return { from, sources: rest.slice(0, -1), dest: rest.at(-1)! };
    });
}

const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);

// ---- .dockerignore, as Docker evaluates it (last matching pattern wins; a directory's match covers its contents)

function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
      if (pattern[i + 1] === "/") i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const p = normalize(negate ? l.slice(1).trim() : l).replace(/^\/+|\/+$/g, "");
      return { negate, re: globToRegExp(p) };
    });
  return (path: string) => {
    const parts = normalize(path).split("/");
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
    let ignored = false;
    for (const r of rules) if (candidates.some((c) => r.re.test(c))) ignored = !r.negate;
    return ignored;
  };
}

function filesUnder(path: string): string[] {
  const abs = join(ROOT, path);
  if (!statSync(abs).isDirectory()) return [path];
  return readdirSync(abs).flatMap((e) => filesUnder(join(path, e)));
}

/** Relative imports of a TypeScript file, transitively, as repo paths (.js specifiers -> .ts files). */
function importClosure(entry: string, seen = new Set<string>()): Set<string> {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  const text = read(entry);
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/g)) {
    const target = relative(ROOT, resolve(ROOT, dirname(entry), m[1]!.replace(/\.js$/, ".ts")));
    importClosure(target, seen);
  }
  return seen;
}

// ---- the rules ----------------------------------------------------------------------------------

const df = parseDockerfile(read("Dockerfile"));
const final = df.stages.at(-1)!;
const stageNamed = (name: string) => df.stages.find((s) => s.name === name);
const pkg = JSON.parse(read("package.json")) as {
  type: string;
  bin: Record<string, string>;
  scripts: Record<string, string>;
  license: string;
  engines: { node: string };
};
const isIgnored = dockerignore(read(".dockerignore"));

describe("the parser", () => {
  it("joins continuations, drops comments inside them, and reads stages and global ARGs", () => {
    const d = parseDockerfile(
      [
        "# syntax=docker/dockerfile:1",
        "ARG IMG=node:20",
        "FROM ${IMG} AS b",
        "RUN a \\",
        "# note",
        "  && b",
        "FROM scratch",
        'CMD ["x"]',
      ].join("\n"),
    );
    expect(d.stages.map((s) => [s.name, s.image])).toEqual([
      ["b", "node:20"],
      [undefined, "scratch"],
    ]);
    expect(runs(d.stages[0]!)).toEqual(["a && b"]);
    expect(keyValues('a.b="x y" c=d')).toEqual({ "a.b": "x y", c: "d" });
  });

  it("evaluates .dockerignore like Docker (allow-list with re-includes, last match wins)", () => {
    const ig = dockerignore("*\n!src/\n**/*.test.ts\n");
    expect(ig("node_modules/x")).toBe(true);
    expect(ig("src/main.ts")).toBe(false);
    expect(ig("src/a/b.test.ts")).toBe(true);
  });
});

describe("Dockerfile", () => {
  it("is multi-stage: the runtime stage is the last, built FROM a distroless Node.js image", () => {
    expect(df.stages.length).toBeGreaterThanOrEqual(2);
    expect(final.name).toBe("runtime");
    expect(final.image).toMatch(
      /^gcr\.io\/distroless\/nodejs\d+-debian\d+(:nonroot)?(@sha256:[0-9a-f]{64})?$/,
    );
  });

  it("pins every base image to a tag or digest, never latest, with the same Node.js major everywhere", () => {
    const engineMajor = /(\d+)/.exec(pkg.engines.node)![1];
    for (const s of df.stages) {
      if (df.stages.some((o) => o.name === s.image)) continue; // FROM another stage
      expect(s.image, `stage ${s.name}`).toMatch(/[:@]/);
      expect(s.image).not.toMatch(/:latest$/);
      const major = /node(?:js)?:?(\d+)/.exec(s.image)?.[1];
      expect(major, `Node.js major of ${s.image}`).toBe(engineMajor);
    }
  });

  it("runs as a non-root numeric user in the runtime stage (distroless nonroot, 65532)", () => {
    const users = final.instructions.filter((i) => i.keyword === "USER");
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args;
    expect(user).toMatch(/^\d+(:\d+)?$/);
    const [uid, gid] = user.split(":").map(Number);
    expect(uid).not.toBe(0);
    expect(gid ?? 1).not.toBe(0);
    expect(user).toBe("65532:65532");
    // Matches deploy/'s runAsUser.
    expect(readFileSync(join(ROOT, "deploy/base/manager/deployment.yaml"), "utf8")).toContain(
      "runAsUser: 65532",
    );
  });

  it("has no RUN in the runtime stage (no shell there) and installs nothing in it", () => {
    expect(runs(final)).toEqual([]);
    for (const i of final.instructions)
      expect(`${i.keyword} ${i.args}`).not.toMatch(/\b(npm|yarn|pnpm|apt-get|apk)\b/);
  });

  it("installs from the lockfile with npm ci and builds with npm run build, which bundles with hack/build/bundle.ts", () => {
    // The dependencies come from `npm ci` (the lockfile, exactly), never `npm install`.
    const all = df.stages.flatMap(runs).join("\n");
    expect(all).toMatch(/\bnpm ci\b/);
    expect(all).not.toMatch(/\bnpm (install|i)\b/);
    const build = stageNamed("build")!;
    expect(build).toBeDefined();
    expect(runs(build).join(" && ")).toMatch(/\bnpm run build\b/);
    // The build script typechecks and bundles; the bundler's default output is the bin (and CMD).
    expect(pkg.scripts.build).toMatch(/\bhack\/build\/bundle\.ts\b/);
    expect(read("hack/build/bundle.ts")).toContain(`"${pkg.bin["apptoken-operator"]}"`);
    // ...and the build stage has the bundler (the rest of the build context is checked below).
    const copied = copies(build)
      .filter((c) => !c.from)
      .flatMap((c) => c.sources);
    expect(
      copied.some((src) => src === "hack/build/bundle.ts" || "hack/build/bundle.ts".startsWith(`${src}/`)),
    ).toBe(true);
  });

  it("the runtime stage copies only package.json and dist from the build stage, and no node_modules", () => {
    const fromStage = copies(final).filter((c) => c.from);
    expect(fromStage.map((c) => [c.from, ...c.sources])).toEqual([
      ["build", "/app/package.json"],
      ["build", "/app/dist"],
    ]);
    // package.json for its "type": "module", without which Node would not load dist/main.js as ESM.
    expect(pkg.type).toBe("module");
    // Everything the operator runs is in the bundle: no node_modules, from any stage or the context.
    for (const c of copies(final)) {
      expect([...c.sources, c.dest].join(" "), "COPY of node_modules into the runtime stage").not.toMatch(
        /node_modules/,
      );
    }
  });

  it("starts node on the compiled entry point, exec form, without tini or a shell", () => {
    for (const s of df.stages) {
      for (const i of s.instructions.filter((x) => x.keyword === "CMD" || x.keyword === "ENTRYPOINT")) {
        expect(execForm(i.args), `line ${i.line}: ${i.keyword} must be a JSON array`).toBeDefined();
      }
    }
    const cmd = final.instructions.filter((i) => i.keyword === "CMD").at(-1);
    expect(execForm(cmd!.args)).toEqual([pkg.bin["apptoken-operator"]]);
    // distroless/nodejs's ENTRYPOINT is node; overriding it would be a mistake.
    expect(final.instructions.some((i) => i.keyword === "ENTRYPOINT")).toBe(false);
    expect(read("Dockerfile")).not.toMatch(/tini|dumb-init/i);
    const workdir = final.instructions.filter((i) => i.keyword === "WORKDIR").at(-1)!.args;
    expect(copies(final).some((c) => c.dest === "./dist" || c.dest === `${workdir}/dist`)).toBe(true);
  });

  it("carries the OCI labels", () => {
    const labels = Object.assign(
      {},
      ...final.instructions.filter((i) => i.keyword === "LABEL").map((i) => keyValues(i.args)),
    ) as Record<string, string>;
    for (const k of ["title", "description", "source", "licenses", "version", "revision", "created"]) {
      expect(labels[`org.opencontainers.image.${k}`], k).toBeTruthy();
    }
    expect(labels["org.opencontainers.image.licenses"]).toBe(pkg.license);
    expect(labels["org.opencontainers.image.source"]).toMatch(/^https:\/\//);
  });

  it("fetches nothing with ADD and puts no secret in ENV or ARG", () => {
    const secretName = /(SECRET|TOKEN|PASSW(OR)?D|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH)/i;
    for (const s of df.stages) {
      for (const i of s.instructions) {
        if (i.keyword === "ADD") expect(i.args, `line ${i.line}`).not.toMatch(/https?:\/\/|git@|\.git\b/);
        if (i.keyword === "ENV" || i.keyword === "ARG") {
          const kv =
            i.keyword === "ENV" ? keyValues(i.args) : { [i.args.split("=")[0]!]: i.args.split("=")[1] ?? "" };
          for (const [k, v] of Object.entries(kv)) {
            if (secretName.test(k)) expect(v, `line ${i.line}: ${k} looks like a secret`).toBe("");
          }
        }
      }
    }
    for (const [k, v] of Object.entries(df.globalArgs)) if (secretName.test(k)) expect(v).toBe("");
  });

  it("the e2e token-service stage runs as a non-root user and copies every file its entry point imports", () => {
    const ts = stageNamed("token-service")!;
    expect(ts).toBeDefined();
    const user = ts.instructions.filter((i) => i.keyword === "USER").at(-1)!.args;
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const entry = execForm(ts.instructions.find((i) => i.keyword === "ENTRYPOINT")!.args)!;
    const script = entry.find((a) => a.endsWith(".ts"))!;
    const copied = copies(ts)
      .filter((c) => !c.from)
      .flatMap((c) => c.sources);
    for (const file of importClosure(script)) {
      expect(
        copied.some((src) => file === src || file.startsWith(`${src.replace(/\/$/, "")}/`)),
        `${file} (imported by ${script}) is not copied into the token-service stage`,
      ).toBe(true);
    }
  });
});

describe(".dockerignore", () => {
  it("admits every file the Dockerfile copies from the build context", () => {
    for (const s of df.stages) {
      for (const c of copies(s).filter((x) => !x.from)) {
        for (const src of c.sources) {
          expect(existsSync(join(ROOT, src)), `${src} exists`).toBe(true);
          for (const f of filesUnder(src).filter((p) => !p.endsWith(".test.ts"))) {
            expect(isIgnored(f), `${f} must be in the build context`).toBe(false);
          }
        }
      }
    }
  });

  it("keeps local state and secrets out of the build context", () => {
    for (const p of [
      "node_modules/zod/package.json",
      "dist/main.js",
      ".cache/dev/cp/kubeconfig",
      ".git/config",
      ".env",
      "src/.env.local",
      "test/unit/dockerfile.test.ts",
      "deploy/kustomization.yaml",
      "hack/token-service/ca-key.pem",
      "kubeconfig",
      "coverage/index.html",
    ]) {
      expect(isIgnored(p), p).toBe(true);
    }
  });
});

// ---- the same rules as one function, so that each can be shown to fire -------------------------

/** The rules' violations for a Dockerfile text (empty when it keeps them all). */
function violations(text: string): string[] {
  const out: string[] = [];
  const d = parseDockerfile(text);
  const last = d.stages.at(-1);
  if (d.stages.length < 2 || !last) return ["not multi-stage"];
  if (!/distroless/.test(last.image)) out.push(`runtime base ${last.image} is not distroless`);
  const user = last.instructions.filter((i) => i.keyword === "USER").at(-1)?.args;
  if (!user || !/^\d+(:\d+)?$/.test(user) || user.split(":").some((x) => Number(x) === 0)) {
    out.push(`runtime USER ${user ?? "(none)"} is not a non-root number`);
  }
  if (runs(last).length > 0) out.push("RUN in the runtime stage");
  for (const s of d.stages) {
    for (const i of s.instructions) {
      if ((i.keyword === "CMD" || i.keyword === "ENTRYPOINT") && !execForm(i.args))
        out.push(`${i.keyword} in shell form`);
      if (i.keyword === "ADD" && /https?:\/\/|git@/.test(i.args)) out.push("ADD of a remote URL");
      if (i.keyword === "ENV") {
        for (const [k, v] of Object.entries(keyValues(i.args))) {
          if (/(SECRET|TOKEN|PASSW(OR)?D|API_?KEY|PRIVATE_?KEY)/i.test(k) && v !== "")
            out.push(`secret in ENV ${k}`);
        }
      }
    }
    if (runs(s).some((r) => /\bnpm (install|i)\b/.test(r))) out.push("npm install (not npm ci)");
  }
  const fromBuild = copies(last).find((c) => c.sources.includes("/app/dist"))?.from;
  const build = d.stages.find((s) => s.name === fromBuild);
  if (!build || !runs(build).some((r) => /\bnpm run build\b/.test(r))) {
    out.push("dist not built with npm run build");
  }
  if (copies(last).some((c) => [...c.sources, c.dest].some((p) => /node_modules/.test(p)))) {
    out.push("node_modules in the runtime stage");
  }
  if (/tini|dumb-init/i.test(text)) out.push("an init process");
  const labels = Object.assign(
    {},
    ...last.instructions.filter((i) => i.keyword === "LABEL").map((i) => keyValues(i.args)),
  );
  for (const k of ["title", "source", "licenses", "version", "revision"]) {
    if (!labels[`org.opencontainers.image.${k}`]) out.push(`label org.opencontainers.image.${k} missing`);
  }
  return out;
}

describe("the rules, each shown to fire", () => {
  const text = read("Dockerfile");
  it("the Dockerfile keeps them all", () => {
    expect(violations(text)).toEqual([]);
  });
  const mutate = (from: string | RegExp, to: string) => {
    const next = text.replace(from, to);
    expect(next, `mutation of ${String(from)}`).not.toBe(text);
    return violations(next);
  };
  it.each([
    ["a root user", "USER 65532:65532", "USER root", /not a non-root number/],
    ["uid 0", "USER 65532:65532", "USER 0:0", /not a non-root number/],
    ["a shell image", /^ARG RUNTIME_IMAGE=.*$/m, "ARG RUNTIME_IMAGE=node:20-bookworm-slim", /not distroless/],
    [
      "RUN in the runtime stage",
      "WORKDIR /app\nENV NODE_ENV=production",
      "WORKDIR /app\nRUN npm install\nENV NODE_ENV=production",
      /RUN in the runtime stage/,
    ],
    ["shell-form CMD", 'CMD ["dist/main.js"]', "CMD node dist/main.js", /CMD in shell form/],
    [
      "node_modules in the runtime stage",
      "COPY --from=build /app/dist ./dist",
      "COPY --from=build /app/node_modules ./node_modules\nCOPY --from=build /app/dist ./dist",
      /node_modules in the runtime stage/,
    ],
    [
      "a build without the bundler",
      "RUN npm run build",
      "RUN npx tsc -p tsconfig.json",
      /not built with npm run build/,
    ],
    ["npm install", "RUN --mount=type=cache,target=/root/.npm npm ci", "RUN npm install", /npm install/],
    ["tini", 'CMD ["dist/main.js"]', 'ENTRYPOINT ["/tini", "--"]\nCMD ["dist/main.js"]', /init process/],
    [
      "a remote ADD",
      "COPY src ./src",
      "ADD https://example.com/x.tgz ./\nCOPY src ./src",
      /ADD of a remote URL/,
    ],
    [
      "a secret in ENV",
      "ENV NODE_ENV=production\n# Owned",
      "ENV NODE_ENV=production CLIENT_SECRET=abc\n# Owned",
      /secret in ENV CLIENT_SECRET/,
    ],
    [
      "no labels",
      /^LABEL [^]*?created="\$\{CREATED\}"$/m,
      "",
      /label org\.opencontainers\.image\.title missing/,
    ],
  ])("catches %s", (_what, from, to, expected) => {
    expect(mutate(from, to).join("\n")).toMatch(expected);
  });
});
