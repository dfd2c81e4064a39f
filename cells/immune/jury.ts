/**
 * The jury's rules, pure (no clock, no I/O), so they can be checked exhaustively.
 *
 * Who may vote on an accusation is fixed by the census at the time of the accusation: the
 * living (not dead), certified cells born before it, except the accused and the accused's
 * own descendants (a cancer's children would acquit it). One vote per cell. A verdict is
 * guilty once at least 2/3 of that jury voted guilty; it is an acquittal once so many voted
 * innocent that 2/3 can no longer be reached, or when the deadline passes first.
 */
import type { AccuseBody } from '../../organism/kernel/vocabulary.ts';
import type { Ring } from '../../organism/kernel/sortition.ts';

/** What a juror needs to be known by: its census entry (born, state) and its parent. */
export interface JurorView {
  id: string;
  born: number;
  state: string;
  parent: string | null;
}

/** The fraction of the jury a guilty verdict needs. */
export const GUILTY_FRACTION = 2 / 3;

/** Votes needed for a verdict out of a jury of `n`: ⌈2n/3⌉, and at least one. */
export function votesNeeded(n: number): number {
  // Integer arithmetic: ⌈2n/3⌉ without floating point surprises at multiples of 3.
  return Math.max(1, Math.floor((2 * n + 2) / 3));
}

/** `id` and every cell descended from it among `cells` (by parent links). */
export function lineageOf(id: string, cells: ReadonlyArray<Pick<JurorView, 'id' | 'parent'>>): Set<string> {
  const out = new Set([id]);
  // Parents may be listed after their children: repeat until nothing is added.
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of cells) {
      if (!out.has(c.id) && c.parent !== null && out.has(c.parent)) {
        out.add(c.id);
        grew = true;
      }
    }
  }
  return out;
}

/**
 * Whether a census entry has a place on the sortition ring: every cell not known to be dead.
 * Dead of missed pulses is a guess from silence, not a death (its host late: a fork storm on
 * it, a saturated machine), and each census guesses at its own moment; had those cells left
 * the ring, censuses a digest apart drew different panels, and a cancer's trials went unheard
 * for seconds while its host's cells flipped between alive, suspect and dead (scale-hosts,
 * stop 36). They leave with their entry, after `limits.deadRetentionMs`.
 */
export function onRing(c: { state: string; cause?: string | null }): boolean {
  return c.state !== 'dead' || c.cause === 'missed-pulses';
}

/** The jury of an accusation, from one cell's census. */
export function jury(accusation: Pick<AccuseBody, 'accused' | 'at'>, census: readonly JurorView[]): Set<string> {
  const excluded = lineageOf(accusation.accused, census);
  return new Set(census.filter((c) => c.state !== 'dead' && c.born <= accusation.at && !excluded.has(c.id)).map((c) => c.id));
}

export type VoteOutcome =
  /** Counted. */
  | 'counted'
  /** The same vote again (a duplicate on the wire): ignored. */
  | 'repeat'
  /** The voter is not on this jury (born later, dead in our view, or unknown): ignored. */
  | 'not-juror'
  /** The accused or its descendant voted: ignored, and evidence of forgery against it. */
  | 'barred'
  /** A juror changed its vote: the first stands, and the second is evidence of forgery. */
  | 'changed';

export type Standing = 'open' | 'guilty' | 'acquitted';

/** One accusation's tally at one cell. */
export class Trial {
  readonly accusation: AccuseBody;
  readonly by: string;
  readonly jurors: ReadonlySet<string>;
  /** Who may never vote on it: the accused and its descendants. */
  readonly barred: ReadonlySet<string>;
  readonly needed: number;
  readonly #votes = new Map<string, boolean>();
  #standing: Standing = 'open';

  /**
   * `panel`: the jurors drawn by sortition (organism/kernel/sortition.ts), fixed by the
   * accusation so every cell counts the same jury; without one (the rules' own tests), every
   * eligible cell of `census`.
   */
  constructor(accusation: AccuseBody, by: string, census: readonly JurorView[], panel?: readonly string[]) {
    this.accusation = accusation;
    this.by = by;
    this.barred = lineageOf(accusation.accused, census);
    this.jurors = panel ? new Set(panel.filter((j) => !this.barred.has(j))) : jury(accusation, census);
    // 2/3 of the panel as drawn: a panel member this census knows to be of the accused's
    // lineage (the accuser's census did not) cannot vote, and counts as a vote not cast —
    // it never lowers the bar (a run at 108 cells convicted on "1 of 1" once the rest of
    // a panel of 9 turned out to be the accused's kin).
    this.needed = votesNeeded(panel ? new Set(panel).size : this.jurors.size);
    // No jury (the accused alone, or only its lineage, is left): nobody can convict.
    if (this.jurors.size < this.needed) this.#standing = 'acquitted';
  }

  get guilty(): number {
    let n = 0;
    for (const v of this.#votes.values()) if (v) n++;
    return n;
  }

  get innocent(): number {
    return this.#votes.size - this.guilty;
  }

  /** How `voter` voted, if it did. */
  voteOf(voter: string): boolean | undefined {
    return this.#votes.get(voter);
  }

  get standing(): Standing {
    return this.#standing;
  }

  vote(voter: string, guilty: boolean): VoteOutcome {
    if (this.barred.has(voter)) return 'barred';
    if (!this.jurors.has(voter)) return 'not-juror';
    const before = this.#votes.get(voter);
    if (before !== undefined) return before === guilty ? 'repeat' : 'changed';
    this.#votes.set(voter, guilty);
    if (this.#standing === 'open') {
      if (this.guilty >= this.needed) this.#standing = 'guilty';
      else if (this.jurors.size - this.innocent < this.needed) this.#standing = 'acquitted';
    }
    return 'counted';
  }

  /** The deadline passed: an open trial is an acquittal. */
  expire(): Standing {
    if (this.#standing === 'open') this.#standing = 'acquitted';
    return this.#standing;
  }
}

/**
 * Whether the panel an accusation names is the one `ring` (this cell's census, drawn with the
 * beacon of the accusation's epoch) gives: a census may differ by one cell from the accuser's
 * (a birth or a death in flight), never more. An accusation without a panel is not heard.
 */
export function panelHolds(a: Pick<AccuseBody, 'accused' | 'at' | 'jury'>, ring: Ring | undefined, size: number): boolean {
  if (!a.jury || !ring) return false;
  const listed = new Set(a.jury);
  if (listed.size !== a.jury.length || listed.size > size) return false;
  const mine = new Set(ring.panel(a.accused, size, a.at));
  let extra = 0;
  let missing = 0;
  for (const j of listed) if (!mine.has(j)) extra++;
  for (const j of mine) if (!listed.has(j)) missing++;
  return extra <= 1 && missing <= 1;
}
