/**
 * The SharedStore on Redis (node-redis, @redis/client). Every command carries a short deadline and
 * nothing is queued while the connection is down, so a dead or slow Redis costs a caller at most
 * one deadline; the client reconnects by itself in the background. Keys share a hash tag per
 * address ({hmac}) so the token and its throttle record are read with one MGET, on Redis Cluster too.
 */
import { readFileSync } from "node:fs";
import { createClient } from "@redis/client";
import type { EntryRead, SharedStore } from "./store.js";

/** Compare-and-delete: the lock is only removed by whoever still holds it. */
const UNLOCK_SCRIPT = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

export const DEFAULT_OP_TIMEOUT_MS = 250;

export interface RedisStoreOptions {
  /** redis:// or rediss://; a password in it is used unless `password` is given. */
  url: string;
  /** Wins over the URL's password (read from --shared-cache-password-file). */
  password?: string | undefined;
  /** Deadline of each command; default 250 ms. */
  opTimeoutMs?: number | undefined;
  /** Key prefix; default "apptoken:fleet:". Tests give each run its own. */
  prefix?: string | undefined;
  /** Extra CA bundle for rediss:// (PEM). */
  ca?: string | undefined;
  /** Connection-level trouble (refused, reset, auth): for the tier's health, never carries a secret. */
  onConnectionError?: ((message: string) => void) | undefined;
  /** The connection is (again) ready for commands. */
  onReady?: (() => void) | undefined;
}

type Client = ReturnType<typeof createClient>;

export class RedisStore implements SharedStore {
  private readonly client: Client;
  private readonly timeout: number;
  private readonly prefix: string;
  private connecting: Promise<unknown> | undefined;

  constructor(o: RedisStoreOptions) {
    this.timeout = o.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS;
    this.prefix = o.prefix ?? "apptoken:fleet:";
    const tls = o.url.startsWith("rediss://");
    this.client = createClient({
      url: o.url,
      ...(o.password !== undefined ? { password: o.password } : {}),
      disableOfflineQueue: true,
      socket: {
        connectTimeout: Math.max(1_000, this.timeout * 4),
        // Keep trying for ever, at most every 2 s: the tier comes back on its own when Redis does.
        reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 5), 2_000),
        ...(tls && o.ca !== undefined ? { tls: true as const, ca: o.ca } : {}),
      },
    });
    // Without a listener an 'error' event would end the process; the message never holds the password.
    this.client.on("error", (e: unknown) => o.onConnectionError?.(describe(e)));
    this.client.on("ready", () => o.onReady?.());
  }

  /** Starts connecting in the background; never waits for Redis. */
  start(): void {
    this.connecting ??= this.client.connect().catch((e: unknown) => {
      this.connecting = undefined;
      throw e;
    });
    this.connecting.catch(() => undefined);
  }

  async close(): Promise<void> {
    if (!this.client.isOpen) return;
    try {
      await this.client.close();
    } catch {
      this.client.destroy();
    }
  }

  private key(address: string, kind: "token" | "lock" | "throttle"): string {
    return `${this.prefix}{${address}}:${kind}`;
  }

  private async send<T>(args: string[]): Promise<T> {
    if (!this.client.isOpen) this.start();
    // Right after start the first connection may still be on its way: give it one deadline rather
    // than calling the store down before it ever had a chance.
    if (!this.client.isReady && this.connecting !== undefined)
      await settledWithin(this.connecting, this.timeout);
    return this.client.sendCommand<T>(args, { timeout: this.timeout });
  }

  async read(address: string): Promise<EntryRead> {
    const reply = await this.send<(string | null)[]>([
      "MGET",
      this.key(address, "token"),
      this.key(address, "throttle"),
    ]);
    return { sealed: reply[0] ?? undefined, throttle: reply[1] ?? undefined };
  }

  async write(address: string, sealed: string, ttlMs: number): Promise<void> {
    await this.send(["SET", this.key(address, "token"), sealed, "PX", String(Math.ceil(ttlMs))]);
  }

  async lock(address: string, fencing: string, ttlMs: number): Promise<boolean> {
    const reply = await this.send<string | null>([
      "SET",
      this.key(address, "lock"),
      fencing,
      "NX",
      "PX",
      String(Math.ceil(ttlMs)),
    ]);
    return reply === "OK";
  }

  async unlock(address: string, fencing: string): Promise<void> {
    await this.send(["EVAL", UNLOCK_SCRIPT, "1", this.key(address, "lock"), fencing]);
  }

  async throttle(address: string, record: string, ttlMs: number): Promise<void> {
    await this.send(["SET", this.key(address, "throttle"), record, "PX", String(Math.ceil(ttlMs))]);
  }
}

/** Reads --shared-cache-password-file; a trailing newline (echo > file) is not part of the password. */
export function readPasswordFile(path: string): string {
  return readFileSync(path, "utf8").replace(/\r?\n$/, "");
}

async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => undefined),
    new Promise((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

function describe(e: unknown): string {
  const name = e instanceof Error ? e.name : typeof e;
  const message = e instanceof Error ? e.message : "";
  // Library messages name hosts and errnos, not credentials; cut them short anyway.
  return `${name}: ${message}`.slice(0, 200);
}
