/**
 * A cell's immune duties: gather evidence on its peers, accuse past a threshold, vote from
 * its own evidence, and on a guilty verdict of its own tally quarantine the condemned (and,
 * for cancer, its lineage) and kill it if it lives on this host. No cell judges alone and
 * none trusts another's verdict: each counts the signed votes itself (cells/immune/jury.ts).
 *
 * Every step is a hormone (`accuse`, `vote`, `verdict`, `toxin`) the dashboard can show.
 */
import { onBeat, type PhasedTimer } from '../../organism/kernel/phase.ts';
import type { Census, CensusEntry } from '../../organism/kernel/census.ts';
import type { CertBook } from '../../organism/kernel/cert-book.ts';
import type { ImmuneGene, Limits } from '../../organism/kernel/genome/index.ts';
import type { HormoneBus } from '../../organism/kernel/hormone-bus.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { ROOT_ISSUER, type Certificate } from '../../organism/kernel/lineage.ts';
import { isProcessOf, localCells, signalCell } from '../../organism/kernel/processes.ts';
import { hostName } from '../../organism/kernel/host.ts';
import { cellMarkers } from '../spawn.ts';
import type { AccuseBody, DigestBody, HormoneKind, ToxinBody, VerdictBody, VoteBody } from '../../organism/kernel/vocabulary.ts';
import type { Logger } from '../logger.ts';
import { Evidence } from './evidence.ts';
import { lineageOf, onRing, panelHolds, Trial } from './jury.ts';
import { Ring, type Candidate } from '../../organism/kernel/sortition.ts';
import type { LineageFeed } from './lineage-watch.ts';

export interface ImmuneDeps {
  gene: ImmuneGene;
  limits: Pick<Limits, 'pulseIntervalMs'> & Partial<Pick<Limits, 'calmStride'>>;
  organism: string;
  self: { id: string; host: string };
  bus: Pick<HormoneBus, 'on' | 'onForgery' | 'quarantine' | 'publish'>;
  census: Pick<Census, 'list' | 'view' | 'get' | 'condemn' | 'beacon' | 'beaconOf' | 'membership'>;
  certs: Pick<CertBook, 'certOf' | 'learn' | 'resolve'>;
  /**
   * The lineage bucket's certificates as they are written (cells/immune/lineage-watch.ts):
   * before a child's process starts, so a runaway parent's children count before they are born.
   */
  lineage?: LineageFeed;
  /**
   * Makes the sortition ring of a census for a beacon. A process that runs many immune
   * systems over one census (simulations/synthetic-cells.ts) shares the rings. @default new Ring
   */
  ringOf?: (beacon: string, candidates: readonly Candidate[]) => Ring;
  /**
   * Records a guilty tally where only a quorum can write (the homeostasis bucket): true once
   * it is recorded, by this cell or another; false if it cannot be (a minority partition).
   * Without it (tests) a tally is acted on at once.
   */
  commitVerdict?: (accusation: string, accused: string) => Promise<boolean>;
  log: Logger;
  now?: () => number;
}

export interface ImmuneStats {
  accusations: number;
  votes: { guilty: number; innocent: number };
  verdicts: { guilty: number; acquitted: number };
  toxins: number;
  quarantined: number;
  forgeries: number;
  /** Guilty tallies not recorded (no KV quorum, a store timing out), so not acted on: one recorded by a later attempt leaves this count. */
  withheld: number;
  /** Votes on an accusation this cell never received, dropped at their deadline (no evidence). */
  strayVotes: number;
}

/** Trials remembered after they closed (so late votes and toxins are judged against them). */
const CLOSED_KEPT = 256;
/** Trials one accuser may have open at once (each makes every cell vote). */
const OPEN_TRIALS_PER_ACCUSER = 16;
/** Votes held for accusations not heard yet (a cluster may reorder hormones). */
const EARLY_VOTES_MAX = 1024;
/** Votes of one sender held for accusations not heard yet (an honest juror has one per open trial). */
const EARLY_VOTES_PER_SENDER = 32;
/** Accusations received but not heard, remembered so their votes are not taken for forgeries. */
const UNHEARD_KEPT = 1024;
/** How long past a vote deadline after its start a cell leaves toxins on trials it never had unjudged (ms): later sweeps of a verdict come up to 6 s after it. */
const YOUNG_TOXIN_MS = 10_000;
/** After a cancer's verdict, its lineage on this host is looked for again this long after (ms): children certified before it start after it. */
const LINEAGE_SWEEPS_MS = [500, 1_500, 3_000, 6_000];
/** A child certified into a condemned lineage on this host is looked for this long after its certificate (ms): its process starts after it. */
const LATE_CHILD_SWEEPS_MS = [300, 1_000, 3_000];
/** Vote deadlines a cell that does not watch a peer waits, past a jitter of one, before it accuses that peer on evidence of its own. */
const UNWATCHED_GRACE_DEADLINES = 2;
/** Peers remembered in that wait. */
const UNWATCHED_KEPT = 1024;
/** How long each watcher waits after the one before it on the panel, before it accuses too (#review). */
export const WATCHER_TURN_MS = 150;
/** Times a withheld verdict's record is tried again, about a vote deadline apart (spread). */
const WITHHELD_RETRIES = 4;

export class Immune {
  readonly #d: ImmuneDeps;
  readonly #now: () => number;
  readonly evidence: Evidence;
  readonly #unheard = new Set<string>();
  /**
   * Cells accused of cancer in an accusation this cell received but did not hear: a toxin for
   * one of their descendants, naming `lineage`, cannot be checked here (#isGuiltyLineage).
   */
  readonly #unheardLineages = new Set<string>();
  readonly #trials = new Map<string, { trial: Trial; opened: number; voted: boolean; published: boolean }>();
  /** accused → until when no new accusation is made against it (one trial at a time; a pause after an acquittal). */
  readonly #calm = new Map<string, number>();
  readonly #early: Array<{ h: Hormone<VoteBody>; until: number }> = [];
  /** Toxins to judge once their trial had time to close here. */
  readonly #toxins: Array<{ from: string; body: ToxinBody; at: number }> = [];
  /** Lineages condemned for cancer: a child born into one is condemned at birth. */
  readonly #condemnedLineages = new Set<string>();
  /**
   * Cells whose lineage this cell's own tally found guilty, recorded or not yet (withheld): a
   * toxin for one of their descendants is no forgery here, only not acted on (#isGuiltyLineage).
   */
  readonly #guiltyLineages = new Set<string>();
  readonly #condemned = new Set<string>();
  readonly #offs: Array<() => void> = [];
  /** The sortition ring of the census and beacon it was drawn from (rebuilt when either moves). */
  #ring: { membership: number; condemned: number; beacon: string; ring: Ring; ids: string } | undefined;
  /** The peers this cell watches (their panel holds it): it acts on their hosts' findings. */
  #watched = new Set<string>();
  #tick: PhasedTimer | undefined;
  #reviewSoon = false;
  /** Peers with a finding that calm held back: looked at again at every review. */
  readonly #held = new Set<string>();
  /** Peers this cell holds evidence against without watching them, and from when (jittered) it may accuse them anyway (#review). */
  readonly #unwatchedSince = new Map<string, { since: number; seen: number }>();
  /** Peers this cell watches and found evidence against, and since when: its turn to accuse comes by its place on their panel. */
  readonly #turnSince = new Map<string, number>();
  /** A review asked for at a time (a watcher's turn), cleared at close. */
  #turnTimer: NodeJS.Timeout | undefined;
  /** Withheld verdicts' next attempts (#closed), cleared at close. */
  readonly #retries = new Set<NodeJS.Timeout>();
  /** Sweeps of this host for condemned lineages, by delay (one each at most). */
  readonly #sweepTimers = new Map<number, NodeJS.Timeout>();
  /** When this immune system started: toxins on trials from before it are not its to judge. */
  #startedAt = 0;
  /** Guilty verdicts by accusation id, kept after their trials are trimmed (toxins still cite them). */
  readonly #guiltyVerdicts = new Map<string, Pick<AccuseBody, 'accused' | 'lineage'>>();
  #stopped = false;
  #seq = 0;
  readonly stats: ImmuneStats = { accusations: 0, votes: { guilty: 0, innocent: 0 }, verdicts: { guilty: 0, acquitted: 0 }, toxins: 0, quarantined: 0, forgeries: 0, withheld: 0, strayVotes: 0 };

  constructor(deps: ImmuneDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.evidence = new Evidence(deps.gene, this.#now);
  }

  start(): void {
    if (this.#tick) return;
    this.#startedAt = this.#now();
    this.#offs.push(this.#d.bus.on((h) => this.#onHormone(h)));
    this.#offs.push(this.#d.bus.onForgery((from, reason, kind) => this.#forgery(from, `signed ${kind} hormone with ${reason === 'badBody' ? 'a bad body' : 'an unknown kind'}`)));
    // On the shared beat (organism/kernel/phase.ts): one wakeup an interval for the review;
    // evidence that comes in between asks for a review at once.
    this.#tick = onBeat(this.#d.limits, () => this.#review());
    if (this.#d.lineage) this.#offs.push(this.#d.lineage.on((cert) => this.#onCertificate(cert)));
  }

  /** A certificate just written: a verified child counts against its parent's budget. */
  #onCertificate(cert: Certificate): void {
    if (this.#stopped || cert.parent === null || cert.parent === this.#d.self.id) return;
    // Antibodies, before the child even runs: a child certified into a condemned lineage is
    // condemned with it, and if it is made on this host, its process is looked for as it starts.
    if ((this.#condemnedLineages.has(cert.parent) || this.#condemned.has(cert.parent)) && cert.cell !== this.#d.self.id) {
      this.#condemnedLineages.add(cert.cell);
      this.#kill(cert.cell, 'certified into a condemned lineage');
      if (cert.host === this.#d.self.host) this.#sweepLater(LATE_CHILD_SWEEPS_MS);
      return;
    }
    const parent = this.#d.certs.certOf(cert.parent);
    if (!parent) return;
    this.evidence.child(cert.parent, cert.cell, parent.budget);
    // A child past the budget: review now, not at the next beat (up to a stride later).
    this.#reviewIfEvidence(cert.parent);
  }

  /** The parent of `id`, from its census entry or its certificate (a child not born yet has only the latter). */
  #parentOf(id: string): string | null | undefined {
    const entry = this.#d.census.get(id);
    if (entry) return entry.parent;
    return this.#d.certs.certOf(id)?.parent;
  }

  /**
   * Whether `id` or one of its ancestors (by census entries and certificates) is `hit`;
   * 'unknown' when a link on the way up is not known here.
   */
  #ancestry(id: string, hit: (cell: string) => boolean): boolean | 'unknown' {
    let c: string | null | undefined = id;
    for (let hops = 0; hops < 64; hops++) {
      if (hit(c)) return true;
      c = this.#parentOf(c);
      if (c === undefined) return 'unknown';
      if (c === null) return false;
    }
    return 'unknown';
  }

  /** Whether `id` is of a condemned lineage (itself or an ancestor condemned). */
  #condemnedKin(id: string): boolean | 'unknown' {
    return this.#ancestry(id, (c) => this.#condemnedLineages.has(c) || this.#condemned.has(c));
  }

  /**
   * Kills every process on this host of a condemned lineage, born or not: one scan of the
   * host's cell processes, each traced up its certificate chain. A cancer's children whose
   * births this census had not taken in when the verdict came (a fork storm on a starved
   * host) were missed by a kill that went by the census alone, and outlived the verdict by
   * 10 s and more, cut off from the broker (scale-hosts, stop 36). Each kill is a `lineage`
   * toxin, which every cell checks up the same chain.
   */
  #sweep(): void {
    // Only where this process sees its host's processes (not a synthetic cell of a made-up
    // host: 970 of them scanning /proc five times each stalled their process for 15 s).
    if (this.#stopped || this.#d.self.host !== hostName()) return;
    const unknown: { pid: number; cell: string }[] = [];
    const kill = (p: { pid: number; cell: string }) => {
      if (!this.#condemned.has(p.cell)) this.#condemnedLineages.add(p.cell);
      this.#kill(p.cell, 'of a condemned lineage', 'lineage', [p]);
    };
    for (const p of localCells(this.#d.organism)) {
      if (p.cell === this.#d.self.id) continue;
      const kin = this.#condemnedKin(p.cell);
      if (kin === true) kill(p);
      else if (kin === 'unknown') unknown.push(p);
    }
    // A process whose certificate has not come through the lineage watch yet (it lags on a
    // starved host: a cancer's children were found only by the sweep 1.5 s later) is looked up.
    if (unknown.length === 0) return;
    void Promise.all(unknown.map((p) => this.#d.certs.resolve(p.cell).catch(() => undefined))).then(() => {
      for (const p of unknown) if (!this.#stopped && this.#condemnedKin(p.cell) === true) kill(p);
    });
  }

  /**
   * Sweeps again after each of `delaysMs`: children certified before a verdict start after it.
   * One timer per delay at most, whatever asks (each certificate into a condemned lineage on
   * this host asks): a cancer with hundreds of certificates makes a few scans, not thousands.
   */
  #sweepLater(delaysMs: readonly number[]): void {
    for (const ms of delaysMs) {
      if (this.#sweepTimers.has(ms)) continue;
      const timer = setTimeout(() => {
        this.#sweepTimers.delete(ms);
        this.#sweep();
      }, ms);
      timer.unref?.();
      this.#sweepTimers.set(ms, timer);
    }
  }

  close(): void {
    this.#stopped = true;
    clearTimeout(this.#turnTimer);
    for (const timer of this.#retries) clearTimeout(timer);
    this.#retries.clear();
    for (const timer of this.#sweepTimers.values()) clearTimeout(timer);
    this.#sweepTimers.clear();
    this.#tick?.stop();
    for (const off of this.#offs.splice(0)) off();
  }

  /** Cells this cell has condemned. */
  get condemned(): ReadonlySet<string> {
    return this.#condemned;
  }

  #forgery(from: string, detail: string): void {
    if (from === ROOT_ISSUER || from === this.#d.self.id) return;
    this.stats.forgeries++;
    this.evidence.forgery(from, detail);
  }

  #onHormone(h: Hormone): void {
    const { self } = this.#d;
    if (h.kind === 'digest' && h.from === ROOT_ISSUER) return this.#onDigest(h.body as DigestBody);
    if (h.from === ROOT_ISSUER || h.from === self.id || this.#condemned.has(h.from)) {
      if (h.from === self.id) this.#onOwn(h);
      return;
    }
    this.evidence.hormone(h.from);
    this.#reviewIfEvidence(h.from);
    switch (h.kind as HormoneKind) {
      case 'birth':
        return this.#onBirth(h.from);
      case 'accuse':
        return this.#onAccuse(h as Hormone<AccuseBody>);
      case 'vote':
        return this.#onVote(h as Hormone<VoteBody>);
      case 'toxin':
        this.#toxins.push({ from: h.from, body: h.body as ToxinBody, at: this.#now() });
        return;
      case 'digest':
        // Only a host's grow (the root key) speaks for a host: a cell's digest tries to frame.
        return this.#forgery(h.from, 'a host digest, which only a grow may send');
      default:
    }
  }

  /**
   * A host digest: what its grow found against its cells (flooding, another genome or code,
   * a lie about their metabolism; organism/grow/host-watch.ts) is evidence here, and a row
   * without a finding takes one back. Every cell holds every finding, so any juror can vote
   * on it (one drawn a moment ago as well); only a cell's watchers accuse on it (#review).
   * A delta names few rows, and findings are rare: this costs nothing per peer.
   */
  #onDigest(d: DigestBody): void {
    let found = false;
    for (const row of d.rows) {
      if (row.i === this.#d.self.id || this.#condemned.has(row.i)) continue;
      this.evidence.hostSays(row.i, row.s === 'dead' ? undefined : row.e);
      found ||= row.e !== undefined;
    }
    if (!found) return;
    this.#ringFor(); // the watched set, in step with the census this digest just moved
    for (const row of d.rows) if (row.e && this.#watched.has(row.i)) this.#reviewIfEvidence(row.i);
    // Open trials wait on jurors' evidence: vote now, not at the next beat.
    for (const [id, t] of this.#trials) if (t.trial.standing === 'open' && !t.voted) this.#maybeVote(id);
  }

  /** Evidence against `peer` past its threshold: review now, not at the next beat (quarantine in ≤ 2 s). */
  #reviewIfEvidence(peer: string): void {
    if (this.#reviewSoon || (this.#calm.get(peer) ?? 0) > this.#now() || !this.evidence.against(peer)) return;
    this.#reviewSoon = true;
    setImmediate(() => {
      this.#reviewSoon = false;
      if (!this.#stopped) this.#review();
    });
  }

  /** A review in `ms` (the earliest asked for wins). */
  #reviewAt(ms: number): void {
    if (this.#turnTimer || this.#stopped) return;
    this.#turnTimer = setTimeout(() => {
      this.#turnTimer = undefined;
      if (!this.#stopped) this.#review();
    }, Math.max(1, Math.ceil(ms)));
  }

  /** Our own accusations and votes come back to us over NATS: count them like anyone's. */
  #onOwn(h: Hormone): void {
    if (h.kind === 'accuse') this.#onAccuse(h as Hormone<AccuseBody>);
    else if (h.kind === 'vote') this.#onVote(h as Hormone<VoteBody>);
  }

  #onBirth(id: string): void {
    const cert = this.#d.certs.certOf(id);
    if (!cert || cert.parent === null) return;
    // Antibodies: a child born into a condemned lineage is condemned with it.
    if ((this.#condemnedLineages.has(cert.parent) || this.#condemned.has(cert.parent)) && id !== this.#d.self.id) {
      this.#condemnedLineages.add(id);
      this.#kill(id, 'born into a condemned lineage');
      return;
    }
    const parent = this.#d.certs.certOf(cert.parent);
    if (parent) this.evidence.child(cert.parent, id, parent.budget);
  }

  #census(): CensusEntry[] {
    return this.#d.census.list();
  }

  /** The ring of the living census for `beacon` (the current one if unsaid); undefined before any digest brought a beacon. */
  #ringFor(beacon = this.#d.census.beacon?.beacon): Ring | undefined {
    if (beacon === undefined) return undefined;
    const membership = this.#d.census.membership;
    const r = this.#ring;
    if (r && r.membership === membership && r.condemned === this.#condemned.size && r.beacon === beacon) return r.ring;
    // The census's view: the same array until it changes, so processes that hold many immune
    // systems over one census (simulations/synthetic-immune.ts) copy it once per change, not once each.
    const candidates = this.#d.census.view().filter((c) => onRing(c) && !this.#condemned.has(c.id));
    // Membership moves with silence too (alive, suspect, dead of missed pulses), which leaves
    // the ring as it was: the same cells, the same ring, not 1,000 hashes and a sort again.
    const ids = candidates.map((c) => c.id).join('\n');
    if (r && r.beacon === beacon && r.ids === ids) {
      r.membership = membership;
      r.condemned = this.#condemned.size;
      return r.ring;
    }
    const ring = this.#d.ringOf ? this.#d.ringOf(beacon, candidates) : new Ring(beacon, candidates);
    if (beacon === this.#d.census.beacon?.beacon) {
      this.#ring = { membership, condemned: this.#condemned.size, beacon, ring, ids };
      // The peers whose panel holds this cell: it acts on their hosts' findings, and only theirs.
      this.#watched = new Set(ring.watchedBy(this.#d.self.id, this.#d.gene.jury));
    }
    return ring;
  }

  /**
   * The panel an accusation names, checked against this cell's own draw for its epoch: a
   * census may differ by a cell from the accuser's (a birth or death in flight), never more.
   */
  #panelHolds(a: AccuseBody): boolean {
    return a.epoch !== undefined && panelHolds(a, this.#ringFor(this.#d.census.beaconOf(a.epoch)), this.#d.gene.jury);
  }

  #onAccuse(h: Hormone<AccuseBody>): void {
    const a = h.body;
    // An accusation's id is its accuser's (`<accuser>.<n>`), and only cancer condemns a
    // lineage: two versions of one id (one condemning a lineage, one not) would have cells
    // that heard different versions take an honest killer's toxins for forgery.
    if (!a.id.startsWith(`${h.from}.`) || a.lineage !== (a.kind === 'cancer')) {
      if (h.from !== this.#d.self.id) this.#forgery(h.from, `an accusation ${a.id} that is not its own, or ${a.lineage ? 'condemns a lineage for' : 'spares the lineage of'} ${a.kind}`);
      return;
    }
    if (this.#trials.has(a.id)) return;
    if (this.#condemned.has(a.accused)) return this.#unhear(a);
    // Every accusation makes every cell vote: one accuser may keep only a few trials open
    // (one per accused), so a certified cell cannot make the whole swarm vote at its pace.
    let open = 0;
    for (const t of this.#trials.values()) {
      if (t.trial.by !== h.from || t.trial.standing !== 'open') continue;
      if (t.trial.accusation.accused === a.accused || ++open >= OPEN_TRIALS_PER_ACCUSER) return this.#unhear(a);
    }
    // The panel: drawn from the beacon, so an accuser cannot pick its jury; one that names
    // another is not heard (a census that differs by one cell is tolerated).
    if (!this.#panelHolds(a)) {
      this.#d.log.info({ accused: a.accused, by: h.from, jury: a.jury?.length ?? 0, epoch: a.epoch }, 'accusation with a panel this cell does not draw: not heard');
      return this.#unhear(a);
    }
    const trial = new Trial(a, h.from, this.#census(), a.jury);
    // An accusation by the accused's own lineage is still heard; its accuser simply cannot
    // vote (barred).
    this.#trials.set(a.id, { trial, opened: this.#now(), voted: false, published: false });
    // Calm (no other accusation against it for a while) only when the accuser is not the
    // accused or its lineage: a cell accusing itself of the wrong thing, over and over, would
    // otherwise keep every other accuser off it.
    if (!trial.barred.has(h.from)) this.#calm.set(a.accused, this.#now() + this.#d.gene.voteDeadlineMs);
    this.#trim();
    // Votes that came before the accusation.
    for (let i = this.#early.length - 1; i >= 0; i--) {
      const e = this.#early[i]!;
      if (e.h.body.accusation === a.id) {
        this.#early.splice(i, 1);
        this.#count(e.h);
      }
    }
    this.#maybeVote(a.id);
  }

  /**
   * An accusation this cell received and did not hear (not its panel's draw, its accused
   * already condemned, its accuser past its open trials). Its panel's votes are honest
   * votes on a real accusation, counted in no tally.
   * (At 108 cells, censuses a birth apart drew different panels: cells that heard an
   * accusation voted, cells that did not counted those votes as forged, and convicted an
   * honest voter of forgery.)
   */
  #unhear(a: AccuseBody): void {
    const id = a.id;
    this.#unheard.add(id);
    if (this.#unheard.size > UNHEARD_KEPT) this.#unheard.delete(this.#unheard.values().next().value!);
    if (a.lineage) {
      this.#unheardLineages.add(a.accused);
      if (this.#unheardLineages.size > UNHEARD_KEPT) this.#unheardLineages.delete(this.#unheardLineages.values().next().value!);
    }
    // Votes that came before it are not counted either: drop them now, not at their deadline.
    for (let i = this.#early.length - 1; i >= 0; i--) if (this.#early[i]!.h.body.accusation === id) this.#early.splice(i, 1);
  }

  #onVote(h: Hormone<VoteBody>): void {
    if (this.#unheard.has(h.body.accusation)) return;
    const t = this.#trials.get(h.body.accusation);
    if (!t) {
      // Each sender holds a few places at most: votes on accusations that never come cost a
      // sender nothing now (they are no evidence), and must not push out honest early votes.
      let own = 0;
      for (const e of this.#early) if (e.h.from === h.from && ++own >= EARLY_VOTES_PER_SENDER) return void this.stats.strayVotes++;
      if (this.#early.length >= EARLY_VOTES_MAX) this.#early.shift();
      this.#early.push({ h, until: this.#now() + this.#d.gene.voteDeadlineMs });
      return;
    }
    this.#count(h);
  }

  #count(h: Hormone<VoteBody>): void {
    const t = this.#trials.get(h.body.accusation)!;
    if (h.body.accused !== t.trial.accusation.accused) {
      this.#forgery(h.from, `a vote naming ${h.body.accused} on the trial of ${t.trial.accusation.accused}`);
      return;
    }
    const before = t.trial.standing;
    const outcome = t.trial.vote(h.from, h.body.guilty);
    if (outcome === 'barred') this.#forgery(h.from, `a vote in the trial of ${t.trial.accusation.accused}, its own lineage`);
    else if (outcome === 'changed') this.#forgery(h.from, `a second, different vote on ${h.body.accusation}`);
    if (before === 'open' && t.trial.standing !== 'open') this.#closed(h.body.accusation);
  }

  /** Votes guilty once our own evidence says so; innocent when the deadline is near and it does not. */
  #maybeVote(id: string): void {
    const t = this.#trials.get(id);
    if (!t || t.voted || t.trial.standing !== 'open') return;
    const a = t.trial.accusation;
    if (!t.trial.jurors.has(this.#d.self.id)) {
      t.voted = true; // not on this jury (born after it, or the accused's lineage)
      return;
    }
    const finding = this.evidence.against(a.accused, a.kind);
    const late = this.#now() - t.opened >= this.#d.gene.voteDeadlineMs * 0.8;
    if (!finding && !late) return;
    t.voted = true;
    const vote: VoteBody = { accusation: id, accused: a.accused, guilty: finding !== undefined, detail: finding?.detail ?? `no ${a.kind} evidence against ${a.accused} here` };
    if (vote.guilty) this.stats.votes.guilty++;
    else this.stats.votes.innocent++;
    this.#publish('vote', vote);
  }

  #closed(id: string): void {
    const t = this.#trials.get(id)!;
    const commit = this.#d.commitVerdict;
    if (t.trial.standing === 'guilty') {
      this.#guiltyVerdicts.set(id, { accused: t.trial.accusation.accused, lineage: t.trial.accusation.lineage });
      if (this.#guiltyVerdicts.size > UNHEARD_KEPT) this.#guiltyVerdicts.delete(this.#guiltyVerdicts.keys().next().value!);
    }
    if (t.trial.standing === 'guilty' && t.trial.accusation.lineage) {
      this.#guiltyLineages.add(t.trial.accusation.accused);
      if (this.#guiltyLineages.size > CLOSED_KEPT) this.#guiltyLineages.delete(this.#guiltyLineages.values().next().value!);
    }
    if (t.trial.standing !== 'guilty' || !commit) return this.#settle(id);
    // A side of a partition may hold 2/3 of what it can see: the verdict stands only once a
    // quorum of the whole organism's store has it (a minority cannot write there).
    const attempt = (left: number): void => {
      if (this.#stopped) return;
      void commit(id, t.trial.accusation.accused).then(
        (recorded) => {
          if (this.#stopped) return;
          if (recorded) {
            if (left < WITHHELD_RETRIES) this.stats.withheld--; // recorded late: no longer withheld
            return this.#settle(id);
          }
          if (left === WITHHELD_RETRIES) {
            this.stats.withheld++;
            this.#d.log.warn({ accused: t.trial.accusation.accused, votes: t.trial.guilty, jury: t.trial.jurors.size }, 'guilty by this tally, but the verdict cannot be recorded (no KV quorum: a minority side?): withheld');
          }
          // Asked again later: another cell's write may land, or the store come back (a healed
          // partition, a saturated server); a write that finds the record there settles it.
          // (At 100 cells every cell's write timed out at once, the accuser's too: the cancer
          // was dead, its verdict never said.)
          // Spread: every cell that tallied guilty is retrying the same record.
          if (left > 0) {
            const timer = setTimeout(() => {
              this.#retries.delete(timer);
              attempt(left - 1);
            }, this.#d.gene.voteDeadlineMs * (0.5 + Math.random()));
            timer.unref();
            this.#retries.add(timer);
          }
        },
        (e: unknown) => this.#d.log.warn({ err: (e as Error).message }, 'verdict commit failed'),
      );
    };
    attempt(WITHHELD_RETRIES);
  }

  /** Acts on a closed trial: kill the condemned, or hold a baseless accusation against its maker; the accuser publishes the verdict. */
  #settle(id: string): void {
    const t = this.#trials.get(id);
    if (!t || this.#stopped) return;
    const a = t.trial.accusation;
    const guilty = t.trial.standing === 'guilty';
    const condemned = !guilty ? [] : a.lineage ? [...lineageOf(a.accused, this.#census())] : [a.accused];
    if (guilty) {
      this.stats.verdicts.guilty++;
      if (a.lineage) this.#condemnedLineages.add(a.accused);
      this.#d.log.warn({ accused: a.accused, kind: a.kind, votes: t.trial.guilty, jury: t.trial.jurors.size, condemned }, 'guilty');
      // Never its own executioner: a condemned cell that killed itself would die before it
      // could say so, and the cells that find its pid gone would announce nothing.
      for (const c of condemned) if (c !== this.#d.self.id) this.#kill(c, `${a.kind}: ${a.detail}`, id);
      // And what of the lineage this census does not hold yet, on this host: now and a few times after.
      if (a.lineage) {
        this.#sweep();
        this.#sweepLater(LINEAGE_SWEEPS_MS);
      }
    } else {
      this.stats.verdicts.acquitted++;
      // An accusation no other juror supported, that the jury rejected, was baseless: held
      // against the accuser like forged traffic (three of them and it is accused itself).
      let support = 0;
      for (const j of t.trial.jurors) if (j !== t.trial.by && t.trial.voteOf(j) === true) support++;
      if (support === 0 && t.trial.innocent > 0) this.#forgery(t.trial.by, `a baseless accusation of ${a.accused} (${a.kind}): no other juror had evidence`);
      // Evidence that convinced no jury is not held against the accused again at once.
      this.#calm.set(a.accused, this.#now() + 3 * this.#d.gene.voteDeadlineMs);
      this.#d.log.info({ accused: a.accused, kind: a.kind, votes: t.trial.guilty, against: t.trial.innocent, jury: t.trial.jurors.size }, 'acquitted');
    }
    if (t.trial.by === this.#d.self.id && !t.published) {
      t.published = true;
      const verdict: VerdictBody = {
        accusation: id, accused: a.accused, kind: a.kind, guilty, votes: t.trial.guilty, against: t.trial.innocent,
        jury: t.trial.jurors.size, needed: t.trial.needed, condemned: condemned.slice(0, 256),
      };
      this.#publish('verdict', verdict);
    }
  }

  /**
   * Quarantine at once; kill if it lives on this host (by its command line, never a claimed
   * pid). `found`: its process, already found by a scan of this host's cells.
   */
  #kill(cell: string, why: string, accusation = 'lineage', found?: readonly { pid: number; cell: string }[]): void {
    if (!this.#condemned.has(cell)) {
      this.#condemned.add(cell);
      this.stats.quarantined++;
      this.#d.bus.quarantine(cell);
      this.evidence.forget(cell);
    }
    // Each time: a cell condemned before the census held it may have joined it since.
    this.#d.census.condemn(cell);
    const entry = this.#d.census.get(cell);
    const host = entry?.host ?? this.#d.certs.certOf(cell)?.host;
    if (!found && host !== this.#d.self.host) return;
    const claimed = found ?? (entry && isProcessOf(entry.pid, cellMarkers(cell)) ? [{ pid: entry.pid, cell }] : undefined);
    for (const p of claimed ?? localCells(this.#d.organism)) {
      if (p.cell !== cell) continue;
      if (signalCell(p.pid, cell, this.#d.organism, 'SIGKILL')) {
        this.stats.toxins++;
        this.#d.log.warn({ cell, pid: p.pid, why }, 'toxin');
        this.#publish('toxin', { accusation, accused: cell, cell, pid: p.pid, host: host ?? this.#d.self.host } satisfies ToxinBody);
      }
    }
  }

  #publish(kind: HormoneKind, body: unknown): void {
    try {
      this.#d.bus.publish(kind, body);
    } catch (e) {
      this.#d.log.warn({ err: (e as Error).message, kind }, 'immune hormone not sent');
    }
  }

  /** Periodic: accuse, vote, close trials past their deadline, judge toxins, drop stale state. */
  #review(): void {
    const now = this.#now();
    this.#ringFor(); // keeps the watched peers in step with the census and the beacon
    // Looked up one by one (a copy of the whole census every beat is what grew with the population).
    const lives = (id: string) => {
      const c = this.#d.census.get(id);
      return c !== undefined && c.state !== 'dead';
    };
    for (const [id, until] of this.#calm) if (until <= now) this.#calm.delete(id);
    // Only peers whose evidence changed since the last review, or that had a finding held
    // back by calm, can be accused now (evidence that did not change found nothing before).
    const held = [...this.#held];
    this.#held.clear();
    for (const peer of new Set([...this.evidence.takeChanged(), ...held])) {
      if (peer === this.#d.self.id || this.#condemned.has(peer)) continue;
      if (!lives(peer)) continue; // gone: nothing to accuse
      const finding = this.evidence.against(peer);
      if (!finding) continue;
      // What a host says reaches every cell: only the accused's watchers accuse on it, or
      // the whole organism would accuse at once.
      if (finding.host && !this.#watched.has(peer)) continue;
      // So does what every cell sees for itself (a cancer's births, forged traffic): its
      // watchers accuse at once, any other cell only if no accusation against it came within
      // a spread grace (a watcher's census that drew another panel, a watcher gone). At 100
      // cells every cell accused a cancer at the same instant: 45 trials, each making every
      // cell vote, and the organism too saturated to record any of the verdicts.
      if ((this.#calm.get(peer) ?? 0) > now) {
        // A trial under way or just ended: the grace below starts again after it, with a new
        // spread, so the cells that held back do not all accuse the moment the calm ends.
        this.#unwatchedSince.delete(peer);
        this.#turnSince.delete(peer);
        this.#held.add(peer);
        continue;
      }
      if (!this.#watched.has(peer)) {
        let wait = this.#unwatchedSince.get(peer);
        // Not looked at for a deadline: its evidence had gone meanwhile, and this is new.
        if (wait === undefined || now - wait.seen > this.#d.gene.voteDeadlineMs) {
          wait = { since: now + Math.random() * this.#d.gene.voteDeadlineMs, seen: now };
          this.#unwatchedSince.delete(peer);
          this.#unwatchedSince.set(peer, wait);
          if (this.#unwatchedSince.size > UNWATCHED_KEPT) this.#unwatchedSince.delete(this.#unwatchedSince.keys().next().value!);
        }
        wait.seen = now;
        if (now - wait.since < UNWATCHED_GRACE_DEADLINES * this.#d.gene.voteDeadlineMs) {
          this.#held.add(peer);
          continue;
        }
        this.#unwatchedSince.delete(peer);
      }
      const ring = this.#ringFor();
      const epoch = this.#d.census.beacon?.epoch;
      if (!ring || epoch === undefined || !ring.has(peer)) {
        this.#held.add(peer); // no beacon yet, or not in the census yet: no panel to judge it now
        continue;
      }
      const jury = ring.panel(peer, this.#d.gene.jury, now);
      // Watchers take turns: the first of the panel accuses at once, the k-th only if no
      // accusation came within k × WATCHER_TURN_MS of its finding. Every watcher gets a host's
      // finding in the same digest; all accusing made m trials of m votes each (41 trials of
      // 41 at jury 41, 1,000 cells), where one trial is enough.
      if (this.#watched.has(peer)) {
        const turn = jury.indexOf(this.#d.self.id);
        const since = this.#turnSince.get(peer) ?? now;
        const due = since + (turn < 0 ? jury.length : turn) * WATCHER_TURN_MS;
        if (due > now) {
          this.#turnSince.set(peer, since);
          if (this.#turnSince.size > UNWATCHED_KEPT) this.#turnSince.delete(this.#turnSince.keys().next().value!);
          this.#held.add(peer);
          this.#reviewAt(due - now);
          continue;
        }
        this.#turnSince.delete(peer);
      }
      const accusation: AccuseBody = { id: `${this.#d.self.id}.${++this.#seq}`, accused: peer, kind: finding.kind, detail: finding.detail, at: now, lineage: finding.kind === 'cancer', jury, epoch };
      this.stats.accusations++;
      this.#calm.set(peer, now + this.#d.gene.voteDeadlineMs);
      this.#d.log.warn({ accused: peer, kind: finding.kind, detail: finding.detail }, 'accusing');
      this.#publish('accuse', accusation);
    }
    for (const [id, t] of this.#trials) {
      if (t.trial.standing !== 'open') continue;
      this.#maybeVote(id);
      if (now - t.opened >= this.#d.gene.voteDeadlineMs) {
        t.trial.expire();
        this.#closed(id);
      }
    }
    for (let i = this.#early.length - 1; i >= 0; i--) {
      const e = this.#early[i]!;
      if (e.until <= now) {
        // Not evidence: a cell cannot tell an accusation it never received from one never made.
        // Under load the accusation comes seconds after its votes (its accuser's certificate
        // slow to read from a busy lineage bucket, a backlog); taking those votes for forgery
        // made 1,905 accusations against honest cells in one 100-cell run, each making every
        // cell vote. A vote on no trial opens none and counts in none: it can do nothing.
        this.#early.splice(i, 1);
        this.stats.strayVotes++;
      }
    }
    // A toxin is only legitimate after a guilty verdict; give our own tally the deadline to agree.
    for (let i = this.#toxins.length - 1; i >= 0; i--) {
      const x = this.#toxins[i]!;
      const t = this.#trials.get(x.body.accusation);
      const verdict = t?.trial.standing === 'guilty' ? t.trial.accusation : this.#guiltyVerdicts.get(x.body.accusation);
      // A cell that started after the trial (or the verdict) could not have heard it: a toxin
      // on it, or for a lineage it did not see condemned, is not its to judge. (Honest killers
      // sweep a cancer's host up to 6 s after the verdict, as homeostasis regrows the tissue.)
      const young = x.at - this.#startedAt < this.#d.gene.voteDeadlineMs + YOUNG_TOXIN_MS;
      const lineage = x.body.accusation === 'lineage' && (young || this.#isGuiltyLineage(x.body.cell) !== false);
      // A toxin citing a trial this cell received but did not hear (its census drew another
      // panel) cannot be checked here, as a vote on it cannot: not evidence. At 1,000 cells a
      // cancer's children, born faster than censuses agree, moved its panel; the cells that did
      // not hear its trial took the honest killers' toxins for forgeries and convicted three.
      if (verdict && this.#kinOf(x.body.cell, verdict) === false) {
        // A real verdict, another cell killed under it: the verdict condemned the accused (and
        // for cancer its lineage), nobody else (before, any cell of the killer's host could be
        // killed under cover of any guilty verdict).
        this.#toxins.splice(i, 1);
        this.#forgery(x.from, `a toxin for ${x.body.cell} under the verdict on ${verdict.accused}`);
      } else if (lineage || verdict || this.#unheard.has(x.body.accusation) || (young && !t)) {
        this.#toxins.splice(i, 1);
      } else if (now - x.at >= this.#d.gene.voteDeadlineMs + 500) {
        this.#toxins.splice(i, 1);
        this.#forgery(x.from, `a toxin for ${x.body.cell} without a guilty verdict (${x.body.accusation})`);
      }
    }
  }

  /**
   * Whether `cell` descends from (or is) a cell whose lineage this cell condemned or found
   * guilty by its own tally; 'unknown' when a certificate on the way up is not known here.
   * An honest killer on the cancer's host kills each child born into the lineage with a
   * toxin naming `lineage`; a cell whose own record of the verdict was still withheld (a
   * saturated store) took those toxins for forgery and convicted the killer (seen at 100
   * cells). A toxin is a statement, not an act: one this cell cannot check is not evidence.
   */
  #isGuiltyLineage(cell: string): boolean | 'unknown' {
    let id = cell;
    for (let depth = 0; depth < 64; depth++) {
      if (this.#condemned.has(id) || this.#condemnedLineages.has(id) || this.#guiltyLineages.has(id)) return true;
      // Accused of cancer in a trial this cell did not hear: it cannot know the verdict.
      if (this.#unheardLineages.has(id)) return 'unknown';
      const cert = this.#d.certs.certOf(id);
      if (!cert) return 'unknown';
      if (cert.parent === null) return false;
      id = cert.parent;
    }
    return false;
  }

  /**
   * Whether `cell` is what a verdict on `a` condemned: the accused, or for cancer one of its
   * descendants (by census entries and certificates); 'unknown' when a link on the way up is
   * not known here (a toxin this cell cannot check is not evidence).
   */
  #kinOf(cell: string, a: Pick<AccuseBody, 'accused' | 'lineage'>): boolean | 'unknown' {
    if (!a.lineage) return cell === a.accused;
    return this.#ancestry(cell, (c) => c === a.accused);
  }

  #trim(): void {
    if (this.#trials.size <= CLOSED_KEPT) return;
    for (const [id, t] of this.#trials) {
      if (this.#trials.size <= CLOSED_KEPT) break;
      if (t.trial.standing !== 'open') this.#trials.delete(id);
    }
  }
}
