import test from 'ava';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import type { PendingCell } from '../../organism/kernel/homeostasis-record.ts';
import { allocate, type AllocationInput } from '../../cells/homeostasis-allocation.ts';

const NOW = 1_800_000_000_000;
const LIMITS = { cellsPerHost: 10, rssPerHostMb: 4096, joinTimeoutMs: 5_000 };
const MIB = 1024 * 1024;

function cell(id: string, over: Partial<CensusEntry> = {}): CensusEntry {
  return {
    id, tissue: id.replace(/-\d+$/, ''), host: 'h1', pid: 100, parent: null, born: NOW - 60_000, age: 60_000, state: 'alive', load: 0.5, smoothed: 0.5, demand: 0.5,
    cpu: 1, rss: 64 * MIB, lag: 0, url: null, genome: 'g', lastSeen: NOW, ts: NOW, pulses: 10, cause: null, died: null, work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, ...over,
  };
}

function input(over: Partial<AllocationInput> & { count?: number; targets?: string[] } = {}): AllocationInput {
  const { count = 1, targets, ...rest } = over;
  let n = 0;
  return {
    tissue: 'echo',
    plan: { type: 'grow', count, regrow: false, reason: 'echo stress 0.9 is above 0.75', readings: { stress: 0.9 }, ...(targets ? { targets } : {}) },
    census: [cell('echo-1')], pendingEverywhere: [], tissuePending: [], limits: LIMITS, self: { id: 'echo-1', host: 'h1' },
    budget: 8, othersCanDivide: false, now: NOW, newId: (tissue) => `${tissue}-new${++n}`, ...rest,
  };
}

test('allocation - stem cells are recruited first, then the rest divided here', (t) => {
  const census = [cell('echo-1'), cell('stem-1'), cell('stem-2')];
  const a = allocate(input({ census, count: 3 }));
  if (a.type !== 'make') return t.fail(a.type);
  t.deepEqual(a.stems.map((s) => s.id), ['stem-1', 'stem-2']);
  t.deepEqual(a.planned, [{ id: 'echo-new1', host: 'h1' }]);
  t.deepEqual(a.pending, [
    { id: 'stem-1', host: 'h1', due: NOW + 5_000, how: 'stem' },
    { id: 'stem-2', host: 'h1', due: NOW + 5_000, how: 'stem' },
    { id: 'echo-new1', host: 'h1', due: NOW + 5_000, how: 'spawn' },
  ]);
  t.is(a.refused, 0);
  t.like(a.readings, { stress: 0.9, stems: 2, budget: 8, hostCells: 3, hosts: 1 });
});

test('allocation - a stem already being recruited, dead, or a stem pool growing itself is not recruited', (t) => {
  const recruiting: PendingCell[] = [{ id: 'stem-1', host: 'h1', due: NOW + 1_000, how: 'stem' }];
  const census = [cell('echo-1'), cell('stem-1'), cell('stem-2', { state: 'dead' }), cell('stem-3', { state: 'suspect' })];
  const a = allocate(input({ census, pendingEverywhere: recruiting }));
  t.like(a, { type: 'make', stems: [], planned: [{ id: 'echo-new1', host: 'h1' }] });
  const pool = allocate(input({ tissue: 'stem', census: [cell('stem-1')], self: { id: 'stem-1', host: 'h1' } }));
  t.like(pool, { type: 'make', stems: [], planned: [{ id: 'stem-new1', host: 'h1' }] }, 'a stem pool refills by division');
});

test('allocation - a stem acting for another tissue (dividing for its stem pool) does not recruit itself; otherwise it may', (t) => {
  const census = [cell('stem-1'), cell('stem-2'), cell('echo-1', { state: 'dead' })];
  const self = { id: 'stem-1', host: 'h1' };
  const busy = allocate(input({ census, self, count: 1, selfMayDifferentiate: false }));
  if (busy.type !== 'make') return t.fail(busy.type);
  t.deepEqual(busy.stems.map((s) => s.id), ['stem-2'], 'the other stem, not itself');
  const alone = allocate(input({ census: [cell('stem-1')], self, count: 1, selfMayDifferentiate: false }));
  if (alone.type !== 'make') return t.fail(alone.type);
  t.deepEqual([alone.stems.length, alone.planned.length], [0, 1], 'no other stem: it divides instead');
  const free = allocate(input({ census, self, count: 1 }));
  if (free.type !== 'make') return t.fail(free.type);
  t.deepEqual(free.stems.map((s) => s.id), ['stem-1'], 'free to: the first stem, itself');
});

test('allocation - cells meant for given hosts take only stems there, and are placed there', (t) => {
  const census = [cell('echo-1'), cell('stem-1'), cell('stem-2', { host: 'h2' })];
  const a = allocate(input({ census, count: 2, targets: ['h2', 'h3'] }));
  if (a.type !== 'make') return t.fail(a.type);
  t.deepEqual(a.stems.map((s) => s.id), ['stem-2'], 'only the stem on a target host');
  // h3 is not a live host: nobody can place there.
  t.deepEqual(a.planned, []);
  t.is(a.refused, 1);
  t.regex(a.limitsHit.join(), /no host has room/);
});

test('allocation - the lineage budget caps divisions here, and the rest is refused with the limit named', (t) => {
  const a = allocate(input({ count: 3, budget: 1 }));
  if (a.type !== 'make') return t.fail(a.type);
  t.deepEqual(a.planned, [{ id: 'echo-new1', host: 'h1' }]);
  t.is(a.refused, 2);
  t.deepEqual(a.limitsHit, ['lineage budget (echo-1 has 1 left)']);
});

test('allocation - with nothing to make, a cell out of budget leaves it to others who may have some, else refuses', (t) => {
  t.deepEqual(allocate(input({ budget: 0, othersCanDivide: true })), { type: 'leave' });
  const a = allocate(input({ budget: 0, othersCanDivide: false, count: 2 }));
  t.like(a, { type: 'refuse', count: 2, reason: 'echo stress 0.9 is above 0.75; refused: lineage budget (echo-1 has 0 left)' });
  // A full host is not personal: refused even if others could divide.
  const full = allocate(input({ othersCanDivide: true, limits: { ...LIMITS, cellsPerHost: 1 } }));
  t.like(full, { type: 'refuse', count: 1 });
  t.regex((full as { reason: string }).reason, /no host has room \(limits\.cellsPerHost 1, .*full: h1 \(1 cells/);
});

test('allocation - cells go to other hosts with room when this one is full; pending cells take room', (t) => {
  const census = [cell('echo-1'), cell('echo-2', { host: 'h2' })];
  const here: PendingCell[] = [{ id: 'worker-9', host: 'h1', due: NOW + 1_000, how: 'spawn' }];
  const a = allocate(input({ census, pendingEverywhere: here, limits: { ...LIMITS, cellsPerHost: 2 } }));
  if (a.type !== 'make') return t.fail(a.type);
  t.deepEqual(a.planned, [{ id: 'echo-new1', host: 'h2' }], 'h1 holds one cell and one on its way: full');
  t.like(a.readings, { hostCells: 2, hosts: 2 });
});
