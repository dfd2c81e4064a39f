/**
 * Lineages that renew (organism/grow/renewal.ts): one tissue killed again and again with the
 * default genome's tissues, budgets and limits is regrown every time — past the kill where
 * every lineage's budget is spent (≈ 40–60 kills) and through several renewals by the root —
 * and a cancer is still caught afterwards. Real cells on the organism's own broker (operator
 * mode), as `npm run grow` runs them. The run stops once the root has renewed the tissue three
 * times (at most 200 kills): 200 kills in a row take ≈ 85 s here, and after that many the
 * injected cancer was once not dead within this test's 15 s (docs/homeostasis.md gives the
 * 200-kill runs' figures).
 */
import test from 'ava';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { isProcessOf } from '../../organism/kernel/processes.ts';
import type { DecisionBody } from '../../organism/kernel/vocabulary.ts';
import { cellMarkers } from '../../cells/spawn.ts';
import { until } from '../helpers/grow.ts';
import { tempDir, uniqueId } from '../helpers/nats.ts';
import { runOrganism } from '../helpers/organism.ts';

test.serial('renewal - one tissue killed until the root has renewed it three times (past every spent budget) is regrown every time, and a cancer is still killed after', async (t) => {
  // The default genome's tissues, budgets and limits. Only the clock runs faster (100 ms
  // pulses: 200 rounds of kill, find, decide, renew and spawn take ≈ 2 minutes here), the
  // crash window is short (a replacement may be killed soon after its birth without
  // counting as a failed birth), and ports are the test's own.
  const portMin = 20_000 + Math.floor(Math.random() * 40_000);
  const genome = loadGenome({
    sets: [
      'limits.pulseIntervalMs=100', 'limits.crashWindowMs=300', 'limits.drainTimeoutMs=3000', 'limits.shutdownTimeoutMs=8000',
      `messenger.portMin=${portMin}`, `messenger.portMax=${portMin + 40}`, 'messenger.frontPort=0', 'messenger.scryptLogN=12', 'dashboard.port=0',
    ],
  });
  const o = await runOrganism(t, { stateDir: tempDir(t), id: uniqueId(), genome });
  const decisions: (DecisionBody & { from: string })[] = [];
  // What a failure's log shows: decisions, deaths, accusations and toxins, in order.
  const timeline: string[] = [];
  const t0 = Date.now();
  o.observer.bus.on((h: Hormone) => {
    if (h.kind === 'decision') decisions.push({ ...(h.body as DecisionBody), from: h.from });
    if (!['decision', 'death', 'accuse', 'vote', 'verdict', 'toxin'].includes(h.kind)) return;
    const b = h.body as Record<string, unknown>;
    const what = h.kind === 'decision' ? `${b.tissue} ${b.action} ${(b.cells as string[]).join(',')}: ${b.reason}`
      : h.kind === 'vote' ? `${b.accusation} ${b.accused} ${b.guilty ? 'guilty' : 'innocent'}`
      : JSON.stringify(b).slice(0, 400);
    timeline.push(`${Date.now() - t0} ms ${h.kind} by ${h.from}: ${what}`);
  });
  t.teardown(() => {
    if (!t.passed) t.log(timeline.slice(-150).join('\n'));
  });
  await o.waitForPopulation();
  const census = o.observer.census;
  const alive = (tissue: string) => census.living().filter((c) => c.tissue === tissue && c.state === 'alive');
  const KILLS = 200;
  const RENEWALS = 3;
  const started = Date.now();
  const regrownIn: number[] = [];
  const killed = new Set<string>();
  const state = () => census.list().map((c) => `${c.id} ${c.tissue} ${c.state}${c.cause ? `(${c.cause})` : ''}`).join(', ');
  let kills = 0;
  let firstRenewalAfter: number | undefined;
  for (let i = 1; i <= KILLS && o.renewals.renewals < RENEWALS; i++) {
    kills = i;
    // Past the crash window and pulsing: a kill then is a death, not a failed birth (which would back off).
    const ready = () => alive('echo').filter((c) => !killed.has(c.id) && Date.now() - c.born > 400 && c.pulses >= 2);
    await until(() => ready().length > 0, 30_000, () => `echo regrown after kill ${i - 1} (${o.renewals.renewals} renewals so far; census: ${state()})`);
    const victim = ready()[0]!;
    const at = Date.now();
    killed.add(victim.id);
    process.kill(victim.pid, 'SIGKILL');
    await until(() => census.get(victim.id)?.state === 'dead', 10_000, `kill ${i}: ${victim.id} dead in the census`);
    await until(() => alive('echo').some((c) => !killed.has(c.id)), 30_000, () => `echo regrown after kill ${i} (${o.renewals.renewals} renewals so far; census: ${state()})`);
    regrownIn.push(Date.now() - at);
    if (firstRenewalAfter === undefined && o.renewals.renewals > 0) firstRenewalAfter = i;
    if (i % 25 === 0) t.log(`${i} kills; regrown in p50 ${[...regrownIn].sort((a, b) => a - b)[regrownIn.length >> 1]} ms; ${o.renewals.renewals} renewals`);
  }
  t.log(`${kills} kills in ${Math.round((Date.now() - started) / 1000)} s, every one regrown (p50 ${[...regrownIn].sort((a, b) => a - b)[regrownIn.length >> 1]} ms); renewals ${JSON.stringify(o.renewals)}`);
  t.true(o.renewals.renewals >= RENEWALS, `the root renewed the spent lineages ${RENEWALS} times within ${KILLS} kills (otherwise no budget ran out: this test would prove nothing)`);
  t.true((firstRenewalAfter ?? 0) >= 20, `the budgets ran out only after many kills (renewal is for spent lineages, not every death): first renewal after kill ${firstRenewalAfter}`);
  t.true(decisions.some((d) => d.from === 'root' && /^renewal/.test(d.reason)), 'the renewal was announced, with its reason');
  // Renewal gives fresh budget only to root-made cells: a cell dividing past its own budget is still cancer.
  const bad = await o.spawn('echo', undefined, { fault: 'cancer' });
  const onset = Date.now();
  await until(() => census.get(bad.id)?.state === 'dead' && !isProcessOf(bad.pid, cellMarkers(bad.id)), 15_000, 'the cancer killed');
  t.log(`cancer dead ${Date.now() - onset} ms after it started`);
  t.is(census.get(bad.id)?.cause, 'toxin');
  // The cancer's children crowd the host while they live, so births meanwhile may fail and
  // put a tissue into its crash-loop back-off: back at min once that back-off (at most
  // regrowBackoffMaxMs) has run out and the next birth joined.
  await until(() => alive('echo').length >= 1 && alive('stem').length >= 2, genome.limits.regrowBackoffMaxMs + 20_000, () => `the tissues back at their min (renewals ${JSON.stringify(o.renewals)}; census: ${state()})`);
});
