/**
 * A witness of the jury for processes that are not cells (grow, census, tests, the
 * dashboard): it counts the signed votes exactly as a juror does (cells/immune/jury.ts) and
 * marks in its census the cells a guilty verdict condemned. It never votes, and it takes no
 * single cell's word: a forged verdict or toxin changes nothing it shows.
 */
import type { Census } from '../../organism/kernel/census.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import type { AccuseBody, VoteBody } from '../../organism/kernel/vocabulary.ts';
import { lineageOf, onRing, panelHolds, Trial, type Standing } from './jury.ts';
import { Ring } from '../../organism/kernel/sortition.ts';

const TRIALS_MAX = 256;

export class Witness {
  readonly #census: Pick<Census, 'list' | 'condemn' | 'get' | 'beaconOf'>;
  readonly #deadlineMs: number;
  readonly #jury: number;
  readonly #trials = new Map<string, { trial: Trial; opened: number }>();
  readonly #early = new Map<string, Hormone<VoteBody>[]>();
  /** Roots of lineages condemned for cancer, and every cell condemned. */
  readonly #lineages = new Set<string>();
  readonly condemned = new Set<string>();

  /** `jury`: the genome's immune.jury, the panel size every cell draws. */
  constructor(census: Pick<Census, 'list' | 'condemn' | 'get' | 'beaconOf'>, voteDeadlineMs: number, jury: number) {
    this.#census = census;
    this.#deadlineMs = voteDeadlineMs;
    this.#jury = jury;
  }

  observe(h: Hormone): void {
    switch (h.kind) {
      case 'accuse':
        return this.#accuse(h as Hormone<AccuseBody>);
      case 'vote': {
        const v = h as Hormone<VoteBody>;
        if (this.#trials.has(v.body.accusation)) return this.#vote(v);
        const early = this.#early.get(v.body.accusation) ?? [];
        if (early.length < 64 && this.#early.size < TRIALS_MAX) this.#early.set(v.body.accusation, [...early, v]);
        return;
      }
      case 'birth': {
        const parent = this.#census.get(h.from)?.parent;
        if (parent && (this.#lineages.has(parent) || this.condemned.has(parent))) {
          this.#lineages.add(h.from);
          this.#condemn(h.from);
        }
        return;
      }
      default:
    }
  }

  #accuse(h: Hormone<AccuseBody>): void {
    if (this.#trials.has(h.body.id)) return;
    const now = Date.now();
    for (const [id, t] of this.#trials) if (this.#trials.size >= TRIALS_MAX || now - t.opened > 10 * this.#deadlineMs) this.#trials.delete(id);
    // The same panel check a juror makes: a forger naming its accomplices as the jury convicts nobody here either.
    const a = h.body;
    const beacon = a.epoch === undefined ? undefined : this.#census.beaconOf(a.epoch);
    const list = this.#census.list();
    if (!panelHolds(a, beacon === undefined ? undefined : new Ring(beacon, list.filter(onRing)), this.#jury)) return;
    const trial = new Trial(a, h.from, list, a.jury);
    this.#trials.set(h.body.id, { trial, opened: now });
    for (const v of this.#early.get(h.body.id) ?? []) this.#vote(v);
    this.#early.delete(h.body.id);
  }

  #vote(h: Hormone<VoteBody>): void {
    const t = this.#trials.get(h.body.accusation)!;
    if (h.body.accused !== t.trial.accusation.accused || t.trial.standing !== 'open') return;
    // Votes after the deadline count for nothing (the jurors closed the trial by then).
    if (Date.now() - t.opened > this.#deadlineMs + 1_000) return;
    t.trial.vote(h.from, h.body.guilty);
    // (Read again: vote() may have closed the trial.)
    if ((t.trial.standing as Standing) !== 'guilty') return;
    const a = t.trial.accusation;
    const cells = a.lineage ? lineageOf(a.accused, this.#census.list()) : new Set([a.accused]);
    if (a.lineage) this.#lineages.add(a.accused);
    for (const c of cells) this.#condemn(c);
  }

  #condemn(id: string): void {
    this.condemned.add(id);
    this.#census.condemn(id);
  }
}
