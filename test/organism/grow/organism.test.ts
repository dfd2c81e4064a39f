import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { ensureStores } from '../../../organism/kernel/stores.ts';
import { Namespace } from '../../../organism/kernel/namespace.ts';
import { pack } from '../../../organism/kernel/reply.ts';
import { emptyTissueRecord, packRecord, tissueKey } from '../../../organism/kernel/homeostasis-record.ts';
import { ROOT_ISSUER } from '../../../organism/kernel/lineage.ts';
import { Observer } from '../../../organism/grow/observer.ts';
import { Organism } from '../../../organism/grow/organism.ts';
import { loadGenome } from '../../../organism/kernel/genome/index.ts';
import { isCellularError } from '../../../organism/wire/errors.ts';
import { isAlive } from '../../../organism/kernel/processes.ts';
import type { Hormone } from '../../../organism/kernel/hormone.ts';
import { FAST } from '../../helpers/grow.ts';
import { reapOnExit } from '../../helpers/reaper.ts';
import { startNats, tempDir, uniqueId } from '../../helpers/nats.ts';

/** An organism on its own nats-server (started here), so observers outlive the organism's stop. */
async function organism(t: Parameters<typeof tempDir>[0], sets: string[]): Promise<Organism> {
  const nats = await startNats(t);
  const o = new Organism({ stateDir: tempDir(t), genome: loadGenome({ sets: [...FAST, ...sets] }), servers: [nats.url], id: uniqueId() });
  const unreap = reapOnExit(() => o.emergencyStop());
  t.teardown(async () => {
    await o.stop('test teardown');
    unreap();
  });
  return o;
}

test('organism - a cell still starting when shutdown goes out hears a repeat and drains (no SIGKILL)', async (t) => {
  const o = await organism(t, ['tissues.stem.min=1', 'tissues.echo.min=0']);
  await o.start();
  await o.waitForPopulation();
  const watcher = await Observer.open({ ...o.access, organism: o.id, rootPub: o.rootPub, limits: o.genome.limits });
  t.teardown(() => watcher.close());
  const deaths = new Map<string, string>();
  watcher.bus.on((h: Hormone) => h.kind === 'death' && deaths.set(h.from, (h.body as { cause: string }).cause));
  const late = await o.spawn('echo'); // still booting when the first shutdown is published
  const final = await o.stop('test');
  t.deepEqual(final, { state: 'stopped', stragglers: 0 });
  t.false(isAlive(late.pid));
  t.is(deaths.get(late.id), 'shutdown', 'the late cell drained and said so');
});

test('organism - spawn respects tissue max and cellsPerHost, and forgets cells that died', async (t) => {
  const o = await organism(t, ['tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.echo.max=2', 'limits.cellsPerHost=3']);
  await o.start();
  await o.waitForPopulation();
  const second = await o.spawn('echo');
  const err = await t.throwsAsync(o.spawn('echo'));
  t.true(isCellularError(err, 'CELL_ERR_POPULATION_MAX'));
  t.regex(err!.message, /tissues\.echo\.max \(2\)/);
  const host = await t.throwsAsync(o.spawn('stem'));
  t.regex(host!.message, /limits\.cellsPerHost \(3\)/);
  // A killed cell no longer counts once its process is gone.
  process.kill(second.pid, 'SIGKILL');
  while (isAlive(second.pid)) await new Promise((r) => setTimeout(r, 20));
  await t.notThrowsAsync(o.spawn('stem'));
  await o.stop('test');
  t.is(o.state.state, 'stopped');
});

test('organism - cells exit when their broker stays gone for limits.brokerLossMs', async (t) => {
  const nats = await startNats(t);
  const o = new Organism({
    stateDir: tempDir(t), servers: [nats.url], id: uniqueId(),
    genome: loadGenome({ sets: [...FAST, 'tissues.stem.min=1', 'tissues.echo.min=1', 'limits.brokerLossMs=1500'] }),
  });
  const unreap = reapOnExit(() => o.emergencyStop());
  t.teardown(async () => {
    await o.stop('test teardown');
    unreap();
  });
  await o.start();
  const cells = await o.waitForPopulation();
  t.is(cells.length, 2);
  process.kill(nats.pid!, 'SIGKILL');
  // Gone within brokerLossMs plus a drain that cannot reach anyone (bounded), with margin.
  const end = Date.now() + 1_500 + 10_000;
  while (cells.some((c) => isAlive(c.pid)) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  for (const c of cells) t.false(isAlive(c.pid), `cell ${c.id} exited without its broker`);
});

test('organism - a host that lost the seed race waits for the winner\'s pending first cells before it seeds again', async (t) => {
  const nats = await startNats(t);
  const genome = loadGenome({ sets: [...FAST, 'tissues.stem.min=1', 'tissues.echo.min=0', 'limits.joinTimeoutMs=1000'] });
  const id = uniqueId();
  // Another host won the seed and recorded its first cell as pending, due well after this
  // host's first wait (join timeout + 4 pulses = 2 s), as a loaded host spawning many cells does.
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const { homeostasis } = await ensureStores(nc, new Namespace(id), { replicas: 1, recorderMaxAgeMs: genome.dashboard.recorderMaxAgeMs, recorderMaxBytes: genome.dashboard.recorderMaxBytes });
  await homeostasis.put('seed', pack({ host: 'other-host', pid: 1, at: Date.now() }));
  const due = Date.now() + 5_000;
  const pending = { id: 'stem-00000001', host: 'other-host', due, how: 'seed' as const };
  await homeostasis.put(tissueKey('stem'), packRecord({ ...emptyTissueRecord('stem'), epoch: 1, at: Date.now(), by: ROOT_ISSUER, action: 'seed', pending: [pending] }));
  let reseeded = 0;
  const o = new Organism({ stateDir: tempDir(t), genome, servers: [nats.url], id, say: (line) => void (/seeds it again/.test(line) && (reseeded = Date.now())) });
  const unreap = reapOnExit(() => o.emergencyStop());
  t.teardown(async () => {
    await o.stop('test teardown');
    unreap();
  });
  await o.start();
  // Nothing of the winner ever pulsed: this host seeds, but only once the due has passed.
  t.true(reseeded > 0, 'the organism was seeded again');
  t.true(reseeded >= due, `seeded ${due - reseeded} ms before the winner's first cell was due`);
  await o.waitForPopulation();
  t.is(o.observer.census.living().filter((c) => c.tissue === 'stem').length, 1);
});
