/**
 * The census: who is alive, from the hormones themselves. Every cell and the CLI run one,
 * fed by the same pulses, so all hold the same view. A cell that stops pulsing is
 * `suspect` after `suspectAfterPulses` intervals and `dead` after `deadAfterPulses`
 * (missed pulses mean dead or partitioned, never guilty). Changes come out as an async
 * iterable of events tagged by `type`.
 */
import { onBeat, strideMs, strideSlackMs, type PhasedTimer } from './phase.ts';
import type { Hormone } from './hormone.ts';
import type { Limits } from './genome/index.ts';
import { DIGEST_BAND, DIGEST_REPEAT, type BirthBody, type DeathBody, type DifferentiateBody, type DigestBody, type DigestRow, type PulseBody } from './vocabulary.ts';
import { ROOT_ISSUER } from './lineage.ts';
import { parseCertificate, type Certificate } from './lineage.ts';
import { StressMeter, tissueStress } from './stress.ts';

/** Cells condemned before they were heard of, remembered (oldest forgotten first). */
const CONDEMNED_AHEAD_KEPT = 1024;

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
  /** Last time a pulse (or birth, or its host's digest) arrived, ms since the epoch (receiver's clock). */
  lastSeen: number;
  /** When the last pulse heard was sent (sender's clock), or 0 before the first. */
  ts: number;
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
  limits: Pick<Limits, 'pulseIntervalMs' | 'suspectAfterPulses' | 'deadAfterPulses' | 'deadRetentionMs'> & Partial<Pick<Limits, 'busyMaxMs' | 'calmStride'>>;
  now?: () => number;
  /**
   * The sender's verified certificate: who a cell is (tissue, host, parent, birth) comes
   * from it, not from what its pulse claims. Without it the pulse is believed.
   */
  certOf?: (id: string) => Certificate | undefined;
  /** Half-life of each tissue's load smoothing (genome tissues.<t>.halfLifeMs). @default 2000 */
  halfLifeOf?: (tissue: string) => number;
  /**
   * Whose pulses this census reads itself. A cell reads none: its census comes from the host
   * digests (every host's grow verifies its own cells' pulses and publishes what they said,
   * organism/grow/host-digest.ts), so a cell's cost does not grow with the population. A
   * grow reads its own host's cells' pulses and the other hosts' digests. @default every sender
   */
  pulsesOf?: (id: string) => boolean;
  /** A host whose digests this census ignores (grow's own: it makes them from the pulses). */
  ownHost?: string;
  /**
   * Judge silence once an interval on this process's beat (a cell: organism/kernel/phase.ts,
   * in the wakeup its host's digest brings) instead of every quarter interval.
   */
  beat?: boolean;
  /**
   * True while a silent cell's process can be seen running (grow, for the cells of its own
   * host: the process exists, is that cell, and is not stopped). Such a cell is busy, not
   * dead: its main thread, which pulses, is stuck in a long task. It keeps its state, and
   * its lag is the silence, for up to `limits.busyMaxMs` of silence; past that, its silence
   * judges it as any other's (a main thread stuck that long serves nothing, and a process
   * that runs but never pulses must not hold its place for good). Asked only of cells
   * already silent past the suspect threshold.
   */
  running?: (entry: CensusEntry) => boolean;
  /**
   * A round of `host`'s digests was lost here (a round number skipped, a round left without
   * all its parts, or a grow that started counting again): the rows it carried are missing
   * until `host`'s next whole digest. States and findings are said DIGEST_REPEAT rounds
   * running, so a lost round costs only loads; a cell asks that grow for its whole host
   * (cells/cell.ts), since rows are refreshed only once a minute (HostDigest `refreshMs`).
   */
  onGap?: (host: string) => void;
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
  #phased: PhasedTimer | undefined;
  readonly #beat: boolean;
  #closed = false;
  readonly #stress: StressMeter;
  readonly #wakers = new Set<() => void>();
  readonly #pulsesOf: ((id: string) => boolean) | undefined;
  readonly #ownHost: string | undefined;
  readonly #running: ((entry: CensusEntry) => boolean) | undefined;
  readonly #onGap: ((host: string) => void) | undefined;
  /** When each host's last digest arrived (receiver's clock), and how many cells it said live there. */
  readonly #hostSeen = new Map<string, { at: number; alive: number }>();
  /**
   * Cells this census itself made suspect or dead for their silence, and the state they had
   * before. A digest-fed cell is silent when its host's digests are (that grow starved, or
   * the digests lost), and a delta says only what changed: without this, an idle cell of a
   * host whose grow was late stayed dead here until its row was refreshed (10 s), and juries
   * drawn from this census lost most of their members.
   */
  readonly #silenced = new Map<string, LifeState>();
  /** Per host: the newest digest round whose parts all arrived, and the round being gathered. */
  readonly #rounds = new Map<string, { complete: number; round: number; parts: number; expected: number; named: Set<string> }>();
  /** The beacon and its epoch from the newest digest (organism/kernel/sortition.ts). */
  #beacon: { epoch: number; beacon: string } | undefined;
  readonly #beacons = new Map<number, string>();
  #digestCount = 0;
  #membership = 0;
  /** Cells condemned before this census held them (condemn()): they join dead. */
  readonly #condemnedAhead = new Set<string>();
  /**
   * The entries of each host, kept with #entries (#place): a digest speaks for its host's
   * cells, and a scan of the whole census for them, per digest part, was what made a cell's
   * cost grow with the census at 1,000 cells across many hosts.
   */
  readonly #byHost = new Map<string, Set<CensusEntry>>();
  readonly #placedOn = new Map<string, string>();
  /** When tick() last ran (the clock's own lateness is not the others' silence). */
  #lastTick: number | undefined;
  /** Bumped on every change a snapshot would show but lastSeen: list() is cached until it moves. */
  #version = 0;
  /** Per cell, the row values that were last news (a version bump): the base the dead band is measured from. */
  readonly #told = new Map<string, { l: number; m: number; d: number; r: number }>();
  #cached: { version: number; at: number; list: CensusEntry[] } | undefined;
  #view: { version: number; list: CensusEntry[] } | undefined;
  #rowCount = 0;

  constructor(options: CensusOptions) {
    this.#limits = options.limits;
    this.#now = options.now ?? Date.now;
    this.#certOf = options.certOf;
    this.#stress = new StressMeter(options.halfLifeOf ?? (() => 2_000));
    this.#pulsesOf = options.pulsesOf;
    this.#beat = options.beat ?? false;
    this.#ownHost = options.ownHost;
    this.#running = options.running;
    this.#onGap = options.onGap;
  }

  /** Starts the clock that turns silence into `suspect` and `dead`. */
  start(): void {
    if (this.#timer || this.#phased) return;
    if (this.#beat) {
      this.#phased = onBeat(this.#limits, () => this.tick());
      return;
    }
    this.#timer = setInterval(() => this.tick(), Math.max(20, Math.floor(this.#limits.pulseIntervalMs / 4)));
    this.#timer.unref();
  }

  /** Stops the clock and ends every events() iterator. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#phased?.stop();
    this.#phased = undefined;
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
        if (this.#pulsesOf && !this.#pulsesOf(h.from)) return;
        return this.#pulse(h.from, h.body as PulseBody, h.ts);
      case 'digest':
        if (h.from !== ROOT_ISSUER) return;
        return this.#digest(h.body as DigestBody);
      case 'birth':
        return this.#birth(h.from, h.body as BirthBody, h.ts);
      case 'death':
        return this.#death(h.from, h.body as DeathBody);
      case 'differentiate':
        return this.#differentiate(h.from, h.body as DifferentiateBody);
      default:
    }
  }

  /** Files `entry` under its host (again, if its host changed); call after every set or assign. */
  #place(entry: CensusEntry): void {
    const was = this.#placedOn.get(entry.id);
    if (was === entry.host) return;
    if (was !== undefined) this.#byHost.get(was)?.delete(entry);
    let set = this.#byHost.get(entry.host);
    if (!set) this.#byHost.set(entry.host, (set = new Set()));
    set.add(entry);
    this.#placedOn.set(entry.id, entry.host);
  }

  #unplace(entry: CensusEntry): void {
    const was = this.#placedOn.get(entry.id);
    if (was === undefined) return;
    const set = this.#byHost.get(was);
    set?.delete(entry);
    if (set?.size === 0) this.#byHost.delete(was);
    this.#placedOn.delete(entry.id);
  }

  /** The entries filed under `host`. */
  #onHost(host: string): Iterable<CensusEntry> {
    return this.#byHost.get(host) ?? [];
  }

  #emit(e: CensusEvent): void {
    this.#version++;
    if (e.type !== 'state' || e.entry.state === 'dead' || e.from === 'dead') this.#membership++;
    for (const l of this.#listeners) l(e);
  }

  #setState(entry: CensusEntry, state: LifeState, cause: string | null = null): void {
    // Whatever set it (a pulse, a row, a death), the state is no longer only this census's guess.
    this.#silenced.delete(entry.id);
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
      lag: b.lag, url: b.url, genome: b.genome, lastSeen: now, ts, pulses: b.n, work: { ...b.work },
    };
    if (!existing) {
      const entry: CensusEntry = { id, age: 0, state: b.state as LifeState, cause: null, died: null, ...fields };
      this.#entries.set(id, entry);
      this.#place(entry);
      this.#joined(entry);
      return;
    }
    Object.assign(existing, fields);
    this.#place(existing);
    this.#version++;
    this.#setState(existing, b.state);
  }

  /**
   * One part of a host's digest: each row is what that host's grow heard from the cell's
   * last pulse, verified there. Its arrival also says that the host's other cells live (a
   * delta carries only rows that changed); a full digest speaks only for the rows it has.
   */
  #digest(b: DigestBody): void {
    if (!this.#beacon || b.epoch > this.#beacon.epoch) this.#beacon = { epoch: b.epoch, beacon: b.beacon };
    if (!this.#beacons.has(b.epoch)) {
      this.#beacons.set(b.epoch, b.beacon);
      if (this.#beacons.size > 3) this.#beacons.delete(this.#beacons.keys().next().value!);
    }
    if (b.host === this.#ownHost) return;
    this.#digestCount++;
    const now = this.#now();
    this.#hostSeen.set(b.host, { at: now, alive: b.alive });
    for (const row of b.rows) this.#row(b.host, row, now);
    if (!b.full) for (const e of this.#onHost(b.host)) if (e.state !== 'dead') e.lastSeen = now;
    this.#roundPart(b, now);
  }

  /**
   * Counts `b` into its round. Once a delta round is whole and at most DIGEST_REPEAT rounds
   * after the last whole one, every cell of its host it does not name is as its host last
   * said: a death among them would be named, since deaths are said DIGEST_REPEAT rounds
   * running. So a cell this census judged by its host's silence is given its state back.
   * After a longer gap (digests lost, not late) a death may have gone unheard: those cells
   * wait for their own row (a refresh, or the next whole digest).
   */
  #roundPart(b: DigestBody, now: number): void {
    let r = this.#rounds.get(b.host);
    if (b.round === 0) {
      // A private whole answer (HostDigest.whole()) is no round, but the host is held whole here now.
      if (!r) this.#rounds.set(b.host, { complete: 0, round: 0, parts: 0, expected: 0, named: new Set() });
      return;
    }
    if (!r || r.round !== b.round) {
      // The round before this one is the last, whole; anything else lost rows (a grow that
      // restarted counts from 1 again: its deltas are against a state this census never had),
      // and so does a first delta from a host never held whole (a newborn whose ask went unanswered).
      if (!b.full && (r === undefined || (r.round !== 0 && (b.round !== r.round + 1 || r.parts < r.expected)))) this.#onGap?.(b.host);
      this.#rounds.set(b.host, (r = { complete: r?.complete ?? 0, round: b.round, parts: 0, expected: b.parts, named: new Set() }));
    }
    r.parts++;
    for (const row of b.rows) r.named.add(row.i);
    if (r.parts < b.parts) return;
    const gap = b.round - r.complete;
    r.complete = b.round;
    // The host whole: a cell of it this census judged by silence that it does not name is
    // not on that host any more (a grow that restarted, a cell that died meanwhile), and the
    // rounds after this one must not give it back.
    if (b.full) this.#unsilence(b.host, r.named);
    if (this.#silenced.size > 0 && !b.full && gap > 0) {
      if (gap > DIGEST_REPEAT) {
        // Nor at any round after this one: what the lost rounds said stays unheard, so this
        // host's cells judged by silence wait for their own rows (the whole host asked for, or a refresh).
        this.#unsilence(b.host);
      } else {
        for (const [id, before] of this.#silenced) {
          const e = this.#entries.get(id);
          if (!e || e.host !== b.host || r.named.has(id)) continue;
          e.lastSeen = now;
          this.#setState(e, before);
        }
      }
    }
    this.#countAgainst(b, now);
  }

  /** Forgets that `host`'s cells (but those in `keep`) were judged by silence: nothing gives their state back now. */
  #unsilence(host: string, keep?: ReadonlySet<string>): void {
    for (const id of this.#silenced.keys()) if (this.#entries.get(id)?.host === host && !keep?.has(id)) this.#silenced.delete(id);
  }

  /**
   * Hosts whose last whole round said more of their cells live than this census holds
   * there (by more than one: a birth or death may be between two digests), and since when.
   */
  readonly #short = new Map<string, number>();

  /**
   * Checks what this census holds of `b.host` against the count the host's grow says lives
   * there. Short, it holds the host incomplete however it came to be (a newborn's whole
   * answer that never came, rows lost before any round number could show it, a cell judged
   * by silence that its host never stopped counting): it asks for the host whole, as for a
   * lost round, every few intervals while it stays short; homeostasis does not grow a tissue
   * from a census that knows it is short (cells/homeostat.ts).
   */
  #countAgainst(b: DigestBody, now: number): void {
    if (b.round === 0) return;
    let held = 0;
    for (const e of this.#onHost(b.host)) if (e.state !== 'dead') held++;
    if (b.alive - held > 1) {
      if (!this.#short.has(b.host)) this.#short.set(b.host, now);
      this.#onGap?.(b.host);
    } else this.#short.delete(b.host);
  }

  /**
   * Since when this census has been short of a host's own count (#countAgainst): the latest
   * such start among hosts still heard, so a host that stays short (or fell silent while
   * short) does not hide a new shortfall elsewhere; undefined if none.
   */
  shortSince(): number | undefined {
    const now = this.#now();
    const { pulseIntervalMs, deadAfterPulses } = this.#limits;
    let since: number | undefined;
    for (const [host, at] of this.#short) {
      const seen = this.#hostSeen.get(host);
      // A host silent past the dead threshold says nothing now: its count no longer stands.
      if (!seen || now - seen.at > deadAfterPulses * pulseIntervalMs + strideSlackMs(this.#limits)) {
        this.#short.delete(host);
        continue;
      }
      since = since === undefined ? at : Math.max(since, at);
    }
    return since;
  }

  #row(host: string, r: DigestRow, now: number): void {
    this.#rowCount++;
    const existing = this.#entries.get(r.i);
    if (existing?.state === 'dead' && existing.cause !== 'missed-pulses') return; // said goodbye, or condemned
    if (r.z < (this.#lastTs.get(r.i) ?? 0)) {
      if (existing) existing.lastSeen = now;
      return;
    }
    this.#lastTs.set(r.i, r.z);
    const fields = {
      tissue: r.q, host, pid: r.p, parent: r.a, born: r.b, load: r.l / 1000, smoothed: r.m / 1000, demand: r.d / 1000, cpu: r.u,
      rss: r.r * 2 ** 20, lag: r.g, url: r.w, lastSeen: now, ts: r.z, pulses: r.n,
      work: { handled: r.k[0] ?? 0, inflight: r.k[1] ?? 0, queued: r.k[2] ?? 0, errors: r.k[3] ?? 0 },
    };
    if (!existing) {
      // A death this census never saw the life of is still news to a newcomer (a whole digest
      // holds a host's dead until they are retained no longer): kept as dead, for the retention.
      const entry: CensusEntry = { id: r.i, age: 0, state: r.s, cause: r.s === 'dead' ? (r.c ?? 'missed-pulses') : null, died: r.s === 'dead' ? now : null, genome: '', ...fields };
      this.#entries.set(r.i, entry);
      this.#place(entry);
      this.#told.set(r.i, { l: r.l, m: r.m, d: r.d, r: r.r });
      this.#joined(entry);
      return;
    }
    const from = existing.state;
    const tissueChanged = existing.tissue !== r.q;
    // News only past the digest's dead band from what last was news: a row refreshed with
    // the same story (an idle cell's load 0.004, then 0.006) must not make every cell of the
    // organism plan again, and a slow drift still counts once it adds up.
    const told = this.#told.get(r.i);
    const changed = tissueChanged || existing.url !== fields.url || existing.pid !== fields.pid || existing.work.inflight !== fields.work.inflight || existing.work.queued !== fields.work.queued ||
      !told || Math.abs(told.l - r.l) >= DIGEST_BAND.l || Math.abs(told.m - r.m) >= DIGEST_BAND.m || Math.abs(told.d - r.d) >= DIGEST_BAND.d || Math.abs(told.r - r.r) >= DIGEST_BAND.r;
    if (changed) this.#told.set(r.i, { l: r.l, m: r.m, d: r.d, r: r.r });
    Object.assign(existing, fields);
    this.#place(existing);
    if (changed) this.#version++;
    if (r.s === 'dead') {
      // Its host's word on why (vanished, a death cause) over this census's guess from silence.
      if (from === 'dead' && r.c !== null && existing.cause !== r.c) this.#recause(existing, r.c);
      this.#setState(existing, 'dead', r.c ?? 'missed-pulses');
    } else this.#setState(existing, r.s);
    if (tissueChanged && existing.state === from) this.#emit({ type: 'state', entry: this.#snapshot(existing), from });
  }

  /**
   * Bumped when the set of cells that are not dead changes (a birth, a death, one leaving):
   * what a panel is drawn from, so a ring is rebuilt only then.
   */
  get membership(): number {
    return this.#membership;
  }

  /** Bumped on every change a snapshot would show but the time (lastSeen, age). */
  get version(): number {
    return this.#version;
  }

  /** Digest parts read so far (from any host). */
  get digests(): number {
    return this.#digestCount;
  }

  /** Digest rows read so far (shown in a cell's stats: with digests and the version, what its census costs). */
  get rows(): number {
    return this.#rowCount;
  }

  /** ms since `host`'s last digest arrived; Infinity if none ever did. */
  hostSilence(host: string): number {
    const seen = this.#hostSeen.get(host);
    return seen === undefined ? Number.POSITIVE_INFINITY : this.#now() - seen.at;
  }

  /**
   * Other hosts whose last digest, at most `withinMs` old, said cells live there: evidence
   * that the organism lives even before (or without) any row of theirs reaching this census.
   */
  hostsWithCells(withinMs: number): string[] {
    const now = this.#now();
    return [...this.#hostSeen].filter(([, s]) => s.alive > 0 && now - s.at <= withinMs).map(([host]) => host);
  }

  /** The beacon of `epoch`, if a digest of one of the last few epochs carried it. */
  beaconOf(epoch: number): string | undefined {
    return this.#beacons.get(epoch);
  }

  /** The newest beacon the digests carried, or undefined before the first. */
  get beacon(): { epoch: number; beacon: string } | undefined {
    return this.#beacon;
  }

  /** A new entry, said; one condemned before it was heard of is dead from its first moment. */
  #joined(entry: CensusEntry): void {
    this.#emit({ type: 'joined', entry: this.#snapshot(entry) });
    if (this.#condemnedAhead.delete(entry.id)) this.#setState(entry, 'dead', 'toxin');
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
      load: 0, smoothed: 0, demand: 0, cpu: 0, rss: 0, lag: 0, url: b.url, genome: '', lastSeen: this.#now(), ts: 0, pulses: 0, cause: null, died: null,
      work: { handled: 0, inflight: 0, queued: 0, errors: 0 },
    };
    this.#entries.set(id, entry);
    this.#place(entry);
    this.#joined(entry);
  }

  #death(id: string, b: DeathBody): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    // Judged dead of its silence here, it says goodbye after all: dead of a known cause now.
    if (entry.state === 'dead' && entry.cause === 'missed-pulses') return this.#recause(entry, b.cause);
    this.#setState(entry, 'dead', b.cause);
  }

  /**
   * A dead entry's cause, changed. Leaving "missed pulses" (a guess from silence) for a known
   * cause, or back, moves it on or off the sortition ring (cells/immune/jury.ts onRing): that
   * is a membership change.
   */
  #recause(entry: CensusEntry, cause: string): void {
    if (entry.cause === cause) return;
    if (entry.cause === 'missed-pulses' || cause === 'missed-pulses') this.#membership++;
    entry.cause = cause;
    this.#version++;
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
    if (!entry) {
      // Condemned before it was heard of (a child certified into a condemned lineage, whose
      // process has not started yet): it joins this census dead, whatever says it lives.
      this.#condemnedAhead.add(id);
      if (this.#condemnedAhead.size > CONDEMNED_AHEAD_KEPT) this.#condemnedAhead.delete(this.#condemnedAhead.values().next().value!);
      return;
    }
    // Its host may have found the process gone (the toxin's work) before the verdict was
    // counted here: the verdict says why it vanished.
    if (entry.state === 'dead' && (entry.cause === 'vanished' || entry.cause === 'missed-pulses')) return this.#recause(entry, 'toxin');
    this.#setState(entry, 'dead', 'toxin');
  }

  /** Re-evaluates silence; called by the timer, or by a test driving the clock. */
  tick(): void {
    const now = this.#now();
    const { pulseIntervalMs, suspectAfterPulses, deadAfterPulses, deadRetentionMs } = this.#limits;
    // Silence is counted in time this census was awake to hear: a tick that comes far later
    // than its period (this process starved: a saturated host, a flood it had to read
    // through) does not count the time it could not listen against the others.
    const period = this.#beat ? strideMs(this.#limits) : Math.max(20, Math.floor(pulseIntervalMs / 4));
    // A calm cell pulses, and a calm host digests, once a stride: the silence counted against
    // the thresholds starts where the next one could come at the latest (organism/kernel/phase.ts).
    const slack = strideSlackMs(this.#limits);
    // (Only on its own clock: a test driving tick() by hand jumps time on purpose.)
    const running = this.#timer !== undefined || this.#phased !== undefined;
    const starved = !running || this.#lastTick === undefined ? 0 : now - this.#lastTick - 2 * period;
    this.#lastTick = now;
    if (starved > 0) for (const e of this.#entries.values()) if (e.state !== 'dead') e.lastSeen = Math.min(now, e.lastSeen + starved);
    for (const entry of this.#entries.values()) {
      if (entry.state === 'dead') {
        if (now - (entry.died ?? now) >= deadRetentionMs) {
          this.#entries.delete(entry.id);
          this.#unplace(entry);
          this.#lastTs.delete(entry.id);
          this.#told.delete(entry.id);
          this.#silenced.delete(entry.id);
          this.#stress.forget(entry.id);
          this.#emit({ type: 'left', entry: this.#snapshot(entry) });
        }
        continue;
      }
      const silent = now - entry.lastSeen - slack;
      if (silent > suspectAfterPulses * pulseIntervalMs && silent <= (this.#limits.busyMaxMs ?? Infinity) && this.#running?.(entry)) {
        this.#busy(entry, silent);
        continue;
      }
      // A cell is judged after the Nth pulse that should have come but did not.
      if (silent > deadAfterPulses * pulseIntervalMs) this.#silence(entry, 'dead');
      else if (silent > suspectAfterPulses * pulseIntervalMs) this.#silence(entry, 'suspect');
    }
  }

  /** Silence made `entry` suspect or dead here; what it was before is kept (#roundPart). */
  #silence(entry: CensusEntry, state: 'suspect' | 'dead'): void {
    if (entry.state === state) return;
    const before = this.#silenced.get(entry.id) ?? entry.state;
    this.#setState(entry, state, state === 'dead' ? 'missed-pulses' : null);
    this.#silenced.set(entry.id, before);
  }

  /**
   * A silent cell seen running: busy for `silent` ms. Its lag is the silence; it is full only
   * if its last pulse showed work. Lag is a cell's own pressure only while it has work
   * (cells/metabolism.ts): on a host whose CPU is saturated (a fork storm, a burst of births)
   * idle cells go silent too, and counting them full made homeostasis add cells to the storm.
   * A suspect one is alive again.
   */
  #busy(entry: CensusEntry, silent: number): void {
    const lag = Math.round(silent);
    if (lag - entry.lag < this.#limits.pulseIntervalMs / 2 && entry.state !== 'suspect') return;
    entry.lag = Math.max(entry.lag, lag);
    if (entry.work.inflight + entry.work.queued > 0) {
      entry.load = 1;
      entry.demand = Math.max(1, entry.demand);
    }
    this.#version++;
    if (entry.state === 'suspect') this.#setState(entry, 'alive');
  }

  #snapshot(e: CensusEntry): CensusEntry {
    return { ...e, work: { ...e.work }, age: Math.max(0, this.#now() - e.born) };
  }

  get(id: string): CensusEntry | undefined {
    const e = this.#entries.get(id);
    return e && this.#snapshot(e);
  }

  /**
   * Every entry, dead ones included until their retention ends, sorted by tissue then birth.
   * Cached until something changes (or for a quarter interval, so ages, lastSeen and the
   * values inside the dead band stay near the truth: the dashboard shows them): many callers
   * ask every interval, and a copy of the whole census each time is what made a cell's cost
   * grow with the population.
   */
  list(): CensusEntry[] {
    const now = this.#now();
    const c = this.#cached;
    if (c && c.version === this.#version && now - c.at < this.#limits.pulseIntervalMs / 4) return c.list;
    const list = [...this.#entries.values()].map((e) => this.#snapshot(e)).sort((a, b) => (a.tissue < b.tissue ? -1 : a.tissue > b.tissue ? 1 : a.born - b.born || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
    Object.freeze(list);
    this.#cached = { version: this.#version, at: now, list };
    return list;
  }

  /**
   * Every entry as of the last change that was news (the version): what planners read
   * (homeostasis, the immune ring). Unlike list() it is not refreshed while nothing changes,
   * so its ages, lastSeen and values inside the digest's dead band may be old — which no plan
   * reads — and the same array comes back until the version moves, so a caller can keep what
   * it derives from it. The dashboard and census replies use list().
   */
  view(): readonly CensusEntry[] {
    const v = this.#view;
    if (v && v.version === this.#version) return v.list;
    const list = this.list();
    this.#view = { version: this.#version, list };
    return list;
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
