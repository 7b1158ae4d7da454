/**
 * The logging surface src/kube needs: pino's `(object, message)` shape, so main.ts passes a pino
 * child logger as is, and tests pass nothing.
 */
export interface KubeLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const noop = (): void => undefined;
export const silentLogger: KubeLogger = { debug: noop, info: noop, warn: noop, error: noop };
