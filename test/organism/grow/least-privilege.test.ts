/**
 * The attacker inside: a process holding one cell's broker credential (or a dead cell's, or
 * none) against a real organism on its own nats-server in operator mode. Each attack of
 * issue 19's "Why" is refused by the broker (a permissions violation, an authorization
 * error) — and the honest organism keeps carrying chat under the same tables.
 */
import test, { type ExecutionContext } from 'ava';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { natsOptions, type NatsAccess } from '../../../organism/kernel/access.ts';
import { userSeedText } from '../../../organism/kernel/broker-keys.ts';
import { generateKeypair, privateKeyObject } from '../../../organism/kernel/keys.ts';
import { issueCertificate, packCertificate, ROOT_ISSUER } from '../../../organism/kernel/lineage.ts';
import { permissionsFor } from '../../../organism/kernel/permissions.ts';
import { pack } from '../../../organism/kernel/reply.ts';
import { SharedSequence, sealHormone } from '../../../organism/kernel/hormone.ts';
import { Organism } from '../../../organism/grow/organism.ts';
import { loadRootKey } from '../../../organism/grow/root-key.ts';
import { generateIdentity } from '../../../client/crypto/envelope.ts';
import { registerAccount } from '../../../client/app/account.ts';
import { ChatClient } from '../../helpers/chat-client.ts';
import { until } from '../../helpers/grow.ts';
import { liveReceivers, messengerGenome } from '../../helpers/organism.ts';
import { tempDir, uniqueId } from '../../helpers/nats.ts';
import { reapOnExit } from '../../helpers/reaper.ts';

/** A messenger organism on its own private broker (operator mode), stopped at teardown. */
async function privateOrganism(t: ExecutionContext) {
  const { genome } = messengerGenome();
  const o = new Organism({ stateDir: tempDir(t), id: uniqueId(), genome });
  const unreap = reapOnExit(() => o.emergencyStop());
  t.teardown(async () => {
    await o.stop('test teardown');
    unreap();
  });
  await o.start();
  await o.waitForPopulation();
  await until(() => liveReceivers(o).length >= 1, 10_000, 'a receiver with a URL');
  return o;
}

/** A certified cell of `tissue` made here (root-signed, recorded in lineage) and its credential. */
async function forgeCell(o: Organism, tissue: string) {
  const id = `${tissue}-${Math.random().toString(16).slice(2, 10)}`;
  const pair = generateKeypair();
  const root = loadRootKey(o.stateDir);
  const cert = issueCertificate({ cell: id, pub: pair.pub, tissue, host: 'rogue', born: Date.now(), generation: 0, budget: 0, parent: null, issuer: ROOT_ISSUER }, root.privateKey);
  const { Kvm } = await import('@nats-io/kv');
  await (await new Kvm(o.observer.nc).open(o.observer.ns.bucket('lineage'))).create(id, packCertificate(cert));
  const jwt = await o.mint!.issue(id, pair.pub, permissionsFor(o.observer.ns, { kind: 'cell', tissue, id }));
  const access: NatsAccess = { servers: o.servers, token: null, user: { jwt, seed: userSeedText(pair.seed), inbox: id } };
  return { id, pair, cert, access };
}

/** A connection that records every error the server sends it (permission violations arrive as async errors). */
async function rogue(t: ExecutionContext, access: NatsAccess, name: string) {
  const nc = await connect({ ...natsOptions(access, name), maxReconnectAttempts: 0 });
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(String((s as { error?: Error }).error?.message ?? ''));
  })();
  t.teardown(() => nc.close().catch(() => {}));
  return { nc, errors };
}

/** Waits for the server to name `what` in a permissions violation on this connection. */
async function refused(r: { nc: NatsConnection; errors: string[] }, what: RegExp): Promise<boolean> {
  await r.nc.flush().catch(() => {});
  const end = Date.now() + 3_000;
  while (Date.now() < end) {
    if (r.errors.some((e) => /Permissions Violation/.test(e) && what.test(e))) return true;
    await new Promise((res) => setTimeout(res, 20));
  }
  return false;
}

test.serial('least privilege - a receiver credential cannot read worker traffic, answer as a worker, touch accounts, delete streams, read operator traffic or speak as another cell; chat still works', async (t) => {
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  // The honest path first: register and send under the tissues' own permissions.
  const url = liveReceivers(o)[0]!.url!;
  const alice = await ChatClient.connect(url);
  t.teardown(() => alice.close());
  await registerAccount(alice, 'alice', 'pw-alice-secret', generateIdentity());
  const sent = (await alice.request({ t: 'send', msg: 'm1aaaaaaaaaaaaaaaa', to: 'alice', body: new Uint8Array([1, 2, 3]) })) as unknown as { seq: number };
  t.true(sent.seq > 0, 'a message is stored under the receiver and worker tables');

  const cell = await forgeCell(o, 'receiver');
  const r = await rogue(t, cell.access, 'rogue receiver');
  // Collect every password and token in worker traffic / answer a login before the worker.
  r.nc.subscribe(ns.tissue('worker', '>'), { callback: (err) => void (err || t.fail('read worker traffic')) });
  t.true(await refused(r, /Subscription to "org\.[^.]+\.tissue\.worker\.>"/), 'worker requests cannot be read');
  r.nc.subscribe(ns.tissue('worker', 'login-start'), { queue: 'worker', callback: (err) => void (err || t.fail('answered as a worker')) });
  t.true(await refused(r, /Subscription to "org\.[^.]+\.tissue\.worker\.login-start"/), 'no rogue worker can answer');
  // Rewrite accounts and directory; delete the messages stream; rewrite lineage.
  r.nc.publish(`$KV.${ns.bucket('accounts')}.u.alice`, new Uint8Array([0]));
  t.true(await refused(r, /\$KV\.org_[^.]+_accounts\.u\.alice/), 'accounts are written by workers only');
  r.nc.publish(`$KV.${ns.bucket('directory')}.u.alice`, new Uint8Array([0]));
  t.true(await refused(r, /_directory\.u\.alice/), 'the directory is written by workers only');
  r.nc.publish(`$KV.${ns.bucket('lineage')}.${cell.id}x`, new Uint8Array([0]));
  t.true(await refused(r, /_lineage\./), 'lineage is written by the mint only');
  r.nc.publish(`$JS.API.STREAM.DELETE.${ns.stream('messages')}`, new Uint8Array(0));
  t.true(await refused(r, /STREAM\.DELETE/), 'only grow deletes streams');
  // The dashboard's operator traffic, and another cell's hormones.
  r.nc.subscribe(ns.operator, { callback: (err) => void (err || t.fail('read operator traffic')) });
  t.true(await refused(r, /Subscription to "org\.[^.]+\.operator"/), 'operator traffic is not readable');
  r.nc.publish(ns.hormone('pulse', 'worker-00000000'), new Uint8Array([1]));
  t.true(await refused(r, /hormone\.pulse\.worker-00000000/), 'a cell publishes hormones under its own id only');
  // Its own hormone subject is open to it: the broker names who published.
  const before = r.errors.length;
  r.nc.publish(ns.hormone('pulse', cell.id), new Uint8Array([1]));
  await r.nc.flush();
  t.is(r.errors.length, before, 'its own subject is allowed');
});

test.serial('least privilege - a worker or stem credential cannot ask workers, push frames to users, or end their sessions; no credential connects nowhere', async (t) => {
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  for (const tissue of ['worker', 'stem']) {
    const cell = await forgeCell(o, tissue);
    const r = await rogue(t, cell.access, `rogue ${tissue}`);
    r.nc.publish(ns.tissue('worker', 'backup-get'), pack({ user: 'alice' }));
    t.true(await refused(r, /Publish to "org\.[^.]+\.tissue\.worker\.backup-get"/), `${tissue}: only receivers ask workers`);
    r.nc.publish(`${ns.prefix}.user.alice`, pack({ t: 'presence' }));
    t.true(await refused(r, /Publish to "org\.[^.]+\.user\.alice"/), `${tissue}: no frames pushed to a user`);
    r.nc.publish(`${ns.prefix}.user.alice.ended`, new Uint8Array(32));
    t.true(await refused(r, /user\.alice\.ended/), `${tissue}: no session ended`);
  }
  // No credential at all: the server refuses the connection.
  const err = await connect({ servers: o.servers, maxReconnectAttempts: 0, reconnect: false }).then(async (nc) => {
    await nc.close();
    return 'connected';
  }, (e: Error) => e.message);
  t.regex(err, /Authorization Violation/);
  // A token (the old shared secret) opens nothing either.
  const tokenErr = await connect({ servers: o.servers, token: 'guess', maxReconnectAttempts: 0, reconnect: false }).then(async (nc) => {
    await nc.close();
    return 'connected';
  }, (e: Error) => e.message);
  t.regex(tokenErr, /Authorization Violation/);
});

test.serial('least privilege - a dead cell\'s credential stops working: its death revokes it on the broker, and it cannot reconnect; the mint refuses uncertified cells', async (t) => {
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  const cell = await forgeCell(o, 'receiver');
  const r = await rogue(t, { ...cell.access }, 'doomed');
  const closed = r.nc.closed();
  // It says goodbye (a death hormone signed with its key): grow revokes its identity.
  const seq = new SharedSequence();
  const signer = { id: cell.id, key: privateKeyObject(cell.pair.seed), nextSeq: () => seq.next() };
  r.nc.publish(ns.hormone('birth', cell.id), sealHormone(signer, 'birth', { pid: 1, cert: cell.cert, url: null }, 8192));
  r.nc.publish(ns.hormone('death', cell.id), sealHormone(signer, 'death', { pid: 1, cause: 'signal', detail: 'test' }, 8192));
  await r.nc.flush();
  const done = await Promise.race([closed.then(() => 'closed'), new Promise((res) => setTimeout(() => res('open'), 10_000))]);
  t.is(done, 'closed', 'the broker closed the dead cell\'s connection');
  t.true(r.errors.some((e) => /Revoked/i.test(e)), `the server said why: ${r.errors.join('; ')}`);
  // Its credential cannot come back.
  const again = await connect({ ...natsOptions(cell.access, 'dead again'), maxReconnectAttempts: 0, reconnect: false }).then(async (nc) => {
    await nc.close();
    return 'connected';
  }, (e: Error) => e.message);
  t.regex(again, /Authorization Violation|Revoked/i);
  t.true((o.revocations?.stats.revoked ?? 0) >= 1);

  // The mint: a certificate that does not chain to the root gets nothing; neither does a
  // stem that no tissue record holds as a pending recruit.
  const stranger = generateKeypair();
  const fake = issueCertificate({ cell: 'echo-0badc0de', pub: stranger.pub, tissue: 'receiver', host: 'h', born: Date.now(), generation: 0, budget: 0, parent: null, issuer: ROOT_ISSUER }, privateKeyObject(stranger.seed));
  const ask = async (body: unknown) => {
    const { openReply } = await import('../../../organism/kernel/reply.ts');
    try {
      openReply((await o.observer.nc.request(ns.mint, pack(body), { timeout: 3_000 })).data);
      return 'issued';
    } catch (e) {
      return String((e as { code?: string }).code);
    }
  };
  t.is(await ask({ op: 'child', cert: packCertificate(fake) }), 'MINT_ERR_REFUSED');
  const stem = await forgeCell(o, 'stem');
  t.is(await ask({ op: 'differentiate', cell: stem.id, tissue: 'worker' }), 'MINT_ERR_REFUSED');
});
