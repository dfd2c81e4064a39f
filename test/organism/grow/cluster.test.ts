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
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { Broker, ensureNatsServer, freePort } from '../../../organism/grow/broker.ts';
import { CA_CERT_FILE, issueHostCertificate } from '../../../organism/grow/organism-ca.ts';
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

test('cluster - three brokers on loopback form one cluster over TLS under the organism CA: R3 chosen and streams placed on three servers; a server with another CA cannot join; a lone server gets R1', async (t) => {
  const binary = ensureNatsServer({ autoInstall: false });
  const state = tempDir(t);
  const token = loadOrCreateBrokerToken(state);
  const gene = loadGenome().broker;
  const routePorts = [await freePort('127.0.0.1'), await freePort('127.0.0.1'), await freePort('127.0.0.1')];
  const routes = routePorts.map((p) => `127.0.0.1:${p}`);
  const brokers = routePorts.map((port, i) => {
    const dir = join(tempDir(t), `b${i}`);
    const tls = issueHostCertificate(state, 'test', join(dir, 'tls'), `b${i}`);
    return new Broker({ gene, dir, name: `b${i}`, binary, token, cluster: { name: 'test', port, routes }, tls });
  });
  t.teardown(() => Promise.all(brokers.map((b) => b.close())));
  await Promise.all(brokers.map((b) => b.start()));
  const conf = readFileSync(brokers[0]!.configPath, 'utf8');
  t.regex(conf, /cluster \{[\s\S]*name: "test"[\s\S]*routes: \[/);
  t.true(conf.includes(`nats-route://cellular:${encodeURIComponent(token)}@127.0.0.1:${routePorts[1]}`), 'routes authenticate with the shared token');
  t.regex(conf, /cluster \{[\s\S]*tls \{[\s\S]*verify: true/, 'routes demand a certificate of the CA from both sides');
  const ca = readFileSync(join(state, CA_CERT_FILE), 'utf8');
  t.is(statSync(join(state, 'ca.key')).mode & 0o777, 0o600);
  // A client that does not trust the organism CA is refused the server's certificate.
  await t.throwsAsync(connect({ servers: brokers[0]!.url, token, reconnect: false, tls: {} }));
  const nc = await connect({ servers: brokers[0]!.url, token, tls: { ca } });
  t.teardown(() => nc.close());
  const ns = new Namespace(uniqueId());
  const r = await chooseReplication(nc, ns, 0);
  t.is(r.replicas, 3, r.why);
  await ensureStores(nc, ns, { replicas: r.replicas });
  const info = await (await jetstreamManager(nc)).streams.info(`KV_${ns.bucket('homeostasis')}`);
  t.is(info.config.num_replicas, 3);
  t.is(info.cluster?.replicas?.length, 2, 'two followers besides the leader');
  // Without the token a server cannot join: the routes refuse it (checked by the client side: no token, no connection).
  await t.throwsAsync(connect({ servers: brokers[1]!.url, reconnect: false, tls: { ca } }));
  // A server with the token but a certificate of another CA dials every route and is refused.
  const foreign = await foreignServer(t, binary, token, routes);
  const routez = async (monitor: string) => ((await (await fetch(`${monitor}/routez`)).json()) as { num_routes: number }).num_routes;
  const tried = Date.now() + 3_000;
  while (Date.now() < tried && !(await foreign.log()).includes('TLS')) await new Promise((r) => setTimeout(r, 100));
  t.regex(await foreign.log(), /TLS|certificate/, 'the foreign server logged the refused handshakes');
  t.is(await routez(foreign.monitor), 0, 'the foreign server holds no route');
  t.is(await routez(brokers[0]!.monitorUrl), 2, 'the members hold only each other');

  const lone = await startNats(t);
  const nc1 = await connect({ servers: lone.url });
  t.teardown(() => nc1.close());
  const r1 = await chooseReplication(nc1, new Namespace(uniqueId()), 0);
  t.is(r1.replicas, 1);
  t.regex(r1.why, /single NATS server/);
  t.true(isCellularError(await t.throwsAsync(chooseReplication(nc1, new Namespace(uniqueId()), 3)), 'STORE_ERR_SETUP'));
});

/** A nats-server with the cluster's token but its own CA, whose routes point at the cluster. */
async function foreignServer(t: ExecutionContext, binary: string, token: string, routes: string[]) {
  const dir = tempDir(t);
  const tls = issueHostCertificate(join(dir, 'state'), 'impostor', join(dir, 'tls'), 'impostor');
  const port = await freePort('127.0.0.1');
  const monitorPort = await freePort('127.0.0.1');
  const routePort = await freePort('127.0.0.1');
  mkdirSync(join(dir, 'js'), { recursive: true });
  const tlsBlock = [`tls {`, `cert_file: ${JSON.stringify(tls.certFile)}`, `key_file: ${JSON.stringify(tls.keyFile)}`, `ca_file: ${JSON.stringify(tls.caFile)}`, `verify: true`, `timeout: 2`, `}`];
  writeFileSync(join(dir, 'nats.conf'), [
    `server_name: impostor`, `listen: "127.0.0.1:${port}"`, `http: "127.0.0.1:${monitorPort}"`, `jetstream { store_dir: ${JSON.stringify(join(dir, 'js'))} }`,
    `cluster {`, `name: "test"`, `listen: "127.0.0.1:${routePort}"`, `authorization { user: "cellular", password: ${JSON.stringify(token)} }`, ...tlsBlock,
    `routes: [`, ...routes.map((r) => JSON.stringify(`nats-route://cellular:${encodeURIComponent(token)}@${r}`)), `]`, `}`, '',
  ].join('\n'), { mode: 0o600 });
  const logPath = join(dir, 'nats.log');
  const child = spawn(binary, ['-c', join(dir, 'nats.conf'), '-l', logPath], { stdio: 'ignore' });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const monitor = `http://127.0.0.1:${monitorPort}`;
  for (let i = 0; i < 50; i++) {
    if (await fetch(`${monitor}/varz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { monitor, log: async () => { try { return readFileSync(logPath, 'utf8'); } catch { return ''; } } };
}
