import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../src/clock.js";
import { allowedHostSet, tokenEndpointFor } from "../../src/identity/authority.js";
import { clientSecretCredential } from "../../src/identity/credentials/client-secret.js";
import { TokenClient } from "../../src/identity/token-client.js";
import { START_TIMEOUT_MS } from "./token-service-fixture.js";

const TENANT = "0b6a4f2e-5c3d-4e1f-8a9b-7c6d5e4f3a2b";
const CLIENT = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";
const SECRET = "cli-secret-value-do-not-log";

let dir: string;
let child: ChildProcess;
const stdout: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "token-service-cli-"));
  const config = join(dir, "config.json");
  await writeFile(
    config,
    JSON.stringify({
      tenants: [{ id: TENANT, domains: ["cli.example"] }],
      apps: [{ tenantId: TENANT, clientId: CLIENT, secrets: [SECRET] }],
      resources: ["https://graph.microsoft.com"],
    }),
  );
  child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "hack/token-service/main.ts",
      "--config",
      config,
      "--out",
      join(dir, "out"),
      "--port",
      "0",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk.toString()));
  // A real process on a real port: wait for it to say where it is, up to a deadline.
  const deadline = Date.now() + 20_000;
  while (!existsSync(join(dir, "out", "url"))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("token service did not start");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}, START_TIMEOUT_MS);

afterAll(async () => {
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe("the token service CLI", () => {
  it("serves tokens over HTTPS with the CA it writes out, and logs requests without secrets", async () => {
    const url = (await readFile(join(dir, "out", "url"), "utf8")).trim();
    const authorityHost = (await readFile(join(dir, "out", "authority-host"), "utf8")).trim();
    expect(url).toBe(`https://${authorityHost}`);
    const allowedHosts = allowedHostSet([authorityHost]);
    const client = new TokenClient({
      clock: systemClock,
      caBundle: await readFile(join(dir, "out", "ca.pem"), "utf8"),
      allowedAuthorityHosts: allowedHosts,
    });
    try {
      const token = await client.requestToken({
        endpoint: tokenEndpointFor(
          { authorityHost, tenantId: "cli.example" },
          { allowInsecureLoopback: false, allowedHosts },
        ),
        clientId: CLIENT,
        scope: "https://graph.microsoft.com/.default",
        credential: clientSecretCredential(SECRET),
      });
      expect(token.tokenType).toBe("Bearer");
    } finally {
      await client.close();
    }
    const deadline = Date.now() + 5000;
    while (!stdout.join("").includes('"status":200') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const log = stdout.join("");
    expect(JSON.parse(log.trim().split("\n").at(-1)!)).toMatchObject({
      clientId: CLIENT,
      credential: "secret",
      status: 200,
    });
    expect(log).not.toContain(SECRET);
  });
});
