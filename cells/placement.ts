/**
 * Where new cells go when the organism spans hosts. A host is live while it holds a living
 * cell; among live hosts with room (limits.cellsPerHost, limits.rssPerHostMb, read from the
 * census as the ATP budget does) each new cell goes to the host with the fewest cells of
 * its tissue (a tissue spread over hosts survives losing one), then the most room, then
 * the deciding cell's own host (a division there needs no request). A saturated host gets
 * nothing; a departed host is not live, so it gets nothing either.
 */
import type { CensusEntry } from '../organism/kernel/census.ts';
import type { Limits } from '../organism/kernel/genome/index.ts';
import type { PendingCell } from '../organism/kernel/homeostasis-record.ts';
import { hostRoom } from './atp.ts';
import { CellularError } from '../organism/wire/errors.ts';

/** Hosts holding a cell that is alive, draining or suspect (not yet dead), sorted. */
export function liveHosts(census: readonly CensusEntry[]): string[] {
  return [...new Set(census.filter((c) => c.state !== 'dead').map((c) => c.host))].sort();
}

/** A growth request to a host's grow: make pending cell `id` of `tissue`, decided by `by` at `epoch`. */
export interface PlaceRequest {
  tissue: string;
  id: string;
  by: string;
  epoch: number;
}

/** Checks a growth request from the wire (PLACEMENT_ERR_REFUSED if malformed). */
export function parsePlaceRequest(value: unknown): PlaceRequest {
  const r = value as Record<string, unknown> | null;
  const ok = typeof r === 'object' && r !== null
    && typeof r.tissue === 'string' && /^[a-z][a-z0-9-]{0,31}$/.test(r.tissue)
    && typeof r.id === 'string' && r.id.length <= 64 && r.id.startsWith(`${r.tissue}-`)
    && typeof r.by === 'string' && r.by.length <= 64
    && typeof r.epoch === 'number' && Number.isSafeInteger(r.epoch) && r.epoch >= 0;
  if (!ok) throw new CellularError('PLACEMENT_ERR_REFUSED', 'a growth request is {tissue, id (<tissue>-…), by, epoch ≥ 0}');
  return { tissue: r.tissue as string, id: r.id as string, by: r.by as string, epoch: r.epoch as number };
}

export interface PlacementInput {
  census: readonly CensusEntry[];
  /** Cells being made anywhere (they take room where they are going). */
  pending: readonly PendingCell[];
  /** Those of them that will be cells of this tissue. */
  tissuePending: readonly PendingCell[];
  limits: Pick<Limits, 'cellsPerHost' | 'rssPerHostMb'>;
  tissue: string;
  count: number;
  /** The deciding cell's host. */
  self: string;
  /** Hosts the cells must go to (one entry per cell), e.g. hosts short of tissues.<t>.perHost. */
  targets?: readonly string[];
}

export interface Placement {
  /** One host per placed cell. */
  hosts: string[];
  /** Cells no host had room for. */
  refused: number;
  /** Live hosts that had no room, with why. */
  full: string[];
}

export function placeCells(i: PlacementInput): Placement {
  const live = new Set(liveHosts(i.census));
  live.add(i.self);
  const state = new Map<string, { room: number; ofTissue: number }>();
  const full: string[] = [];
  for (const host of live) {
    const r = hostRoom(i.census, i.pending, host, i.limits);
    const room = Math.min(r.cells, r.memory);
    if (room === 0) full.push(`${host} (${r.living} cells, ${r.rssMb} MiB)`);
    const ofTissue = i.census.filter((c) => c.host === host && c.tissue === i.tissue && c.state !== 'dead').length
      + i.tissuePending.filter((p) => p.host === host && !i.census.some((c) => c.id === p.id && c.tissue === i.tissue)).length;
    state.set(host, { room, ofTissue });
  }
  const hosts: string[] = [];
  let refused = 0;
  const wanted = i.targets ? [...i.targets] : Array.from({ length: i.count }, () => undefined);
  for (const target of wanted.slice(0, i.count)) {
    const candidates = [...state.entries()].filter(([h, s]) => s.room > 0 && (target === undefined || h === target));
    candidates.sort(([ha, a], [hb, b]) => a.ofTissue - b.ofTissue || b.room - a.room || Number(hb === i.self) - Number(ha === i.self) || ha.localeCompare(hb));
    const pick = candidates[0];
    if (!pick) {
      refused++;
      continue;
    }
    pick[1].room--;
    pick[1].ofTissue++;
    hosts.push(pick[0]);
  }
  return { hosts, refused, full };
}

/** Hosts short of `perHost` cells of the tissue, once per missing cell (members and cells being made there count). */
export function perHostDeficits(members: readonly CensusEntry[], pending: readonly PendingCell[], hosts: readonly string[], perHost: number): string[] {
  if (perHost <= 0) return [];
  const present = new Set(members.filter((m) => m.state !== 'dead').map((m) => m.id));
  const out: string[] = [];
  for (const host of hosts) {
    const have = members.filter((m) => m.host === host && m.state !== 'dead').length + pending.filter((p) => p.host === host && !present.has(p.id)).length;
    for (let k = have; k < perHost; k++) out.push(host);
  }
  return out;
}

/**
 * Whether `host`, short of its tissues.<t>.perHost share while the tissue is at its max, may
 * have its share anyway: every live host's share fits within max, and another host holds
 * more than its share (cells the survivors grew while `host` was away). The tissue is then
 * one above max for a moment, and homeostasis lets go of an extra where there are more than
 * the share (homeostasis-plan.ts, rule 3), never a host's only ones.
 */
export function shareDisplaces(members: readonly CensusEntry[], host: string, perHost: number, max: number): boolean {
  if (perHost <= 0) return false;
  const living = members.filter((m) => m.state !== 'dead');
  const hosts = new Set([...living.map((m) => m.host), host]);
  if (hosts.size * perHost > max) return false;
  return [...hosts].some((h) => h !== host && living.filter((m) => m.host === h).length > perHost);
}

/**
 * Above max, which members may go without leaving their host below `perHost`: the youngest
 * first, `count` of them at most (fewer if only hosts' own shares are left).
 */
export function extrasAboveMax(alive: readonly CensusEntry[], count: number, perHost: number): CensusEntry[] {
  const left = new Map<string, number>();
  for (const m of alive) left.set(m.host, (left.get(m.host) ?? 0) + 1);
  const out: CensusEntry[] = [];
  for (const m of [...alive].sort((a, b) => b.born - a.born || a.id.localeCompare(b.id))) {
    if (out.length === count) break;
    if ((left.get(m.host) ?? 0) - 1 < perHost) continue;
    left.set(m.host, left.get(m.host)! - 1);
    out.push(m);
  }
  return out;
}
