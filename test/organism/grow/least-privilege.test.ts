/**
 * The attacker inside: a process holding one cell's broker credential (or a dead cell's, or
 * none) against a real organism on its own nats-server in operator mode. Each attack of
 * issue 19's "Why" is refused by the broker (a permissions violation, an authorization
 * error) — and the honest organism keeps carrying chat under the same tables.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { parseCreds } from '@nats-io/jwt';
import { inboxPrefix, natsOptions, type NatsAccess } from '../../../organism/kernel/access.ts';
import type { DigestBody } from '../../../organism/kernel/vocabulary.ts';
import { codec } from '../../../organism/wire/codec.ts';
import { userPublicKey, userSeedText } from '../../../organism/kernel/broker-keys.ts';
import { generateKeypair, privateKeyObject } from '../../../organism/kernel/keys.ts';
import { issueCertificate, packCertificate, ROOT_ISSUER } from '../../../organism/kernel/lineage.ts';
import { permissionsFor } from '../../../organism/kernel/permissions.ts';
import { openReply, pack } from '../../../organism/kernel/reply.ts';
import { SharedSequence, sealHormone } from '../../../organism/kernel/hormone.ts';
import { Organism } from '../../../organism/grow/organism.ts';
import { hostName } from '../../../organism/kernel/host.ts';
import { loadRootKey } from '../../../organism/grow/root-key.ts';
import { generateIdentity } from '../../../client/crypto/envelope.ts';
import { registerAccount } from '../../../client/app/account.ts';
import { ChatClient } from '../../helpers/chat-client.ts';
import { cliAsync, until } from '../../helpers/grow.ts';
import { liveReceivers, messengerGenome, runOrganism } from '../../helpers/organism.ts';
import { tempDir, uniqueId } from '../../helpers/nats.ts';
import { within } from '../../../organism/kernel/within.ts';
import { Kvm } from '@nats-io/kv';
import { REVOKED_BUCKET } from '../../../organism/grow/revocations.ts';
import { waitGone } from '../../../organism/kernel/processes.ts';

/** A messenger organism on its own private broker (operator mode), stopped at teardown. */
async function privateOrganism(t: ExecutionContext, sets: string[] = [], prepare?: (stateDir: string) => void) {
  const { genome } = messengerGenome(sets);
  const stateDir = tempDir(t);
  prepare?.(stateDir);
  const o = await runOrganism(t, { stateDir, id: uniqueId(), genome });
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

test.serial('least privilege - a cell asking for whole digests 200 times at once gets at most 2 private answers an interval (of the 32 a grow gives all askers), each the root\'s, only on an inbox; it cannot make grow write elsewhere or make a digest whole for all', async (t) => {
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  const cell = await forgeCell(o, 'stem');
  const r = await rogue(t, cell.access, 'rogue asker');
  const inbox = `${inboxPrefix(cell.id)}.asks`;
  const answers: Uint8Array[] = [];
  r.nc.subscribe(inbox, {
    callback: (_e, m) => {
      answers.push(m.data);
    },
  });
  await r.nc.flush();
  const wholes: number[] = [];
  const off = o.observer.bus.on((h) => {
    if (h.kind === 'digest' && (h.body as DigestBody).full) wholes.push(Date.now());
  });
  t.teardown(off);
  // A reply subject that is not an inbox: grow (which may write the JetStream and KV APIs) must not answer there.
  const streams = async () => (await (await import('@nats-io/jetstream')).jetstreamManager(o.observer.nc)).streams.names();
  const before: string[] = [];
  for await (const n of await streams()) before.push(n);
  const rogueReplies = [`$JS.API.STREAM.DELETE.${before[0]}`, `$KV.${ns.bucket('lineage')}.x`, ns.hormone('digest', ROOT_ISSUER)];
  for (const reply of rogueReplies) r.nc.publish(ns.digestWhole, new Uint8Array(0), { reply });
  // An ask may name the one host it wants (a cell that lost a round of its digests): a grow answers only for its own.
  const named: DigestBody[] = [];
  r.nc.subscribe(`${inboxPrefix(cell.id)}.named`, { callback: (_e, m) => void named.push((codec.unpack(m.data) as { body: DigestBody }).body) });
  r.nc.publish(ns.digestWhole, new TextEncoder().encode('no-such-host'), { reply: `${inboxPrefix(cell.id)}.named` });
  r.nc.publish(ns.digestWhole, new TextEncoder().encode(hostName()), { reply: `${inboxPrefix(cell.id)}.named` });
  await until(() => named.length > 0 && named.length === named[0]!.parts, 5_000, 'the named host whole');
  t.true(named.every((b) => b.host === hostName() && b.full && b.round === 0), 'one answer, from the host named; none for a host that is not there');
  for (let i = 0; i < 200; i++) r.nc.publish(ns.digestWhole, new Uint8Array(0), { reply: inbox });
  await r.nc.flush();
  await until(() => answers.length > 0, 5_000, 'private answers');
  await new Promise((res) => setTimeout(res, 1_500));
  t.is(named.length, named[0]!.parts, 'the ask for a host that is not there got no answer');
  t.false(r.errors.some((e) => /Permissions Violation/.test(e)), r.errors.join('; '));
  const after: string[] = [];
  for await (const n of await streams()) after.push(n);
  t.deepEqual(after.sort(), before.sort(), 'no stream deleted through a forged reply subject');
  t.deepEqual(wholes, [], 'no whole digest for everyone');
  // The broadcast ask stays out of a cell's reach.
  r.nc.publish(ns.digestAsk, new Uint8Array(0));
  t.true(await refused(r, /digest\.ask/), 'a cell cannot ask for a whole digest for all');
  const opened = answers.map((a) => codec.unpack(a) as { kind: string; from: string; body: DigestBody });
  t.true(opened.length >= 1, 'answered privately');
  t.true(opened.every((h) => h.kind === 'digest' && h.from === ROOT_ISSUER && h.body.full && h.body.round === 0));
  const parts = opened[0]!.body.parts;
  // 200 asks (and the named one before them) span at most three intervals: at most 3 × 2
  // answers to this one asker, not 200, and not the 32 a grow gives all askers together.
  t.true(opened.length <= 3 * 2 * parts, `${opened.length} parts answered (${parts} per answer)`);
});

test.serial('least privilege - a dead cell\'s credential stops working: its death revokes it on the broker, and it cannot reconnect; the mint refuses uncertified cells', async (t) => {
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  const cell = await forgeCell(o, 'receiver');
  const r = await rogue(t, { ...cell.access }, 'doomed');
  const closed = r.nc.closed();
  // It says goodbye (a death hormone signed with its key): grow revokes its identity.
  const seq = new SharedSequence();
  const signer = { id: cell.id, organism: ns.id, key: privateKeyObject(cell.pair.seed), nextSeq: () => seq.next() };
  r.nc.publish(ns.hormone('birth', cell.id), sealHormone(signer, 'birth', { pid: 1, cert: cell.cert, url: null }, 8192));
  r.nc.publish(ns.hormone('death', cell.id), sealHormone(signer, 'death', { pid: 1, cause: 'signal', detail: 'test' }, 8192));
  await r.nc.flush();
  const done = await within(closed.then(() => 'closed'), 10_000, 'open');
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

test.serial('least privilege - cellular creds writes a short-lived 0600 credential with exactly its tissue\'s permissions', async (t) => {
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  const file = join(o.stateDir, 'observer.creds');
  const r = await cliAsync(['creds', '--tissue', 'observer', '--ttl', '600', '--out', file, '--state-dir', o.stateDir]);
  t.is(r.status, 0, r.stderr);
  t.is(statSync(file).mode & 0o777, 0o600);
  const inbox = /inboxPrefix "([^"]+)"/.exec(r.stderr)?.[1];
  t.truthy(inbox, r.stderr);
  const text = readFileSync(file);
  const { jwt, uc } = await parseCreds(text);
  const now = Date.now() / 1000;
  t.true(uc.exp! > now + 500 && uc.exp! < now + 700, 'it expires after --ttl');
  t.true(jwt.length > 0);
  const nc = await connect({ servers: o.servers, authenticator: credsAuthenticator(text), inboxPrefix: inbox!, maxReconnectAttempts: 0 });
  t.teardown(() => nc.close().catch(() => {}));
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(String((s as { error?: Error }).error?.message));
  })();
  // An observer asks the census and reads hormones…
  const census = await nc.request(ns.census, new Uint8Array(0), { timeout: 3_000 });
  t.true(census.data.length > 0);
  // …and may not speak.
  nc.publish(ns.hormone('shutdown', 'root'), new Uint8Array([1]));
  t.true(await refused({ nc, errors }, /hormone\.shutdown\.root/));
  // A tissue the genome does not have is refused with a usage error.
  const bad = await cliAsync(['creds', '--tissue', 'nosuch', '--state-dir', o.stateDir]);
  t.is(bad.status, 1);
  t.regex(bad.stderr, /CLI_ERR_USAGE/);
});

test.serial('least privilege - a flood from one credential (100,000 hormones in 3 s, random and mutated) is attributed to it and cut off; no honest cell is suspected, declared dead or regrown', async (t) => {
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  const honest = o.observer.census.living().map((c) => c.id);
  const changes: string[] = [];
  const births: string[] = [];
  o.observer.census.on((e) => {
    if (e.type === 'state' && honest.includes(e.entry.id)) changes.push(`${e.entry.id} ${e.from}→${e.entry.state}`);
    if (e.type === 'joined' && !honest.includes(e.entry.id)) births.push(e.entry.id);
  });
  const cell = await forgeCell(o, 'receiver');
  const r = await rogue(t, cell.access, 'flooder');
  const closed = r.nc.closed();
  const seq = new SharedSequence();
  const signer = { id: cell.id, organism: ns.id, key: privateKeyObject(cell.pair.seed), nextSeq: () => seq.next() };
  const real = sealHormone(signer, 'mitosis', {}, 8192);
  const kinds = ['pulse', 'birth', 'vote', 'accuse', 'toxin', 'shutdown', 'gossip'];
  let sent = 0;
  let refusedSends = 0;
  const started = Date.now();
  for (let batch = 0; batch < 10 && !r.nc.isClosed(); batch++) {
    for (let i = 0; i < 10_000; i++) {
      const n = batch * 10_000 + i;
      let bytes: Uint8Array;
      if (n % 4 === 0) bytes = new Uint8Array(randomBytes(1 + (n % 200)));
      else if (n % 4 === 1) bytes = real.slice(0, n % real.length); // truncated
      else if (n % 4 === 2) {
        bytes = real.slice();
        bytes[n % bytes.length]! ^= 1 << (n % 8); // one bit flipped
      } else bytes = real; // replayed
      try {
        r.nc.publish(ns.hormone(kinds[n % kinds.length]!, cell.id), bytes);
        sent++;
      } catch {
        refusedSends++;
      }
    }
    await new Promise((res) => setTimeout(res, 300));
  }
  const done = await within(closed.then(() => 'closed'), 10_000, 'open');
  t.log(`sent ${sent} in ${Date.now() - started} ms, ${refusedSends} refused by the closed connection`);
  t.is(done, 'closed', 'the flooder was cut off the broker');
  // Cut off for its identity: grow revoked it, and the server closed it with an auth error.
  // (nats-server 2.9.10 usually says "User Authentication Revoked"; one CI run in three on
  // 2026-12-07 it said "Authorization Violation" to the same revoked connection.)
  t.true(o.mint!.isRevoked(userPublicKey(cell.pair.pub)), 'grow revoked the flooder\'s identity');
  t.true(r.errors.some((e) => /Revoked|Authorization Violation/i.test(e)), r.errors.join('; '));
  t.true(o.observer.bus.stats().dropped.flooded > 0, 'grow dropped the flood unread past the cutoff');
  // The cells dropped it at the door too.
  const stats = await Promise.all(honest.map(async (id) => openReply<{ hormones: { dropped: Record<string, number> } }>((await o.observer.nc.request(ns.cell(id, 'stats'), new Uint8Array(0), { timeout: 3_000 })).data)));
  t.true(stats.some((s) => (s.hormones.dropped.flooded ?? 0) > 0), 'a cell dropped flooded hormones unread');
  // Two more pulse periods of calm: nobody suspected, nobody dead, nobody regrown.
  await new Promise((res) => setTimeout(res, o.genome.limits.pulseIntervalMs * (o.genome.limits.deadAfterPulses + 2)));
  t.deepEqual(changes, [], 'no honest cell changed state');
  t.deepEqual(births.filter((b) => b !== cell.id), [], 'no cell was regrown');
  t.deepEqual(o.observer.census.living().map((c) => c.id).sort(), [...honest].sort());
});

test.serial('quotas - an inbox past messenger.inboxMaxMessages refuses with MESSAGE_ERR_QUOTA; nothing past the quota is stored, nothing stored is dropped, a resend is still acknowledged', async (t) => {
  const o = await privateOrganism(t, ['messenger.inboxMaxMessages=5']);
  const url = liveReceivers(o)[0]!.url!;
  const alice = await ChatClient.connect(url);
  t.teardown(() => alice.close());
  await registerAccount(alice, 'alice', 'pw-alice-secret', generateIdentity());
  const bob = await ChatClient.connect(url);
  t.teardown(() => bob.close());
  await registerAccount(bob, 'bob', 'pw-bob-secret', generateIdentity());
  bob.close();
  const send = async (msg: string) => {
    try {
      return (await alice.request({ t: 'send', msg, to: 'bob', body: new Uint8Array(64) })) as unknown as { seq: number };
    } catch (e) {
      return String((e as { code?: string }).code);
    }
  };
  const ids = Array.from({ length: 7 }, (_, i) => `quota${i}`.padEnd(16, 'x'));
  const acks = [];
  for (const id of ids.slice(0, 5)) acks.push(await send(id));
  t.true(acks.every((a) => typeof a === 'object' && a.seq > 0), JSON.stringify(acks));
  t.is(await send(ids[5]!), 'MESSAGE_ERR_QUOTA');
  t.is(await send(ids[6]!), 'MESSAGE_ERR_QUOTA');
  // A resend of a stored message is a duplicate, not a new one: acknowledged with its sequence.
  t.is(((await send(ids[0]!)) as { seq: number }).seq, (acks[0] as { seq: number }).seq);
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const jsm = await jetstreamManager(o.observer.nc);
  const subject = `${o.observer.ns.prefix}.inbox.bob`;
  const info = await jsm.streams.info(o.observer.ns.stream('messages'), { subjects_filter: subject });
  t.is(info.state.subjects?.[subject], 5, 'exactly the quota is stored');
});

test.serial('quotas - the messages stream past messenger.storeMaxBytes refuses with STORE_ERR_FULL; every acknowledged message is still stored', async (t) => {
  const o = await privateOrganism(t, ['messenger.storeMaxBytes=1048576']);
  const alice = await ChatClient.connect(liveReceivers(o)[0]!.url!);
  t.teardown(() => alice.close());
  await registerAccount(alice, 'alice', 'pw-alice-secret', generateIdentity());
  const acked: number[] = [];
  let refused = '';
  for (let i = 0; i < 60 && !refused; i++) {
    try {
      acked.push(((await alice.request({ t: 'send', msg: `full${i}`.padEnd(16, 'y'), to: 'alice', body: new Uint8Array(30_000) })) as unknown as { seq: number }).seq);
    } catch (e) {
      refused = String((e as { code?: string }).code);
    }
  }
  t.is(refused, 'STORE_ERR_FULL');
  t.true(acked.length >= 20 && acked.length < 40, `${acked.length} stored before it was full`);
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const info = await (await jetstreamManager(o.observer.nc)).streams.info(o.observer.ns.stream('messages'));
  t.true(info.state.bytes <= 1_048_576, `${info.state.bytes} bytes stored`);
  t.is(info.state.messages, acked.length, 'every acknowledged message is there, nothing more');
});

test.serial('least privilege - a condemned cell\'s identity is revoked on the broker: a forger voted out by its jury is cut off, not only out of the census', async (t) => {
  const o = await privateOrganism(t, ['tissues.receiver.min=2']);
  const made = await o.spawn('receiver', undefined, { fault: 'forger' });
  const cert = await (async () => {
    await o.observer.certs.resolve(made.id);
    return o.observer.certs.certOf(made.id)!;
  })();
  await until(() => o.observer.census.get(made.id)?.state === 'dead', 30_000, `${made.id} condemned`);
  t.is(o.observer.census.get(made.id)?.cause, 'toxin');
  await until(() => o.mint!.isRevoked(userPublicKey(cert.pub)), 5_000, 'its identity revoked');
  await o.revocations!.settled();
  t.true(o.revocations!.stats.pushed >= 1, 'the revocation reached the broker');
  t.is(o.revocations!.stats.pushErrors, 0);
});

test.serial('hormones bind their organism: a captured root shutdown replayed into a second organism sharing the root key is refused there', async (t) => {
  const a = await privateOrganism(t);
  // B: another organism under the very same root key (its state dir gets A's key files).
  const b = await privateOrganism(t, [], (stateB) => {
    mkdirSync(stateB, { recursive: true, mode: 0o700 });
    for (const f of ['root.key', 'root.pub']) copyFileSync(join(a.stateDir, f), join(stateB, f));
  });
  t.deepEqual(Buffer.from(b.rootPub), Buffer.from(a.rootPub), 'one root key');
  // Capture A's root-signed shutdown off A's broker.
  const captured = new Promise<Uint8Array>((resolve) => {
    const sub = a.observer.nc.subscribe(a.observer.ns.hormone('shutdown', 'root'), { callback: (_e, m) => { sub.unsubscribe(); resolve(m.data); } });
  });
  await a.observer.nc.flush();
  a.observer.bus.publish('shutdown', { reason: 'captured by the test' });
  const bytes = await captured;
  const living = b.observer.census.living().map((c) => c.id).sort();
  const before = b.observer.bus.stats().dropped.badSignature;
  // Replayed on B's own root subject (grow's credential may publish there): refused as a bad signature.
  b.observer.nc.publish(b.observer.ns.hormone('shutdown', 'root'), bytes);
  await b.observer.nc.flush();
  await until(() => b.observer.bus.stats().dropped.badSignature > before, 5_000, 'the replay dropped by B');
  await new Promise((r) => setTimeout(r, b.genome.limits.pulseIntervalMs * 4));
  t.deepEqual(b.observer.census.living().map((c) => c.id).sort(), living, 'every cell of B lives on');
  t.is(b.state.state, 'alive');
});

test.serial('least privilege - a cell whose identity is revoked leaves at once: its broker closes its connection and it drains', async (t) => {
  // Revoked: condemned (its lineage too, children never born included) or dead in a way that
  // is no partition. Such a cell can do nothing, and lingered until three pulses had failed
  // (≈ 10 s on a calm stride) or its broker stayed away for brokerLossMs.
  const o = await privateOrganism(t);
  const ns = o.observer.ns;
  const victim = o.observer.census.living().find((c) => c.tissue === 'echo' || c.tissue === 'worker' || c.tissue === 'receiver')!;
  const pub = o.observer.certs.certOf(victim.id)?.pub;
  t.truthy(pub, `the victim ${victim.id}'s certificate is known`);
  // As a host's grow revokes: into the revocation bucket, which every grow folds into the account.
  const revoked = await new Kvm(o.observer.nc).open(ns.bucket(REVOKED_BUCKET));
  const asked = Date.now();
  await revoked.create(victim.id, pack({ user: userPublicKey(pub!), at: Math.floor(asked / 1000) }));
  t.true(await waitGone(victim.pid, 8_000), `${victim.id} exited`);
  t.log(`${victim.id} gone ${Date.now() - asked} ms after its revocation was written`);
  const log = readFileSync(join(o.stateDir, 'logs', `${victim.id}.log`), 'utf8');
  const draining = log.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; detail?: string }).find((l) => l.msg === 'draining');
  t.is(draining?.detail, 'its broker connection closed', 'it drained because its connection closed, not for failed pulses or a broker away');
});
