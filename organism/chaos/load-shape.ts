/**
 * Load shapes: the offered request rate as a function of time. Pure, so a test can check
 * them and a benchmark can replay the same trace through a model of another controller.
 */
import { CellularError } from '../wire/errors.ts';

export const SHAPES = ['constant', 'step', 'ramp', 'spike'] as const;
export type ShapeName = (typeof SHAPES)[number];

export interface Shape {
  name: ShapeName;
  /** Base rate, requests per second. */
  rate: number;
  /** Peak rate (step, ramp, spike), requests per second. */
  peak: number;
  /** Length of the run, ms. */
  durationMs: number;
}

/**
 * Offered rate at `t` ms into the run:
 * - constant: `rate` throughout;
 * - step: `rate` for the first third, `peak` for the middle third, `rate` again;
 * - ramp: from `rate` to `peak`, linearly;
 * - spike: `rate`, with `peak` for the middle tenth.
 */
export function rateAt(shape: Shape, t: number): number {
  const { rate, peak, durationMs: d } = shape;
  if (t < 0 || t >= d) return 0;
  switch (shape.name) {
    case 'constant':
      return rate;
    case 'step':
      return t >= d / 3 && t < (2 * d) / 3 ? peak : rate;
    case 'ramp':
      return rate + ((peak - rate) * t) / d;
    case 'spike':
      return t >= 0.45 * d && t < 0.55 * d ? peak : rate;
  }
}

/**
 * Arrival times (ms from the start) of an open-loop source following the shape: the n-th
 * request goes out when the integral of the rate reaches n. Deterministic, so runs compare.
 */
export function* arrivals(shape: Shape, stepMs = 1): Generator<number> {
  let owed = 0;
  for (let t = 0; t < shape.durationMs; t += stepMs) {
    owed += (rateAt(shape, t) * stepMs) / 1000;
    // The epsilon: summing thousands of fractions drifts below the whole request that is owed.
    while (owed >= 1 - 1e-9) {
      owed -= 1;
      yield t;
    }
  }
}

/** Checks a shape with messages that name the option, as the CLI reports them. */
export function validateShape(shape: Shape): Shape {
  const bad = (option: string, expected: string, value: unknown) =>
    new CellularError('CLI_ERR_USAGE', `--${option} must be ${expected}, received ${JSON.stringify(value)}`);
  if (!SHAPES.includes(shape.name)) throw bad('shape', `one of ${SHAPES.join(', ')}`, shape.name);
  if (!Number.isFinite(shape.rate) || shape.rate < 0 || shape.rate > 100_000) throw bad('rate', 'a number of requests per second from 0 to 100000', shape.rate);
  if (!Number.isFinite(shape.peak) || shape.peak < 0 || shape.peak > 100_000) throw bad('peak', 'a number of requests per second from 0 to 100000', shape.peak);
  if (!Number.isInteger(shape.durationMs) || shape.durationMs < 100 || shape.durationMs > 3_600_000) {
    throw bad('duration', 'from 0.1 to 3600 seconds', shape.durationMs / 1000);
  }
  return shape;
}
