/**
 * Structured logs (pino). Every line and every child's bindings pass through `redactSensitive`,
 * which censors every field under which a token, secret, assertion or key could travel, three
 * levels down (the depth we log at). The first line of defence is still not to log such values at
 * all.
 *
 * Not pino's own `redact`: with wildcard paths (`*.token`, `*.*.token`) it runs fast-redact over
 * every top-level field of every line, ~40 µs a line here, and the controller logs a line per
 * request that becomes Ready (10^5 at a cold start). One walk over the few keys a line has costs
 * about 1 µs and censors the same fields.
 */
import { createRequire } from "node:module";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";

export type { Logger };

const SENSITIVE: ReadonlySet<string> = new Set([
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
]);

const CENSOR = "[redacted]";

/**
 * `value` with every sensitive field censored, at its top level and `levels - 1` levels below
 * (objects and arrays; Errors are left to pino's err serializer). The very same object when it has
 * none, so a line without secrets is not copied.
 */
export function redactSensitive<T>(value: T, levels = 3): T {
  if (levels <= 0 || typeof value !== "object" || value === null || value instanceof Error) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const r = redactSensitive(v, levels - 1);
      if (r !== v) (copy ??= value.slice())[i] = r;
    }
    return (copy ?? value) as T;
  }
  const obj = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key in obj) {
    if (!Object.hasOwn(obj, key)) continue;
    const v = obj[key];
    if (v === undefined) continue;
    const r = SENSITIVE.has(key) ? CENSOR : redactSensitive(v, levels - 1);
    if (r !== v) (copy ??= { ...obj })[key] = r;
  }
  return (copy ?? value) as T;
}

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
    base: { name: "apptoken-operator" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      // "level":"warn", not pino's "level":40: log pipelines and people filter on the name.
      level: (label: string) => ({ level: label }),
      log: (obj: Record<string, unknown>) => redactSensitive(obj),
      bindings: (bindings: pino.Bindings) => redactSensitive(bindings),
    },
  };
  const prettyStream = pretty && !opts.destination ? loadPrettyPrinter() : undefined;
  const logger = prettyStream
    ? pino(base, prettyStream)
    : opts.destination
      ? pino(base, opts.destination as pino.DestinationStream)
      : // Written synchronously, as controller-runtime's zap logger does: a line is out before the
        // next one starts and a crash loses none, and it costs ~2 µs of CPU a line against ~35 µs
        // for an asynchronous write through the thread pool.
        pino(base, pino.destination({ dest: 1, sync: true }));
  return redactingChildren(logger);
}

/**
 * pino applies `formatters.bindings` to the root's bindings only, so a child's bindings are censored
 * here: every child (and its children, which inherit this `child`) binds the censored copy.
 */
function redactingChildren(logger: Logger): Logger {
  const child = logger.child;
  logger.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSensitive(bindings), options);
  } as Logger["child"];
  return logger;
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
