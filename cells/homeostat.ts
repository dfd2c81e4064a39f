/**
 * The homeostat: every cell runs one. On a timer (half a pulse interval) and whenever the
 * census changes, it plans each tissue (cells/homeostasis-plan.ts) from its own census and
 * the tissue's KV record, which it keeps current with a watch. A plan other than `none` is
 * claimed by compare-and-set on the record; the cell whose write lands acts (recruits a
 * stem cell, divides, dies, backs off) and publishes a `decision` hormone with the readings
 * behind it. A cell that loses the race, or cannot write at all (no quorum), does nothing.
 */
import { onBeat, strideSlackMs, type PhasedTimer } from '../organism/kernel/phase.ts';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { Census, CensusEntry } from '../organism/kernel/census.ts';
import type { Genome } from '../organism/kernel/genome/index.ts';
import { isCasConflict, writeIfUnchanged } from '../organism/kernel/compare-and-set.ts';
import { backoffMs, emptyTissueRecord, mutateTissueRecord, packRecord, parseTissueRecord, readTissueRecord, tissueKey, type TissueRecord } from '../organism/kernel/homeostasis-record.ts';
import type { DecisionAction, DecisionBody, DifferentiateBody, Readings } from '../organism/kernel/vocabulary.ts';
import { isProcessOf, isStopped, localCells } from '../organism/kernel/processes.ts';
import { takeSpawnTokens } from './atp.ts';
import { liveHosts, type PlaceRequest } from './placement.ts';
import { allocate, type Allocation } from './homeostasis-allocation.ts';
import { CellularError, isCellularError } from '../organism/wire/errors.ts';
import { transientClusterError } from '../organism/kernel/cluster.ts';
import { calmMs, nextRecord, plan, STALE_PENDING_MS, type Plan } from './homeostasis-plan.ts';
import type { Logger } from './logger.ts';
import type { Mitosis } from './mitosis.ts';
import { cellMarkers, newCellId } from './spawn.ts';
import { within } from '../organism/kernel/within.ts';

/** Join timeouts a census may stay short of a host's own count before homeostasis plans anyway (Homeostat.evaluate). */
const SHORT_WAIT_JOINS = 3;

export interface HomeostatDeps {
  kv: KV;
  /** The organism id (to find this host's cell processes). */
  organism: string;
  census: Census;
  genome: Readonly<Genome>;
  mitosis: Mitosis;
  log: Logger;
  /** The cell as it is now (a stem cell's tissue changes when it differentiates). */
  self(): { id: string; tissue: string; host: string; state: string };
  publish(kind: 'decision', body: DecisionBody): void;
  /** Ends this cell by apoptosis. */
  die(reason: string): void;
  /** Asks another host's grow to make a cell this cell's decision placed there (cells/placement.ts). */
  placeOn?(host: string, request: PlaceRequest): Promise<void>;
  now?: () => number;
}

/** A member of `host` that a census declared dead only for its silence (its process may still run). */
function deadOfSilenceOn(c: CensusEntry, host: string): boolean {
  return c.state === 'dead' && c.cause === 'missed-pulses' && c.host === host;
}

/** The census as a homeostat plans from it (Homeostat.#viewFor). */
interface PlanView {
  base: readonly CensusEntry[];
  seen: number;
  all: CensusEntry[];
  byTissue: Map<string, CensusEntry[]>;
  byId: Map<string, CensusEntry>;
  known: ReadonlySet<string>;
  hosts: string[];
}

interface Cached {
  record: TissueRecord;
  /** KV revision of the entry (0: no entry yet). */
  revision: number;
}

export class Homeostat {
  readonly #d: HomeostatDeps;
  readonly #now: () => number;
  readonly #records = new Map<string, Cached>();
  /** Tissues this cell is acting for right now (one action at a time per tissue). */
  readonly #acting = new Set<string>();
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #timer: PhasedTimer | undefined;
  #offCensus: (() => void) | undefined;
  #lowSince: number | undefined;
  /** When this cell's idleness could next decide anything (see #trackIdle). */
  #idleDueAt: number | undefined;
  #warmUntil = Number.POSITIVE_INFINITY;
  /** The warm-up is over (#warmedUp): once, for good. */
  #warm = false;
  #watchingSince = Number.POSITIVE_INFINITY;
  /** Since when each tissue has needed growth, as this cell sees it. */
  readonly #needSince = new Map<string, number>();
  #scheduled = false;
  /** Aborted by close(): ends the pauses and join waits a closed homeostat would otherwise sit out. */
  readonly #stop = new AbortController();
  get #closed(): boolean {
    return this.#stop.signal.aborted;
  }
  #started: Promise<void> | undefined;
  /** Decisions this cell made, by action (shown in stats). */
  readonly counts: Record<string, number> = {};
  /**
   * Compare-and-set outcomes (shown in stats): `won`, `lost` to another cell's write, and
   * `failed` for any other refusal (no quorum, stream unavailable): the cell stood down.
   */
  readonly claims = { won: 0, lost: 0, failed: 0 };
  /**
   * What planning cost (shown in stats): evaluations that planned, the census views they had
   * to derive anew, and evaluations left out while the census was short of a host's own count.
   */
  readonly work = { plans: 0, views: 0, shortWaits: 0 };
  #failureLoggedAt = 0;

  constructor(deps: HomeostatDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    // The first watch is made before the warm-up starts: a newborn plans only once it holds
    // the records (pending seeds included), or it would regrow what is already on its way.
    // (Born while JetStream has no quorum, it keeps trying: it plans nothing meanwhile.)
    let first: QueuedIterator<KvWatchEntry> | undefined;
    for (let pause = 500; first === undefined; pause = Math.min(pause * 2, 5_000)) {
      if (this.#closed) return;
      first = await this.#d.kv.watch({ key: 'tissue.>' }).catch((e: unknown) => {
        this.#d.log.warn({ err: (e as Error).message }, 'homeostasis watch failed: trying again');
        return undefined;
      });
      if (first === undefined) await this.#pause(pause);
    }
    void this.#keepWatching(first);
    // watch() resolves once its consumer exists, not once it delivered the records: they are
    // read here as well, so the warm-up starts with the records (pending seeds) held.
    await this.#readRecords();
    if (this.#closed) return;
    // A newborn has not heard every member pulse yet: its census would show living tissues
    // as empty (and a cell born during a shutdown would regrow what is draining). It only
    // watches for as long as the census itself takes to doubt a silent member
    // (suspectAfterPulses intervals, at least two): on a loaded host a peer born a moment
    // earlier may not pulse again within two intervals (seen: a third cell at grow).
    this.#watchingSince = this.#now();
    const { pulseIntervalMs, suspectAfterPulses } = this.#d.genome.limits;
    this.#warmUntil = this.#watchingSince + Math.max(2, suspectAfterPulses) * pulseIntervalMs;
    // On the shared beat (organism/kernel/phase.ts); census changes and records schedule it too.
    // An idle organism whose census did not move has nothing new to plan: then every fourth
    // interval is enough for what time alone changes (idleness, dues, back-off, calm). A calm
    // organism beats once a stride (organism/kernel/phase.ts), so that is fewer beats.
    let beats = 0;
    const everyBeats = Math.max(1, Math.round(4 / this.#d.genome.limits.calmStride));
    this.#timer = onBeat(this.#d.genome.limits, () => {
      // (An idle cell's own idleness matters only once apoptosis could be due: planning every
      // beat for it made every idle organism plan every beat, ≈ 20 % of an idle cell's CPU.)
      const idleDue = this.#idleDueAt !== undefined && this.#now() >= this.#idleDueAt - this.#d.genome.limits.pulseIntervalMs;
      const moved = this.#d.census.version !== this.#seenVersion || this.#needSince.size > 0 || idleDue;
      // Pending cells are news until they are stale (the plan ignores them then): a record
      // that keeps its last births until its next write made every cell plan every beat.
      const now = this.#now();
      if (moved || ++beats % everyBeats === 0 || [...this.#records.values()].some((r) => r.record.pending.some((p) => now - p.due < STALE_PENDING_MS))) this.#schedule();
    });
    for (const c of this.#d.census.list()) this.#remember(c.id);
    this.#offCensus = this.#d.census.on((e) => {
      if (e.type === 'joined') this.#remember(e.entry.id);
      if (e.type === 'joined' || (e.type === 'state' && (e.entry.state === 'dead' || e.from !== e.entry.state))) this.#schedule();
    });
  }

  /** Every tissue's record as the store holds it now, unless the watch brought it already; tried again until it can be read. */
  async #readRecords(): Promise<void> {
    for (let pause = 500; !this.#closed; pause = Math.min(pause * 2, 5_000)) {
      try {
        const read = await Promise.all(Object.keys(this.#d.genome.tissues).map(async (t) => [t, await readTissueRecord(this.#d.kv, t)] as const));
        for (const [tissue, r] of read) {
          if (r.revision > (this.#records.get(tissue)?.revision ?? 0)) this.#records.set(tissue, r);
        }
        return;
      } catch (e) {
        this.#d.log.warn({ err: (e as Error).message }, 'homeostasis records unreadable: trying again');
      }
      await this.#pause(pause);
    }
  }

  /**
   * Whether this cell has heard enough to plan. Past the warm-up (see #start), a newborn
   * also waits until its census holds every running cell process of the organism on its
   * host: a peer whose first pulses it could not yet verify (its certificate still being
   * looked up on a loaded host) would otherwise look missing and be regrown (a third stem
   * at grow). A process that never pulses (hung) holds it back at most limits.joinTimeoutMs.
   */
  #warmedUp(now: number, self: { id: string; host: string }): boolean {
    if (this.#warm) return true;
    if (now < this.#warmUntil) return false;
    if (now - this.#watchingSince < this.#d.genome.limits.joinTimeoutMs) {
      const heard = new Set([...this.#seen, ...this.#d.census.list().map((c) => c.id)]);
      if (localCells(this.#d.organism, self.host).some((c) => c.cell !== self.id && !heard.has(c.cell) && !isStopped(c.pid))) return false;
    }
    this.#warm = true;
    return true;
  }

  /**
   * The records, kept current by a watch that is made again whenever it fails or ends (a
   * cluster member lost, JetStream without a leader for a moment): a cell that stopped
   * hearing the records would lose every compare-and-set from then on.
   */
  async #keepWatching(first: QueuedIterator<KvWatchEntry>): Promise<void> {
    let next: QueuedIterator<KvWatchEntry> | undefined = first;
    for (let pause = 500; !this.#closed; pause = Math.min(pause * 2, 5_000)) {
      try {
        const watch: QueuedIterator<KvWatchEntry> = next ?? (await this.#d.kv.watch({ key: 'tissue.>' }));
        next = undefined;
        this.#watch = watch;
        if (this.#closed) return watch.stop();
        pause = 500;
        for await (const e of watch) this.#onEntry(e);
      } catch (e) {
        if (!this.#closed) this.#d.log.warn({ err: (e as Error).message }, 'homeostasis watch failed: watching again');
      }
      await this.#pause(pause);
    }
  }

  /**
   * A member on this host declared dead for missed pulses whose process still runs (not
   * stopped) is starved, not dead: it counts as suspect, so a loaded host does not spiral
   * into regrowing cells that are only late. A stopped (SIGSTOP) one is replaced.
   */
  #stillHere(c: CensusEntry, host: string): CensusEntry {
    if (!deadOfSilenceOn(c, host)) return c;
    return isProcessOf(c.pid, cellMarkers(c.id)) && !isStopped(c.pid) ? { ...c, state: 'suspect' } : c;
  }

  /** Cells seen in the census, kept after they leave it (bounded), so a pending cell that came and went is not a failed birth. */
  readonly #seen = new Set<string>();
  /** Ids ever added to #seen (its size stops moving once it is full). */
  #seenAdds = 0;
  #remember(id: string): void {
    if (this.#seen.has(id)) return;
    this.#seenAdds++;
    this.#seen.add(id);
    if (this.#seen.size > 4096) this.#seen.delete(this.#seen.values().next().value!);
  }

  #onEntry(e: KvWatchEntry): void {
    const tissue = e.key.slice('tissue.'.length);
    if (e.operation !== 'PUT') {
      this.#records.delete(tissue);
      return;
    }
    try {
      this.#records.set(tissue, { record: parseTissueRecord(e.value, tissue), revision: e.revision });
    } catch (err) {
      // Kept as an empty record at this revision: the next decision overwrites it.
      this.#d.log.warn({ err: (err as Error).message }, 'malformed homeostasis record');
      this.#records.set(tissue, { record: emptyTissueRecord(tissue), revision: e.revision });
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#closed) this.evaluate();
    });
  }

  /** The census version the last evaluation saw. */
  #seenVersion = -1;
  /** This (stem) cell recruited itself for a tissue and has not finished: it acts for no other. */
  #recruitingSelf = false;

  /** One look at every tissue; acts on what it finds. */
  evaluate(): void {
    this.#seenVersion = this.#d.census.version;
    const self = this.#d.self();
    if (self.state !== 'alive') return;
    const now = this.#now();
    if (!this.#warmedUp(now, self)) return;
    // Without its own host's digest (grow gone or cut off) this cell cannot tell who lives
    // here: every local peer would look dead, and regrowing them all is the one wrong move.
    // (A census that never had a digest is fed by pulses: a test, or an observer.)
    if (this.#d.census.digests > 0 && this.#d.census.hostSilence(self.host) > this.#blindAfterMs()) return;
    // Nor while its census knows it is short of some host's own count of its cells (a newborn
    // whose whole answer has not come, rows lost): the cells it lacks would look missing and be
    // regrown (seen at 100 cells: a newborn holding 76 of 100 made 23 children). The census asks
    // for that host whole meanwhile; a shortfall that outlasts SHORT_WAIT_JOINS join timeouts
    // (a host counting cells this census will not hold) no longer stops the plans.
    const short = this.#d.census.shortSince();
    if (short !== undefined && now - short < SHORT_WAIT_JOINS * this.#d.genome.limits.joinTimeoutMs) {
      this.work.shortWaits++;
      return;
    }
    this.work.plans++;
    const { all, byTissue, byId, known: heard, hosts } = this.#viewFor(self.host);
    this.#trackIdle(byId.get(self.id), byTissue, now);
    const { known, beingBorn } = this.#stillBeingBorn(self.host, now, heard);
    for (const [tissue, gene] of Object.entries(this.#d.genome.tissues)) {
      // Its own differentiation under way: this cell is leaving its tissue, and acts for none.
      if (this.#recruitingSelf) break;
      if (this.#acting.has(tissue)) continue;
      const cached = this.#records.get(tissue) ?? { record: emptyTissueRecord(tissue), revision: 0 };
      const p = plan({
        tissue, gene, limits: this.#d.genome.limits, members: byTissue.get(tissue) ?? [], known, beingBorn, watchingSince: this.#watchingSince, record: cached.record, now, self, lowSince: this.#lowSince, hosts,
      });
      if (p.type === 'grow') this.#needSince.set(tissue, this.#needSince.get(tissue) ?? now);
      else this.#needSince.delete(tissue);
      if (p.type === 'none') continue;
      this.#acting.add(tissue);
      void this.#act(tissue, cached, p, all)
        .catch((e: unknown) => this.#d.log.warn({ err: (e as Error).message, tissue, plan: p.type }, 'homeostasis action failed'))
        .finally(() => this.#acting.delete(tissue));
    }
  }

  /**
   * A cell being made here that is overdue but whose process exists is slow (a loaded
   * host), not failed: it counts as known (not a failure) and is returned as being born
   * (still pending, so not replaced either).
   */
  #stillBeingBorn(host: string, now: number, heard: ReadonlySet<string>): { known: ReadonlySet<string>; beingBorn: Set<string> } {
    const born = new Set<string>();
    const overdue = [...this.#records.values()].flatMap((c) => c.record.pending).filter((p) => p.host === host && p.due <= now && !heard.has(p.id));
    if (overdue.length === 0) return { known: heard, beingBorn: born };
    const known = new Set(heard);
    const running = new Set(localCells(this.#d.organism).map((c) => c.cell));
    for (const p of overdue) {
      if (!running.has(p.id)) continue;
      known.add(p.id);
      born.add(p.id);
    }
    return { known, beingBorn: born };
  }

  /** What evaluate() derives from the census, kept while the census's view and #seen are the same. */
  #view: PlanView | undefined;

  /**
   * The census as this cell plans from it, grouped once: each plan used to filter the whole
   * census for its tissue, and to copy it, every time it ran — O(N) per tissue per cell every
   * few beats, the largest part of an idle cell's cost that grew with the population. Not
   * kept while a member here is dead of silence: whether its process still runs (#stillHere)
   * can change without the census moving.
   */
  #viewFor(host: string): PlanView {
    const base = this.#d.census.view();
    const v = this.#view;
    if (v && v.base === base && v.seen === this.#seenAdds) return v;
    this.work.views++;
    const all = base.map((c) => this.#stillHere(c, host));
    const byTissue = new Map<string, CensusEntry[]>();
    const byId = new Map<string, CensusEntry>();
    for (const c of all) {
      byId.set(c.id, c);
      const members = byTissue.get(c.tissue);
      if (members) members.push(c);
      else byTissue.set(c.tissue, [c]);
    }
    const view = { base, seen: this.#seenAdds, all, byTissue, byId, known: new Set([...this.#seen, ...byId.keys()]), hosts: liveHosts(all) };
    this.#view = base.some((c) => deadOfSilenceOn(c, host)) ? undefined : view;
    return view;
  }

  /** How long this host's digest may be silent before this cell stops planning (the census's suspect threshold). */
  #blindAfterMs(): number {
    const l = this.#d.genome.limits;
    return l.suspectAfterPulses * l.pulseIntervalMs + strideSlackMs(l);
  }

  #trackIdle(me: CensusEntry | undefined, byTissue: ReadonlyMap<string, CensusEntry[]>, now: number): void {
    const gene = me && this.#d.genome.tissues[me.tissue];
    if (!me || !gene || me.pulses < 1 || me.smoothed >= gene.low) this.#lowSince = undefined;
    else this.#lowSince ??= now;
    // When idleness alone could end this cell (apoptosis, cells/homeostasis-plan.ts step 7):
    // only once it has been low for idleMs, and only while its tissue is above its min.
    const members = me ? (byTissue.get(me.tissue) ?? []).filter((c) => c.state !== 'dead').length : 0;
    this.#idleDueAt = this.#lowSince !== undefined && gene && members > gene.min ? this.#lowSince + gene.idleMs : undefined;
  }

  /** Compare-and-set: true if this cell's write landed and it may act. */
  async #claim(tissue: string, cached: Cached, next: TissueRecord): Promise<boolean> {
    let revision: number | undefined;
    try {
      revision = await writeIfUnchanged(this.#d.kv, tissueKey(tissue), packRecord(next), cached.revision);
    } catch (e) {
      // The write could not land at all (no quorum, the bucket unavailable): this cell does nothing.
      this.#writeFailed(tissue, e);
      return false;
    }
    if (revision === undefined) {
      // Another cell's write landed first: this cell does nothing.
      this.claims.lost++;
      // The record moved on: read it now rather than wait for the watch (which may be lagging,
      // or hold a revision the store no longer has after a partition): the store is the truth.
      void readTissueRecord(this.#d.kv, tissue).then((r) => {
        if (r.revision !== (this.#records.get(tissue)?.revision ?? 0)) this.#records.set(tissue, r);
      }, () => undefined);
      return false;
    }
    this.#records.set(tissue, { record: next, revision });
    this.claims.won++;
    return true;
  }

  #writeFailed(tissue: string, e: unknown): void {
    this.claims.failed++;
    const at = this.#now();
    if (at - this.#failureLoggedAt > 10_000) {
      this.#failureLoggedAt = at;
      this.#d.log.warn({ err: (e as Error).message, record: tissue, failed: this.claims.failed }, 'homeostasis record write failed: standing down');
    }
  }

  /** Read-modify-write of a record after the fact (pending list changes), retried when a write does not land. */
  async #mutate(tissue: string, change: (r: TissueRecord) => TissueRecord): Promise<TissueRecord | undefined> {
    const outcome = await mutateTissueRecord(this.#d.kv, tissue, change, {
      attempts: 8,
      // A conflict is another cell's change (read again); a refused write may land a moment later.
      retryOn: (e) => {
        if (isCasConflict(e)) this.claims.lost++;
        else this.#writeFailed(tissue, e);
        return true;
      },
    });
    if (outcome.type !== 'written' || outcome.value === undefined) return undefined;
    this.#records.set(tissue, { record: outcome.value, revision: outcome.revision });
    this.claims.won++;
    return outcome.value;
  }

  #announce(tissue: string, action: DecisionAction, cells: string[], count: number, reason: string, epoch: number, readings: Readings): void {
    this.counts[action] = (this.counts[action] ?? 0) + 1;
    this.#d.publish('decision', { tissue, action, cells, count, reason: reason.slice(0, 512), epoch, readings });
    this.#d.log.info({ tissue, action, cells, count, epoch, readings }, reason);
  }

  async #act(tissue: string, cached: Cached, p: Exclude<Plan, { type: 'none' }>, all: CensusEntry[]): Promise<void> {
    const self = this.#d.self();
    const now = this.#now();
    const gene = this.#d.genome.tissues[tissue]!;
    const calm = calmMs(gene, this.#d.genome.limits.pulseIntervalMs);
    if (p.type !== 'grow') {
      const next = nextRecord(cached.record, p, self.id, now, calm);
      if (!(await this.#claim(tissue, cached, next))) return;
      switch (p.type) {
        case 'die':
          this.#announce(tissue, 'die', [self.id], 1, p.reason, next.epoch, p.readings);
          this.#d.die(p.reason);
          return;
        case 'back-off':
          this.#announce(tissue, 'back-off', p.failed, p.failed.length, p.reason, next.epoch, p.readings);
          return;
        case 'recover':
          this.#announce(tissue, 'recover', [p.survivor], 0, p.reason, next.epoch, p.readings);
          return;
        case 'refuse':
          this.#announce(tissue, 'refuse', [], p.count, p.reason, next.epoch, p.readings);
          return;
      }
    }
    await this.#grow(tissue, cached, p, all, now, calm);
  }

  async #grow(tissue: string, cached: Cached, p: Extract<Plan, { type: 'grow' }>, all: CensusEntry[], now: number, calm: number): Promise<void> {
    const self = this.#d.self();
    const limits = this.#d.genome.limits;
    const pendingEverywhere = [...this.#records.values()].flatMap((c) => c.record.pending.filter((q) => q.due > now));
    const a = allocate({
      tissue, plan: p, census: all, pendingEverywhere, tissuePending: this.#records.get(tissue)?.record.pending.filter((q) => q.due > now) ?? [],
      limits, self, budget: this.#d.mitosis.budget, othersCanDivide: this.#othersCanDivide(all, tissue), now, newId: newCellId,
      // Acting for another tissue already (a division for the stem pool above all): not a recruit itself.
      selfMayDifferentiate: [...this.#acting].every((t) => t === tissue),
    });
    if (a.type === 'leave') return;
    if (a.type === 'refuse') {
      const next = nextRecord(cached.record, a, self.id, now, calm);
      if (await this.#claim(tissue, cached, next)) this.#announce(tissue, 'refuse', [], a.count, a.reason, next.epoch, a.readings);
      return;
    }
    // Set before the first await, so the evaluation that started this sees it (Homeostat.evaluate).
    const recruitsSelf = a.stems.some((s) => s.id === self.id);
    if (recruitsSelf) this.#recruitingSelf = true;
    try {
      await this.#make(tissue, cached, p, a, now, calm);
    } finally {
      if (recruitsSelf) this.#recruitingSelf = false;
    }
  }

  async #make(tissue: string, cached: Cached, p: Extract<Plan, { type: 'grow' }>, a: Extract<Allocation, { type: 'make' }>, now: number, calm: number): Promise<void> {
    const self = this.#d.self();
    const limits = this.#d.genome.limits;
    const { stems, planned, pending, refused: refusedNow, limitsHit, readings } = a;
    const base = nextRecord(cached.record, p, self.id, now, calm);
    const next = { ...base, pending: [...base.pending, ...pending], refused: base.refused + refusedNow };
    if (!(await this.#claim(tissue, cached, next))) return;
    // Spawns also spend the organism's mitosis-per-minute window.
    const tokens = await takeSpawnTokens(this.#d.kv, planned.length, limits.mitosisPerMinute, this.#now);
    const granted = planned.slice(0, tokens);
    const unspent = planned.slice(tokens).map((c) => c.id);
    if (unspent.length > 0) {
      limitsHit.push(`limits.mitosisPerMinute (${limits.mitosisPerMinute})`);
      await this.#mutate(tissue, (r) => ({ ...r, pending: r.pending.filter((q) => !unspent.includes(q.id)), refused: r.refused + unspent.length }));
    }
    const spawns = granted.filter((c) => c.host === self.host).map((c) => c.id);
    const remote = granted.filter((c) => c.host !== self.host);
    if (stems.length > 0) this.#announce(tissue, 'differentiate', stems.map((s) => s.id), stems.length, p.reason, next.epoch, readings);
    if (spawns.length > 0) this.#announce(tissue, 'divide', spawns, spawns.length, p.reason, next.epoch, readings);
    if (remote.length > 0) {
      const where = [...new Set(remote.map((c) => c.host))].join(', ');
      this.#announce(tissue, 'divide', remote.map((c) => c.id), remote.length, `${p.reason}; placed on ${where} (room there; that host's grow makes them)`, next.epoch, readings);
    }
    const refused = refusedNow + unspent.length;
    if (refused > 0) this.#announce(tissue, 'refuse', [], refused, `${p.reason}; ${refused} refused: ${limitsHit.join(', ')}`, next.epoch, readings);
    // Recruits are requests: all at once. Births are CPU: a new process takes about 150 ms
    // of a core to boot, so more than one per core at a time only makes every one of them
    // late (six at once on two cores: the first serves after ~2 s instead of ~0.3 s). A
    // birth from a waiting zygote (limits.zygotes) skips that boot: the host's zygotes may be
    // taken at the same time, on top.
    const queue = [...spawns];
    const births = Array.from({ length: Math.min(queue.length, availableParallelism() + this.#d.genome.limits.zygotes) }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) await this.#divide(tissue, id);
    });
    await Promise.all([...stems.map((s) => this.#recruit(tissue, s.id, next.epoch)), ...births, ...remote.map((c) => this.#placeOn(tissue, c.id, c.host, next.epoch))]);
  }

  /** Asks `host`'s grow to make cell `id` (a pending cell of this decision); a refusal or silence is a failed birth. */
  async #placeOn(tissue: string, id: string, host: string, epoch: number): Promise<void> {
    try {
      if (!this.#d.placeOn) throw new CellularError('PLACEMENT_ERR_REFUSED', 'this cell cannot reach other hosts');
      await this.#d.placeOn(host, { tissue, id, by: this.#d.self().id, epoch });
      await this.#awaitJoin(id);
      if (this.#d.census.get(id)) await this.#joined(tissue, id);
    } catch (e) {
      this.#d.log.warn({ err: (e as Error).message, tissue, id, host }, 'placement failed');
      await this.#failedBirth(tissue, id, `was not made on host ${host}: ${(e as Error).message}`, transientClusterError(e));
    }
  }

  /** Resolves once `id` joined the census, `gone` resolved, or limits.joinTimeoutMs passed. */
  async #awaitJoin(id: string, gone?: Promise<void>): Promise<void> {
    if (this.#d.census.get(id) || this.#stop.signal.aborted) return;
    let off: (() => void) | undefined;
    const joined = new Promise<void>((r) => (off = this.#d.census.on((e) => e.type === 'joined' && e.entry.id === id && r())));
    let onStop: (() => void) | undefined;
    const stopped = new Promise<void>((r) => this.#stop.signal.addEventListener('abort', (onStop = () => r()), { once: true }));
    await within(Promise.race([joined, stopped, ...(gone ? [gone] : [])]), this.#d.genome.limits.joinTimeoutMs, undefined);
    off?.();
    this.#stop.signal.removeEventListener('abort', onStop!);
  }

  /** Waits `ms`, or less if the homeostat is closed meanwhile. */
  #pause(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.#stop.signal }).catch(() => undefined);
  }

  /**
   * Budgets are not in pulses, so another living cell may still have some: a cell with none
   * leaves the division to them, and announces the refusal only if the need outlasts two
   * pulse intervals with nobody acting.
   */
  #othersCanDivide(all: CensusEntry[], tissue: string): boolean {
    const others = all.filter((c) => c.state === 'alive' && c.id !== this.#d.self().id).length;
    const since = this.#needSince.get(tissue) ?? this.#now();
    return others > 0 && this.#now() - since < 2 * this.#d.genome.limits.pulseIntervalMs;
  }

  async #recruit(tissue: string, stem: string, epoch: number): Promise<void> {
    try {
      await this.#d.mitosis.recruit(stem, { tissue, by: this.#d.self().id, epoch } satisfies DifferentiateBody);
      // Its yes is not yet in any census: the stem's next pulse, then its host's digest, say
      // it serves the tissue. It stays pending in the record until its due time, and counts
      // as pending only until a census shows it as a member (homeostasis-plan.ts population):
      // struck off at the yes, the tissue looked one short meanwhile and a second cell
      // recruited another stem for the same place.
    } catch (e) {
      // No answer is not a no: the stem may still differentiate (its credential comes from a
      // mint that a loaded host answers late). It stays pending in the record until it shows
      // up as a member or its due time passes; a cell made in its place now could be a third
      // where the tissue wanted two.
      if (isCellularError(e, 'HOMEOSTASIS_ERR_UNANSWERED')) {
        this.#d.log.warn({ err: e.message, stem, tissue }, 'recruit unanswered; the stem stays pending');
        return;
      }
      // The stem said no or is gone: divide instead, in its place.
      this.#d.log.warn({ err: (e as Error).message, stem, tissue }, 'recruit failed; dividing instead');
      const id = newCellId(tissue);
      const now = this.#now();
      const swapped = await this.#mutate(tissue, (r) => ({
        ...r, pending: [...r.pending.filter((q) => q.id !== stem), ...(this.#d.mitosis.budget > 0 ? [{ id, host: this.#d.self().host, due: now + this.#d.genome.limits.joinTimeoutMs, how: 'spawn' as const }] : [])],
      }));
      if (swapped && this.#d.mitosis.budget > 0 && (await takeSpawnTokens(this.#d.kv, 1, this.#d.genome.limits.mitosisPerMinute, this.#now)) === 1) {
        this.#announce(tissue, 'divide', [id], 1, `stem ${stem} could not differentiate (${(e as Error).message})`, swapped.epoch, {});
        await this.#divide(tissue, id);
      }
    }
  }

  /** Divides and resolves once the child has joined the census, exited, or overstayed limits.joinTimeoutMs. */
  async #divide(tissue: string, id: string): Promise<void> {
    const started = this.#now();
    let exited!: () => void;
    const gone = new Promise<void>((r) => (exited = r));
    try {
      await this.#d.mitosis.divide(tissue, id, (code, signal) => {
        exited();
        // A child that exits before it lived past the crash window is a failed birth.
        if (this.#now() - started < this.#d.genome.limits.crashWindowMs || !this.#d.census.get(id)) void this.#failedBirth(tissue, id, signal === null && code === null ? 'its process is gone' : `exited with ${signal ?? `code ${code}`}`);
      });
      if (this.#d.census.get(id)) return;
      await this.#awaitJoin(id, gone);
      if (this.#d.census.get(id)) await this.#joined(tissue, id);
    } catch (e) {
      this.#d.log.warn({ err: (e as Error).message, tissue, id }, 'division failed');
      await this.#failedBirth(tissue, id, (e as Error).message, transientClusterError(e));
    }
  }

  /** A new member serves: it is no longer pending (the census counts it from now on). */
  async #joined(tissue: string, id: string): Promise<void> {
    await this.#mutate(tissue, (r) => (r.pending.some((q) => q.id === id) ? { ...r, pending: r.pending.filter((q) => q.id !== id) } : r));
  }

  /**
   * A birth that failed. A cell that crashed young counts towards the crash-loop back-off
   * (exponential); one that could not be made because the store was unavailable (a cluster
   * electing a leader, a partition: `unavailable`) waits the base back-off only and counts
   * nothing, or a few seconds of JetStream outage would hold regrowth for half a minute.
   */
  async #failedBirth(tissue: string, id: string, why: string, unavailable = false): Promise<void> {
    if (this.#closed) return;
    const limits = this.#d.genome.limits;
    const now = this.#now();
    let wait = 0;
    const next = await this.#mutate(tissue, (r) => {
      if (r.crashed.includes(id)) return r;
      const failures = unavailable ? r.failures : r.failures + 1;
      wait = unavailable ? limits.regrowBackoffMs : backoffMs(failures, limits.regrowBackoffMs, limits.regrowBackoffMaxMs);
      return {
        ...r, epoch: r.epoch + 1, at: now, by: this.#d.self().id, action: 'back-off', failures, failedAt: unavailable ? r.failedAt : now, retryAt: now + wait,
        crashed: [...r.crashed, id].slice(-32), pending: r.pending.filter((q) => q.id !== id),
      };
    });
    if (next && next.crashed.includes(id) && wait > 0) {
      const reason = unavailable
        ? `new ${tissue} cell ${id} ${why}: the store is unavailable, not the cell: waiting ${wait} ms before regrowing`
        : `new ${tissue} cell ${id} ${why} within ${limits.crashWindowMs} ms of birth (${next.failures} in a row): waiting ${wait} ms before regrowing`;
      this.#announce(tissue, 'back-off', [id], 1, reason, next.epoch, { failures: next.failures, backoffMs: wait });
    }
  }

  close(): void {
    this.#stop.abort();
    this.#timer?.stop();
    this.#offCensus?.();
    this.#watch?.stop();
  }
}
