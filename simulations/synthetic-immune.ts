/**
 * The synthetic cells' immune systems: each synthetic cell (simulations/synthetic-cells.ts)
 * runs the real `Immune` (cells/immune/immune.ts) under its own identity — it watches the
 * peers its panel draw gives it, accuses, votes from its own evidence, counts every vote
 * itself and acts on its own tally — so a jury drawn from a census of a thousand cells, most
 * of them synthetic, is a jury that votes.
 *
 * What the cells of this one process share, and a real cell would hold alone:
 * - one connection, one hormone bus (each hormone's signature is checked once, then handed
 *   to every immune system) and one census fed by the host digests, as a cell's is;
 * - one lineage watch (cells/immune/lineage-watch.ts) and the sortition rings, made once per
 *   census change and beacon instead of once per cell;
 * - one verdict record per accusation: the first tally to find guilty writes it, the others
 *   wait on that write (a real cell writes its own; a conflict tells it the verdict stands).
 * Each cell's hormones are sealed with its own key and published on its own subject.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Immune, type ImmuneStats } from '../cells/immune/immune.ts';
import { LineageWatch } from '../cells/immune/lineage-watch.ts';
import { recordVerdict } from '../cells/immune/verdict-record.ts';
import type { Logger } from '../cells/logger.ts';
import { CertBook } from '../organism/kernel/cert-book.ts';
import { Census } from '../organism/kernel/census.ts';
import type { Genome } from '../organism/kernel/genome/index.ts';
import { HormoneBus } from '../organism/kernel/hormone-bus.ts';
import { HormoneGate } from '../organism/kernel/hormone-gate.ts';
import { sealHormone, type Signer } from '../organism/kernel/hormone.ts';
import type { Certificate } from '../organism/kernel/lineage.ts';
import type { Namespace } from '../organism/kernel/namespace.ts';
import { Ring, type Candidate } from '../organism/kernel/sortition.ts';
import { openHomeostasis } from '../organism/kernel/stores.ts';
import type { HormoneKind } from '../organism/kernel/vocabulary.ts';
import { WholeDigest } from '../organism/kernel/whole-digest.ts';

export interface SyntheticImmuneOptions {
  nc: NatsConnection;
  ns: Namespace;
  genome: Readonly<Genome>;
  rootPub: Uint8Array;
  lineage: KV;
  cells: ReadonlyArray<{ signer: Signer; cert: Certificate }>;
}

/** What the synthetic cells' immune systems did, summed. */
export type SyntheticImmuneStats = Pick<ImmuneStats, 'accusations' | 'votes' | 'verdicts' | 'forgeries' | 'withheld'> & {
  cells: number;
  /** Guilty tallies recorded (by the first of this process's cells to find guilty). */
  recorded: number;
  /** Warnings the immune systems logged (a verdict withheld, a lineage watch failing). */
  warnings: number;
};

/**
 * A ring shared by every synthetic cell: whom each watches comes from one pass over all
 * panels (Ring.watchers), where each cell's own `watchedBy` would try its ≈ 8 × jury
 * predecessors' panels — at 970 cells and jury 41, ≈ 300,000 panels per census change,
 * which stalled this process (and so its made-up hosts' digests) for seconds.
 */
class SharedRing extends Ring {
  override watchedBy(self: string, size: number): string[] {
    return [...(this.watchers(size).get(self) ?? [])];
  }
}

/** Rings kept: the census moves a few times around a birth or death, and two beacons overlap at an epoch's turn. */
const RINGS_KEPT = 4;

export class SyntheticImmune {
  readonly #o: SyntheticImmuneOptions;
  readonly #immunes: Immune[] = [];
  readonly #census: Census;
  readonly #certs: CertBook;
  readonly #bus: HormoneBus;
  readonly #lineageWatch: LineageWatch;
  #whole: WholeDigest | undefined;
  readonly #rings = new Map<string, Ring>();
  readonly #verdicts = new Map<string, Promise<boolean>>();
  #store: Promise<KV> | undefined;
  #recorded = 0;
  #warnings = 0;
  readonly #log: Logger;

  constructor(o: SyntheticImmuneOptions) {
    this.#o = o;
    const { genome } = o;
    const limits = genome.limits;
    this.#log = { debug() {}, info() {}, warn: () => void this.#warnings++, error: () => void this.#warnings++ };
    this.#certs = new CertBook(o.rootPub, Promise.resolve(o.lineage));
    this.#census = new Census({
      limits,
      certOf: (id) => this.#certs.certOf(id),
      halfLifeOf: (tissue) => genome.tissues[tissue]?.halfLifeMs ?? 2_000,
      pulsesOf: () => false, // from the host digests, as a cell's census
      beat: true,
      onGap: (host) => this.#whole?.gap(host),
    });
    this.#bus = new HormoneBus({
      nc: o.nc, ns: o.ns, certs: this.#certs, maxBytes: limits.hormoneMaxBytes, pulses: 'none',
      gate: new HormoneGate({ organism: o.ns.id, maxBytes: limits.hormoneMaxBytes, maxAgeMs: limits.hormoneMaxAgeMs, replayWindow: limits.replayWindowMs * 1000 }),
    });
    this.#lineageWatch = new LineageWatch({ lineage: Promise.resolve(o.lineage), certs: this.#certs, log: this.#log });
  }

  async start(): Promise<void> {
    const { nc, ns, genome } = this.#o;
    const limits = genome.limits;
    for (const c of this.#o.cells) await this.#certs.learn(c.cert);
    this.#bus.on((h) => this.#census.observe(h));
    this.#bus.start();
    this.#census.start();
    this.#whole = new WholeDigest({ nc, ns, bus: this.#bus, intervalMs: limits.pulseIntervalMs, onError: () => {} });
    void this.#whole.ask();
    const ringOf = (beacon: string, candidates: readonly Candidate[]): Ring => {
      const key = `${beacon}\0${candidates.map((c) => c.id).join(',')}`;
      let ring = this.#rings.get(key);
      if (!ring) {
        ring = new SharedRing(beacon, candidates);
        this.#rings.set(key, ring);
        for (const k of this.#rings.keys()) if (this.#rings.size > RINGS_KEPT) this.#rings.delete(k);
      }
      return ring;
    };
    for (const c of this.#o.cells) {
      const signer = c.signer;
      const immune = new Immune({
        gene: genome.immune, limits, organism: ns.id, self: { id: signer.id, host: c.cert.host },
        bus: {
          on: (l) => this.#bus.on(l),
          onForgery: (l) => this.#bus.onForgery(l),
          quarantine: (id) => this.#bus.quarantine(id),
          publish: <B>(kind: HormoneKind, body: B) => nc.publish(ns.hormone(kind, signer.id), sealHormone(signer, kind, body, limits.hormoneMaxBytes)),
        },
        census: this.#census, certs: this.#certs, lineage: this.#lineageWatch, ringOf, log: this.#log,
        commitVerdict: (accusation, accused) => this.#commit(signer.id, accusation, accused),
      });
      immune.start();
      this.#immunes.push(immune);
    }
    this.#lineageWatch.start();
  }

  /** The first tally here writes the record; the rest wait on it (see the header). */
  #commit(by: string, accusation: string, accused: string): Promise<boolean> {
    let p = this.#verdicts.get(accusation);
    if (p) return p;
    p = (async () => {
      this.#store ??= openHomeostasis(this.#o.nc, this.#o.ns, Math.max(1_000, 4 * this.#o.genome.limits.pulseIntervalMs));
      const recorded = await recordVerdict(await this.#store, { accusation, accused, by }, this.#o.genome.immune.voteDeadlineMs);
      if (recorded === 'written') this.#recorded++;
      return recorded !== undefined;
    })();
    this.#verdicts.set(accusation, p);
    // A failed write may be tried again by a later tally (a quorum back).
    void p.then((ok) => {
      if (!ok) this.#verdicts.delete(accusation);
    });
    return p;
  }

  /** The census these cells share (from the host digests). */
  get census(): Census {
    return this.#census;
  }

  stats(): SyntheticImmuneStats {
    const s: SyntheticImmuneStats = { cells: this.#immunes.length, accusations: 0, votes: { guilty: 0, innocent: 0 }, verdicts: { guilty: 0, acquitted: 0 }, forgeries: 0, withheld: 0, recorded: this.#recorded, warnings: this.#warnings };
    for (const i of this.#immunes) {
      s.accusations += i.stats.accusations;
      s.votes.guilty += i.stats.votes.guilty;
      s.votes.innocent += i.stats.votes.innocent;
      s.verdicts.guilty += i.stats.verdicts.guilty;
      s.verdicts.acquitted += i.stats.verdicts.acquitted;
      s.forgeries += i.stats.forgeries;
      s.withheld += i.stats.withheld;
    }
    return s;
  }

  async close(): Promise<void> {
    for (const i of this.#immunes.splice(0)) i.close();
    this.#lineageWatch.close();
    this.#whole?.close();
    this.#census.close();
    await this.#bus.close();
  }
}
