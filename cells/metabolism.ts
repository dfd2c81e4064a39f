/**
 * Load in [0,1] from what a cell measures of itself. The highest pressure wins: a cell
 * is as loaded as its most exhausted resource (one core of CPU, a blocked event loop,
 * or a full work queue).
 */
import type { PulseBody, WorkCounters } from '../organism/kernel/vocabulary.ts';

/** Event-loop delay at which a cell counts as saturated: requests already wait this long. */
export const LAG_SATURATION_MS = 100;

export interface LoadInputs {
  /** CPU percent of one core. */
  cpu: number;
  /** Event-loop delay, ms. */
  lag: number;
  /** Requests in flight: the mean over the interval when known, else the count now. */
  inflight: number;
  queued: number;
  /** Work at which the tissue counts as full. */
  capacity: number;
}

/**
 * Demand: the highest pressure in cells' worth of work (≤ 1e6). Only work is uncapped: by
 * Little's law it measures how much more a cell is asked than it can hold. CPU and lag say
 * a cell is full, not by how much: a lagging cell on a starved host is not three cells of
 * work, and counting it so would grow a tissue on a host that has no cores left.
 */
export function computeDemand(m: LoadInputs): number {
  const cpu = Math.min(1, m.cpu / 100);
  const work = (m.inflight + m.queued) / Math.max(1, m.capacity);
  // Lag is the cell's own pressure only while it has work: an idle cell that lags is starved
  // by its host (siblings being born, another process), and another cell would not help it.
  // Seen in CI: an idle echo cell, while five others booted on two cores, read as load 1.
  const lag = work > 0 ? Math.min(1, m.lag / LAG_SATURATION_MS) : 0;
  const demand = Math.max(cpu, lag, work);
  return Number.isFinite(demand) ? Math.min(1e6, Math.max(0, Math.round(demand * 1000) / 1000)) : 1e6;
}

/** Load: demand capped at 1 (a cell cannot be more than fully loaded). */
export function computeLoad(m: LoadInputs): number {
  return Math.min(1, computeDemand(m));
}

/**
 * A newborn's first intervals measure its birth (module loading, connecting), not its work:
 * during them load counts work only, so a tissue does not look stressed because it grew.
 */
export const STARTUP_GRACE_PULSES = 2;
/** …and at least this long: on a busy 2-core host a birth takes up to a second (measured). */
export const STARTUP_GRACE_MIN_MS = 1_500;

export function inStartupGrace(ageMs: number, intervalMs: number): boolean {
  return ageMs < Math.max(STARTUP_GRACE_PULSES * intervalMs, STARTUP_GRACE_MIN_MS);
}

export interface Measures {
  /** CPU percent of one core. */
  cpu: number;
  /** CPU time used since the process started, ms. */
  cpuMs: number;
  /** Resident set size, bytes. */
  rss: number;
  /** Event-loop delay, ms. */
  lag: number;
  work: WorkCounters;
  /** Mean requests in flight over the interval (Little's law); without it, the count now. */
  concurrency?: number;
  capacity: number;
  /** True in the cell's first STARTUP_GRACE_PULSES intervals: CPU and lag are reported, not counted as load. */
  newborn?: boolean;
}

/** Writes one interval's measures into a pulse body (every pulse, and the `flood` fault's copies). */
export function fillPulse(body: PulseBody, m: Measures): void {
  body.cpu = Math.round(m.cpu * 10) / 10;
  body.cpuMs = Math.round(m.cpuMs);
  body.rss = Math.round(m.rss);
  body.lag = Math.round(m.lag * 10) / 10;
  body.work = m.work;
  const inputs = {
    cpu: m.newborn ? 0 : m.cpu, lag: m.newborn ? 0 : m.lag, inflight: m.concurrency ?? m.work.inflight, queued: m.work.queued, capacity: m.capacity,
  };
  body.demand = computeDemand(inputs);
  body.load = Math.min(1, body.demand);
}
