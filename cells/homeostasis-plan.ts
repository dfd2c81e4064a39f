/**
 * What a tissue needs, as one cell sees it: a pure function of the census, the tissue's
 * homeostasis record and the clock. Every cell runs it on the same pulses, so all reach
 * about the same plan; the record's compare-and-set then lets exactly one of them act.
 *
 * Sizing uses demand (Σ of members' uncapped demand, in cells' worth of work), which does
 * not change when cells are added, so one load step asks for ceil(demand / target) cells
 * once and not again while the newcomers' smoothed stress catches up. The trigger uses
 * stress (mean smoothed load), so a short burst does not grow anything.
 */
import type { CensusEntry } from '../organism/kernel/census.ts';
import type { Limits, TissueGene } from '../organism/kernel/genome/index.ts';
import { backoffMs, CRASHED_MEMORY, type TissueRecord } from '../organism/kernel/homeostasis-record.ts';
import type { Readings } from '../organism/kernel/vocabulary.ts';
import { extrasAboveMax, perHostDeficits } from './placement.ts';

/** Deaths that are not failed births: the organism or homeostasis meant them. */
const INTENDED: ReadonlySet<string> = new Set(['shutdown', 'apoptosis', 'toxin', 'signal']);

export const STEM = 'stem';

/** A pending cell overdue for longer than this is a leftover, not news. */
export const STALE_PENDING_MS = 30_000;

export interface PlanInput {
  tissue: string;
  gene: TissueGene;
  limits: Pick<Limits, 'crashWindowMs' | 'regrowBackoffMs' | 'regrowBackoffMaxMs' | 'pulseIntervalMs'>;
  /** Census entries whose tissue is this one, dead ones included. */
  members: readonly CensusEntry[];
  /** Every cell id this cell has seen in its census lately, any tissue (a recruited stem joins another tissue). */
  known: ReadonlySet<string>;
  /**
   * Pending cells past their due whose process exists on this host (a loaded host starts
   * them late): still being born, so counted as pending, neither failed nor replaced.
   */
  beingBorn?: ReadonlySet<string>;
  /**
   * Since when the deciding cell has been watching. A pending cell due before that could
   * have come and gone unseen by it: it is not this cell's to judge as a failed birth.
   */
  watchingSince: number;
  record: TissueRecord;
  now: number;
  /** The deciding cell; it may only plan its own death. */
  self: { id: string; tissue: string; state: string; host?: string };
  /** Live hosts (cells/placement.ts liveHosts): where tissues.<t>.perHost applies. */
  hosts?: readonly string[];
  /** Since when the deciding cell's own smoothed load has stayed below `low` (undefined: it is not). */
  lowSince: number | undefined;
}

export type Plan =
  | { type: 'none'; why: string }
  /** Failed births were found: count them and wait before regrowing. */
  | { type: 'back-off'; failed: string[]; failures: number; retryAt: number; reason: string; readings: Readings }
  /** A cell made after the last failure lived past the crash window: the cause went away. */
  | { type: 'recover'; survivor: string; reason: string; readings: Readings }
  /** `targets`: the hosts the new cells must go to (one per cell), else placement chooses. */
  | { type: 'grow'; count: number; regrow: boolean; reason: string; readings: Readings; targets?: string[] }
  | { type: 'refuse'; count: number; reason: string; readings: Readings }
  | { type: 'die'; reason: string; readings: Readings };

/** How long stress is left to show a change before the next stress-driven decision. */
export function calmMs(gene: TissueGene, pulseIntervalMs: number): number {
  return Math.max(3 * gene.halfLifeMs, 2 * pulseIntervalMs);
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export interface Population {
  alive: CensusEntry[];
  /** Present but not pulsing lately (a stopped or partitioned cell): not replaced until dead. */
  suspect: CensusEntry[];
  /** Being made and not yet a member. */
  pending: number;
  /** alive + suspect + pending. */
  n: number;
  stress: number;
  demand: number;
  /** ceil(demand / target): the cells the demand asks for. */
  needed: number;
  /** needed, within [min, max]. */
  desired: number;
}

export function population(i: Pick<PlanInput, 'members' | 'record' | 'now' | 'gene' | 'known' | 'beingBorn'>): Population {
  const alive = i.members.filter((m) => m.state === 'alive');
  const suspect = i.members.filter((m) => m.state === 'suspect');
  const present = new Set([...alive, ...suspect, ...i.members.filter((m) => m.state === 'draining')].map((m) => m.id));
  const dead = new Set(i.members.filter((m) => m.state === 'dead').map((m) => m.id));
  // Pending until born: a spawned or seeded cell once it is seen anywhere; a recruited stem
  // once it is a member here (until it differentiates it is still seen, as a stem).
  const pending = i.record.pending.filter((p) => !present.has(p.id) && !dead.has(p.id) && (p.due > i.now ? p.how === 'stem' || !i.known.has(p.id) : i.now - p.due < STALE_PENDING_MS && (i.beingBorn?.has(p.id) ?? false))).length;
  const stress = alive.length === 0 ? 0 : alive.reduce((s, m) => s + m.smoothed, 0) / alive.length;
  const demand = alive.reduce((s, m) => s + m.demand, 0);
  // Rounded before ceil, so float noise (9.0000000001) does not ask for a tenth cell.
  const needed = Math.ceil(round(demand / i.gene.target));
  const desired = Math.min(i.gene.max, Math.max(i.gene.min, needed));
  return { alive, suspect, pending, n: alive.length + suspect.length + pending, stress: round(stress), demand: round(demand), needed, desired };
}

export function plan(i: PlanInput): Plan {
  const { gene, record, now, limits } = i;
  const pop = population(i);
  const readings: Readings = {
    stress: pop.stress, demand: pop.demand, alive: pop.alive.length, suspect: pop.suspect.length, pending: pop.pending,
    desired: pop.desired, min: gene.min, max: gene.max, high: gene.high, low: gene.low, target: gene.target,
  };

  // 1. Failed births: members that died young of something unintended, and pending cells
  //    that never showed up. Counted once (record.crashed), then the tissue waits.
  const counted = new Set(record.crashed);
  const failed = [
    ...i.members.filter((m) => m.state === 'dead' && m.cause !== null && !INTENDED.has(m.cause) && (m.died ?? now) - m.born < limits.crashWindowMs),
    // Overdue and never seen. Long overdue entries are stale (the record was not rewritten since): ignored.
    ...record.pending.filter((p) => p.due <= now && p.due > i.watchingSince && now - p.due < STALE_PENDING_MS && !i.known.has(p.id)),
  ].map((x) => x.id).filter((id) => !counted.has(id));
  if (failed.length > 0) {
    const failures = record.failures + failed.length;
    const wait = backoffMs(failures, limits.regrowBackoffMs, limits.regrowBackoffMaxMs);
    return {
      type: 'back-off', failed, failures, retryAt: now + wait, readings: { ...readings, failures, backoffMs: wait },
      reason: `${failed.length} new ${i.tissue} cell(s) died within ${limits.crashWindowMs} ms of birth or never pulsed (${failures} in a row): waiting ${wait} ms before regrowing`,
    };
  }

  // 2. Recovery: a cell born after the last failure has outlived the crash window.
  if (record.failures > 0) {
    const survivor = pop.alive.find((m) => m.born >= record.failedAt && now - m.born >= limits.crashWindowMs);
    if (survivor) {
      return { type: 'recover', survivor: survivor.id, readings: { ...readings, failures: record.failures }, reason: `${survivor.id} outlived the crash window: ${i.tissue} births work again` };
    }
  }

  // 3. Duplicates: more cells than max (both sides of a healed partition grew what they
  //    missed, or a host came back and took its perHost share). The youngest extras die,
  //    each deciding for itself, oldest kept — never a host's own share (tissues.<t>.perHost).
  const present = [...pop.alive, ...pop.suspect];
  if (present.length > gene.max && i.self.tissue === i.tissue && i.self.state === 'alive') {
    const extras = extrasAboveMax(pop.alive, present.length - gene.max, gene.perHost);
    if (extras.some((m) => m.id === i.self.id)) {
      // Who was counted, in the reason: a wrong count (a cell seen alive that is not) is then visible in the record.
      const counted = present.slice(0, 8).map((m) => `${m.id}@${m.host}${m.state === 'suspect' ? ' (suspect)' : ''}`).join(', ') + (present.length > 8 ? ', …' : '');
      return { type: 'die', readings, reason: `${i.tissue} has ${present.length} cells (${counted}), above its max ${gene.max} (a healed partition's duplicates, or a host's share come back): ${i.self.id}, among the youngest where its host keeps its share, leaves` };
    }
  }

  // 4. Regrowth below min: at once, unless backing off. Not held by calm: a crash is not stress.
  if (pop.n < gene.min) {
    if (now < record.retryAt) return { type: 'none', why: `backing off until ${record.retryAt}` };
    return { type: 'grow', count: gene.min - pop.n, regrow: true, readings, reason: `${i.tissue} has ${pop.n} of its min ${gene.min} cells` };
  }

  // 5. Hosts short of tissues.<t>.perHost (a host joined, or lost its cells): placed there, like regrowth.
  if (gene.perHost > 0 && i.hosts && pop.n < gene.max) {
    const coming = record.pending.filter((p) => p.due > now || (i.beingBorn?.has(p.id) ?? false));
    const short = perHostDeficits(i.members, coming, i.hosts, gene.perHost);
    if (short.length > 0) {
      if (now < record.retryAt) return { type: 'none', why: `backing off until ${record.retryAt}` };
      const count = Math.min(short.length, gene.max - pop.n);
      return {
        type: 'grow', count, regrow: true, readings, targets: short.slice(0, count),
        reason: `${i.tissue} wants ${gene.perHost} cell(s) on every host; short on ${[...new Set(short)].join(', ')}`,
      };
    }
  }

  // Everything below is driven by stress; it waits for cells being made and for calm.
  if (pop.pending > 0) return { type: 'none', why: 'cells are being made' };
  if (now < record.calmUntil) return { type: 'none', why: 'calm after the last decision' };

  // 6. Mitosis: stress above high. Grow to what demand asks for; if demand does not say
  //    (a pressure it cannot see), by one. The stem pool serves nothing, so its "stress" is
  //    only its host's: it is kept at its min, never grown by stress.
  if (i.tissue !== STEM && pop.alive.length > 0 && pop.stress > gene.high) {
    if (pop.n >= gene.max) {
      return { type: 'refuse', count: 1, readings, reason: `${i.tissue} stress ${pop.stress} is above ${gene.high} but the tissue is at its max (${gene.max})` };
    }
    const count = Math.min(gene.max - pop.n, Math.max(1, pop.desired - pop.n));
    return {
      type: 'grow', count, regrow: false, readings,
      reason: `${i.tissue} stress ${pop.stress} is above ${gene.high}; demand ${pop.demand} at target ${gene.target} needs ${pop.desired} cells, it has ${pop.n}`,
    };
  }

  // 7. Apoptosis: only of the deciding cell itself, idle for idleMs, where the others can
  //    carry the demand at or below target (so its death does not call for a division),
  //    and not below its host's share (tissues.<t>.perHost). Above max the youngest go (3.),
  //    not whoever idles.
  const onMyHost = present.filter((m) => m.host === i.self.host).length;
  if (i.self.tissue === i.tissue && i.self.state === 'alive' && i.lowSince !== undefined && now - i.lowSince >= gene.idleMs && pop.n > gene.min && present.length <= gene.max && (i.self.host === undefined || onMyHost - 1 >= gene.perHost)) {
    if (pop.needed <= pop.n - 1) {
      return {
        type: 'die', readings: { ...readings, idleMs: now - i.lowSince },
        reason: `${i.self.id} stayed below ${gene.low} for ${now - i.lowSince} ms; ${pop.n - 1} cells carry demand ${pop.demand} (min ${gene.min})`,
      };
    }
  }
  return { type: 'none', why: 'in balance' };
}

/** The record a plan writes when its cell wins the compare-and-set (pending cells added by the caller). */
export function nextRecord(record: TissueRecord, p: Exclude<Plan, { type: 'none' }>, by: string, now: number, calm: number): TissueRecord {
  const base = { ...record, epoch: record.epoch + 1, at: now, by, pending: record.pending.filter((q) => q.due > now) };
  switch (p.type) {
    case 'back-off':
      return {
        ...base, action: 'back-off', failures: p.failures, failedAt: now, retryAt: p.retryAt,
        crashed: [...record.crashed, ...p.failed].slice(-CRASHED_MEMORY), pending: base.pending.filter((q) => !p.failed.includes(q.id)),
      };
    case 'recover':
      return { ...base, action: 'recover', failures: 0, retryAt: 0 };
    case 'grow':
      return { ...base, action: 'divide', calmUntil: p.regrow ? record.calmUntil : now + calm };
    case 'refuse':
      // Regrowth is not held by calm, so a refusal (every cell out of budget, a full host)
      // also sets retryAt: without it the tissue would ask, be refused and announce it at
      // every tick while the cause lasts.
      return { ...base, action: 'refuse', refused: record.refused + p.count, calmUntil: now + calm, retryAt: Math.max(record.retryAt, now + calm) };
    case 'die':
      return { ...base, action: 'die', calmUntil: now + calm };
  }
}
