/**
 * Runs the local token service from the command line (used by `make dev`):
 *
 *   tsx hack/token-service/main.ts --config cfg.json [--port 0] --out DIR
 *
 * Writes DIR/ca.pem (trust it with --authority-ca-file), DIR/url and DIR/authority-host, then logs
 * one JSON line per token request on stdout (never a secret, assertion or token). The CA key is
 * kept in DIR/ca-key.pem and reused on the next start, so a restarted service stays trusted.
 */
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseTokenServiceConfig } from "./config.js";
import type { CertificateAuthority } from "./pki.js";
import { createCa, issueServerCertificate } from "./pki.js";
import { startTokenService } from "./server.js";

const usage = "usage: tsx hack/token-service/main.ts --config cfg.json --out DIR [--port 0]";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      out: { type: "string" },
      port: { type: "string", default: "0" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) {
    console.log(usage);
    return;
  }
  if (values.config === undefined || values.out === undefined) {
    console.error(usage);
    process.exit(2);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be 0..65535, got ${values.port}`);
    process.exit(2);
  }

  const config = parseTokenServiceConfig(JSON.parse(await readFile(values.config, "utf8")));
  await mkdir(values.out, { recursive: true });
  const ca = await loadOrCreateCa(values.out);
  const server = await issueServerCertificate(ca);
  const service = await startTokenService(config, {
    port,
    tls: { ca, server },
    log: (entry) => console.log(JSON.stringify(entry)),
  });
  // Others wait for "url" to appear, then read it: each file appears whole (written aside, then
  // renamed), and "url" last.
  await writeWhole(join(values.out, "authority-host"), `${service.authorityHost}\n`);
  await writeWhole(join(values.out, "url"), `${service.url}\n`);
  console.error(`local token service listening on ${service.url} (CA in ${join(values.out, "ca.pem")})`);

  const stop = () => {
    void service.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

async function loadOrCreateCa(dir: string): Promise<CertificateAuthority> {
  const certPath = join(dir, "ca.pem");
  const keyPath = join(dir, "ca-key.pem");
  if (existsSync(certPath) && existsSync(keyPath)) {
    const certPem = await readFile(certPath, "utf8");
    // An expired CA would make every client fail TLS; start over instead.
    if (Date.parse(new X509Certificate(certPem).validTo) > Date.now() + 86_400_000) {
      return { certPem, keyPem: await readFile(keyPath, "utf8"), chainPem: [] };
    }
  }
  const ca = await createCa({ commonName: "apptoken local token service CA" });
  await writeFile(keyPath, ca.keyPem, { mode: 0o600 });
  await writeFile(certPath, ca.certPem);
  return ca;
}

async function writeWhole(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
