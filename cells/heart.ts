/**
 * The heart: the cell's pulse, signed and sent from the main thread once an interval on the
 * organism's shared phase (organism/kernel/phase.ts), over the cell's own connection, from
 * its birth to its death. It also ticks the main-thread heartbeat that measures event-loop
 * delay (lag) while the cell has work.
 *
 * Until issue 20 a pacemaker worker thread with a NATS connection of its own pulsed, so a
 * cell whose main thread was stuck kept pulsing. That thread cost a third of an idle cell's
 * CPU and ≈ 13 MB of its memory, and every cell had two connections. A stuck main thread is
 * now seen by the one process that can look at it directly, its host's grow: a silent cell
 * whose process still runs (and is not stopped) is busy, not dead, and its lag grows with the
 * silence (Census `running`, organism/grow/organism.ts). Busy is still not dead.
 */
import { nextPhase, onBeat, onStride, PHASE, strideMs, type Cadence, type PhasedTimer } from '../organism/kernel/phase.ts';
import { genomeHash } from '../organism/kernel/genome/index.ts';
import { SharedSequence } from '../organism/kernel/hormone.ts';
import { OwnUsage } from '../organism/kernel/process-usage.ts';
import type { CellState, PulseBody } from '../organism/kernel/vocabulary.ts';
import { codeHash } from './code-hash.ts';
import { fillPulse, inStartupGrace } from './metabolism.ts';
import type { BirthPacket } from './birth-packet.ts';
import { preciseNow, WorkMeter } from './work-meter.ts';
import { tamperedHash, type FaultKind } from './immune/faults.ts';

/**
 * How often the main thread measures its event-loop delay while it has work. Idle, it
 * ticks once an interval on the shared beat phase (organism/kernel/phase.ts), in the same
 * wakeup as the rest of its periodic work: an idle cell's cost is its wakeups, and cells are
 * many. (Lag counts only while there is work: metabolism.ts.)
 */
export const TICK_MS = 50;

/** Work at which a tissue counts as full, until the tissue says otherwise. */
export const DEFAULT_CAPACITY = 16;

export type HeartState = { state: 'beating' } | { state: 'stopped' } | { state: 'failed'; error: string };

export class Heart {
  readonly work: WorkMeter;
  readonly seq: SharedSequence;
  readonly #intervalMs: number;
  /** A calm cell's time between pulses (limits.calmStride intervals). */
  readonly #strideMs: number;
  readonly #cadence: Cadence;
  /** Whether the last pulse was a calm one, in a beat (not on the pulse timer). */
  #lastPulseCalm = false;
  #beat: PhasedTimer;
  #pulseTimer: NodeJS.Timeout | undefined;
  /** When the next pulse is due (0: not pulsing; Infinity: calm, on the beat). */
  #pulseDue = 0;
  #lastPulseAt = 0;
  /** Work handled as of the pulse before the last one, and as of the last one. */
  #handled = { before: -1, last: 0 };
  #fast: NodeJS.Timeout | undefined;
  #state: HeartState = { state: 'beating' };
  #onFailure: ((error: string) => void) | undefined;
  #send: ((body: PulseBody) => void) | undefined;
  #failures = 0;
  readonly #code: Promise<void>;
  /** The pulse, updated in place every interval (its identity fields never change but tissue and url). */
  readonly #body: PulseBody;
  #capacity = DEFAULT_CAPACITY;
  readonly #usage = new OwnUsage();
  /** Mean concurrency over each interval, from the slope of the busy integral. */
  #busyAt: number;
  #busyIntegral: number;
  readonly #fault: FaultKind | undefined;
  /** The `liar` fault keeps its story straight: its CPU time grows as if it used a full core. */
  #told: { cpuMs: number; at: number } | undefined;

  /**
   * `fault` (tests and simulations only, from the command line: cells/immune/faults.ts) makes
   * the pulses lie (`liar`: 100 % CPU) or carry another code hash (`tamper`).
   */
  constructor(packet: BirthPacket, fault?: FaultKind) {
    this.work = new WorkMeter();
    this.seq = new SharedSequence();
    this.#fault = fault;
    const intervalMs = packet.genome.limits.pulseIntervalMs;
    this.#intervalMs = intervalMs;
    this.#strideMs = strideMs(packet.genome.limits);
    this.#cadence = packet.genome.limits;
    // Event-loop delay: how late each tick fires past when it was due, the worst over the
    // last pulse interval.
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
      this.#hurry();
      if (this.#fast || this.#state.state !== 'beating') return;
      fastDue = Date.now() + TICK_MS;
      this.work.heartbeat(Date.now(), worst, fastDue + TICK_MS);
      this.#fast = setInterval(fastTick, TICK_MS);
      this.#fast.unref();
    };
    this.work.onBusy = goFast;
    this.#beat = onBeat(packet.genome.limits, (due) => {
      if (busy()) goFast();
      // The next promise: the next beat, with a tick's slack (timers fire a little late).
      if (!this.#fast) record(Math.max(0, Date.now() - due), this.#beat.due + TICK_MS);
      this.#calmPulse();
    });
    this.work.heartbeat(Date.now(), 0, this.#beat.due + TICK_MS);
    this.#body = {
      tissue: packet.cell.tissue, host: packet.cell.host, pid: process.pid, parent: packet.cell.parent,
      born: packet.cell.born, genome: genomeHash(packet.genome), code: '', url: null,
      state: 'alive', load: 0, demand: 0, cpu: 0, cpuMs: 0, rss: 0, lag: 0,
      work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, n: 0,
    };
    // The first interval starts here: the first pulse's CPU is the cost of the birth.
    this.#usage.read();
    this.#busyAt = preciseNow();
    this.#busyIntegral = this.work.busyIntegral(this.#busyAt);
    // A few ms of file reads, done while the cell connects. Every pulse carries it (a pulse
    // without it reads as tampered code to its watchers), so pulsing waits for it.
    this.#code = codeHash().then((code) => {
      this.#body.code = fault === 'tamper' ? tamperedHash(code) : code;
    });
    this.#code.catch(() => undefined);
  }

  /**
   * Starts pulsing through `send` (the cell's bus, which seals and publishes): one pulse at
   * once (the census and a growing tissue should not wait), then one an interval, every cell
   * at the same instant so the pulses a watcher reads arrive together; a calm cell only on
   * the stride's intervals (#calm). Once only.
   */
  start(send: (body: PulseBody) => void): void {
    if (this.#state.state !== 'beating' || this.#send) return;
    this.#send = send;
    this.#code.then(
      () => {
        if (this.#state.state !== 'beating') return;
        this.#pulse();
        this.#arm();
      },
      (e: unknown) => this.#fail(`cannot hash its own code: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  /**
   * Calm: nothing handled between its last two pulses, nothing in flight or queued, alive and
   * past its startup. Such a cell has nothing to tell but that it lives, so it pulses once a
   * stride (limits.calmStride intervals; its host's grow forgives that much silence), in the
   * wakeup its host's digest brings: an idle cell's cost is its wakeups. Work arriving ends
   * the calm at once (#hurry).
   */
  #calm(): boolean {
    const b = this.#body;
    return this.#strideMs > this.#intervalMs && b.state === 'alive' && this.#handled.last === this.#handled.before &&
      this.work.inflight === 0 && this.work.queued === 0 && !inStartupGrace(Date.now() - b.born, this.#intervalMs);
  }

  /**
   * Schedules the next pulse: the next interval's instant; a calm cell's is its next beat's
   * wakeup, a stride after its last (#calmPulse), so that it wakes once a stride, for its
   * host's digest, not twice.
   */
  #arm(): void {
    if (this.#state.state !== 'beating') return;
    if (this.#calm()) {
      clearTimeout(this.#pulseTimer);
      this.#pulseTimer = undefined;
      this.#pulseDue = Number.POSITIVE_INFINITY;
      return;
    }
    this.#schedule(nextPhase(Date.now(), this.#intervalMs, PHASE.pulse));
  }

  /**
   * A calm cell's pulse, in its beat: once a stride (its host's digest comes once a stride;
   * a beat on another host's news in between does not make it pulse sooner). Without
   * digests the beat's fallback still comes every stride (organism/kernel/phase.ts), and its
   * grow, which would have sent them, is gone or starved: then a late calm pulse is a silent
   * cell whose process runs, busy and not dead, for up to limits.busyMaxMs.
   */
  #calmPulse(): void {
    if (this.#pulseDue !== Number.POSITIVE_INFINITY) return;
    const now = Date.now();
    const since = now - this.#lastPulseAt;
    if (since < this.#strideMs * 0.75) return;
    // On the stride's first interval, with every calm cell of its host. A cell calm again
    // after a pulse on its own timer (work made it pulse every interval) waits for the next
    // stride, not for the next beat three quarters of a stride on: that beat may be an
    // interval's news digest, and the pulse would stay off the stride. Once a whole stride
    // has passed it pulses in whatever beat comes. A calm pulse in a late digest's beat does
    // not wait again: its host's digests are late, and waiting would double the silence.
    if (!this.#lastPulseCalm && since < this.#strideMs && !onStride(now, this.#cadence)) return;
    this.#pulse(true);
    this.#arm();
  }

  #schedule(due: number): void {
    if (this.#state.state !== 'beating') return;
    clearTimeout(this.#pulseTimer);
    this.#pulseDue = due;
    this.#pulseTimer = setTimeout(() => {
      this.#pulseTimer = undefined;
      this.#pulse();
      this.#arm();
    }, Math.max(0, due - Date.now()));
    this.#pulseTimer.unref();
  }

  /** Work arrived: a calm cell's next pulse is the next interval's, not the stride's. */
  #hurry(): void {
    if (this.#pulseDue === 0) return;
    const next = nextPhase(Date.now(), this.#intervalMs, PHASE.pulse);
    if (this.#pulseDue > next) this.#schedule(next);
  }

  /** One pulse; three failures in a row mean this cell can no longer prove it lives. */
  #pulse(calm = false): void {
    if (this.#state.state !== 'beating' || !this.#send) return;
    this.#lastPulseAt = Date.now();
    this.#lastPulseCalm = calm;
    try {
      this.#send(this.#measure());
      this.#failures = 0;
    } catch (e) {
      if (++this.#failures === 3) this.#fail(`3 pulses failed in a row: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** This interval's measures, into the pulse body. */
  #measure(): PulseBody {
    const body = this.#body;
    const { cpu, cpuMs, rss } = this.#usage.read();
    // Late past the heartbeat the main thread promised (fast while it works, once an interval while idle).
    const blocked = Math.max(0, Date.now() - (this.work.due || this.work.lastTick + TICK_MS));
    const newborn = inStartupGrace(Date.now() - body.born, this.#intervalMs);
    const now = preciseNow();
    const integral = this.work.busyIntegral(now);
    const concurrency = now > this.#busyAt ? (integral - this.#busyIntegral) / (now - this.#busyAt) : this.work.inflight;
    this.#busyIntegral = integral;
    this.#busyAt = now;
    fillPulse(body, { cpu, cpuMs, rss, lag: Math.max(blocked, this.work.lag), work: this.work.counters(), concurrency, capacity: this.#capacity, newborn });
    this.#handled = { before: this.#handled.last, last: body.work.handled };
    if (this.#fault === 'liar') {
      const at = Date.now();
      this.#told = this.#told ? { cpuMs: this.#told.cpuMs + (at - this.#told.at), at } : { cpuMs, at };
      Object.assign(body, { cpu: 100, cpuMs: Math.round(this.#told.cpuMs), load: 1, demand: 1 });
    }
    body.n++;
    return body;
  }

  get state(): HeartState {
    return this.#state;
  }

  /** Called once if pulses keep failing: a cell that cannot prove it lives must not linger. */
  onFailure(listener: (error: string) => void): void {
    this.#onFailure = listener;
    if (this.#state.state === 'failed') listener(this.#state.error);
  }

  #fail(error: string): void {
    if (this.#state.state !== 'beating') return;
    this.#state = { state: 'failed', error };
    this.#onFailure?.(error);
  }

  setState(state: CellState): void {
    this.#body.state = state;
  }

  setUrl(url: string | null): void {
    this.#body.url = url;
  }

  /** A stem cell that differentiated pulses as its new tissue from now on. */
  setTissue(tissue: string): void {
    this.#body.tissue = tissue;
  }

  setCapacity(capacity: number): void {
    this.#capacity = capacity;
  }

  /** A pulse body as of now, apart from the one sent every interval (the `flood` fault's copies). */
  pulseNow(): PulseBody {
    const used = process.cpuUsage();
    const body: PulseBody = { ...this.#body, work: { ...this.#body.work } };
    fillPulse(body, {
      cpu: ((used.user + used.system) / 1000 / Math.max(1, process.uptime() * 1000)) * 100,
      cpuMs: (used.user + used.system) / 1000,
      rss: process.memoryUsage.rss(),
      lag: this.work.lag,
      work: this.work.counters(),
      capacity: this.#capacity,
      newborn: inStartupGrace(Date.now() - body.born, this.#intervalMs),
    });
    return body;
  }

  /** Stops pulsing (the cell announces its death next). Safe to call twice. */
  stop(): Promise<void> {
    clearTimeout(this.#pulseTimer);
    this.#pulseTimer = undefined;
    this.#pulseDue = 0;
    this.#beat.stop();
    clearInterval(this.#fast);
    this.#fast = undefined;
    this.work.onBusy = undefined;
    if (this.#state.state === 'beating') this.#state = { state: 'stopped' };
    return Promise.resolve();
  }
}
