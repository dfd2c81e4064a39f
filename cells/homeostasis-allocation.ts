/**
 * Who makes the cells a `grow` plan asks for, as a pure function of the census, the cells
 * already being made and the limits: stem cells first (differentiation is a request, not
 * a process), then new cells placed where there is room (here by division, within this
 * cell's lineage budget; on other hosts by their grow). What cannot be placed is refused,
 * with the limits that said no. The homeostat (cells/homeostat.ts) claims the result by
 * compare-and-set and carries it out; this file decides and does no I/O.
 */
import type { CensusEntry } from '../organism/kernel/census.ts';
import type { Limits } from '../organism/kernel/genome/index.ts';
import type { PendingCell } from '../organism/kernel/homeostasis-record.ts';
import type { Readings } from '../organism/kernel/vocabulary.ts';
import { hostRoom } from './atp.ts';
import type { Plan } from './homeostasis-plan.ts';
import { liveHosts, placeCells } from './placement.ts';

export interface AllocationInput {
  tissue: string;
  plan: Extract<Plan, { type: 'grow' }>;
  /** The census as the deciding cell sees it. */
  census: readonly CensusEntry[];
  /** Cells being made for every tissue (not yet due). */
  pendingEverywhere: readonly PendingCell[];
  /** Those being made for this tissue. */
  tissuePending: readonly PendingCell[];
  limits: Pick<Limits, 'cellsPerHost' | 'rssPerHostMb' | 'joinTimeoutMs'>;
  self: { id: string; host: string };
  /** Divisions this cell's lineage certificate still allows. */
  budget: number;
  /** Whether another living cell may still divide where this one has no budget (see Homeostat). */
  othersCanDivide: boolean;
  now: number;
  /** A fresh cell id for `tissue` (cells/spawn.ts newCellId; a test passes a counter). */
  newId: (tissue: string) => string;
  /**
   * False while this cell (a stem) acts for another tissue, above all while it divides for
   * the stem pool: recruiting itself then would leave its stem tissue one short as it counts
   * on it. @default true
   */
  selfMayDifferentiate?: boolean;
}

export type Allocation =
  /** Only the lineage budget stood in the way, and another cell may have some: leave it to them. */
  | { type: 'leave' }
  /** Nothing can be made: the refusal to record and announce. */
  | { type: 'refuse'; count: number; reason: string; readings: Readings }
  | {
    type: 'make';
    /** Stem cells to recruit. */
    stems: CensusEntry[];
    /** New cells, each on a host: this one's by division, the others' by their grow. */
    planned: { id: string; host: string }[];
    /** Every cell above, as pending in the tissue's record. */
    pending: PendingCell[];
    /** Cells asked for that no host or budget allowed. */
    refused: number;
    /** The limits that refused them, said in words. */
    limitsHit: string[];
    readings: Readings;
  };

export function allocate(i: AllocationInput): Allocation {
  const { plan: p, tissue, limits, self } = i;
  // Stems already being recruited (by any tissue); a stem pool's own seeds and spawns are not recruits.
  const claimed = new Set(i.pendingEverywhere.filter((q) => q.how === 'stem').map((q) => q.id));
  // Cells meant for given hosts (perHost) take only stems on those hosts. A stem pool refills by division.
  const targets = p.targets ? [...p.targets] : undefined;
  const stems: CensusEntry[] = [];
  const mayRecruit = (c: CensusEntry) => c.tissue === 'stem' && c.state === 'alive' && !claimed.has(c.id) && (i.selfMayDifferentiate !== false || c.id !== self.id);
  for (const s of tissue === 'stem' ? [] : i.census.filter(mayRecruit)) {
    if (stems.length >= p.count) break;
    if (targets) {
      const k = targets.indexOf(s.host);
      if (k < 0) continue;
      targets.splice(k, 1);
    }
    stems.push(s);
  }
  const toPlace = p.count - stems.length;
  // The rest are made where there is room: here by division, elsewhere by that host's grow.
  const placed = placeCells({
    census: i.census, pending: i.pendingEverywhere, tissuePending: i.tissuePending,
    limits, tissue, count: toPlace, self: self.host, ...(targets ? { targets } : {}),
  });
  const room = hostRoom(i.census, i.pendingEverywhere, self.host, limits);
  const here = placed.hosts.filter((h) => h === self.host).length;
  const limitsHit: string[] = [];
  if (placed.refused > 0) limitsHit.push(`no host has room (limits.cellsPerHost ${limits.cellsPerHost}, limits.rssPerHostMb ${limits.rssPerHostMb}; full: ${placed.full.join(', ') || 'the target hosts are not live'})`);
  if (here > i.budget) limitsHit.push(`lineage budget (${self.id} has ${i.budget} left)`);
  const readings: Readings = { ...p.readings, stems: stems.length, budget: i.budget, hostCells: room.living, hostRssMb: room.rssMb, hosts: liveHosts(i.census).length };
  const due = i.now + limits.joinTimeoutMs;
  const planned = [
    ...Array.from({ length: Math.min(here, i.budget) }, () => ({ id: i.newId(tissue), host: self.host })),
    ...placed.hosts.filter((h) => h !== self.host).map((host) => ({ id: i.newId(tissue), host })),
  ];
  const pending: PendingCell[] = [
    ...stems.map((s) => ({ id: s.id, host: s.host, due, how: 'stem' as const })),
    ...planned.map(({ id, host }) => ({ id, host, due, how: 'spawn' as const })),
  ];
  const refused = toPlace - planned.length;
  if (pending.length > 0) return { type: 'make', stems, planned, pending, refused, limitsHit, readings };
  // Nothing this cell can do. Only the budget is personal: leave it to a cell that has some.
  if (limitsHit.length === 1 && limitsHit[0]!.startsWith('lineage') && i.othersCanDivide) return { type: 'leave' };
  return { type: 'refuse', count: refused, reason: `${p.reason}; refused: ${limitsHit.join(', ')}`, readings };
}
