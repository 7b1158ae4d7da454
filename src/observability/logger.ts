/**
 * Structured logs (pino). Redaction paths are compiled once at construction; they cover every
 * field name under which a token, secret, assertion or key could travel, at any depth we log.
 * The first line of defence is still not to log such values at all.
 */
import { pino, type Logger } from "pino";

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
  };
  if (pretty && !opts.destination) {
    try {
      // pino-pretty is a devDependency: present for `make dev`, absent from the production image.
      return pino({
        ...base,
        transport: {
          target: "pino-pretty",
          options: { translateTime: "SYS:HH:MM:ss", ignore: "pid,hostname,name" },
        },
      });
    } catch {
      /* fall back to JSON */
    }
  }
  return opts.destination ? pino(base, opts.destination as pino.DestinationStream) : pino(base);
}
