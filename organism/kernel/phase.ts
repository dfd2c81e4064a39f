/**
 * Periodic work on a shared phase of the wall clock. An idle cell's cost is its wakeups
 * (each ≈ 0.1–0.4 ms of CPU here, more than the work it does: docs/benchmarks.md), so every
 * cell pulses at the same instant of each interval, every grow publishes its digest a
 * quarter interval later, and every cell's main thread does all its periodic work (the
 * heartbeat, the census clock, the immune review, homeostasis) at one later instant: the
 * timers of one process that fall due at the same millisecond fire in one wakeup, and the
 * pulses a cell watches arrive together.
 */

/** Where in each interval each kind of periodic work happens, as a fraction of the interval. */
export const PHASE = {
  /** Cells publish their pulses; a cell whose host's digest did not come runs its beat. */
  pulse: 0,
  /** grow publishes its host's digest (the pulses of its cells have arrived). */
  digest: 0.25,
} as const;

/**
 * The cadence of an organism: its interval, and the calm stride (`limits.calmStride`): a
 * calm cell pulses, and a host with no news digests, only on every `calmStride`th interval of
 * the wall clock (those whose start is a multiple of `calmStride × interval`), so all of
 * them still wake at the same instants. An idle cell's cost is its wakeups.
 */
export interface Cadence {
  pulseIntervalMs: number;
  /** @default 1 */
  calmStride?: number;
}

/** The longest time between two beats, pulses of a calm cell, or digests of a calm host, ms. */
export function strideMs(c: Cadence): number {
  return c.pulseIntervalMs * Math.max(1, c.calmStride ?? 1);
}

/**
 * What silence is forgiven beyond the thresholds counted in intervals: a calm cell's next
 * pulse, or a calm host's next digest, may come a stride after the last one, not an interval.
 */
export function strideSlackMs(c: Cadence): number {
  return strideMs(c) - c.pulseIntervalMs;
}

/** Whether `now` falls in an interval on which calm cells pulse and calm hosts digest. */
export function onStride(now: number, c: Cadence): boolean {
  return Math.floor(now / c.pulseIntervalMs) % Math.max(1, c.calmStride ?? 1) === 0;
}

/** The next time at or after `now` (+1 ms) that is `phase` of the way into an interval. */
export function nextPhase(now: number, intervalMs: number, phase: number): number {
  const offset = Math.round(intervalMs * phase);
  return Math.ceil((now + 1 - offset) / intervalMs) * intervalMs + offset;
}

export interface PhasedTimer {
  /** When the current run was due (ms since the epoch). */
  readonly due: number;
  stop(): void;
}

/**
 * Calls `fn(due)` at every `phase` of every `intervalMs` of the wall clock, from the next
 * one on, until stopped; unref'd. Drift-free: each run is scheduled from the clock, not
 * from the last run, so processes stay in phase with each other.
 */
export function everyPhase(intervalMs: number, phase: number, fn: (due: number) => void): PhasedTimer {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const state = { due: nextPhase(Date.now(), intervalMs, phase) };
  const arm = () => {
    if (stopped) return;
    timer = setTimeout(run, Math.max(0, state.due - Date.now()));
    timer.unref();
  };
  const run = () => {
    const due = state.due;
    state.due = nextPhase(Math.max(Date.now(), due), intervalMs, phase);
    arm();
    fn(due);
  };
  arm();
  return {
    get due() {
      return state.due;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * The beat of one process: the periodic work of a cell's main thread, run when its own
 * host's digest arrives, or any host's digest with news (the census has just moved: that
 * wakeup does it all), or, when no digest came within the last stride (grow gone, or a
 * test's census fed by pulses), on the `pulse` phase of the clock, on the stride. A cell wakes then anyway to pulse, and timers of one
 * process due at the same instant fire in one wakeup: a fallback at any other instant would
 * cost a wakeup every interval even when it has nothing to do (and a cancelled Node timer
 * still wakes the loop when it was due).
 */
class Beat {
  readonly #fns = new Set<(due: number) => void>();
  #last = 0;
  #lastFired = 0;
  #timer: PhasedTimer | undefined;
  readonly #intervalMs: number;
  readonly #strideMs: number;

  constructor(c: Cadence) {
    this.#intervalMs = c.pulseIntervalMs;
    this.#strideMs = strideMs(c);
  }

  /** When the next beat is due at the latest. */
  get due(): number {
    return Math.max(this.#last + this.#strideMs, this.#timer?.due ?? 0);
  }

  on(fn: (due: number) => void): PhasedTimer {
    this.#fns.add(fn);
    // On the stride's intervals only (the phase of a stride-long interval, in its first one).
    this.#timer ??= everyPhase(this.#strideMs, PHASE.pulse * this.#intervalMs / this.#strideMs, (due) => {
      // A digest beat within the last stride (its phase is later in each interval) did this one's work.
      if (Date.now() - this.#last < this.#strideMs - this.#intervalMs * 0.1) return;
      this.#run(due);
    });
    const beat = this;
    return {
      get due() {
        return beat.due;
      },
      stop: () => {
        this.#fns.delete(fn);
        if (this.#fns.size === 0) {
          this.#timer?.stop();
          this.#timer = undefined;
        }
      },
    };
  }

  /**
   * Runs the beat now (its host's digest arrived), at most once per half interval of digest
   * beats: a fallback beat just before (the digests coming back) does not hold it back, or
   * the beat would stay on the fallback's instant, before each digest, for good.
   */
  fire(): void {
    const now = Date.now();
    if (now - this.#lastFired < this.#intervalMs / 2 || this.#fns.size === 0) return;
    this.#lastFired = now;
    this.#run(now);
  }

  #run(due: number): void {
    this.#last = Date.now();
    for (const fn of [...this.#fns]) {
      try {
        fn(due);
      } catch {
        // Each subscriber guards its own work; one that throws must not stop the others.
      }
    }
  }
}

const beats = new Map<string, Beat>();
const beatKey = (c: Cadence) => `${c.pulseIntervalMs}/${Math.max(1, c.calmStride ?? 1)}`;

/** Calls `fn` on this process's beat for cadence `c` (see Beat). */
export function onBeat(c: Cadence, fn: (due: number) => void): PhasedTimer {
  const key = beatKey(c);
  let b = beats.get(key);
  if (!b) beats.set(key, (b = new Beat(c)));
  return b.on(fn);
}

/** A digest this process beats on arrived (its own host's, or one with news): run the beat for cadence `c` now. */
export function beatNow(c: Cadence): void {
  beats.get(beatKey(c))?.fire();
}
