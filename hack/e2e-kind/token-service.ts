/**
 * The local token service (hack/token-service) inside a kind cluster, for `make e2e-kind`:
 *
 *   node --import tsx hack/e2e-kind/token-service.ts --config cfg.json \
 *        --tls-cert tls.crt --tls-key tls.key [--listen-host 0.0.0.0] [--listen-port 8443]
 *
 * The certificate is the one hack/e2e-kind/certs.sh issues for the Service's DNS names, so the
 * operator reaches it as https://token-service.apptoken-e2e.svc and verifies it with the CA it is
 * given (--authority-ca-file). The token service binds 127.0.0.1 only (it is a test server); this
 * forwards TCP from the pod's address to it, and TLS ends in the token service itself.
 *
 * It prints `listening on HOST:PORT` on stderr once ready and one JSON line per token request on
 * stdout (never a secret, assertion or token). SIGTERM/SIGINT stop it.
 */
import { readFile } from "node:fs/promises";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { parseTokenServiceConfig } from "../token-service/config.js";
import { startTokenService } from "../token-service/server.js";

const usage =
  "usage: token-service.ts --config cfg.json --tls-cert tls.crt --tls-key tls.key [--listen-host 0.0.0.0] [--listen-port 8443]";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "listen-host": { type: "string", default: "0.0.0.0" },
      "listen-port": { type: "string", default: "8443" },
    },
  });
  const configPath = values.config;
  const certPath = values["tls-cert"];
  const keyPath = values["tls-key"];
  if (configPath === undefined || certPath === undefined || keyPath === undefined) {
    process.stderr.write(`${usage}\n`);
    process.exit(2);
  }
  const port = Number(values["listen-port"]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`--listen-port must be 0..65535, got ${values["listen-port"]}\n`);
    process.exit(2);
  }
  const config = parseTokenServiceConfig(JSON.parse(await readFile(configPath, "utf8")));
  const certPem = await readFile(certPath, "utf8");
  const keyPem = await readFile(keyPath, "utf8");
  const service = await startTokenService(config, {
    // The CA's key is not needed here: certs.sh keeps it, and only the certificate is served.
    tls: { ca: { certPem, keyPem: "", chainPem: [] }, server: { certPem, keyPem, chainPem: [] } },
    log: (entry) => process.stdout.write(`${JSON.stringify(entry)}\n`),
  });
  const inner = new URL(service.url);

  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(Number(inner.port), inner.hostname);
    sockets.add(client).add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", done).on("close", done);
    upstream.on("error", done).on("close", done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolveListen, reject) => {
    proxy.once("error", reject);
    proxy.listen(port, values["listen-host"], () => resolveListen());
  });
  const address = proxy.address() as AddressInfo;
  process.stderr.write(`listening on ${address.address}:${address.port} (token service ${service.url})\n`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    proxy.close();
    for (const s of sockets) s.destroy();
    void service.close().then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
