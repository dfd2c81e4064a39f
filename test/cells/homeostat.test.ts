import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { Homeostat } from '../../cells/homeostat.ts';
import type { Mitosis } from '../../cells/mitosis.ts';
import { Census } from '../../organism/kernel/census.ts';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { readTissueRecord } from '../../organism/kernel/homeostasis-record.ts';
import { ROOT_ISSUER } from '../../organism/kernel/lineage.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { ensureStores } from '../../organism/kernel/stores.ts';
import type { DecisionBody, DigestBody, DigestRow } from '../../organism/kernel/vocabulary.ts';
import { until } from '../helpers/grow.ts';
import { startNats, uniqueId } from '../helpers/nats.ts';

const HOST = 'far-host';

function row(id: string, tissue: string, now: number): DigestRow {
  return { i: id, q: tissue, s: 'alive', c: null, l: 0, m: 0, d: 0, u: 0, r: 40, g: 0, p: 0, b: now - 60_000, a: null, w: null, n: 100, z: now, k: [0, 0, 0, 0] };
}

// A census that holds fewer of a host's cells than that host's own digest counts knows it is
// incomplete (a newborn whose whole answer has not come). Planning from it, the cells it lacks
// look missing: at 100 cells a newborn holding 76 of 100 made 23 children past the tissue's
// max. Its homeostat waits (a bounded time) for the host whole instead.
test('homeostat - a census short of its host\'s own count grows nothing; held whole, the same census grows', async (t) => {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const ns = new Namespace(uniqueId());
  const { homeostasis: kv } = await ensureStores(nc, ns);
  const genome = loadGenome({ sets: ['limits.pulseIntervalMs=100', 'tissues.echo.min=4', 'tissues.echo.max=8', 'tissues.stem.min=0', 'tissues.receiver=null', 'tissues.worker=null', 'tissues.dashboard=null'] });
  const limits = genome.limits;
  const census = new Census({ limits, pulsesOf: () => false, beat: false });
  let seq = 0;
  let round = 0;
  /** A delta of HOST naming `rows`, with the host's own count of its living cells. */
  const digest = (rows: DigestRow[], alive: number, r = ++round) => {
    const body: DigestBody = { host: HOST, round: r, part: 0, parts: 1, full: r === 0, alive, epoch: 1, beacon: 'b', rows };
    census.observe({ v: 1, kind: 'digest', from: ROOT_ISSUER, seq: ++seq, ts: Date.now(), body, sig: new Uint8Array(64) } as Hormone);
  };
  const self = { id: 'echo-self', tissue: 'echo', host: HOST, state: 'alive' };
  const decisions: DecisionBody[] = [];
  const divisions: string[] = [];
  const mitosis = { budget: 8, generation: 1, divide: async (_t: string, id: string) => void divisions.push(id) } as unknown as Mitosis;
  const homeostat = new Homeostat({
    kv, organism: ns.id, census, genome, mitosis, self: () => self,
    log: { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} } as never,
    publish: (_k, body) => void decisions.push(body), die: () => {},
  });
  t.teardown(() => homeostat.close());

  // The host counts five living cells (self and four echo); this census has heard of two.
  // Its digests keep coming (a census without its host's digest plans nothing anyway).
  const now = Date.now();
  let alive = 5;
  digest([row('echo-self', 'echo', now), row('echo-a', 'echo', now)], alive);
  const feed = setInterval(() => digest([], alive), limits.pulseIntervalMs);
  t.teardown(() => clearInterval(feed));
  t.not(census.shortSince(), undefined, 'short of the host\'s count');
  await homeostat.start();
  await until(() => homeostat.work.shortWaits > 0 || decisions.length > 0, 10_000, 'an evaluation past the warm-up');
  const looks = () => homeostat.work.shortWaits + homeostat.work.plans;
  const before = looks();
  await until(() => looks() >= before + 3, 10_000, 'three more evaluations');
  t.deepEqual(decisions, [], 'no decision from a census that knows it is short');
  t.deepEqual((await readTissueRecord(kv, 'echo')).record.pending, [], 'nothing claimed in the record');
  t.is(homeostat.work.plans, 0, 'every evaluation waited');

  // The same two cells, and the host says two live: the census is whole, and two of min four is a deficit.
  alive = 2;
  digest([], alive);
  t.is(census.shortSince(), undefined);
  homeostat.evaluate();
  await until(() => decisions.some((d) => d.tissue === 'echo' && d.action === 'divide'), 10_000, 'echo grown from a whole census');
  t.is((await readTissueRecord(kv, 'echo')).record.pending.length, 2, 'two of min four: two more on their way');
});
