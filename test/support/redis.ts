/**
 * A real redis-server for the fleet tier's tests: its own port on 127.0.0.1, its own temp dir, no
 * persistence (--save ''), stopped and started again on the same port to play an outage. Fails
 * loudly when the binary is missing: these tests never skip.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@redis/client";
import { freePort } from "../../hack/control-plane/control-plane.js";

export interface RedisServer {
  readonly port: number;
  /** redis://[:password@]127.0.0.1:port */
  readonly url: string;
  /** SIGKILL: an outage, nothing flushed (there is nothing to flush). */
  kill(): Promise<void>;
  /** Starts again on the same port, empty. */
  restart(): Promise<void>;
  /** One command through a fresh connection (SCAN, GET, INFO, FLUSHALL...). */
  command<T>(args: string[]): Promise<T>;
  /** Every key and its value, by SCAN + GET (strings only; the tier writes nothing else). */
  dump(): Promise<Map<string, string>>;
  /** INFO memory's used_memory, bytes. */
  usedMemory(): Promise<number>;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  password?: string;
}

const BINARY = "redis-server";

export function requireRedisServer(): void {
  const probe = spawnSync(BINARY, ["--version"], { encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `${BINARY} is not installed (or does not run): the fleet tier's tests need a real Redis. ` +
        "Install it, e.g. `apt-get install -y redis-server` (Debian package redis-server).",
    );
  }
}

export async function startRedis(o: RedisServerOptions = {}): Promise<RedisServer> {
  requireRedisServer();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "apptoken-redis-"));
  const url = `redis://${o.password !== undefined ? `:${encodeURIComponent(o.password)}@` : ""}127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = "";

  const launch = async (): Promise<void> => {
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
    ];
    if (o.password !== undefined) args.push("--requirepass", o.password);
    child = spawn(BINARY, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (output = (output + d).slice(-4000)));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (output = (output + d).slice(-4000)));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited at start:\n${output}`);
      if (await ping().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer within 10 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const command = async <T>(args: string[]): Promise<T> => {
    const client = createClient({ url, socket: { connectTimeout: 2_000, reconnectStrategy: false } });
    client.on("error", () => undefined);
    await client.connect();
    try {
      return await client.sendCommand<T>(args);
    } finally {
      client.destroy();
    }
  };
  const ping = async (): Promise<boolean> => (await command<string>(["PING"])) === "PONG";

  const kill = async (): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
  };

  await launch();
  return {
    port,
    url,
    kill,
    restart: launch,
    command,
    async dump() {
      const out = new Map<string, string>();
      let cursor = "0";
      do {
        const [next, keys] = await command<[string, string[]]>(["SCAN", cursor, "COUNT", "1000"]);
        cursor = next;
        for (const key of keys) {
          const value = await command<string | null>(["GET", key]);
          if (value !== null) out.set(key, value);
        }
      } while (cursor !== "0");
      return out;
    },
    async usedMemory() {
      const info = await command<string>(["INFO", "memory"]);
      return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
