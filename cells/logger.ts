/**
 * The logger interface cells and tools are given (pino's shape), so a test or a
 * simulation can inject its own. Cells log JSON lines to their file in the state dir.
 */
import type { Logger as PinoLogger } from 'pino';

export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

type Level = keyof Logger;

export interface FileLogger extends Logger {
  /** Resolves once pino is loaded and every earlier line handed to it. */
  readonly ready: Promise<void>;
  /** Writes what is buffered, synchronously (call before exiting). */
  flush(): void;
}

/**
 * A pino logger writing JSON lines to `file` (created with its directory). pino loads in
 * the background (≈ 15 ms of imports a cell need not wait for before its birth); lines
 * logged meanwhile are queued, in order.
 */
export function fileLogger(file: string, bindings: Record<string, unknown>): FileLogger {
  const queue: [Level, object | string, string | undefined][] = [];
  let real: PinoLogger | undefined;
  let flushSync: (() => void) | undefined;
  const ready = import('pino').then(({ pino }) => {
    const dest = pino.destination({ dest: file, mkdir: true, sync: false });
    real = pino({ base: bindings, timestamp: pino.stdTimeFunctions.isoTime }, dest);
    flushSync = () => dest.flushSync();
    for (const [level, obj, msg] of queue) real[level](obj as object, msg);
    queue.length = 0;
  }).catch((e: unknown) => {
    // No log file is no reason to die; say it where the maker looks (the cell's stderr log).
    process.stderr.write(`logger unavailable (${e instanceof Error ? e.message : String(e)}); logging to stderr\n`);
    for (const [level, obj, msg] of queue.splice(0)) process.stderr.write(`${JSON.stringify({ level, ...bindings, obj, msg })}\n`);
  });
  const at = (level: Level) => (obj: object | string, msg?: string) => {
    if (real) real[level](obj as object, msg);
    else queue.push([level, obj, msg]);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), ready, flush: () => flushSync?.() };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
