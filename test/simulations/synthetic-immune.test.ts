/**
 * Synthetic cells that vote (simulations/synthetic-immune.ts): forty synthetic cells, each
 * running the real immune system in this process, beside two real echo cells. A real
 * flooder's panel is drawn from the whole census (its host holds fewer than `jury` cells),
 * so most of its jurors are synthetic: it is convicted only if they hear the accusation,
 * draw the same panel, vote from the finding in its host's digest, and the real cells count
 * their votes. Their honesty is checked too: no synthetic cell accuses anyone else.
 */
import test from 'ava';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { openLineage } from '../../organism/kernel/stores.ts';
import { loadRootKey } from '../../organism/grow/root-key.ts';
import { waitGone } from '../../organism/kernel/processes.ts';
import type { AccuseBody, VerdictBody, VoteBody } from '../../organism/kernel/vocabulary.ts';
import { SyntheticSwarm } from '../../simulations/synthetic-cells.ts';
import { FAST, until } from '../helpers/grow.ts';
import { startOrganism } from '../helpers/organism.ts';

const SYNTHETIC = 40;

test('synthetic immune - synthetic cells sit on a real flooder\'s jury, vote guilty from its host\'s finding, and the real cells count their votes', async (t) => {
  const genome = loadGenome({ sets: [...FAST, 'tissues.stem.min=0', 'tissues.echo.min=2', 'tissues.echo.max=4'] });
  const { o } = await startOrganism(t, genome);
  const heard: Hormone[] = [];
  o.observer.bus.on((h) => {
    if (h.kind === 'accuse' || h.kind === 'vote' || h.kind === 'verdict') heard.push(h);
  });
  await o.waitForPopulation();
  const { nc, ns } = o.observer;
  const swarm = new SyntheticSwarm({ nc, ns, lineage: await openLineage(nc, ns), genome, rootKey: loadRootKey(o.stateDir).privateKey, count: SYNTHETIC, hosts: 2, immune: { rootPub: loadRootKey(o.stateDir).pub } });
  t.teardown(() => swarm.close());
  await swarm.start();
  const synthetic = new Set(swarm.cells.map((c) => c.signer.id));
  // Every census has them before the fault is made: the synthetic cells' own, and the real host's.
  await until(() => swarm.immune!.census.living().length >= SYNTHETIC + 2 && o.observer.census.living().length >= SYNTHETIC + 2, 20_000, 'the synthetic cells in every census');

  const bad = await o.spawn('echo', undefined, { fault: 'flood' });
  await until(() => heard.some((h) => h.kind === 'verdict' && (h.body as VerdictBody).accused === bad.id && (h.body as VerdictBody).guilty), 20_000, `a guilty verdict on the flooder ${bad.id}`);
  t.true(await waitGone(bad.pid, 5_000), 'the flooder is dead (its real host-mates counted the votes and killed it)');

  const accusation = heard.find((h) => h.kind === 'accuse' && (h.body as AccuseBody).accused === bad.id)!.body as AccuseBody;
  const panel = accusation.jury ?? [];
  const onPanel = panel.filter((id) => synthetic.has(id)).length;
  const votes = heard.filter((h) => h.kind === 'vote' && (h.body as VoteBody).accused === bad.id && (h.body as VoteBody).guilty);
  const syntheticVotes = votes.filter((v) => synthetic.has(v.from)).length;
  const realVotes = votes.length - syntheticVotes;
  t.log(`panel of ${panel.length}: ${onPanel} synthetic; guilty votes: ${syntheticVotes} synthetic, ${realVotes} real`);
  t.true(onPanel >= panel.length - 2, 'the panel is drawn from the whole census: at most the two honest real cells are on it');
  const needed = Math.ceil((2 * panel.length) / 3);
  t.true(syntheticVotes >= needed - realVotes && syntheticVotes > 0, `the verdict needed synthetic votes (${needed} needed, ${realVotes} real)`);
  t.true(swarm.immune!.stats().votes.guilty >= syntheticVotes, 'the synthetic cells\' own stats count the votes they sent');
  // Its watchers took turns (cells/immune/immune.ts): one trial, not one per watcher (nine, before).
  const trials = heard.filter((h) => h.kind === 'accuse' && (h.body as AccuseBody).accused === bad.id).length;
  t.log(`${trials} accusation(s) of the flooder`);
  t.true(trials <= 3, `the flooder's watchers took turns: ${trials} accusations`);
  // Honest synthetic cells: no accusation of anyone but the flooder, no forgery seen.
  t.deepEqual(heard.filter((h) => h.kind === 'accuse' && (h.body as AccuseBody).accused !== bad.id).map((h) => (h.body as AccuseBody).accused), []);
  t.is(swarm.immune!.stats().forgeries, 0);
});
