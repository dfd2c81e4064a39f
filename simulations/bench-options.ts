/**
 * What every benchmark's run takes besides its own figures (where its organism keeps its
 * state, where its progress lines go, what stops it), and the one check of a numeric
 * option: a whole number in a range, refused with CLI_ERR_USAGE naming the flag, the range
 * and the value received.
 */
import { CellularError } from '../organism/wire/errors.ts';

export interface BenchRunOptions {
  /** Organism state for the run; reports go to `<stateDir>/reports/`. */
  stateDir: string;
  /** One line per step, for the operator. */
  progress: (line: string) => void;
  /** The organism's own lines (broker start, shutdown). */
  say?: (line: string) => void;
  signal?: AbortSignal;
}

export interface Range {
  /** Without it, only the upper bound is said (the flag parser already refuses a negative). */
  min?: number;
  max: number;
  /** Said after the range: `ms`, `seconds`. */
  unit?: string;
}

/** Throws CLI_ERR_USAGE unless `v` is a whole number in `range`: `--name must be from min to max[ unit], received v`. */
export function checkRange(name: string, v: number, { min, max, unit }: Range): void {
  if (Number.isInteger(v) && (min === undefined || v >= min) && v <= max) return;
  const bounds = min === undefined ? `at most ${max}` : `from ${min} to ${max}`;
  throw new CellularError('CLI_ERR_USAGE', `--${name} must be ${bounds}${unit ? ` ${unit}` : ''}, received ${v}`);
}
