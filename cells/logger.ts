/**
 * The logger interface cells and tools are given (pino's shape), so a test or a
 * simulation can inject its own. Cells log JSON lines to their file in the state dir.
 */
import { pino } from 'pino';

export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

/** A pino logger writing JSON lines to `file` (created with its directory). */
export function fileLogger(file: string, bindings: Record<string, unknown>): Logger & { flush(): void } {
  const dest = pino.destination({ dest: file, mkdir: true, sync: false });
  const log = pino({ base: bindings, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  return Object.assign(log, { flush: () => dest.flushSync() });
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
