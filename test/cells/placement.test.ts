/**
 * Placement across hosts (cells/placement.ts) and the plan rules that span hosts: perHost,
 * the apoptosis guard that keeps a host's share, and duplicates above max after a healed
 * partition. Pure functions: properties over random censuses.
 */
import test from 'ava';
import fc from 'fast-check';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { TISSUE_DEFAULTS, type TissueGene } from '../../organism/kernel/genome/index.ts';
import { emptyTissueRecord, type PendingCell } from '../../organism/kernel/homeostasis-record.ts';
import { isCellularError } from '../../organism/wire/errors.ts';
import { extrasAboveMax, liveHosts, parsePlaceRequest, perHostDeficits, placeCells, shareDisplaces } from '../../cells/placement.ts';
import { plan, type PlanInput } from '../../cells/homeostasis-plan.ts';

const NOW = 1_800_000_000_000;
const LIMITS = { cellsPerHost: 4, rssPerHostMb: 4096 };

function cell(id: string, host: string, over: Partial<CensusEntry> = {}): CensusEntry {
  return {
    id, tissue: id.replace(/-.*$/, ''), host, pid: 100, parent: null, born: NOW - 60_000, age: 60_000, state: 'alive', load: 0.1, smoothed: 0.1, demand: 0.1,
    cpu: 1, rss: 64 << 20, lag: 0, url: null, genome: 'g', lastSeen: NOW, ts: NOW, pulses: 10, cause: null, died: null, work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, ...over,
  };
}

test('placement - live hosts are those with a cell not yet dead', (t) => {
  t.deepEqual(liveHosts([cell('echo-1', 'b'), cell('echo-2', 'a', { state: 'suspect' }), cell('echo-3', 'c', { state: 'dead' })]), ['a', 'b']);
});

test('placement - new cells spread to the hosts with fewest of the tissue, never to a full host or a departed one', (t) => {
  const census = [cell('echo-1', 'h1'), cell('echo-2', 'h1'), cell('worker-1', 'h2'), cell('stem-1', 'h3'), cell('stem-2', 'h3'), cell('stem-3', 'h3'), cell('stem-4', 'h3'), cell('echo-9', 'gone', { state: 'dead' })];
  const p = placeCells({ census, pending: [], tissuePending: [], limits: LIMITS, tissue: 'echo', count: 3, self: 'h1' });
  // h2 has no echo and room; h3 is full (4 of 4); 'gone' is not live; then h1 and h2 share.
  t.deepEqual(p.hosts, ['h2', 'h2', 'h1']);
  t.is(p.refused, 0);
  t.true(p.full.some((f) => f.startsWith('h3')));
  const targeted = placeCells({ census, pending: [], tissuePending: [], limits: LIMITS, tissue: 'echo', count: 2, self: 'h1', targets: ['h3', 'h2'] });
  t.deepEqual(targeted.hosts, ['h2'], 'a target host that is full gets nothing');
  t.is(targeted.refused, 1);
});

test('placement - cells being made count where they are going', (t) => {
  const census = [cell('echo-1', 'h1'), cell('echo-2', 'h2')];
  const pending: PendingCell[] = [{ id: 'echo-3', host: 'h2', due: NOW + 1_000, how: 'spawn' }];
  const p = placeCells({ census, pending, tissuePending: pending, limits: LIMITS, tissue: 'echo', count: 1, self: 'h2' });
  t.deepEqual(p.hosts, ['h1'], 'h2 already has one echo on its way');
});

test('placement - properties: never more than asked, never past a host\'s room, only live hosts', (t) => {
  const host = fc.constantFrom('h1', 'h2', 'h3', 'h4');
  const entry = fc.record({ tissue: fc.constantFrom('echo', 'worker', 'stem'), host, state: fc.constantFrom('alive', 'suspect', 'dead' as const) });
  fc.assert(fc.property(fc.array(entry, { maxLength: 20 }), fc.integer({ min: 0, max: 12 }), host, fc.integer({ min: 1, max: 6 }), (rows, count, self, cap) => {
    const census = rows.map((r, i) => cell(`${r.tissue}-${i}`, r.host, { state: r.state as CensusEntry['state'] }));
    const limits = { cellsPerHost: cap, rssPerHostMb: 1 << 20 };
    const p = placeCells({ census, pending: [], tissuePending: [], limits, tissue: 'echo', count, self });
    if (p.hosts.length + p.refused !== count) return false;
    const live = new Set([...liveHosts(census), self]);
    for (const h of new Set(p.hosts)) {
      if (!live.has(h)) return false;
      const here = census.filter((c) => c.host === h && c.state !== 'dead').length;
      if (here + p.hosts.filter((x) => x === h).length > cap) return false;
    }
    return true;
  }));
  t.pass();
});

test('placement - per-host deficits name each short host once per missing cell', (t) => {
  const members = [cell('receiver-1', 'h1'), cell('receiver-2', 'h2', { state: 'dead' })];
  const pending: PendingCell[] = [{ id: 'receiver-3', host: 'h3', due: NOW + 1_000, how: 'spawn' }];
  t.deepEqual(perHostDeficits(members, pending, ['h1', 'h2', 'h3'], 1), ['h2']);
  t.deepEqual(perHostDeficits(members, [], ['h1', 'h2'], 2), ['h1', 'h2', 'h2']);
  t.deepEqual(perHostDeficits(members, [], ['h1', 'h2'], 0), []);
});

test('placement - a growth request from the wire is checked field by field', (t) => {
  t.deepEqual(parsePlaceRequest({ tissue: 'echo', id: 'echo-1a2b', by: 'echo-9', epoch: 3 }), { tissue: 'echo', id: 'echo-1a2b', by: 'echo-9', epoch: 3 });
  for (const bad of [null, 1, {}, { tissue: 'echo', id: 'worker-1', by: 'x', epoch: 1 }, { tissue: 'Echo', id: 'Echo-1', by: 'x', epoch: 1 }, { tissue: 'echo', id: 'echo-1', by: 'x', epoch: -1 }, { tissue: 'echo', id: 'echo-1', by: 'x'.repeat(65), epoch: 1 }]) {
    const e = t.throws(() => parsePlaceRequest(bad));
    t.true(isCellularError(e, 'PLACEMENT_ERR_REFUSED'), JSON.stringify(bad));
  }
  fc.assert(fc.property(fc.anything(), (v) => {
    try {
      parsePlaceRequest(v);
      return true;
    } catch (e) {
      return isCellularError(e, 'PLACEMENT_ERR_REFUSED');
    }
  }));
});

const RECEIVER: TissueGene = { ...TISSUE_DEFAULTS, module: 'receiver', min: 1, max: 6, perHost: 1 };
const PLAN_LIMITS = { crashWindowMs: 1_000, regrowBackoffMs: 500, regrowBackoffMaxMs: 30_000, pulseIntervalMs: 500 };

function input(members: CensusEntry[], over: Partial<PlanInput> = {}): PlanInput {
  return {
    tissue: 'receiver', gene: RECEIVER, limits: PLAN_LIMITS, members, known: new Set(members.map((m) => m.id)), watchingSince: NOW - 60_000,
    record: emptyTissueRecord('receiver'), now: NOW, self: { id: members[0]!.id, tissue: 'receiver', state: 'alive', host: members[0]!.host }, lowSince: undefined, ...over,
  };
}

test('plan - a live host short of perHost gets its cells placed there, like regrowth', (t) => {
  const members = [cell('receiver-1', 'h1')];
  const p = plan(input(members, { hosts: ['h1', 'h2', 'h3'] }));
  t.like(p, { type: 'grow', count: 2, regrow: true });
  t.deepEqual((p as { targets?: string[] }).targets, ['h2', 'h3']);
  t.regex((p as { reason: string }).reason, /short on h2, h3/);
  const full = plan(input([cell('receiver-1', 'h1'), cell('receiver-2', 'h2'), cell('receiver-3', 'h3')], { hosts: ['h1', 'h2', 'h3'] }));
  t.like(full, { type: 'none' });
  const atMax = plan(input(members, { hosts: ['h1', 'h2'], gene: { ...RECEIVER, max: 1 } }));
  t.like(atMax, { type: 'none' }, 'max wins over perHost');
});

test('plan - an idle cell does not die if its host would fall below perHost', (t) => {
  const idle = { smoothed: 0, load: 0, demand: 0 };
  const members = [cell('receiver-1', 'h1', idle), cell('receiver-2', 'h2', idle), cell('receiver-3', 'h2', { ...idle, born: NOW - 1_000 })];
  const gene = { ...RECEIVER, idleMs: 1_000 };
  const lowSince = NOW - 5_000;
  t.like(plan(input(members, { gene, lowSince, hosts: ['h1', 'h2'] })), { type: 'none' }, 'the only receiver on h1 stays');
  const p = plan(input(members, { gene, lowSince, hosts: ['h1', 'h2'], self: { id: 'receiver-3', tissue: 'receiver', state: 'alive', host: 'h2' } }));
  t.like(p, { type: 'die' }, 'h2 keeps one after receiver-3 goes');
});

test('plan - above max (a healed partition), the youngest extras die and the oldest stay', (t) => {
  const worker: TissueGene = { ...TISSUE_DEFAULTS, module: 'worker', min: 1, max: 1 };
  const old = cell('worker-old', 'h3', { born: NOW - 60_000 });
  const young = cell('worker-new', 'h1', { born: NOW - 5_000 });
  const mk = (self: CensusEntry) => ({
    tissue: 'worker', gene: worker, limits: PLAN_LIMITS, members: [old, young], known: new Set([old.id, young.id]), watchingSince: NOW - 60_000,
    record: emptyTissueRecord('worker'), now: NOW, self: { id: self.id, tissue: 'worker', state: 'alive', host: self.host }, lowSince: undefined,
  });
  const p = plan(mk(young));
  t.like(p, { type: 'die' });
  t.regex((p as { reason: string }).reason, /above its max 1 .*worker-new, among the youngest where its host keeps its share, leaves/);
  t.regex((p as { reason: string }).reason, /has 2 cells \(worker-old@h3, worker-new@h1\)/, 'it says which cells it counted');
  t.like(plan(mk(old)), { type: 'none' }, 'the oldest stays');
  t.like(plan({ ...mk(old), gene: { ...worker, idleMs: 1_000 }, lowSince: NOW - 60_000 }), { type: 'none' }, 'even idle: above max the youngest go, not whoever idles');
});

test('placement - a host back after the survivors grew to max may take its share when every share fits', (t) => {
  // h3 was lost; h1 and h2 grew to max 6 meanwhile. h3's grow is back with no receiver.
  const members = ['h1', 'h1', 'h1', 'h2', 'h2', 'h2'].map((h, k) => cell(`receiver-${k}`, h));
  t.true(shareDisplaces(members, 'h3', 1, 6), 'three shares fit in 6, and h1 holds more than its share');
  t.false(shareDisplaces(members, 'h3', 1, 2), 'max 2 cannot hold three hosts\' shares: max wins');
  t.false(shareDisplaces(members.slice(0, 1).concat(cell('receiver-9', 'h2')), 'h3', 1, 2), 'no host holds more than its share');
  t.false(shareDisplaces(members, 'h3', 0, 6), 'no share to take');
  t.false(shareDisplaces(members.map((m) => ({ ...m, state: 'dead' as const })), 'h3', 1, 6), 'the dead hold nothing');
});

test('placement - above max the youngest go, never below a host\'s share', (t) => {
  const old = (id: string, h: string, age: number) => cell(id, h, { born: NOW - age });
  const alive = [old('receiver-a', 'h1', 60_000), old('receiver-b', 'h1', 30_000), old('receiver-c', 'h2', 50_000), old('receiver-d', 'h3', 1_000)];
  t.deepEqual(extrasAboveMax(alive, 1, 1).map((m) => m.id), ['receiver-b'], "h3's only one, the youngest, stays");
  t.deepEqual(extrasAboveMax(alive, 1, 0).map((m) => m.id), ['receiver-d'], 'without perHost the youngest goes');
  t.deepEqual(extrasAboveMax(alive, 3, 1).map((m) => m.id), ['receiver-b'], 'only extras, whatever the count asked');
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('h1', 'h2', 'h3'), fc.integer({ min: 0, max: 1e6 })), { maxLength: 12 }), fc.nat(12), fc.nat(2), (cs, count, perHost) => {
    const ms = cs.map(([h, born], k) => cell(`receiver-${k}`, h, { born }));
    const gone = new Set(extrasAboveMax(ms, count, perHost).map((m) => m.id));
    if (gone.size > count) return false;
    // Every host keeps min(its cells, perHost).
    return ['h1', 'h2', 'h3'].every((h) => {
      const had = ms.filter((m) => m.host === h).length;
      return ms.filter((m) => m.host === h && !gone.has(m.id)).length >= Math.min(had, perHost);
    });
  }));
});

test('plan - a host\'s share taken at max: the youngest extra elsewhere leaves, not the newcomer', (t) => {
  const members = [...['h1', 'h1', 'h2', 'h2'].map((h, k) => cell(`receiver-${k}`, h, { born: NOW - 60_000 + k * 1_000 })), cell('receiver-new', 'h3', { born: NOW - 500 })];
  const gene = { ...RECEIVER, max: 4 };
  const as = (id: string) => plan(input(members, { gene, hosts: ['h1', 'h2', 'h3'], self: { id, tissue: 'receiver', state: 'alive', host: members.find((m) => m.id === id)!.host } }));
  t.like(as('receiver-new'), { type: 'none' }, "h3's only receiver stays, though it is the youngest");
  t.like(as('receiver-3'), { type: 'die' }, 'the youngest where its host keeps its share leaves');
  t.like(as('receiver-0'), { type: 'none' });
});
