/**
 * Load in [0,1] from what a cell measures of itself. The highest pressure wins: a cell
 * is as loaded as its most exhausted resource (one core of CPU, a blocked event loop,
 * or a full work queue).
 */
import type { PulseBody, WorkCounters } from '../organism/vocabulary.ts';

/** Event-loop delay at which a cell counts as saturated: requests already wait this long. */
export const LAG_SATURATION_MS = 100;

export interface LoadInputs {
  /** CPU percent of one core. */
  cpu: number;
  /** Event-loop delay, ms. */
  lag: number;
  inflight: number;
  queued: number;
  /** Work at which the tissue counts as full. */
  capacity: number;
}

export function computeLoad(m: LoadInputs): number {
  const cpu = m.cpu / 100;
  const lag = m.lag / LAG_SATURATION_MS;
  const work = (m.inflight + m.queued) / Math.max(1, m.capacity);
  const load = Math.max(cpu, lag, work);
  return Number.isFinite(load) ? Math.min(1, Math.max(0, Math.round(load * 1000) / 1000)) : 1;
}

/**
 * A newborn's first intervals measure its birth (module loading, connecting), not its work:
 * during them load counts work only, so a tissue does not look stressed because it grew.
 */
export const STARTUP_GRACE_PULSES = 2;

export interface Measures {
  /** CPU percent of one core. */
  cpu: number;
  /** Resident set size, bytes. */
  rss: number;
  /** Event-loop delay, ms. */
  lag: number;
  work: WorkCounters;
  capacity: number;
  /** True in the cell's first STARTUP_GRACE_PULSES intervals: CPU and lag are reported, not counted as load. */
  newborn?: boolean;
}

/** Writes one interval's measures into a pulse body (shared by the pacemaker and the first pulse). */
export function fillPulse(body: PulseBody, m: Measures): void {
  body.cpu = Math.round(m.cpu * 10) / 10;
  body.rss = Math.round(m.rss);
  body.lag = Math.round(m.lag * 10) / 10;
  body.work = m.work;
  body.load = computeLoad({
    cpu: m.newborn ? 0 : m.cpu, lag: m.newborn ? 0 : m.lag, inflight: m.work.inflight, queued: m.work.queued, capacity: m.capacity,
  });
}
