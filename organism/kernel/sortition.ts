/**
 * Sortition: which cells watch a cell, and so judge it. Pure and deterministic: every cell
 * with the same census and the same public random value (the beacon every host's grow puts
 * in its digest, organism/grow/beacon.ts) draws the same panel, and none can choose its own.
 *
 * Each eligible cell gets a place on a ring, `sha256(beacon ‖ id)`; a cell's panel is the
 * `size` cells that follow it on its pool's ring, skipping its own lineage (a cancer's
 * children would acquit it). A cell cannot pick its place: its id is fixed at birth, before
 * the beacon of the epoch that judges it is known. The pool is the cells of the accused's
 * host when `size` of them could sit on its panel (outside its lineage, born before the
 * accusation), else every eligible cell.
 *
 * Cost: one hash per cell per ring (made once per census change), then O(size) per panel.
 */
import { createHash } from 'node:crypto';

export interface Candidate {
  id: string;
  host: string;
  parent: string | null;
  born: number;
}

/** A ring of candidates ordered by their place for one beacon. */
export class Ring {
  readonly #order: Candidate[];
  readonly #index = new Map<string, number>();
  readonly #byHost = new Map<string, Candidate[]>();
  readonly #children = new Map<string, string[]>();
  /** Each candidate's index in its host's list (ring order). */
  readonly #hostIndex = new Map<string, number>();

  constructor(beacon: string, candidates: readonly Candidate[]) {
    const placed = candidates.map((c) => ({ c, at: createHash('sha256').update(beacon).update('\0').update(c.id).digest('hex') }));
    placed.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    this.#order = placed.map((p) => p.c);
    this.#order.forEach((c, i) => {
      this.#index.set(c.id, i);
      let list = this.#byHost.get(c.host);
      if (!list) this.#byHost.set(c.host, (list = []));
      this.#hostIndex.set(c.id, list.length);
      list.push(c);
      if (c.parent !== null) {
        let kids = this.#children.get(c.parent);
        if (!kids) this.#children.set(c.parent, (kids = []));
        kids.push(c.id);
      }
    });
  }

  get size(): number {
    return this.#order.length;
  }

  has(id: string): boolean {
    return this.#index.has(id);
  }

  /** `id` and its descendants among the candidates. */
  lineage(id: string): Set<string> {
    const out = new Set([id]);
    const stack = [id];
    while (stack.length > 0) {
      for (const k of this.#children.get(stack.pop()!) ?? []) {
        if (!out.has(k)) {
          out.add(k);
          stack.push(k);
        }
      }
    }
    return out;
  }

  /**
   * The pool `c` is judged from, and c's index in it: its host's cells when at least `size`
   * of them could sit on its panel (outside its lineage, born no later than `before`), else
   * every cell. Only eligible cells count, so the choice does not move with what a panel
   * skips anyway: a cancer's children, born faster than censuses agree, and cells born after
   * the accusation. (Counting them flipped a cancer's pool from all cells to its host's
   * three honest ones while its children were born, and cells that drew at another moment
   * did not hear the trial: scale-hosts, stop 36.)
   */
  #pool(c: Candidate, size: number, barred: ReadonlySet<string>, before: number): { pool: Candidate[]; at: number } {
    const local = this.#byHost.get(c.host) ?? [];
    let eligible = 0;
    if (local.length > size) for (const x of local) if (!barred.has(x.id) && x.born <= before && ++eligible >= size) break;
    return eligible >= size ? { pool: local, at: this.#hostIndex.get(c.id)! } : { pool: this.#order, at: this.#index.get(c.id)! };
  }

  /**
   * The panel of `id`: the `size` cells after it on its pool's ring, past its lineage and
   * born no later than `before` (a juror must have been there when the accusation was made).
   */
  panel(id: string, size: number, before = Number.POSITIVE_INFINITY): string[] {
    const i = this.#index.get(id);
    if (i === undefined) return [];
    const me = this.#order[i]!;
    const barred = this.lineage(id);
    const { pool, at: start } = this.#pool(me, size, barred, before);
    const out: string[] = [];
    for (let k = 1; k < pool.length && out.length < size; k++) {
      const c = pool[(start + k) % pool.length]!;
      if (!barred.has(c.id) && c.born <= before) out.push(c.id);
    }
    return out;
  }

  /**
   * For every candidate, the cells whose panel (of `size`) holds it: all panels drawn once,
   * O(N × size). Kept with the ring. For a process that asks for many cells' watched peers
   * over one ring (simulations/synthetic-immune.ts); one cell asks `watchedBy`, which tries
   * only the cells shortly before it.
   */
  watchers(size: number): ReadonlyMap<string, readonly string[]> {
    let index = this.#watchers.get(size);
    if (index) return index;
    const built = new Map<string, string[]>();
    for (const c of this.#order) {
      for (const j of this.panel(c.id, size)) {
        let list = built.get(j);
        if (!list) built.set(j, (list = []));
        list.push(c.id);
      }
    }
    this.#watchers.set(size, (index = built));
    return index;
  }

  readonly #watchers = new Map<number, ReadonlyMap<string, readonly string[]>>();

  /**
   * Every cell whose panel holds `self`: the cells `self` watches. Only cells shortly before
   * `self` on a ring can have it in their panel, so only those are tried: the ones before it
   * on its host's ring and on the whole ring, `reach` each (lineages skipped in a panel can
   * push a juror further; `reach` bounds the work, made once per census change).
   */
  watchedBy(self: string, size: number, reach = size * 4): string[] {
    const i = this.#index.get(self);
    if (i === undefined) return [];
    const me = this.#order[i]!;
    const tried = new Set<string>();
    const out: string[] = [];
    const walk = (pool: Candidate[], at: number) => {
      for (let k = 1; k <= Math.min(reach, pool.length - 1); k++) {
        const c = pool[(at - k + pool.length) % pool.length]!;
        if (tried.has(c.id)) continue;
        tried.add(c.id);
        if (this.panel(c.id, size).includes(self)) out.push(c.id);
      }
    };
    walk(this.#byHost.get(me.host) ?? [], this.#hostIndex.get(self)!);
    walk(this.#order, i);
    return out;
  }
}
