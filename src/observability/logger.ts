/**
 * Structured logs (pino). Redaction paths are compiled once at construction; they cover every
 * field name under which a token, secret, assertion or key could travel, at any depth we log.
 * The first line of defence is still not to log such values at all.
 */
import { createRequire } from "node:module";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";

export type { Logger };

const SENSITIVE = [
  "accessToken",
  "access_token",
  "token",
  "clientSecret",
  "client_secret",
  "client_assertion",
  "assertion",
  "privateKey",
  "keyPem",
  "password",
  "authorization",
  "Authorization",
  "data",
  "stringData",
];

export const REDACT_PATHS = [
  ...SENSITIVE,
  ...SENSITIVE.map((k) => `*.${k}`),
  ...SENSITIVE.map((k) => `*.*.${k}`),
  'req.headers["authorization"]',
];

export interface LoggerOptions {
  level: string;
  format: "json" | "pretty" | "auto";
  /** Where JSON goes; tests pass a stream to inspect output. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const pretty = opts.format === "pretty" || (opts.format === "auto" && process.stdout.isTTY === true);
  const base = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { name: "apptoken-operator" },
    timestamp: pino.stdTimeFunctions.isoTime,
    // "level":"warn", not pino's "level":40: log pipelines and people filter on the name.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (pretty && !opts.destination) {
    const prettyStream = loadPrettyPrinter();
    if (prettyStream) return pino(base, prettyStream);
  }
  return opts.destination ? pino(base, opts.destination as pino.DestinationStream) : pino(base);
}

/**
 * pino-pretty in this process, as a plain destination stream, when it is installed (a
 * devDependency: there for `make dev`, not in the image). Not a pino transport: those start a
 * worker thread from a file inside pino's package, which the bundled dist/main.js does not have.
 */
function loadPrettyPrinter(): pino.DestinationStream | undefined {
  try {
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
    return pretty({ translateTime: "SYS:HH:MM:ss", ignore: "pid,hostname,name", sync: true });
  } catch {
    return undefined; // not installed: JSON
  }
}
