/**
 * Lineages that renew. Every division spends a lineage budget (Hayflick: a child gets less
 * than half of what its parent had left), so an organism with steady churn would end with
 * no living cell allowed to divide: after ~60 kills of one tissue the default genome could
 * no longer regrow it. The root renews it: when a cell on this host refuses a division for
 * the lineage budget alone (it announces a `refuse` whose limits name the budget, after
 * leaving the division to any cell with budget for two intervals), this host's grow seeds
 * the cells the tissue lacks as root-made cells with a fresh `limits.lineageBudget`, through
 * the same compare-and-set on the tissue's record a dividing cell uses (one renewal per
 * refusal, never two hosts at once). The root's own cells are the only ones with a fresh
 * budget: a cell that divides past the budget its certificate gave it is still cancer.
 */
import type { KV } from '@nats-io/kv';
import { newCellId } from '../../cells/spawn.ts';
import type { Census } from '../kernel/census.ts';
import { writeIfUnchanged } from '../kernel/compare-and-set.ts';
import type { Genome } from '../kernel/genome/index.ts';
import type { Hormone } from '../kernel/hormone.ts';
import { packRecord, readTissueRecord, tissueKey } from '../kernel/homeostasis-record.ts';
import { ROOT_ISSUER } from '../kernel/lineage.ts';
import type { DecisionBody } from '../kernel/vocabulary.ts';

export interface RenewalDeps {
  kv: KV;
  genome: Readonly<Genome>;
  host: string;
  census: Pick<Census, 'get' | 'living'>;
  /** Makes a root-made cell of `tissue` with id `id` (Organism.spawn). */
  spawn: (tissue: string, id: string) => Promise<unknown>;
  /** Announces the renewal (a root-signed decision hormone). */
  announce: (body: DecisionBody) => void;
  say: (line: string) => void;
  now?: () => number;
}

/** A refusal caused by the lineage budget alone (cells/homeostasis-allocation.ts words it so). */
export function refusedForBudget(d: Pick<DecisionBody, 'action' | 'reason'>): boolean {
  if (d.action !== 'refuse') return false;
  const at = d.reason.lastIndexOf('refused: ');
  const limits = d.reason.slice(at + 'refused: '.length);
  return at >= 0 && limits.startsWith('lineage budget') && !limits.includes('no host has room');
}

export class Renewal {
  readonly #d: RenewalDeps;
  readonly #now: () => number;
  /** When each tissue was last renewed here: at most once per pulse interval. */
  readonly #last = new Map<string, number>();
  #closed = false;
  readonly stats = { renewals: 0, cells: 0 };

  constructor(deps: RenewalDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** Feeds one admitted hormone; acts on a budget refusal by a cell of this host. */
  observe(h: Hormone): void {
    if (this.#closed || h.kind !== 'decision' || h.from === ROOT_ISSUER) return;
    const body = h.body as DecisionBody;
    if (!refusedForBudget(body)) return;
    if (this.#d.census.get(h.from)?.host !== this.#d.host) return; // that cell's own grow renews
    void this.renew(body.tissue, h.from).catch((e: unknown) => this.#d.say(`renewal of ${body.tissue} failed: ${(e as Error).message}`));
  }

  close(): void {
    this.#closed = true;
  }

  /** Seeds what `tissue` lacks of its min as root-made cells. */
  async renew(tissue: string, refusedBy: string): Promise<number> {
    const gene = this.#d.genome.tissues[tissue];
    if (!gene) return 0;
    const now = this.#now();
    // Two cells refusing the same shortfall at once make one renewal (the record's pending seeds cover the rest).
    if (now - (this.#last.get(tissue) ?? 0) < this.#d.genome.limits.pulseIntervalMs) return 0;
    const { record, revision } = await readTissueRecord(this.#d.kv, tissue);
    const living = this.#d.census.living().filter((c) => c.tissue === tissue).length;
    // Pending cells the census already knows are no longer on their way: one that joined the
    // tissue is among the living, and one that joined and died (a recruit killed at once) is
    // gone. Counted until their due time, they held a tissue with no cell unrenewed for up to
    // limits.joinTimeoutMs (seen: 6 s gaps in a 200-kill run).
    const pending = record.pending.filter((p) => {
      const known = this.#d.census.get(p.id);
      return p.due > now && known?.state !== 'dead' && known?.tissue !== tissue;
    });
    const present = living + pending.length;
    // Only what the tissue needs to exist (its min): growth under load past the budget stays
    // refused, as the budget means it to be (max and the ATP limits bound growth; renewal
    // only guarantees a tissue can always regrow).
    const need = gene.min - present;
    if (need <= 0 || this.#closed) return 0;
    const due = now + this.#d.genome.limits.joinTimeoutMs;
    const ids = Array.from({ length: need }, () => newCellId(tissue));
    const next = {
      // The refusal's wait (retryAt) was for a lasting cause; renewal removed it.
      ...record, epoch: record.epoch + 1, at: now, by: ROOT_ISSUER, action: 'seed' as const, retryAt: 0,
      pending: [...pending, ...ids.map((id) => ({ id, host: this.#d.host, due, how: 'seed' as const }))],
    };
    // The same compare-and-set a dividing cell makes: if anything else changed the record, it acted.
    if ((await writeIfUnchanged(this.#d.kv, tissueKey(tissue), packRecord(next), revision)) === undefined) return 0;
    this.#last.set(tissue, now);
    const budget = this.#d.genome.limits.lineageBudget;
    const reason = `renewal: ${refusedBy} refused for its lineage budget and no living ${tissue} or stem cell may divide; the root seeds ${need} cell(s) with a fresh budget of ${budget}`;
    this.#d.say(reason);
    this.#d.announce({ tissue, action: 'divide', cells: ids, count: need, reason, epoch: next.epoch, readings: { living, pending: pending.length, min: gene.min, budget } });
    this.stats.renewals++;
    for (const id of ids) {
      if (this.#closed) break;
      await this.#d.spawn(tissue, id);
      this.stats.cells++;
    }
    return need;
  }
}
