/**
 * Homeostasis with real cells on a real nats-server: load steps, kill -9, crash loops, the
 * tissue max, many cells seeing one step, and the lineage budget. Load is real requests
 * to echo's `wait` endpoint (work that waits, not burns: concurrency is the load, so many
 * cells share two cores), never a number set by the test.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { HOMEOSTASIS_BUCKET, parseTissueRecord, tissueKey } from '../../organism/kernel/homeostasis-record.ts';
import { parseCertificate, unpackCertificate } from '../../organism/kernel/lineage.ts';
import { Organism } from '../../organism/grow/organism.ts';
import { isProcessOf } from '../../organism/kernel/processes.ts';
import { openLineage } from '../../organism/kernel/stores.ts';
import { tissueStress } from '../../organism/kernel/stress.ts';
import { calmMs } from '../../cells/homeostasis-plan.ts';
import { openReply } from '../../organism/kernel/reply.ts';
import type { DecisionBody, DeathBody } from '../../organism/kernel/vocabulary.ts';
import { cellMarkers } from '../../cells/spawn.ts';
import { runLoad, type LoadResult } from '../../organism/chaos/load.ts';
import { FAST, until } from '../helpers/grow.ts';
import { startNats, tempDir, uniqueId } from '../helpers/nats.ts';
import { reapOnExit } from '../helpers/reaper.ts';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';

interface Decision extends DecisionBody {
  from: string;
  at: number;
}

/** A started organism with a record of every decision and death it announced. */
async function organism(t: ExecutionContext, sets: string[], genomeDir?: string) {
  const nats = await startNats(t);
  const o = new Organism({ stateDir: tempDir(t), servers: [nats.url], id: uniqueId(), genome: loadGenome({ sets: [...FAST, ...sets] }), ...(genomeDir ? { genomeDir } : {}) });
  const unreap = reapOnExit(() => o.emergencyStop());
  const decisions: Decision[] = [];
  const deaths = new Map<string, DeathBody>();
  t.teardown(async () => {
    if (!t.passed) t.log(warnings(o.stateDir));
    if (!t.passed) t.log(decisions.map((d) => `${new Date(d.at).toISOString()} ${d.tissue} ${d.action} ${d.cells.join(',')} ×${d.count} by ${d.from}: ${d.reason}`).join('\n'));
    await o.stop('test teardown');
    unreap();
  });
  await o.start();
  o.observer.bus.on((h: Hormone) => {
    if (h.kind === 'decision') decisions.push({ ...(h.body as DecisionBody), from: h.from, at: Date.now() });
    if (h.kind === 'death') deaths.set(h.from, h.body as DeathBody);
  });
  await o.waitForPopulation();
  const census = o.observer.census;
  const alive = (tissue: string): CensusEntry[] => census.living().filter((c) => c.tissue === tissue && c.state === 'alive');
  const load = (rate: number, ms: number, durationMs: number, onReply?: (v: unknown, at: number) => void): Promise<LoadResult> =>
    runLoad({ nc: o.observer.nc, ns: o.observer.ns, tissue: 'echo', endpoint: 'wait', request: { ms }, shape: { name: 'constant', rate, peak: rate, durationMs }, maxInflight: 2_000, ...(onReply ? { onReply } : {}) });
  const record = async (tissue: string) => {
    const kv = await new Kvm(o.observer.nc).open(o.observer.ns.bucket(HOMEOSTASIS_BUCKET));
    const e = await kv.get(tissueKey(tissue));
    return parseTissueRecord(e!.value, tissue);
  };
  return { o, census, decisions, deaths, alive, load, record };
}

/** Warnings and errors from every cell's log (pino JSON lines, level ≥ 40), for a failed test. */
function warnings(stateDir: string): string {
  const dir = join(stateDir, 'logs');
  if (!existsSync(dir)) return '';
  return readdirSync(dir).filter((f) => f.endsWith('.log') && !f.endsWith('.stderr.log')).flatMap((f) =>
    readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => /"level":(4|5)\d/.test(l)).map((l) => `${f}: ${l.slice(0, 300)}`),
  ).join('\n');
}

/** Most cells of `tissue` alive at once, sampled on every census change. */
function watchMax(census: Organism['observer']['census'], tissue: string): () => number {
  let max = 0;
  const sample = () => (max = Math.max(max, census.living().filter((c) => c.tissue === tissue && c.state === 'alive').length));
  sample();
  census.on(sample);
  return () => max;
}

const grown = (ds: Decision[], tissue: string) => ds.filter((d) => d.tissue === tissue && (d.action === 'divide' || d.action === 'differentiate')).reduce((n, d) => n + d.cells.length, 0);

test.serial('homeostasis - a load step grows the tissue within its max, and it shrinks back to min by apoptosis once the load stops', async (t) => {
  const h = await organism(t, [
    'tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.echo.max=4', 'tissues.echo.halfLifeMs=500', 'tissues.echo.idleMs=1500', 'tissues.stem.halfLifeMs=500',
  ]);
  const max = watchMax(h.census, 'echo');
  // 200 requests/s held 100 ms each: 20 in flight, 2.5 cells of work at capacity 8; at
  // target 0.6 that asks for 5 cells, and the max is 4.
  const served = new Set<string>();
  const r = await h.load(200, 100, 7_000, (v) => served.add((v as { cell: string }).cell));
  t.is(r.errors, 0, JSON.stringify(r.errorsByCode));
  t.is(max(), 4, 'grew to its max');
  t.true(served.size >= 4, `requests were served by ${served.size} cells`);
  const first = h.decisions.find((d) => d.tissue === 'echo' && d.action !== 'refuse')!;
  t.truthy(first, 'a growth decision was announced');
  t.regex(first.reason, /stress [\d.]+ is above 0\.75/);
  t.true(Number(first.readings.demand) > 1.5, `readings carry the demand (${first.readings.demand})`);
  // The recruited stem was replaced: the pool refills in the background.
  await until(() => h.alive('stem').length >= 1, 15_000, 'the stem pool to refill');
  // Load gone: back to min, one apoptosis at a time.
  await until(() => h.alive('echo').length === 1, 30_000, 'echo to shrink back to its min');
  const dies = h.decisions.filter((d) => d.tissue === 'echo' && d.action === 'die');
  t.is(dies.length, 3);
  for (const d of dies) {
    t.deepEqual(d.cells, [d.from], 'a cell decides only its own death');
    await until(() => h.deaths.has(d.from), 10_000, `the death of ${d.from}`);
    t.is(h.deaths.get(d.from)!.cause, 'apoptosis');
  }
  t.is(max(), 4, 'never above max');
});

test.serial('homeostasis - kill -9 of one cell, then of every cell of a tissue, is regrown', async (t) => {
  const h = await organism(t, ['tissues.stem.min=1', 'tissues.echo.min=2', 'tissues.echo.max=4']);
  const echo = h.alive('echo');
  t.is(echo.length, 2);
  // Older than the crash window, so these are deaths, not failed births.
  await until(() => h.alive('echo').every((c) => Date.now() - c.born > 1_500), 5_000, 'cells past the crash window');
  const victim = echo[0]!;
  const killedAt = Date.now();
  const before = h.decisions.length;
  const peak = watchMax(h.o.observer.census, 'echo');
  process.kill(victim.pid, 'SIGKILL');
  await until(() => h.alive('echo').filter((c) => c.id !== victim.id).length === 2, 10_000, 'a replacement');
  t.log(`one replaced in ${Date.now() - killedAt} ms`);
  const regrow = h.decisions.find((d) => d.tissue === 'echo' && /has 1 of its min 2/.test(d.reason));
  t.truthy(regrow, 'the regrowth decision says why');
  // One death, one cell made: the recruited stem counts as pending until a census shows it
  // serving echo (struck off at its yes, a second cell recruited another stem meanwhile).
  await until(() => h.alive('stem').length >= 1, 10_000, 'the stem pool refilled');
  await new Promise((r) => setTimeout(r, 4 * h.o.genome.limits.pulseIntervalMs));
  t.is(grown(h.decisions.slice(before), 'echo'), 1, `one echo cell made for one death: ${h.decisions.slice(before).filter((d) => d.tissue === 'echo').map((d) => `${d.action} ${d.cells.join(',')}`).join('; ')}`);
  t.is(peak(), 2, 'never more echo cells than its min while regrowing');
  // Every cell of the tissue at once, once the stem pool has refilled (a recruited stem is
  // an echo cell now: killing it and the other echo cell with no stem left would end the
  // whole organism, and nothing regrows a body with no living cell).
  await until(() => h.alive('stem').length >= 1, 10_000, 'the stem pool refilled');
  const live = () => h.alive('echo').filter((c) => c.id !== victim.id); // the observer may not have heard of the death yet
  await until(() => live().every((c) => Date.now() - c.born > 1_500), 10_000, 'cells past the crash window');
  const all = live();
  t.is(all.length, 2);
  for (const c of all) process.kill(c.pid, 'SIGKILL');
  const wipedAt = Date.now();
  await until(() => h.alive('echo').filter((c) => !all.some((a) => a.id === c.id)).length === 2, 15_000, 'the tissue regrown');
  t.log(`wiped-out tissue regrown in ${Date.now() - wipedAt} ms`);
  for (const c of all) t.false(isProcessOf(c.pid, cellMarkers(c.id)));
  t.is(h.decisions.filter((d) => d.action === 'back-off').length, 0, 'deaths of grown cells are not failed births');
});

test.serial('homeostasis - a crash loop backs off, doubling to the cap, says so, and recovers when the cause goes away', async (t) => {
  const dir = tempDir(t);
  const dna = join(dir, 'flaky.js');
  // A tissue whose DNA fails to load while a poison file lies beside it.
  writeFileSync(dna, `import { existsSync } from 'node:fs';\nif (existsSync(new URL('./poison', import.meta.url))) throw new Error('poisoned DNA (test)');\nexport default { name: 'flaky', endpoints: { ping: () => 'pong' } };\n`);
  const h = await organism(t, [
    'tissues.stem.min=0', 'tissues.echo.min=1', `tissues.flaky.module=${dna}`, 'tissues.flaky.min=1', 'tissues.flaky.max=2',
    'limits.regrowBackoffMs=200', 'limits.regrowBackoffMaxMs=1600',
    // No zygotes: a zygote imports the DNA when it starts, before the poison is laid, and
    // this DNA's fault is in its import (docs/homeostasis.md, "Mitosis").
    'limits.zygotes=0',
  ], dir);
  const healthy = h.alive('flaky')[0]!;
  await until(() => Date.now() - healthy.born > 1_500, 5_000, 'past the crash window');
  writeFileSync(join(dir, 'poison'), '');
  process.kill(healthy.pid, 'SIGKILL');
  await until(() => h.decisions.filter((d) => d.tissue === 'flaky' && d.action === 'back-off').length >= 5, 30_000, 'five back-offs');
  const backoffs = h.decisions.filter((d) => d.tissue === 'flaky' && d.action === 'back-off').map((d) => Number(d.readings.backoffMs));
  t.deepEqual(backoffs.slice(0, 5), [200, 400, 800, 1600, 1600], 'doubling from regrowBackoffMs to regrowBackoffMaxMs');
  // Attempts were spaced by the back-off, not a storm.
  const attempts = h.decisions.filter((d) => d.tissue === 'flaky' && d.action === 'divide').map((d) => d.at);
  for (let i = 2; i < Math.min(attempts.length, 5); i++) t.true(attempts[i]! - attempts[i - 1]! >= 0.9 * backoffs[i - 1]!, `attempt ${i} waited its back-off`);
  rmSync(join(dir, 'poison'));
  await until(() => h.alive('flaky').length === 1, 15_000, 'flaky to come back');
  await until(() => h.decisions.some((d) => d.tissue === 'flaky' && d.action === 'recover'), 10_000, 'the recovery announced');
  t.is((await h.record('flaky')).failures, 0);
});

test.serial('homeostasis - at the max, division is refused, counted and announced', async (t) => {
  const h = await organism(t, ['tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.echo.max=2', 'tissues.echo.halfLifeMs=500']);
  const max = watchMax(h.census, 'echo');
  await h.load(200, 100, 6_000);
  const refusals = h.decisions.filter((d) => d.tissue === 'echo' && d.action === 'refuse');
  t.true(refusals.length >= 1, 'refusal announced');
  t.regex(refusals[0]!.reason, /at its max \(2\)/);
  t.true((await h.record('echo')).refused >= refusals.length, 'and counted in the tissue record');
  t.is(max(), 2);
});

test.serial('homeostasis - eight cells that see the same load step make one decision per round for the divisions it needs, no storm', async (t) => {
  // Pulses every 500 ms: 11 cells verifying each other's pulses is work for two cores (with
  // more, a starved cell misses pulses and is regrown before the step: another rule).
  const h = await organism(t, [
    'limits.pulseIntervalMs=500', 'tissues.stem.min=0', 'tissues.echo.min=8', 'tissues.echo.max=20', 'tissues.echo.high=0.7', 'tissues.echo.halfLifeMs=1000',
  ]);
  await until(() => h.alive('echo').length === 8, 20_000, 'eight echo cells');
  // 300/s × 200 ms = 60 in flight = 7.5 cells of work (capacity 8): ceil(7.5 / 0.6) = 13.
  // The cells measure somewhat more (handler time includes timer lateness on a busy host);
  // how close sizing gets to the offered load is the benchmark's job (needed ± 1 there).
  const needed = 3; // the load below is sized for the cells there are plus 2.5
  // Only what the load step caused: on a starved host a seed can be late, or a cell miss
  // pulses, and be regrown before the step (a regrowth, below min, is another rule).
  await until(async () => {
    const r = await h.record('echo');
    const now = Date.now();
    return h.alive('echo').length >= 8 && r.pending.every((p) => p.due < now) && r.calmUntil < now && h.census.living().filter((c) => c.tissue === 'echo').every((c) => c.state === 'alive');
  }, 20_000, 'eight echo cells settled: none pending, no calm period running');
  const before = h.decisions.length;
  const start = h.alive('echo').length;
  // Work for start + 2.5 cells at the target (0.6 × capacity 8 in flight each, 200 ms per request):
  // with 8 cells, 252/s. Sized to the cells there are (a starved host may have regrown more).
  await h.load(Math.round(((start + 2.5) * 0.6 * 8) / 0.2), 200, 10_000);
  const stepDecisions = h.decisions.slice(before).filter((d) => !d.reason.includes('of its min'));
  const growth = stepDecisions.filter((d) => d.tissue === 'echo' && (d.action === 'divide' || d.action === 'differentiate'));
  const made = grown(stepDecisions, 'echo');
  t.log(`divisions ${made} in ${growth.length} decision(s); the offered load needs ${needed}, the cells read demand ${growth.map((d) => d.readings.demand).join(', ')} (handlers held longer on a busy host)`);
  // No storm: every cell saw the step, and one compare-and-set won each round. A second round
  // may follow once the calm period is over: when stress first crosses the high mark, the
  // pulses that carry demand still cover intervals half before the step (seen in CI: demand
  // 5.3 then 6.5, one division then two), and the second round sizes to the rest.
  t.true(growth.length >= 1 && growth.length <= 2, 'one growth decision per round, at most two rounds for one step');
  const calm = calmMs(h.o.genome.tissues.echo!, h.o.genome.limits.pulseIntervalMs);
  for (let i = 1; i < growth.length; i++) t.true(growth[i]!.at - growth[i - 1]!.at >= 0.9 * calm, `round ${i + 1} waited the calm period (${calm} ms)`);
  t.true(made >= 1, 'it grew');
  // Each round made what its shared readings asked for, not ten times that.
  for (const d of growth) {
    const r = d.readings;
    t.is(d.cells.length, Number(r.desired) - Number(r.alive) - Number(r.suspect) - Number(r.pending), 'what the shared readings asked for');
  }
  t.true(h.alive('echo').length <= Math.max(start + made, ...growth.map((d) => Number(d.readings.desired))), 'nothing beyond what was decided');
});

test.serial('homeostasis - the lineage budget stops a chain of divisions, and the refusal says why', async (t) => {
  const h = await organism(t, ['limits.lineageBudget=2', 'tissues.stem.min=0', 'tissues.echo.min=1', 'tissues.echo.max=8', 'tissues.echo.halfLifeMs=500']);
  const max = watchMax(h.census, 'echo');
  // 5 cells of work: the root's cell (budget 2) divides twice; its children get floor((b-1)/2) = 0.
  await h.load(400, 100, 7_000);
  await until(() => h.decisions.some((d) => d.tissue === 'echo' && d.action === 'refuse'), 10_000, 'a refusal');
  const refusal = h.decisions.find((d) => d.tissue === 'echo' && d.action === 'refuse')!;
  t.regex(refusal.reason, /lineage budget/);
  t.is(max(), 3, 'one cell with budget 2 makes two children, and they make none');
  // Every certificate in the lineage bucket gives a child less than its parent had.
  const lineage = await openLineage(h.o.observer.nc, h.o.observer.ns);
  const certs = [];
  for await (const k of await lineage.keys()) certs.push(parseCertificate(unpackCertificate((await lineage.get(String(k)))!.value)));
  const byId = new Map(certs.map((c) => [c.cell, c]));
  const children = certs.filter((c) => c.parent !== null && c.tissue === 'echo');
  t.is(children.length, 2);
  for (const c of children) t.true(c.budget < byId.get(c.parent!)!.budget, `${c.cell} has ${c.budget}, its parent had ${byId.get(c.parent!)!.budget}`);
});

test.serial('homeostasis - mitosis per minute is a hard, organism-wide limit: the rest is refused and says which limit', async (t) => {
  const h = await organism(t, ['limits.mitosisPerMinute=1', 'tissues.stem.min=0', 'tissues.echo.min=1', 'tissues.echo.max=8', 'tissues.echo.halfLifeMs=500']);
  const max = watchMax(h.census, 'echo');
  await h.load(300, 100, 6_000); // 3.75 cells of work: it asks for 6
  await until(() => h.decisions.some((d) => d.tissue === 'echo' && d.action === 'refuse'), 10_000, 'a refusal');
  t.is(h.decisions.filter((d) => d.tissue === 'echo' && d.action === 'divide').reduce((n, d) => n + d.cells.length, 0), 1, 'one division in the minute');
  t.is(max(), 2);
  const refusal = h.decisions.find((d) => d.tissue === 'echo' && d.action === 'refuse')!;
  t.regex(refusal.reason, /limits\.mitosisPerMinute \(1\)/);
  t.true(refusal.count >= 4, `the ${refusal.count} divisions it could not make are counted`);
});

test.serial('homeostasis - a cell whose write to the tissue record cannot land does not divide, however stressed', async (t) => {
  const h = await organism(t, ['tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.echo.max=4', 'tissues.echo.halfLifeMs=500']);
  const max = watchMax(h.census, 'echo');
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, tissueStress(h.census.living()).echo ?? 0)), 100);
  t.teardown(() => clearInterval(sampler));
  // A sealed stream refuses every write, as a bucket without quorum would: reads and
  // watches still work, so each cell still plans, and every claim fails.
  const jsm = await jetstreamManager(h.o.observer.nc);
  const stream = `KV_${h.o.observer.ns.bucket(HOMEOSTASIS_BUCKET)}`;
  // (`sealed` is a stream setting the client's update type leaves out; the server takes it.)
  const sealed: object = { ...(await jsm.streams.info(stream)).config, sealed: true };
  await jsm.streams.update(stream, sealed);
  t.true((await jsm.streams.info(stream)).config.sealed, 'the bucket is sealed');
  const r = await h.load(200, 100, 6_000); // 2.5 cells of work: it would grow to 4
  t.is(r.errors, 0, JSON.stringify(r.errorsByCode));
  t.true(peak > 0.75, `the tissue was stressed enough to grow (stress ${peak.toFixed(2)})`);
  t.is(max(), 1, 'no cell was added');
  t.is(h.alive('stem').length, 1, 'the stem was not recruited');
  t.deepEqual(h.decisions.filter((d) => d.tissue === 'echo'), [], 'nothing was decided or announced');
  // The cell stood down and says why: its claims failed (not lost to a rival).
  const echo = h.alive('echo')[0]!;
  const stats = openReply<{ claims: { won: number; lost: number; failed: number } }>((await h.o.observer.nc.request(h.o.observer.ns.cell(echo.id, 'stats'), new Uint8Array(0), { timeout: 2_000 })).data);
  t.true(stats.claims.failed > 0, JSON.stringify(stats.claims));
  t.is(stats.claims.won, 0);
});

