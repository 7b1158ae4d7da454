/**
 * Bundles src/main.ts and every runtime dependency into one file, dist/main.js (the package's bin
 * and the image's entry point), with a source map beside it. Type checking is tsc's job
 * (`npm run build` runs it first); this only packs.
 *
 * Why a bundle: @kubernetes/client-node alone is ~700 ES modules (its generated models), and
 * resolving and compiling them one by one took the operator 0.9 s to start and ~55 MB of memory
 * before it had done any work; as one file it starts in ~0.3 s. The image then needs no
 * node_modules at all.
 *
 *   node --import tsx hack/build/bundle.ts [--outfile dist/main.js]
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { build, type Metafile } from "esbuild";

const outIndex = process.argv.indexOf("--outfile");
const outfile = outIndex > 0 ? process.argv[outIndex + 1]! : "dist/main.js";

const result = await build({
  entryPoints: ["src/main.ts"],
  outfile,
  bundle: true,
  platform: "node",
  target: "node24",
  format: "esm",
  sourcemap: "linked",
  // Licences go in one notices file per bundled package instead (below).
  legalComments: "none",
  // Loaded only if installed (pretty logs for a person at a terminal): never bundled.
  external: ["pino-pretty"],
  // client-node's node-fetch (whatwg-url, tr46) requires Node's built-in punycode, which Node 22+
  // deprecates with a warning on stderr at start-up; the npm package is the same code, bundled.
  alias: { punycode: "punycode/" },
  // Some bundled CommonJS packages call require() for Node's built-in modules.
  banner: {
    js: "import { createRequire as __apptokenCreateRequire } from 'node:module'; const require = __apptokenCreateRequire(import.meta.url);",
  },
  logLevel: "warning",
  metafile: true,
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
const packages = writeNotices(result.metafile, join(dirname(outfile), "THIRD_PARTY_NOTICES.txt"));
process.stdout.write(
  `bundled src/main.ts and ${packages} packages -> ${outfile} (${(bytes / 1e6).toFixed(1)} MB with source map)\n`,
);

/** Name, version, licence and licence text of every package whose code is in the bundle. */
function writeNotices(metafile: Metafile, file: string): number {
  const roots = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) roots.add(m[1]!);
  }
  const sections = [...roots].sort().map((root) => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      name: string;
      version: string;
      license?: string;
    };
    const licenceFile = readdirSync(root).find((f) => /^(licen[cs]e|copying)(\..*)?$/i.test(f));
    const text =
      licenceFile && existsSync(join(root, licenceFile))
        ? readFileSync(join(root, licenceFile), "utf8").trim()
        : `(no licence file in the package; package.json says ${pkg.license ?? "nothing"})`;
    return `${pkg.name}@${pkg.version} (${pkg.license ?? "unknown"})\n\n${text}\n`;
  });
  writeFileSync(
    file,
    `Third-party software bundled in ${outfile}\n${"=".repeat(60)}\n\n${sections.join(`\n${"-".repeat(60)}\n\n`)}`,
  );
  return roots.size;
}
