import test from 'ava';
import fc from 'fast-check';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { TISSUE_DEFAULTS, type TissueGene } from '../../organism/kernel/genome/index.ts';
import { backoffMs, emptyTissueRecord, packRecord, parseTissueRecord, type TissueRecord } from '../../organism/kernel/homeostasis-record.ts';
import { isCellularError } from '../../organism/wire/errors.ts';
import { hostRoom } from '../../cells/atp.ts';
import { calmMs, nextRecord, plan, population, type PlanInput } from '../../cells/homeostasis-plan.ts';
import { childBudget } from '../../cells/spawn.ts';

const NOW = 1_800_000_000_000;
const LIMITS = { crashWindowMs: 1_000, regrowBackoffMs: 500, regrowBackoffMaxMs: 30_000, pulseIntervalMs: 500 };
const GENE: TissueGene = { ...TISSUE_DEFAULTS, module: 'echo', min: 1, max: 8 };

function member(id: string, over: Partial<CensusEntry> = {}): CensusEntry {
  return {
    id, tissue: 'echo', host: 'h1', pid: 100, parent: null, born: NOW - 60_000, age: 60_000, state: 'alive', load: 0.5, smoothed: 0.5, demand: 0.5,
    cpu: 1, rss: 64 << 20, lag: 0, url: null, genome: 'g', lastSeen: NOW, ts: NOW, pulses: 10, cause: null, died: null, work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, ...over,
  };
}

function input(over: Partial<PlanInput> = {}): PlanInput {
  const members = over.members ?? [member('echo-1')];
  return {
    tissue: 'echo', gene: GENE, limits: LIMITS, members, known: new Set(members.map((m) => m.id)), watchingSince: NOW - 60_000, record: emptyTissueRecord('echo'), now: NOW,
    self: { id: 'echo-1', tissue: 'echo', state: 'alive' }, lowSince: undefined, ...over,
  };
}

const loaded = (n: number, each: number) => Array.from({ length: n }, (_, i) => member(`echo-${i + 1}`, { load: Math.min(1, each), smoothed: Math.min(1, each), demand: each }));

test('plan - under stress a tissue grows to ceil(demand / target), within its max', (t) => {
  const p = plan(input({ members: loaded(2, 1.5) })); // demand 3 → ceil(3 / 0.6) = 5
  t.like(p, { type: 'grow', count: 3, regrow: false });
  t.regex((p as { reason: string }).reason, /needs 5 cells, it has 2/);
  t.like(plan(input({ members: loaded(2, 10) })), { type: 'grow', count: 6 }, 'never past max 8');
  t.like(plan(input({ members: loaded(8, 1) })), { type: 'refuse', count: 1 }, 'at max: refused, not silent');
  t.like(plan(input({ members: loaded(2, 0.5) })), { type: 'none' }, 'stress 0.5 is below high 0.75');
});

test('plan - cells being made and the calm after a decision hold stress-driven growth', (t) => {
  const members = loaded(2, 1.5);
  const pending = { ...emptyTissueRecord('echo'), pending: [{ id: 'echo-9', host: 'h1', due: NOW + 1_000, how: 'spawn' as const }] };
  t.like(plan(input({ members, record: pending })), { type: 'none', why: 'cells are being made' });
  t.like(plan(input({ members, record: { ...emptyTissueRecord('echo'), calmUntil: NOW + 1 } })), { type: 'none' });
  t.is(population(input({ members, record: pending })).n, 3, 'a pending cell counts as present');
  t.is(population(input({ members, record: pending, known: new Set(['echo-1', 'echo-2', 'echo-9']) })).n, 2, 'a spawned cell seen anywhere is born: no longer pending');
  const recruit = { ...emptyTissueRecord('echo'), pending: [{ id: 'stem-1', host: 'h1', due: NOW + 1_000, how: 'stem' as const }] };
  t.is(population(input({ members, record: recruit, known: new Set(['echo-1', 'echo-2', 'stem-1']) })).n, 3, 'a recruited stem is pending until it is a member here');
});

test('plan - a cell past its due whose process is still starting (a loaded host) is pending: neither failed nor replaced', (t) => {
  const gene = { ...GENE, min: 3 };
  const members = [member('echo-1', { smoothed: 0, load: 0, demand: 0 }), member('echo-2', { smoothed: 0, load: 0, demand: 0 })];
  const late = { ...emptyTissueRecord('echo'), pending: [{ id: 'echo-3', host: 'h1', due: NOW - 500, how: 'seed' as const }] };
  // Its process runs: the homeostat marks it known (not failed) and being born (still pending).
  const p = plan(input({ gene, members, record: late, known: new Set(['echo-1', 'echo-2', 'echo-3']), beingBorn: new Set(['echo-3']), watchingSince: NOW - 10_000 }));
  t.like(p, { type: 'none' }, 'not regrown while it is being born');
  t.is(population(input({ gene, members, record: late, known: new Set(['echo-1', 'echo-2', 'echo-3']), beingBorn: new Set(['echo-3']) })).n, 3);
  // Without a process it is a failed birth (known: no; then back-off), never silently missing.
  t.like(plan(input({ gene, members, record: late, known: new Set(['echo-1', 'echo-2']), watchingSince: NOW - 10_000 })), { type: 'back-off' });
});

test('plan - below min it regrows at once, whatever the calm, unless backing off', (t) => {
  const gene = { ...GENE, min: 3 };
  const members = [member('echo-1', { smoothed: 0, load: 0, demand: 0 })];
  t.like(plan(input({ gene, members, record: { ...emptyTissueRecord('echo'), calmUntil: NOW + 10_000 } })), { type: 'grow', count: 2, regrow: true });
  t.like(plan(input({ gene, members, record: { ...emptyTissueRecord('echo'), retryAt: NOW + 1 } })), { type: 'none' });
  t.like(plan(input({ gene, members: [], known: new Set() })), { type: 'grow', count: 3 }, 'a wiped-out tissue is regrown');
  const suspect = [member('echo-1'), member('echo-2', { state: 'suspect' }), member('echo-3')];
  t.like(plan(input({ gene, members: suspect })), { type: 'none' }, 'a silent (maybe stopped) cell is not replaced until it is dead');
});

test('plan - a refused regrowth waits a calm before it asks again (no refusal at every tick)', (t) => {
  const gene = { ...GENE, min: 3 };
  const members = [member('echo-1', { smoothed: 0, load: 0, demand: 0 })];
  const p = plan(input({ gene, members }));
  t.like(p, { type: 'grow', regrow: true, count: 2 });
  // Every cell was out of budget: the acting cell wrote a refusal instead.
  const refused = nextRecord(emptyTissueRecord('echo'), { type: 'refuse', count: 2, reason: 'lineage budget', readings: {} }, 'echo-1', NOW, 6_000);
  t.is(refused.retryAt, NOW + 6_000);
  t.like(plan(input({ gene, members, record: refused, now: NOW + 5_999 })), { type: 'none' }, 'still waiting');
  t.like(plan(input({ gene, members, record: refused, now: NOW + 6_000 })), { type: 'grow', regrow: true }, 'then it asks again');
});

test('plan - failed births are counted once and the wait doubles to the cap', (t) => {
  const young = member('echo-2', { state: 'dead', cause: 'error', born: NOW - 300, died: NOW - 100 });
  const p = plan(input({ members: [member('echo-1'), young] }));
  t.like(p, { type: 'back-off', failed: ['echo-2'], failures: 1, retryAt: NOW + 500 });
  const after = nextRecord(emptyTissueRecord('echo'), p as Exclude<typeof p, { type: 'none' }>, 'echo-1', NOW, 1_000);
  t.deepEqual(after.crashed, ['echo-2']);
  t.not(plan(input({ members: [member('echo-1'), young], record: after })).type, 'back-off', 'the same death is not counted twice');
  t.like(plan(input({ members: [member('echo-1'), member('echo-3', { state: 'dead', cause: 'apoptosis', born: NOW - 300, died: NOW })] })), { type: 'none' }, 'an intended death is no failure');
  const overdue = { ...emptyTissueRecord('echo'), pending: [{ id: 'echo-7', host: 'h1', due: NOW - 1, how: 'spawn' as const }] };
  t.like(plan(input({ record: overdue })), { type: 'back-off', failed: ['echo-7'] }, 'a cell that never pulsed');
  t.like(plan(input({ record: overdue, known: new Set(['echo-1', 'echo-7']) })), { type: 'none' }, 'one that joined (even another tissue) is no failure');
  t.like(plan(input({ record: overdue, watchingSince: NOW - 1 })), { type: 'none' }, 'due before this cell was watching: not its to judge');
  t.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((f) => backoffMs(f, 500, 30_000)), [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  t.is(backoffMs(10_000, 500, 30_000), 30_000, 'no overflow');
});

test('plan - recovery: a cell born after the last failure outlives the crash window', (t) => {
  const record: TissueRecord = { ...emptyTissueRecord('echo'), failures: 3, failedAt: NOW - 5_000 };
  t.like(plan(input({ record, members: [member('echo-1', { born: NOW - 2_000 })] })), { type: 'recover', survivor: 'echo-1' });
  t.not(plan(input({ record, members: [member('echo-1', { born: NOW - 500 })] })).type, 'recover', 'too young to tell');
});

test('plan - apoptosis: only the deciding cell, only after idleMs below low, never below min', (t) => {
  const idle = loaded(3, 0.05);
  const lowSince = NOW - GENE.idleMs;
  t.like(plan(input({ members: idle, lowSince })), { type: 'die' });
  t.like(plan(input({ members: idle, lowSince: lowSince + 1 })), { type: 'none' }, 'not idle long enough');
  t.like(plan(input({ members: idle, lowSince, self: { id: 'echo-1', tissue: 'stem', state: 'alive' } })), { type: 'none' }, 'a cell only ends itself');
  t.like(plan(input({ members: [idle[0]!], lowSince })), { type: 'none' }, 'never below min');
  t.like(plan(input({ members: idle, lowSince, self: { id: 'echo-1', tissue: 'echo', state: 'draining' } })), { type: 'none' });
});

test('plan - hysteresis: a tissue grown for a steady demand neither divides nor dies again (property)', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(
        fc.record({
          low: fc.double({ min: 0.05, max: 0.3, noNaN: true }),
          gap: fc.double({ min: 0.05, max: 0.3, noNaN: true }),
          top: fc.double({ min: 0.05, max: 0.3, noNaN: true }),
          demand: fc.double({ min: 0.01, max: 30, noNaN: true }),
          max: fc.integer({ min: 1, max: 64 }),
        }),
        ({ low, gap, top, demand, max }) => {
          const gene: TissueGene = { ...GENE, min: 1, max, low, target: low + gap, high: Math.min(0.99, low + gap + top) };
          // The size a grow decision aims at, then every cell carrying an equal share.
          const n = Math.min(max, Math.max(1, Math.ceil(Math.round((demand / gene.target) * 1000) / 1000)));
          if (demand / n > 1) return; // beyond max: saturated, at the cap; not a steady state of interest
          const members = loaded(n, demand / n);
          for (const self of members) {
            const p = plan(input({ gene, members, self: { id: self.id, tissue: 'echo', state: 'alive' }, lowSince: NOW - 10 * gene.idleMs }));
            if (p.type === 'grow' || p.type === 'die') throw new Error(`${p.type} at n=${n}, demand ${demand}: ${p.reason}`);
          }
        },
      ),
      { numRuns: 500 },
    ),
  );
});

test('Hayflick - a lineage is bounded in depth and size, and every child gets less than its parent had (property)', (t) => {
  const depth = (b: number): number => (b < 1 ? 1 : 1 + depth(childBudget(b)));
  const memo = new Map<number, number>();
  // A cell with budget b divides b times; each child starts with childBudget of what was left.
  const size = (b: number): number => {
    if (!memo.has(b)) {
      let total = 1;
      for (let left = b; left >= 1; left--) total += size(childBudget(left));
      memo.set(b, total);
    }
    return memo.get(b)!;
  };
  t.is(depth(16), 5, 'a chain from budget 16 is 5 cells deep');
  t.true(size(16) < 300, `a lineage from budget 16 holds at most ${size(16)} cells`);
  fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (b) => childBudget(b) < b && childBudget(b) >= 0 && depth(b) <= Math.log2(b + 1) + 1));
});

test('ATP - host room counts living and pending cells and their memory', (t) => {
  const census = [member('a', { rss: 100 << 20 }), member('b', { rss: 100 << 20 }), member('c', { host: 'h2' }), member('d', { state: 'dead' })];
  const pending = [{ id: 'e', host: 'h1', due: NOW, how: 'spawn' as const }, { id: 'f', host: 'h1', due: NOW, how: 'stem' as const }];
  const room = hostRoom(census, pending, 'h1', { cellsPerHost: 5, rssPerHostMb: 500 });
  t.is(room.living, 3, 'two living here and one spawn on its way (a recruited stem already lives)');
  t.is(room.cells, 2);
  t.is(room.memory, 2, '500 MiB - 200 used - 100 for the pending one leaves two 100 MiB cells');
});

test('homeostasis record - round-trips, and a malformed one is refused with STORE_ERR_RECORD', (t) => {
  const r: TissueRecord = { ...emptyTissueRecord('echo'), epoch: 3, pending: [{ id: 'echo-1', host: 'h', due: 5, how: 'stem' }], crashed: ['echo-0'], failures: 1 };
  t.deepEqual(parseTissueRecord(packRecord(r), 'echo'), r);
  for (const bad of [{ ...r, v: 2 }, { ...r, tissue: 'other' }, { ...r, epoch: -1 }, { ...r, action: 'explode' }, { ...r, pending: [{ id: 'BAD ID', host: 'h', due: 1, how: 'stem' }] }]) {
    const e = t.throws(() => parseTissueRecord(packRecord(bad as TissueRecord), 'echo'));
    t.true(isCellularError(e, 'STORE_ERR_RECORD'), e?.message);
  }
  t.true(isCellularError(t.throws(() => parseTissueRecord(new Uint8Array([0xc1]), 'echo')), 'STORE_ERR_RECORD'));
});

test('plan - calm lasts three half-lives (at least two pulses)', (t) => {
  t.is(calmMs({ ...GENE, halfLifeMs: 2_000 }, 500), 6_000);
  t.is(calmMs({ ...GENE, halfLifeMs: 10 }, 500), 1_000);
});
