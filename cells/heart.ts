/**
 * The heart: the main thread's side of the pacemaker. It starts the pacemaker thread
 * (which pulses over its own NATS connection), ticks the main-thread heartbeat into shared
 * memory, and forwards state changes. The cell's entry point starts it before it loads the
 * rest of the cell, so the pacemaker thread boots while the main thread is still importing:
 * time to first pulse is how fast a tissue can grow.
 */
import { onBeat, type PhasedTimer } from '../organism/kernel/phase.ts';
import { Worker } from 'node:worker_threads';
import { genomeHash } from '../organism/kernel/genome/index.ts';
import { SharedSequence } from '../organism/kernel/hormone.ts';
import { Namespace } from '../organism/kernel/namespace.ts';
import type { CellState, PulseBody } from '../organism/kernel/vocabulary.ts';
import { fillPulse } from './metabolism.ts';
import type { BirthPacket } from './birth-packet.ts';
import type { PacemakerCommand, PacemakerData } from './pacemaker.ts';
import { WorkMeter } from './work-meter.ts';
import type { FaultKind } from './immune/faults.ts';

/**
 * How often the main thread proves it is not blocked, and the resolution of its
 * event-loop delay, while it has work. Idle, it ticks once an interval on the shared beat
 * phase (organism/kernel/phase.ts), in the same wakeup as the rest of its periodic work:
 * an idle cell's cost is its wakeups, and cells are many. (Lag counts only while there is
 * work: metabolism.ts.)
 */
export const TICK_MS = 50;

/** Work at which a tissue counts as full, until the tissue says otherwise. */
export const DEFAULT_CAPACITY = 16;

export type HeartState = { state: 'beating' } | { state: 'stopped' } | { state: 'failed'; error: string };

export class Heart {
  readonly work: WorkMeter;
  readonly seq: SharedSequence;
  #worker: Worker;
  #beat: PhasedTimer;
  #fast: NodeJS.Timeout | undefined;
  #state: HeartState = { state: 'beating' };
  #onFailure: ((error: string) => void) | undefined;
  #stopping: Promise<void> | undefined;
  readonly #template: PacemakerData['pulse'];
  #bodyState: CellState = 'alive';
  #url: string | null = null;
  #capacity = DEFAULT_CAPACITY;

  /**
   * `fault` (tests and simulations only, from the command line: cells/immune/faults.ts) makes
   * the pulses lie (`liar`: 100 % CPU) or carry another code hash (`tamper`).
   */
  constructor(packet: BirthPacket, pacemakerUrl: URL = new URL('./pacemaker.js', import.meta.url), fault?: FaultKind) {
    this.work = new WorkMeter();
    this.seq = new SharedSequence();
    const intervalMs = packet.genome.limits.pulseIntervalMs;
    // Event-loop delay: how late each tick fires past when it was due, the worst over the
    // last pulse interval. Date.now() throughout: the pacemaker compares it with its own
    // clock (performance.now() origins differ per thread).
    let worst = 0;
    let windowStart = Date.now();
    const record = (late: number, nextDue: number) => {
      const now = Date.now();
      // Open a new window first, so a block that just ended is reported, not wiped.
      if (now - windowStart >= intervalMs) {
        worst = 0;
        windowStart = now;
      }
      worst = Math.max(worst, late);
      this.work.heartbeat(now, Math.round(worst * 10) / 10, nextDue);
    };
    const busy = () => this.work.inflight > 0 || this.work.queued > 0;
    // Fast ticks while there is work; they stop themselves once it is done.
    let fastDue = 0;
    const fastTick = () => {
      const now = Date.now();
      const late = Math.max(0, now - fastDue);
      fastDue = now + TICK_MS;
      if (!busy()) {
        clearInterval(this.#fast);
        this.#fast = undefined;
        record(late, this.#beat.due + TICK_MS);
        return;
      }
      record(late, fastDue + TICK_MS);
    };
    const goFast = () => {
      if (this.#fast || this.#state.state !== 'beating') return;
      fastDue = Date.now() + TICK_MS;
      this.work.heartbeat(Date.now(), worst, fastDue + TICK_MS);
      this.#fast = setInterval(fastTick, TICK_MS);
      this.#fast.unref();
    };
    this.work.onBusy = goFast;
    this.#beat = onBeat(intervalMs, (due) => {
      if (busy()) goFast();
      // The next promise: the next beat, with a tick's slack (timers fire a little late).
      if (!this.#fast) record(Math.max(0, Date.now() - due), this.#beat.due + TICK_MS);
    });
    this.work.heartbeat(Date.now(), 0, this.#beat.due + TICK_MS);
    const data: PacemakerData = {
      access: { servers: packet.servers, token: packet.token, ...(packet.tlsCa ? { tls: { ca: packet.tlsCa } } : {}) },
      jwt: packet.jwt ?? null,
      subject: new Namespace(packet.organism).hormone('pulse', packet.cell.id),
      organism: packet.organism,
      id: packet.cell.id,
      seedHex: packet.cell.seed,
      seqBuffer: this.seq.buffer,
      workBuffer: this.work.buffer,
      intervalMs,
      maxBytes: packet.genome.limits.hormoneMaxBytes,
      tickMs: TICK_MS,
      capacity: DEFAULT_CAPACITY,
      pulse: {
        tissue: packet.cell.tissue, host: packet.cell.host, pid: process.pid, parent: packet.cell.parent,
        born: packet.cell.born, genome: genomeHash(packet.genome), code: '', url: null,
      },
      lie: fault === 'liar',
      tamper: fault === 'tamper',
    };
    this.#template = data.pulse;
    this.#worker = new Worker(pacemakerUrl, { workerData: data });
    this.#worker.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'error') this.#fail(`pacemaker failed: ${m.message}`);
    });
    this.#worker.on('error', (e) => this.#fail(`pacemaker crashed: ${e.message}`));
    this.#worker.on('exit', (code) => this.#fail(`pacemaker exited (code ${code})`)); // a no-op once stopped
  }

  get state(): HeartState {
    return this.#state;
  }

  /** Called once if the pacemaker dies: a cell without a pulse must not linger. */
  onFailure(listener: (error: string) => void): void {
    this.#onFailure = listener;
    if (this.#state.state === 'failed') listener(this.#state.error);
  }

  #fail(error: string): void {
    if (this.#state.state !== 'beating') return;
    this.#state = { state: 'failed', error };
    this.#onFailure?.(error);
  }

  #tell(cmd: PacemakerCommand): void {
    if (this.#state.state === 'beating') this.#worker.postMessage(cmd);
  }

  setState(state: CellState): void {
    this.#bodyState = state;
    this.#tell({ type: 'state', state });
  }

  setUrl(url: string | null): void {
    this.#url = url;
    this.#tell({ type: 'url', url });
  }

  /** A stem cell that differentiated pulses as its new tissue from now on. */
  setTissue(tissue: string): void {
    this.#template.tissue = tissue;
    this.#tell({ type: 'tissue', tissue });
  }

  setCapacity(capacity: number): void {
    this.#capacity = capacity;
    this.#tell({ type: 'capacity', capacity });
  }

  /**
   * A pulse for the main thread to publish at birth when the pacemaker has not pulsed yet
   * (its thread is often still loading): the census and a growing tissue should not wait.
   * CPU is the average since the process started.
   */
  firstPulse(): PulseBody | undefined {
    if (this.work.pulses > 0) return undefined;
    return this.pulseNow();
  }

  /** A pulse body as of now, measured on the main thread (the first pulse; the `flood` fault's copies). */
  pulseNow(): PulseBody {
    const used = process.cpuUsage();
    const body: PulseBody = {
      ...this.#template, url: this.#url, state: this.#bodyState, load: 0, demand: 0, cpu: 0, cpuMs: 0, rss: 0, lag: 0,
      work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, n: 0,
    };
    fillPulse(body, {
      cpu: ((used.user + used.system) / 1000 / Math.max(1, process.uptime() * 1000)) * 100,
      cpuMs: (used.user + used.system) / 1000,
      rss: process.memoryUsage.rss(),
      lag: this.work.lag,
      work: this.work.counters(),
      capacity: this.#capacity,
      newborn: true, // the first pulse measures the birth itself
    });
    return body;
  }

  /** Stops pulsing and waits (≤ 1 s) until the last pulse is flushed. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#beat.stop();
      clearInterval(this.#fast);
      this.#fast = undefined;
      this.work.onBusy = undefined;
      const worker = this.#worker;
      const stopped = new Promise<void>((resolve) => {
        worker.on('message', (m: { type: string }) => m.type === 'stopped' && resolve());
        worker.once('exit', () => resolve());
      });
      if (this.#state.state === 'beating') worker.postMessage({ type: 'stop' } satisfies PacemakerCommand);
      this.#state = { state: 'stopped' };
      await Promise.race([stopped, new Promise((r) => setTimeout(r, 1_000).unref())]);
      await worker.terminate();
    })();
    return this.#stopping;
  }
}
