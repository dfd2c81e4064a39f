import test from 'ava';
import { createServer, connect as tcpConnect } from 'node:net';
import { statSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { Broker, ensureNatsServer, freePort } from '../../../organism/grow/broker.ts';
import { isCellularError } from '../../../organism/wire/errors.ts';
import { defaultGenome } from '../../../organism/kernel/genome/index.ts';
import { isAlive } from '../../../organism/kernel/processes.ts';
import { startNats, tempDir } from '../../helpers/nats.ts';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test('broker - starts on free loopback ports other than 4222, answers, and stops leaving them closed', async (t) => {
  const broker = await startNats(t);
  t.not(broker.port, 4222);
  t.not(broker.monitorPort, 4222);
  t.is(broker.url, `nats://127.0.0.1:${broker.port}`);
  t.deepEqual(broker.state, { state: 'running', pid: broker.pid! });
  const varz = (await (await fetch(`${broker.monitorUrl}/varz`)).json()) as { host: string; jetstream?: { config?: unknown } };
  t.is(varz.host, '127.0.0.1', 'bound to loopback only');
  t.truthy(varz.jetstream?.config, 'JetStream on');
  t.true(await portOpen(broker.port));
  const pid = broker.pid!;
  await broker.close();
  await broker.close(); // safe twice
  t.false(isAlive(pid));
  t.false(await portOpen(broker.port));
  t.false(await portOpen(broker.monitorPort));
});

test('broker - a missing nats-server is refused with the install commands when install is off', (t) => {
  const err = t.throws(() => ensureNatsServer({ env: { PATH: '' }, searchDirs: [], autoInstall: false }));
  t.true(isCellularError(err, 'BROKER_ERR_NOT_FOUND'));
  t.regex(err!.message, /sudo apt-get install -y nats-server/);
  t.regex(err!.message, /brew install nats-server/);
  t.regex(err!.message, /--no-install/);
});

test('broker - NATS_SERVER_BIN pointing nowhere is an error, not silently replaced', (t) => {
  const err = t.throws(() => ensureNatsServer({ env: { NATS_SERVER_BIN: '/nonexistent/nats-server', PATH: '/usr/sbin' } }));
  t.true(isCellularError(err, 'BROKER_ERR_NOT_FOUND'));
  t.regex(err!.message, /NATS_SERVER_BIN=\/nonexistent\/nats-server/);
});

test('broker - a busy fixed port fails with BROKER_ERR_START and the server log', async (t) => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => busy.close(() => r())));
  const port = (busy.address() as { port: number }).port;
  const gene = { ...defaultGenome().broker, port, monitorPort: await freePort('127.0.0.1') };
  const broker = new Broker({ gene, dir: tempDir(t), name: 'busy', binary: ensureNatsServer({ autoInstall: false }), startTimeoutMs: 5_000 });
  t.teardown(() => broker.close());
  const err = await t.throwsAsync(broker.start());
  t.true(isCellularError(err, 'BROKER_ERR_START'), err?.message);
  t.regex(err!.message, /address already in use|exited/i);
});

test('broker - freePort never returns 4222', async (t) => {
  for (let i = 0; i < 20; i++) t.not(await freePort('127.0.0.1'), 4222);
});

test('broker - a client without the token is refused; with it, admitted', async (t) => {
  const broker = await startNats(t, { auth: true });
  const refused = await t.throwsAsync(connect({ servers: broker.url, reconnect: false, timeout: 2_000 }));
  t.regex(String(refused?.message), /authoriz/i);
  const nc = await connect({ servers: broker.url, token: broker.token!, reconnect: false, timeout: 2_000 });
  t.teardown(() => nc.close());
  await t.notThrowsAsync(nc.flush());
  const conf = statSync(broker.configPath).mode & 0o777;
  t.is(conf, 0o600, 'the config holding the token is private');
});
