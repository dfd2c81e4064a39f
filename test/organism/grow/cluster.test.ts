/**
 * Cluster mode pieces that need no second machine: the flags, the shared broker token, host
 * names, the broker's cluster block, a real three-server cluster on loopback ports choosing
 * R3 (and a lone server R1), and processes found by host.
 */
import test from 'ava';
import fc from 'fast-check';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Broker, ensureNatsServer, freePort } from '../../../organism/grow/broker.ts';
import { chooseReplication, loadOrCreateBrokerToken, parseCluster, transientClusterError } from '../../../organism/kernel/cluster.ts';
import { isCellularError } from '../../../organism/wire/errors.ts';
import { loadGenome } from '../../../organism/kernel/genome/index.ts';
import { checkHostName, hostName } from '../../../organism/kernel/host.ts';
import { Namespace } from '../../../organism/kernel/namespace.ts';
import { cellMarkersOf } from '../../../organism/kernel/processes.ts';
import { ensureStores } from '../../../organism/kernel/stores.ts';
import { startNats, tempDir, uniqueId } from '../../helpers/nats.ts';

test('cluster - flags: a name, every member\'s route, a route port', (t) => {
  t.deepEqual(parseCluster('c1', '10.0.0.1:6222, 10.0.0.2:6222,10.0.0.1:6222', undefined), { name: 'c1', port: 6222, routes: ['10.0.0.1:6222', '10.0.0.2:6222'] });
  t.is(parseCluster('c1', '[::1]:7000', '7001').port, 7001);
  for (const [name, routes, port] of [['c 1', 'a:1', undefined], ['c1', undefined, undefined], ['c1', '', undefined], ['c1', 'nohost', undefined], ['c1', 'a:99999', undefined], ['c1', 'a:1', '4222'], ['c1', 'a:1', 'x'], ['c1', 'a;b:1', undefined]] as const) {
    const e = t.throws(() => parseCluster(name, routes, port));
    t.true(isCellularError(e, 'BROKER_ERR_CLUSTER'), `${name} ${routes} ${port}`);
  }
  fc.assert(fc.property(fc.string(), fc.string(), (name, routes) => {
    try {
      const c = parseCluster(name, routes, undefined);
      return c.routes.length > 0 && c.routes.every((r) => !/[\s;"']/.test(r));
    } catch (e) {
      return isCellularError(e, 'BROKER_ERR_CLUSTER');
    }
  }));
});

test('cluster - host names are subject tokens; CELLULAR_HOST names this host', (t) => {
  t.is(checkHostName('h1'), 'h1');
  for (const bad of ['', 'a.b', 'a b', '-x', 'x'.repeat(64), 'a>b']) t.true(isCellularError(t.throws(() => checkHostName(bad)), 'HOST_ERR_NAME'), bad);
  t.is(hostName({ CELLULAR_HOST: 'edge-2' }), 'edge-2');
  t.regex(hostName({}), /^[A-Za-z0-9_-]{1,63}$/);
  t.deepEqual(cellMarkersOf('node main.js --host h2 --cell echo-1 --organism o1'), { cell: 'echo-1', organism: 'o1', host: 'h2' });
  t.deepEqual(cellMarkersOf('node main.js --cell echo-1 --organism o1'), { cell: 'echo-1', organism: 'o1', host: null });
});

test('cluster - the broker token is made once, 0600, and shared as a file', (t) => {
  const dir = tempDir(t);
  const a = loadOrCreateBrokerToken(dir);
  t.is(loadOrCreateBrokerToken(dir), a);
  t.is(statSync(join(dir, 'broker.token')).mode & 0o777, 0o600);
  t.regex(a, /^[A-Za-z0-9_-]{43}$/);
});

test('cluster - genome broker.replicas is 0, 1 or 3', (t) => {
  t.is(loadGenome().broker.replicas, 0);
  t.is(loadGenome({ sets: ['broker.replicas=3'] }).broker.replicas, 3);
  for (const v of ['2', '4', '-1']) t.true(isCellularError(t.throws(() => loadGenome({ sets: [`broker.replicas=${v}`] })), 'GENOME_ERR_INVALID'), v);
});

test('cluster - a forming cluster\'s errors are told from final ones', (t) => {
  t.true(transientClusterError(new Error('no suitable peers for placement, peer offline')));
  t.true(transientClusterError(new Error('JetStreamNotEnabled: jetstream is not enabled')));
  t.false(transientClusterError(new Error('authorization violation')));
});

test('cluster - three brokers on loopback form one cluster: R3 chosen and streams placed on three servers; a lone server gets R1', async (t) => {
  const binary = ensureNatsServer({ autoInstall: false });
  const token = loadOrCreateBrokerToken(tempDir(t));
  const gene = loadGenome().broker;
  const routePorts = [await freePort('127.0.0.1'), await freePort('127.0.0.1'), await freePort('127.0.0.1')];
  const routes = routePorts.map((p) => `127.0.0.1:${p}`);
  const brokers = routePorts.map((port, i) => new Broker({ gene, dir: join(tempDir(t), `b${i}`), name: `b${i}`, binary, token, cluster: { name: 'test', port, routes } }));
  t.teardown(() => Promise.all(brokers.map((b) => b.close())));
  await Promise.all(brokers.map((b) => b.start()));
  const conf = readFileSync(brokers[0]!.configPath, 'utf8');
  t.regex(conf, /cluster \{[\s\S]*name: "test"[\s\S]*routes: \[/);
  t.true(conf.includes(`nats-route://cellular:${encodeURIComponent(token)}@127.0.0.1:${routePorts[1]}`), 'routes authenticate with the shared token');
  const nc = await connect({ servers: brokers[0]!.url, token });
  t.teardown(() => nc.close());
  const ns = new Namespace(uniqueId());
  const r = await chooseReplication(nc, ns, 0);
  t.is(r.replicas, 3, r.why);
  await ensureStores(nc, ns, { replicas: r.replicas });
  const info = await (await jetstreamManager(nc)).streams.info(`KV_${ns.bucket('homeostasis')}`);
  t.is(info.config.num_replicas, 3);
  t.is(info.cluster?.replicas?.length, 2, 'two followers besides the leader');
  // Without the token a server cannot join: the routes refuse it (checked by the client side: no token, no connection).
  await t.throwsAsync(connect({ servers: brokers[1]!.url, reconnect: false }));

  const lone = await startNats(t);
  const nc1 = await connect({ servers: lone.url });
  t.teardown(() => nc1.close());
  const r1 = await chooseReplication(nc1, new Namespace(uniqueId()), 0);
  t.is(r1.replicas, 1);
  t.regex(r1.why, /single NATS server/);
  t.true(isCellularError(await t.throwsAsync(chooseReplication(nc1, new Namespace(uniqueId()), 3)), 'STORE_ERR_SETUP'));
});
