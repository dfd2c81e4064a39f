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

/** The stride in intervals (1 when not set). */
function strideOf(c: Cadence): number {
  return Math.max(1, c.calmStride ?? 1);
}

/** The longest time between two beats, pulses of a calm cell, or digests of a calm host, ms. */
export function strideMs(c: Cadence): number {
  return c.pulseIntervalMs * strideOf(c);
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
  return Math.floor(now / c.pulseIntervalMs) % strideOf(c) === 0;
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
 * While digests come, how many strides apart the fallback looks whether one came: each look
 * is a wakeup, and the digest's own wakeup does the beat's work (and a calm cell's pulse).
 */
export const FALLBACK_STRIDES = 4;

/**
 * The beat of one process: the periodic work of a cell's main thread, run when its own
 * host's digest arrives, or any host's digest with news (the census has just moved: that
 * wakeup does it all; a calm cell pulses in it too), or, when no digest came within the last
 * stride (grow gone or starved, or a test's census fed by pulses), on the `pulse` phase of
 * the clock, every stride, from the first fallback look that finds none (within
 * FALLBACK_STRIDES strides) until digests come again. Every fallback look is a wakeup even
 * when it has nothing to do (and a cancelled Node timer still wakes the loop when it was
 * due), so while digests come it looks only every few strides, on the pulse's instant, when a
 * cell with work is awake anyway to pulse.
 */
class Beat {
  readonly #fns = new Set<(due: number) => void>();
  #last = 0;
  #lastFired = 0;
  /** Looks every FALLBACK_STRIDES strides, while anyone listens. */
  #sparse: PhasedTimer | undefined;
  /** Beats every stride, only while no digest comes. */
  #dense: PhasedTimer | undefined;
  readonly #intervalMs: number;
  readonly #strideMs: number;

  constructor(c: Cadence) {
    this.#intervalMs = c.pulseIntervalMs;
    this.#strideMs = strideMs(c);
  }

  /** When the next beat is due at the latest, while digests come (or the dense fallback runs). */
  get due(): number {
    return Math.max(this.#last + this.#strideMs, this.#dense?.due ?? 0);
  }

  on(fn: (due: number) => void): PhasedTimer {
    this.#fns.add(fn);
    // On the stride's instants only (the pulse's phase of a longer interval, in its first stride).
    this.#sparse ??= everyPhase(this.#strideMs * FALLBACK_STRIDES, (PHASE.pulse * this.#intervalMs) / (this.#strideMs * FALLBACK_STRIDES), (due) => this.#fallback(due));
    const beat = this;
    return {
      get due() {
        return beat.due;
      },
      stop: () => {
        this.#fns.delete(fn);
        if (this.#fns.size === 0) {
          this.#sparse?.stop();
          this.#sparse = undefined;
          this.#dense?.stop();
          this.#dense = undefined;
        }
      },
    };
  }

  /**
   * A fallback look. Digests coming (one within the last stride): nothing to do, and the
   * dense fallback, if it ran, stops. None: the beat runs now, and on every stride's instant
   * until a digest comes again. (The sparse and dense looks share an instant every few
   * strides: the second finds the first's beat and does nothing.)
   */
  #fallback(due: number): void {
    const now = Date.now();
    const recent = this.#strideMs - this.#intervalMs * 0.1;
    if (now - this.#lastFired < recent) {
      this.#dense?.stop();
      this.#dense = undefined;
      return;
    }
    if (now - this.#last < recent) return;
    this.#dense ??= everyPhase(this.#strideMs, (PHASE.pulse * this.#intervalMs) / this.#strideMs, (d) => this.#fallback(d));
    this.#run(due);
  }

  /**
   * Runs the beat now (a digest arrived), at most once per half interval of digest
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
const beatKey = (c: Cadence) => `${c.pulseIntervalMs}/${strideOf(c)}`;

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
