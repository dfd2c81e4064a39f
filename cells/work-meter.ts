/**
 * A cell's own work counters, kept in shared memory so the pacemaker thread can read
 * them even while the main thread is busy (a busy cell still reports its load).
 */

const HANDLED = 0;
const INFLIGHT = 1;
const QUEUED = 2;
const ERRORS = 3;
/** Main-thread heartbeat (ms since the epoch), written every tick: the pacemaker derives blocking from it. */
const TICK = 4;
/** Main-thread event-loop delay: the worst tick delay over the last interval, ms. */
const LAG = 5;
/** Pulses the pacemaker has published. */
const PULSES = 6;
const SLOTS = 7;

export class WorkMeter {
  readonly buffer: SharedArrayBuffer;
  readonly #a: Float64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(SLOTS * 8);
    this.#a = new Float64Array(this.buffer);
  }

  /** Marks one unit of work as started; call the returned function when it ends. */
  begin(): (failed?: boolean) => void {
    this.#a[INFLIGHT]! += 1;
    let done = false;
    return (failed = false) => {
      if (done) return;
      done = true;
      this.#a[INFLIGHT]! -= 1;
      this.#a[HANDLED]! += 1;
      if (failed) this.#a[ERRORS]! += 1;
    };
  }

  setQueued(n: number): void {
    this.#a[QUEUED] = n;
  }

  heartbeat(now: number, lagMs: number): void {
    this.#a[TICK] = now;
    this.#a[LAG] = lagMs;
  }

  countPulse(): void {
    this.#a[PULSES]! += 1;
  }

  get pulses(): number {
    return this.#a[PULSES]!;
  }

  get handled(): number {
    return this.#a[HANDLED]!;
  }
  get inflight(): number {
    return this.#a[INFLIGHT]!;
  }
  get queued(): number {
    return this.#a[QUEUED]!;
  }
  get errors(): number {
    return this.#a[ERRORS]!;
  }
  get lastTick(): number {
    return this.#a[TICK]!;
  }
  get lag(): number {
    return this.#a[LAG]!;
  }

  counters(): { handled: number; inflight: number; queued: number; errors: number } {
    return { handled: this.handled, inflight: this.inflight, queued: this.queued, errors: this.errors };
  }
}
