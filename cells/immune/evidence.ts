/**
 * What one cell (or one host's grow, organism/grow/host-watch.ts) has seen each peer do
 * wrong, and whether it is past the genome's threshold. Only behaviour a peer cannot be
 * framed for counts: hormones that verified under its own key (so nobody else sent them),
 * the process behind its own pid, its own pulses, and what its host's grow — which holds
 * its host's processes anyway — signed about them in a digest. Missed pulses are never
 * evidence: a silent cell is dead or cut off, not guilty.
 */
import type { ImmuneGene } from '../../organism/kernel/genome/index.ts';
import type { EvidenceKind, RowFinding } from '../../organism/kernel/vocabulary.ts';

export interface Finding {
  kind: EvidenceKind;
  detail: string;
  /** Said by the peer's host in a digest row (hostSays), not seen by this cell itself. */
  host?: true;
}

interface Ledger {
  /** Sliding-window rate: hormones in the current and the previous window. */
  windowStart: number;
  count: number;
  previous: number;
  forgeries: number;
  lastForgery: string;
  liarStreak: number;
  lastLie: string;
  genomeMismatches: number;
  lastGenome: string;
  /** Children seen, and the replication budget its certificate gave it. */
  children: Set<string>;
  budget: number | undefined;
  /** What the peer's host (its grow) says against it in its digest row, if anything. */
  host: RowFinding | undefined;
}

/** What one cell holds against a peer, for people (the dashboard's cell detail). */
export interface LedgerView {
  /** Hormones per second over the flood window. */
  rate: number;
  forgeries: number;
  lastForgery: string;
  liarStreak: number;
  lastLie: string;
  genomeMismatches: number;
  lastGenome: string;
  children: number;
  budget: number | null;
  /** The evidence past its threshold, if any. */
  finding: Finding | null;
}

/** Peers remembered at most (a flood of identities must not grow memory without bound). */
const MAX_PEERS = 4096;

export class Evidence {
  readonly #gene: ImmuneGene;
  readonly #now: () => number;
  readonly #peers = new Map<string, Ledger>();

  constructor(gene: ImmuneGene, now: () => number = Date.now) {
    this.#gene = gene;
    this.#now = now;
  }

  /** Peers whose ledger changed since takeChanged(): only they can have a new finding. */
  readonly #changed = new Set<string>();

  /** The peers whose evidence changed since the last call (and forgets them). */
  takeChanged(): string[] {
    const out = [...this.#changed];
    this.#changed.clear();
    return out;
  }

  #ledger(peer: string): Ledger {
    if (this.#changed.size < MAX_PEERS) this.#changed.add(peer);
    let l = this.#peers.get(peer);
    if (!l) {
      if (this.#peers.size >= MAX_PEERS) this.#peers.delete(this.#peers.keys().next().value!);
      l = { windowStart: this.#now(), count: 0, previous: 0, forgeries: 0, lastForgery: '', liarStreak: 0, lastLie: '', genomeMismatches: 0, lastGenome: '', children: new Set(), budget: undefined, host: undefined };
      this.#peers.set(peer, l);
    }
    return l;
  }

  /** Hormones per second from `peer` over the last floodWindowMs (sliding-window estimate). */
  rate(peer: string): number {
    const l = this.#peers.get(peer);
    if (!l) return 0;
    this.#roll(l);
    const w = this.#gene.floodWindowMs;
    const into = (this.#now() - l.windowStart) / w;
    return ((l.previous * (1 - into) + l.count) * 1000) / w;
  }

  #roll(l: Ledger): void {
    const w = this.#gene.floodWindowMs;
    const now = this.#now();
    if (now - l.windowStart >= 2 * w) {
      l.previous = 0;
      l.count = 0;
      l.windowStart = now - ((now - l.windowStart) % w);
    } else if (now - l.windowStart >= w) {
      l.previous = l.count;
      l.count = 0;
      l.windowStart += w;
    }
  }

  /** A hormone that verified under `peer`'s key. */
  hormone(peer: string): void {
    const l = this.#ledger(peer);
    this.#roll(l);
    l.count++;
  }

  /** Signed traffic from `peer` that breaks the rules (a bad body, a vote or toxin it had no right to). */
  forgery(peer: string, detail: string): void {
    const l = this.#ledger(peer);
    l.forgeries++;
    l.lastForgery = detail;
  }

  /** One check of `peer`'s claimed metabolism against its process: `lie` says what was off, or undefined. */
  metabolism(peer: string, lie: string | undefined): void {
    const l = this.#ledger(peer);
    if (lie === undefined) l.liarStreak = 0;
    else {
      l.liarStreak++;
      l.lastLie = lie;
    }
  }

  /** One pulse's genome hash, against ours. */
  genome(peer: string, theirs: string, ours: string): void {
    if (theirs === ours) return;
    const l = this.#ledger(peer);
    l.genomeMismatches++;
    l.lastGenome = theirs;
  }

  /**
   * What `peer`'s host says against it (its digest row's finding), or that it says nothing
   * now: the pulse and process evidence grow gathers for every watcher (organism/grow/host-watch.ts).
   */
  hostSays(peer: string, finding: RowFinding | undefined): void {
    const known = this.#peers.get(peer);
    if (!known && !finding) return;
    if (known && known.host?.k === finding?.k && known.host?.x === finding?.x) return;
    this.#ledger(peer).host = finding;
  }

  /** A certified child of `parent` was born; `budget` is what the parent's own certificate gave it. */
  child(parent: string, child: string, budget: number): void {
    const l = this.#ledger(parent);
    l.budget = budget;
    l.children.add(child);
  }

  /** The first kind of evidence against `peer` past its threshold, if any. */
  against(peer: string, only?: EvidenceKind): Finding | undefined {
    const l = this.#peers.get(peer);
    if (!l) return undefined;
    const g = this.#gene;
    const want = (k: EvidenceKind) => only === undefined || only === k;
    if (want('cancer') && l.budget !== undefined && l.children.size > l.budget) {
      return { kind: 'cancer', detail: `${l.children.size} children on a replication budget of ${l.budget}` };
    }
    // What its host says, if anything: one finding, of one kind.
    const host: Finding | undefined = l.host && { kind: l.host.k, detail: `its host: ${l.host.x}`, host: true };
    if (want('genome') && l.genomeMismatches >= g.genomeMismatches) {
      return { kind: 'genome', detail: `${l.genomeMismatches} pulses with genome/code ${l.lastGenome}` };
    }
    if (want('genome') && host?.kind === 'genome') return host;
    if (want('flood')) {
      const rate = this.rate(peer);
      if (rate > g.floodPerSecond) return { kind: 'flood', detail: `${Math.round(rate)} hormones/s over ${g.floodWindowMs} ms (limit ${g.floodPerSecond})` };
      if (host?.kind === 'flood') return host;
    }
    if (want('forgery') && l.forgeries >= g.forgeriesMax) return { kind: 'forgery', detail: `${l.forgeries} forged hormones, last: ${l.lastForgery}`.slice(0, 500) };
    if (want('liar') && l.liarStreak >= g.liarChecks) return { kind: 'liar', detail: `${l.liarStreak} checks in a row: ${l.lastLie}`.slice(0, 500) };
    if (want('liar') && host?.kind === 'liar') return host;
    return undefined;
  }

  view(peer: string): LedgerView | undefined {
    const l = this.#peers.get(peer);
    if (!l) return undefined;
    return {
      rate: Math.round(this.rate(peer) * 10) / 10, forgeries: l.forgeries, lastForgery: l.lastForgery, liarStreak: l.liarStreak, lastLie: l.lastLie,
      genomeMismatches: l.genomeMismatches, lastGenome: l.lastGenome, children: l.children.size, budget: l.budget ?? null, finding: this.against(peer) ?? null,
    };
  }

  /** Peers with any evidence at all (to be checked against the thresholds). */
  peers(): IterableIterator<string> {
    return this.#peers.keys();
  }

  forget(peer: string): void {
    this.#peers.delete(peer);
  }
}
