/**
 * The census: who is alive, from the hormones themselves. Every cell and the CLI run one,
 * fed by the same pulses, so all hold the same view. A cell that stops pulsing is
 * `suspect` after `suspectAfterPulses` intervals and `dead` after `deadAfterPulses`
 * (missed pulses mean dead or partitioned, never guilty). Changes come out as an async
 * iterable of events tagged by `type`.
 */
import type { Hormone } from './hormone.ts';
import type { Limits } from './genome/index.ts';
import type { BirthBody, DeathBody, DifferentiateBody, PulseBody } from './vocabulary.ts';
import { parseCertificate, type Certificate } from './lineage.ts';
import { StressMeter, tissueStress } from './stress.ts';

export type LifeState = 'alive' | 'draining' | 'suspect' | 'dead';

export interface CensusEntry {
  id: string;
  tissue: string;
  host: string;
  pid: number;
  parent: string | null;
  /** Birth time, ms since the epoch. */
  born: number;
  /** ms since birth, at the time of the snapshot. */
  age: number;
  state: LifeState;
  load: number;
  /** Load smoothed with the tissue's half-life (organism/kernel/stress.ts): what stress is made of. */
  smoothed: number;
  /** Uncapped demand in cells' worth of work, from the last pulse (see PulseBody.demand). */
  demand: number;
  cpu: number;
  rss: number;
  lag: number;
  url: string | null;
  genome: string;
  /** Last time a pulse (or birth) arrived, ms since the epoch (receiver's clock). */
  lastSeen: number;
  pulses: number;
  /** Why the cell is dead: a death cause, `missed-pulses`, or `vanished` (its pid is gone, seen by a cell on its host). */
  cause: string | null;
  /** When it was found dead (receiver's clock), or null. */
  died: number | null;
  work: PulseBody['work'];
}

export type CensusEvent =
  | { type: 'joined'; entry: CensusEntry }
  | { type: 'state'; entry: CensusEntry; from: LifeState }
  | { type: 'left'; entry: CensusEntry };

export interface CensusOptions {
  limits: Pick<Limits, 'pulseIntervalMs' | 'suspectAfterPulses' | 'deadAfterPulses' | 'deadRetentionMs'>;
  now?: () => number;
  /**
   * The sender's verified certificate: who a cell is (tissue, host, parent, birth) comes
   * from it, not from what its pulse claims. Without it the pulse is believed.
   */
  certOf?: (id: string) => Certificate | undefined;
  /** Half-life of each tissue's load smoothing (genome tissues.<t>.halfLifeMs). @default 2000 */
  halfLifeOf?: (tissue: string) => number;
}

type Listener = (e: CensusEvent) => void;

export class Census {
  readonly #entries = new Map<string, CensusEntry>();
  readonly #listeners = new Set<Listener>();
  readonly #limits: CensusOptions['limits'];
  readonly #now: () => number;
  readonly #certOf: ((id: string) => Certificate | undefined) | undefined;
  /** Newest pulse timestamp per sender: an older one arriving later is a replay or a straggler. */
  readonly #lastTs = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #stress: StressMeter;
  readonly #wakers = new Set<() => void>();

  constructor(options: CensusOptions) {
    this.#limits = options.limits;
    this.#now = options.now ?? Date.now;
    this.#certOf = options.certOf;
    this.#stress = new StressMeter(options.halfLifeOf ?? (() => 2_000));
  }

  /** Starts the clock that turns silence into `suspect` and `dead`. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.tick(), Math.max(20, Math.floor(this.#limits.pulseIntervalMs / 4)));
    this.#timer.unref();
  }

  /** Stops the clock and ends every events() iterator. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
    for (const wake of this.#wakers) wake();
  }

  on(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Census events as an async iterable; ends when `signal` aborts. */
  async *events(signal?: AbortSignal): AsyncGenerator<CensusEvent> {
    const queue: CensusEvent[] = [];
    let wake: (() => void) | undefined;
    const off = this.on((e) => {
      queue.push(e);
      wake?.();
    });
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort);
    this.#wakers.add(onAbort);
    try {
      while (!signal?.aborted && !this.#closed) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      off();
      signal?.removeEventListener('abort', onAbort);
      this.#wakers.delete(onAbort);
    }
  }

  /** Feeds one admitted hormone. */
  observe(h: Hormone): void {
    switch (h.kind) {
      case 'pulse':
        return this.#pulse(h.from, h.body as PulseBody, h.ts);
      case 'birth':
        return this.#birth(h.from, h.body as BirthBody, h.ts);
      case 'death':
        return this.#death(h.from, h.body as DeathBody);
      case 'differentiate':
        return this.#differentiate(h.from, h.body as DifferentiateBody);
      default:
    }
  }

  #emit(e: CensusEvent): void {
    for (const l of this.#listeners) l(e);
  }

  #setState(entry: CensusEntry, state: LifeState, cause: string | null = null): void {
    if (entry.state === state) return;
    const from = entry.state;
    entry.state = state;
    if (state === 'dead') {
      entry.cause = cause;
      entry.died = this.#now();
    } else {
      entry.cause = null;
      entry.died = null;
    }
    this.#emit({ type: 'state', entry: this.#snapshot(entry), from });
  }

  #pulse(id: string, b: PulseBody, ts: number): void {
    const now = this.#now();
    // A pulse says the cell lived when it was sent: one older than the suspect threshold
    // (a replay, or stuck in a queue) or older than one already seen says nothing about now.
    if (now - ts > this.#limits.suspectAfterPulses * this.#limits.pulseIntervalMs) return;
    if (ts < (this.#lastTs.get(id) ?? 0)) return;
    this.#lastTs.set(id, ts);
    const existing = this.#entries.get(id);
    if (existing?.state === 'dead' && existing.cause !== 'missed-pulses') return; // it said goodbye (or its pid is gone)
    const cert = this.#certOf?.(id);
    // A stem cell differentiates in place: for cells born stem, the tissue they serve is
    // what they say; every other cell is what its certificate says.
    const tissue = cert && cert.tissue !== 'stem' ? cert.tissue : b.tissue;
    const smoothed = Math.round(this.#stress.observe(id, tissue, b.load, ts) * 1000) / 1000;
    const fields = {
      tissue, smoothed, host: cert?.host ?? b.host, pid: b.pid, parent: cert ? cert.parent : b.parent,
      born: cert?.born ?? b.born, load: b.load, demand: b.demand, cpu: b.cpu, rss: b.rss,
      lag: b.lag, url: b.url, genome: b.genome, lastSeen: now, pulses: b.n, work: { ...b.work },
    };
    if (!existing) {
      const entry: CensusEntry = { id, age: 0, state: b.state as LifeState, cause: null, died: null, ...fields };
      this.#entries.set(id, entry);
      this.#emit({ type: 'joined', entry: this.#snapshot(entry) });
      return;
    }
    Object.assign(existing, fields);
    this.#setState(existing, b.state);
  }

  #birth(id: string, b: BirthBody, ts: number): void {
    if (this.#entries.has(id)) return;
    if (this.#now() - ts > this.#limits.suspectAfterPulses * this.#limits.pulseIntervalMs) return; // old news
    let cert = this.#certOf?.(id);
    try {
      cert ??= parseCertificate(b.cert);
    } catch {
      return;
    }
    if (cert.cell !== id) return;
    const entry: CensusEntry = {
      id, tissue: cert.tissue, host: cert.host, pid: b.pid, parent: cert.parent, born: cert.born, age: 0, state: 'alive' as LifeState,
      load: 0, smoothed: 0, demand: 0, cpu: 0, rss: 0, lag: 0, url: b.url, genome: '', lastSeen: this.#now(), pulses: 0, cause: null, died: null,
      work: { handled: 0, inflight: 0, queued: 0, errors: 0 },
    };
    this.#entries.set(id, entry);
    this.#emit({ type: 'joined', entry: this.#snapshot(entry) });
  }

  #death(id: string, b: DeathBody): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#setState(entry, 'dead', b.cause);
  }

  #differentiate(id: string, b: DifferentiateBody): void {
    const entry = this.#entries.get(id);
    if (!entry || entry.state === 'dead') return;
    if (this.#certOf?.(id)?.tissue !== 'stem') return; // only stem cells change tissue
    if (entry.tissue === b.tissue) return;
    const from = entry.state;
    entry.tissue = b.tissue;
    this.#emit({ type: 'state', entry: this.#snapshot(entry), from });
  }

  /**
   * Local evidence: a cell on the same host found this member's pid gone (kill -9, crash),
   * so it need not wait out the missed pulses. Not evidence of guilt, only of death.
   */
  confirmDead(id: string, cause = 'vanished'): void {
    const entry = this.#entries.get(id);
    if (!entry || entry.state === 'dead') return;
    this.#setState(entry, 'dead', cause);
  }

  /**
   * A jury condemned `id`: it is dead to this census at once (cause `toxin`), whatever it
   * says next; its pulses are ignored like those of any cell that announced its death.
   */
  condemn(id: string): void {
    const entry = this.#entries.get(id);
    if (entry) this.#setState(entry, 'dead', 'toxin');
  }

  /** Re-evaluates silence; called by the timer, or by a test driving the clock. */
  tick(): void {
    const now = this.#now();
    const { pulseIntervalMs, suspectAfterPulses, deadAfterPulses, deadRetentionMs } = this.#limits;
    for (const entry of this.#entries.values()) {
      if (entry.state === 'dead') {
        if (now - (entry.died ?? now) >= deadRetentionMs) {
          this.#entries.delete(entry.id);
          this.#lastTs.delete(entry.id);
          this.#stress.forget(entry.id);
          this.#emit({ type: 'left', entry: this.#snapshot(entry) });
        }
        continue;
      }
      const silent = now - entry.lastSeen;
      // A cell is judged after the Nth pulse that should have come but did not.
      if (silent > deadAfterPulses * pulseIntervalMs) this.#setState(entry, 'dead', 'missed-pulses');
      else if (silent > suspectAfterPulses * pulseIntervalMs) this.#setState(entry, 'suspect');
    }
  }

  #snapshot(e: CensusEntry): CensusEntry {
    return { ...e, work: { ...e.work }, age: Math.max(0, this.#now() - e.born) };
  }

  get(id: string): CensusEntry | undefined {
    const e = this.#entries.get(id);
    return e && this.#snapshot(e);
  }

  /** Every entry, dead ones included until their retention ends, sorted by tissue then birth. */
  list(): CensusEntry[] {
    return [...this.#entries.values()].map((e) => this.#snapshot(e)).sort((a, b) => a.tissue.localeCompare(b.tissue) || a.born - b.born || a.id.localeCompare(b.id));
  }

  /** Each tissue's stress: the mean smoothed load of its alive members. */
  stress(): Record<string, number> {
    return tissueStress(this.list());
  }

  /** Cells not known to be dead. */
  living(): CensusEntry[] {
    return this.list().filter((e) => e.state !== 'dead');
  }
}

/** Shape check for census rows that arrive over the network (a cell's census reply). */
export function isCensusEntry(v: unknown): v is CensusEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  return (
    typeof e.id === 'string' && typeof e.tissue === 'string' && typeof e.host === 'string' && typeof e.state === 'string' &&
    ['alive', 'draining', 'suspect', 'dead'].includes(e.state) && num(e.pid) && num(e.born) && num(e.age) && num(e.load) &&
    num(e.smoothed) && num(e.demand) && num(e.cpu) && num(e.rss) && num(e.lag) && num(e.lastSeen) && (e.url === null || typeof e.url === 'string') &&
    (e.parent === null || typeof e.parent === 'string') && (e.cause === null || typeof e.cause === 'string') &&
    typeof e.work === 'object' && e.work !== null
  );
}
