/**
 * A cell's own work counters and main-thread heartbeat, read by the heart at each pulse.
 * (Shared memory: until issue 20 a pacemaker thread read them while the main thread worked.)
 */

const HANDLED = 0;
const INFLIGHT = 1;
const QUEUED = 2;
const ERRORS = 3;
/** Main-thread heartbeat (ms since the epoch), written every tick: the pulse derives blocking from it. */
const TICK = 4;
/** Main-thread event-loop delay: the worst tick delay over the last interval, ms. */
const LAG = 5;
/** ∫ inflight dt since birth, in request·ms (its slope is the mean concurrency: Little's law). */
const BUSY = 6;
/** When BUSY was last brought up to date, epoch ms with sub-ms precision (same origin in every thread). */
const BUSY_AT = 7;
/** When the main thread promises its next heartbeat (ms since the epoch): late past it is blocked. */
const DUE = 8;
const SLOTS = 9;

/** Epoch ms with sub-millisecond precision; performance.now() alone has a per-thread origin. */
export const preciseNow = (): number => performance.timeOrigin + performance.now();

export class WorkMeter {
  readonly buffer: SharedArrayBuffer;
  readonly #a: Float64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(SLOTS * 8);
    this.#a = new Float64Array(this.buffer);
  }

  /** Marks one unit of work as started; call the returned function when it ends. */
  begin(): (failed?: boolean) => void {
    this.#settle();
    this.#a[INFLIGHT]! += 1;
    if (this.#a[INFLIGHT] === 1) this.onBusy?.();
    let done = false;
    return (failed = false) => {
      if (done) return;
      done = true;
      this.#settle();
      this.#a[INFLIGHT]! -= 1;
      this.#a[HANDLED]! += 1;
      if (failed) this.#a[ERRORS]! += 1;
    };
  }

  /** Brings the busy integral up to now (before inflight changes). */
  #settle(): void {
    const now = preciseNow();
    const at = this.#a[BUSY_AT]! || now;
    this.#a[BUSY]! += this.#a[INFLIGHT]! * Math.max(0, now - at);
    this.#a[BUSY_AT] = now;
  }

  /** ∫ inflight dt up to `now` (request·ms), read by the heart without writing. */
  busyIntegral(now = preciseNow()): number {
    const at = this.#a[BUSY_AT]! || now;
    return this.#a[BUSY]! + this.#a[INFLIGHT]! * Math.max(0, now - at);
  }

  setQueued(n: number): void {
    this.#a[QUEUED] = n;
  }

  heartbeat(now: number, lagMs: number, dueAt?: number): void {
    this.#a[TICK] = now;
    this.#a[LAG] = lagMs;
    if (dueAt !== undefined) this.#a[DUE] = dueAt;
  }

  /** When the main thread's next heartbeat is due (0 if it never said). */
  get due(): number {
    return this.#a[DUE]!;
  }

  /** Called when work starts on an idle cell (inflight 0 → 1): the heart then ticks fast. */
  onBusy: (() => void) | undefined;

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
