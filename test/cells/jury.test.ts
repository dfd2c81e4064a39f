/**
 * The jury's rules and the evidence ledger, pure: properties over random censuses, lineages
 * and votes (fast-check), and the thresholds of every kind of evidence.
 */
import test from 'ava';
import fc from 'fast-check';
import { defaultGenome } from '../../organism/kernel/genome/index.ts';
import type { AccuseBody } from '../../organism/kernel/vocabulary.ts';
import { Evidence } from '../../cells/immune/evidence.ts';
import { jury, lineageOf, onRing, panelHolds, Trial, votesNeeded, type JurorView } from '../../cells/immune/jury.ts';
import { Ring } from '../../organism/kernel/sortition.ts';

/** A random census: cells c0…c(n-1), each with a parent among the earlier ones (or none). */
const census = fc.integer({ min: 1, max: 30 }).chain((n) =>
  fc.tuple(
    fc.array(fc.integer({ min: -1, max: 29 }), { minLength: n, maxLength: n }),
    fc.array(fc.integer({ min: 0, max: 1_000 }), { minLength: n, maxLength: n }),
    fc.array(fc.constantFrom('alive', 'alive', 'alive', 'suspect', 'draining', 'dead'), { minLength: n, maxLength: n }),
  ).map(([parents, born, states]) =>
    parents.map((p, i): JurorView => ({ id: `c${i}`, parent: p >= 0 && p < i ? `c${p}` : null, born: born[i]!, state: states[i]! })),
  ),
);

const accusation = (accused: string, at: number): AccuseBody => ({ id: 'a1', accused, kind: 'flood', detail: '', at, lineage: false });

test('jury - a verdict needs ⌈2n/3⌉ votes: the least k with 3k ≥ 2n (at least one)', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 100_000 }), (n) => {
    const k = votesNeeded(n);
    return k >= 1 && 3 * k >= 2 * n && (k === 1 || 3 * (k - 1) < 2 * n);
  }));
  t.is(votesNeeded(3), 2);
  t.is(votesNeeded(6), 4);
  t.is(votesNeeded(7), 5);
});

test('jury - a lineage is the cell and exactly its descendants', (t) => {
  fc.assert(fc.property(census, fc.nat(), (cells, pick) => {
    const root = cells[pick % cells.length]!.id;
    const line = lineageOf(root, cells);
    const byId = new Map(cells.map((c) => [c.id, c]));
    const descends = (id: string): boolean => id === root || (byId.get(id)?.parent != null && descends(byId.get(id)!.parent!));
    return cells.every((c) => line.has(c.id) === descends(c.id));
  }));
  t.pass();
});

test('jury - the jury is the living cells born by the accusation, without the accused and its lineage', (t) => {
  fc.assert(fc.property(census, fc.nat(), fc.integer({ min: 0, max: 1_000 }), (cells, pick, at) => {
    const accused = cells[pick % cells.length]!.id;
    const j = jury(accusation(accused, at), cells);
    const line = lineageOf(accused, cells);
    return cells.every((c) => j.has(c.id) === (c.state !== 'dead' && c.born <= at && !line.has(c.id)));
  }));
  t.pass();
});

test('jury - guilty exactly when ⌈2/3⌉ of the jury voted guilty; one vote each; barred and outside votes never count', (t) => {
  fc.assert(fc.property(census, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 80 }), (cells, pick, votes) => {
    const accused = cells[pick % cells.length]!.id;
    const trial = new Trial(accusation(accused, 1_000), 'someone', cells);
    const first = new Map<string, boolean>();
    // A jury too small to convict (none at all) is acquitted from the start.
    let closedAs: string | undefined = trial.standing === 'open' ? undefined : trial.standing;
    if (closedAs !== undefined && trial.jurors.size >= trial.needed) return false;
    for (const [who, guilty] of votes) {
      const voter = who % 2 === 0 ? cells[who % cells.length]!.id : `stranger-${who}`;
      const outcome = trial.vote(voter, guilty);
      if (trial.barred.has(voter) && outcome !== 'barred') return false;
      if (!trial.barred.has(voter) && !trial.jurors.has(voter) && outcome !== 'not-juror') return false;
      if (trial.jurors.has(voter)) {
        if (!first.has(voter)) first.set(voter, guilty);
        else if (outcome !== (first.get(voter) === guilty ? 'repeat' : 'changed')) return false;
      }
      // Once closed, a trial never reopens or flips.
      if (closedAs !== undefined && trial.standing !== closedAs) return false;
      if (trial.standing !== 'open') closedAs ??= trial.standing;
    }
    const guilty = [...first.values()].filter(Boolean).length;
    const innocent = first.size - guilty;
    if (trial.guilty !== guilty || trial.innocent !== innocent) return false;
    if (closedAs === undefined) return guilty < trial.needed && trial.jurors.size - innocent >= trial.needed;
    // Closed: guilty only with the votes for it, acquitted only when they are out of reach.
    return closedAs === 'guilty' ? guilty >= trial.needed : trial.jurors.size - innocent < trial.needed || trial.jurors.size < trial.needed;
  }));
  t.pass();
});

test('jury - fewer than 1/3 colluders can never convict when the honest jurors vote innocent, in any order', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 60 }), fc.nat(), fc.nat(), (n, c, seed) => {
    const colluders = c % Math.ceil(n / 3); // strictly fewer than n/3
    const cells: JurorView[] = Array.from({ length: n + 1 }, (_, i) => ({ id: `c${i}`, parent: null, born: 0, state: 'alive' }));
    const trial = new Trial(accusation(`c${n}`, 1), 'c0', cells);
    const order = cells.slice(0, n).map((x, i) => ({ id: x.id, guilty: i < colluders, key: (i * 7919 + seed) % 1_000_003 })).sort((a, b) => a.key - b.key);
    for (const v of order) trial.vote(v.id, v.guilty);
    return trial.expire() === 'acquitted';
  }));
  t.pass();
});

test('jury - an open trial is acquitted when its deadline passes', (t) => {
  const cells: JurorView[] = Array.from({ length: 4 }, (_, i) => ({ id: `c${i}`, parent: null, born: 0, state: 'alive' }));
  const trial = new Trial(accusation('c3', 1), 'c0', cells);
  t.is(trial.vote('c0', true), 'counted');
  t.is(trial.standing, 'open');
  t.is(trial.expire(), 'acquitted');
  t.is(trial.vote('c1', true), 'counted');
  t.is(trial.standing, 'acquitted', 'a late vote changes nothing');
});

test('jury - a panel member of the accused lineage cannot vote and never lowers the bar: 2/3 of the panel as drawn', (t) => {
  // The accused a0 has kin k1…k8 (its children, as this census knows them); the accuser's
  // census did not know them and drew them onto the panel of nine.
  const cells: JurorView[] = [
    { id: 'a0', parent: null, born: 0, state: 'alive' },
    ...Array.from({ length: 8 }, (_, i): JurorView => ({ id: `k${i + 1}`, parent: 'a0', born: 1, state: 'alive' })),
    ...Array.from({ length: 9 }, (_, i): JurorView => ({ id: `h${i + 1}`, parent: null, born: 0, state: 'alive' })),
  ];
  const panel = ['h1', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8'];
  const trial = new Trial(accusation('a0', 1_000), 'h1', cells, panel);
  t.deepEqual([...trial.jurors], ['h1']);
  t.is(trial.needed, votesNeeded(9), 'six of the nine drawn, not one of the one left');
  t.is(trial.standing, 'acquitted', 'one juror can never reach six votes');
  t.is(trial.vote('h1', true), 'counted');
  t.is(trial.standing, 'acquitted');
  // With the whole panel honest, the bar is the same six.
  const honest = new Trial(accusation('a0', 1_000), 'h1', cells, ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9']);
  for (const h of ['h1', 'h2', 'h3', 'h4', 'h5']) honest.vote(h, true);
  t.is(honest.standing, 'open');
  honest.vote('h6', true);
  t.is(honest.standing, 'guilty');
});

// ---- evidence ----------------------------------------------------------------------------

const gene = defaultGenome().immune;

test('evidence - flooding is a rate over a sliding window (within 5 %): under the limit it is not, past it it is', (t) => {
  let now = 1_000_000;
  const e = new Evidence(gene, () => now);
  // 90 % of the limit, over two windows: no finding, and the estimate is within 5 %.
  const steady = gene.floodPerSecond * 0.9;
  for (let i = 0; i < (steady * 2 * gene.floodWindowMs) / 1000; i++) {
    now += 1000 / steady;
    e.hormone('p');
  }
  t.is(e.against('p'), undefined);
  t.true(Math.abs(e.rate('p') - steady) <= steady * 0.05, `rate ${e.rate('p')}`);
  // Twice the limit for a window: flooding.
  for (let i = 0; i < (gene.floodPerSecond * 2 * gene.floodWindowMs) / 1000; i++) {
    now += 500 / gene.floodPerSecond;
    e.hormone('p');
  }
  t.is(e.against('p')?.kind, 'flood');
  // Silence for two windows: the rate decays to nothing.
  now += 2 * gene.floodWindowMs;
  t.is(e.rate('p'), 0);
  t.is(e.against('p'), undefined);
});

test('evidence - each kind has its threshold; a liar streak resets on an honest check; missed pulses are not a kind', (t) => {
  const e = new Evidence(gene);
  for (let i = 1; i < gene.forgeriesMax; i++) e.forgery('f', 'bad body');
  t.is(e.against('f'), undefined);
  e.forgery('f', 'bad body');
  t.is(e.against('f')?.kind, 'forgery');

  for (let i = 1; i < gene.liarChecks; i++) e.metabolism('l', 'claims 100 %');
  e.metabolism('l', undefined);
  e.metabolism('l', 'claims 100 %');
  t.is(e.against('l'), gene.liarChecks > 1 ? undefined : e.against('l'));
  for (let i = 1; i < gene.liarChecks; i++) e.metabolism('l', 'claims 100 %');
  t.is(e.against('l')?.kind, 'liar');

  e.genome('g', 'aaaa', 'aaaa');
  t.is(e.against('g'), undefined, 'the right hash is no evidence');
  for (let i = 0; i < gene.genomeMismatches; i++) e.genome('g', 'bbbb', 'aaaa');
  t.is(e.against('g')?.kind, 'genome');

  for (let i = 0; i < 3; i++) e.child('c', `kid${i}`, 3);
  t.is(e.against('c'), undefined, 'children within the budget');
  e.child('c', 'kid2', 3);
  t.is(e.against('c'), undefined, 'the same child twice is one child');
  e.child('c', 'kid3', 3);
  t.is(e.against('c')?.kind, 'cancer');
  t.is(e.against('c', 'flood'), undefined, 'asked for one kind, only that kind');
});

test('jury - a cell dead of missed pulses keeps its place on the ring: censuses that guess silence at different moments draw the same panel (property)', (t) => {
  t.true(onRing({ state: 'alive' }) && onRing({ state: 'suspect' }) && onRing({ state: 'draining' }));
  t.true(onRing({ state: 'dead', cause: 'missed-pulses' }), 'silence is a guess, not a death');
  for (const cause of ['toxin', 'vanished', 'apoptosis', 'error']) t.false(onRing({ state: 'dead', cause }), `dead of ${cause} is known dead`);
  let moved = 0;
  fc.assert(
    fc.property(fc.integer({ min: 20, max: 80 }), fc.string({ minLength: 1, maxLength: 6 }), fc.nat(), fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), (n, beacon, pick, silent) => {
      const cells = Array.from({ length: n }, (_, i) => ({ id: `c${i}`, host: `h${i % 3}`, parent: null, born: 0, state: 'alive', cause: null as string | null }));
      const accused = cells[pick % n]!;
      const size = 9;
      const a = { accused: accused.id, at: 1, jury: new Ring(beacon, cells.filter(onRing)).panel(accused.id, size, 1) };
      // Another census, a digest later: some cells of the panel's region judged dead of silence.
      const other = cells.map((c, i) => (silent.includes(i) && c.id !== accused.id ? { ...c, state: 'dead', cause: 'missed-pulses' } : c));
      const before = new Ring(beacon, other.filter((c) => c.state !== 'dead')).panel(accused.id, size, 1);
      if (before.join() !== a.jury.join()) moved++;
      return panelHolds(a, new Ring(beacon, other.filter(onRing)), size) && new Ring(beacon, other.filter(onRing)).panel(accused.id, size, 1).join() === a.jury.join();
    }),
    { numRuns: 300 },
  );
  t.log(`without the rule, ${moved} of 300 draws moved`);
  t.true(moved > 0, 'the draws this rule keeps would have moved without it');
});
