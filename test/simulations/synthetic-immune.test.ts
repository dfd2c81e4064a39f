/**
 * Synthetic cells that vote (simulations/synthetic-immune.ts): forty synthetic cells, each
 * running the real immune system in this process, beside two real echo cells. A real
 * flooder's panel is drawn from the whole census (its host holds fewer than `jury` cells),
 * so most of its jurors are synthetic: it is convicted only if they hear the accusation,
 * draw the same panel, vote from the finding in its host's digest, and the real cells count
 * their votes. Their honesty is checked too: no synthetic cell accuses anyone else.
 */
import test, { type ExecutionContext } from 'ava';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { openLineage } from '../../organism/kernel/stores.ts';
import { loadRootKey } from '../../organism/grow/root-key.ts';
import { isAlive, waitGone } from '../../organism/kernel/processes.ts';
import type { AccuseBody, ToxinBody, VerdictBody, VoteBody } from '../../organism/kernel/vocabulary.ts';
import { hostName } from '../../organism/kernel/host.ts';
import { generateKeypair } from '../../organism/kernel/keys.ts';
import { issueCertificate, packCertificate } from '../../organism/kernel/lineage.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { SyntheticSwarm } from '../../simulations/synthetic-cells.ts';
import { FAST, until } from '../helpers/grow.ts';
import { startOrganism } from '../helpers/organism.ts';

const SYNTHETIC = 40;

/**
 * A real organism (two echo cells, no stems) and forty synthetic cells that vote, in every
 * census before the test makes its fault; `heard`: the immune hormones of `kinds` the real
 * host's observer heard.
 */
async function swarmBesideOrganism(t: ExecutionContext, kinds: readonly string[]) {
  const genome = loadGenome({ sets: [...FAST, 'tissues.stem.min=0', 'tissues.echo.min=2', 'tissues.echo.max=4'] });
  const { o } = await startOrganism(t, genome);
  const heard: Hormone[] = [];
  o.observer.bus.on((h) => {
    if (kinds.includes(h.kind)) heard.push(h);
  });
  await o.waitForPopulation();
  const { nc, ns } = o.observer;
  const lineage = await openLineage(nc, ns);
  const root = loadRootKey(o.stateDir);
  const swarm = new SyntheticSwarm({ nc, ns, lineage, genome, rootKey: root.privateKey, count: SYNTHETIC, hosts: 2, immune: { rootPub: root.pub } });
  t.teardown(() => swarm.close());
  await swarm.start();
  // Every census has them before the fault is made: the synthetic cells' own, and the real host's.
  await until(() => swarm.immune!.census.living().length >= SYNTHETIC + 2 && o.observer.census.living().length >= SYNTHETIC + 2, 20_000, 'the synthetic cells in every census');
  return { o, heard, swarm, lineage, ns };
}

test('synthetic immune - synthetic cells sit on a real flooder\'s jury, vote guilty from its host\'s finding, and the real cells count their votes', async (t) => {
  const { o, heard, swarm } = await swarmBesideOrganism(t, ['accuse', 'vote', 'verdict']);
  const synthetic = new Set(swarm.cells.map((c) => c.signer.id));

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
  // (Each waits its place × 150 ms for another's accusation: on a loaded machine an accusation
  // can take longer than a turn to arrive, and a CI run saw 7. Without turns all 9 accuse.)
  t.true(trials < panel.length, `the flooder's watchers took turns: ${trials} accusations from a panel of ${panel.length}`);
  // Honest synthetic cells: no accusation of anyone but the flooder, no forgery seen.
  t.deepEqual(heard.filter((h) => h.kind === 'accuse' && (h.body as AccuseBody).accused !== bad.id).map((h) => (h.body as AccuseBody).accused), []);
  t.is(swarm.immune!.stats().forgeries, 0);
});

// A cancer's lineage is killed whole on a real host, born or not: a child certified before the
// verdict whose process never joined any census (a fork storm's children, starved before their
// birth hormone) is found by its host's honest cells tracing local processes up their
// certificates; one certified after the verdict is condemned from its certificate and killed
// when its process starts. (At 1,000 cells 43 such children outlived the verdict by 10 s and
// more, cut off from the broker but running: scale-hosts, stop 36.)
test('synthetic immune - a cancer\'s children that never joined a census are killed on their host, before and after the verdict', async (t) => {
  const { heard, swarm, lineage, ns } = await swarmBesideOrganism(t, ['accuse', 'verdict', 'toxin']);

  // The rogue: a synthetic cell (replication budget 0) certifies children on the real cells' host.
  const rogue = swarm.cells[0]!;
  const host = hostName();
  const pending: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of pending) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  /** A process with a cell's command-line markers that never connects: a child not born yet. */
  const unborn = (id: string) => {
    const p = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', '--host', host, '--cell', id, '--organism', ns.id], { stdio: 'ignore' });
    pending.push(p);
    return p;
  };
  const certify = (id: string) => {
    const pair = generateKeypair();
    const cert = issueCertificate({ cell: id, pub: pair.pub, tissue: 'echo', host, born: Date.now(), generation: 1, budget: 0, parent: rogue.signer.id, issuer: rogue.signer.id }, rogue.signer.key);
    return lineage.create(id, packCertificate(cert));
  };
  const before = unborn('echo-unborn01');
  await until(() => before.pid !== undefined && isAlive(before.pid), 5_000, 'the unborn child running');
  await certify('echo-unborn01'); // one child on a budget of 0: cancer
  await until(() => heard.some((h) => h.kind === 'verdict' && (h.body as VerdictBody).accused === rogue.signer.id && (h.body as VerdictBody).guilty), 20_000, `a guilty verdict on the rogue ${rogue.signer.id}`);
  t.true(await waitGone(before.pid!, 8_000), 'the child certified before the verdict, in no census, is killed on its host');
  t.true(heard.some((h) => h.kind === 'toxin' && (h.body as ToxinBody).cell === 'echo-unborn01' && !swarm.cells.some((c) => c.signer.id === h.from)), 'by a real cell of its host, which says so');

  // After the verdict: certified first, its process starting a moment later (as a spawn does).
  await certify('echo-unborn02');
  await new Promise((r) => setTimeout(r, 200));
  const after = unborn('echo-unborn02');
  await until(() => after.pid !== undefined, 5_000, 'the late child started');
  t.true(await waitGone(after.pid!, 8_000), 'a child certified into the condemned lineage is killed when its process starts');
});
