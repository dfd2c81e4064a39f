/**
 * The messenger's server side with real cells (receivers and workers) on a real
 * nats-server, driven by Node WebSocket clients speaking the documented protocol. Bodies
 * are encrypted by the test clients (AES-256-GCM here; the browser uses @noble) before
 * they are sent, so a scan of the JetStream store finds none of the plaintext.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { createCipheriv, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { connect as connectNats } from '@nats-io/transport-node';
import { natsOptions } from '../../organism/kernel/access.ts';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { decode, encode } from 'msgpackr';
import { jetstreamManager } from '@nats-io/jetstream';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { Organism } from '../../organism/grow/organism.ts';
import { openReply, pack } from '../../organism/kernel/reply.ts';
import { MessengerSubjects } from '../../cells/messenger/subjects.ts';
import { generateIdentity } from '../../client/crypto/envelope.ts';
import { backupKeys, openBackup } from '../../client/crypto/key-backup.ts';
import { formatRecoveryKey, newRecoveryKey, parseRecoveryKey } from '../../client/crypto/recovery-key.ts';
import { KEY_STRETCHING } from '../../client/crypto/opaque-client.ts';
import * as opaque from '@serenity-kit/opaque';
import { Kvm } from '@nats-io/kv';
import { openMessengerStores } from '../../cells/messenger/stores.ts';
import { scryptHasher } from '../../cells/worker/password.ts';
import { logIn, openStoredBackup, registerAccount } from '../../client/app/account.ts';
import { ChatClient, FrameError } from '../helpers/chat-client.ts';
import { ownerStatement } from '../../cells/worker/accounts.ts';
import { ed25519 } from '@noble/curves/ed25519.js';
import { encodeClientFrame, type ServerFrame } from '../../organism/wire/frames.ts';
import { until } from '../helpers/grow.ts';
import { liveReceivers, messengerGenome, startOrganism } from '../helpers/organism.ts';


/** An organism of receivers and workers only, on its own port range, with a cheap scrypt. */
async function messenger(t: ExecutionContext, sets: string[] = [], options: { frontDoor?: boolean } = {}) {
  const { genome, frontPort } = messengerGenome(sets, options);
  const { o, nats } = await startOrganism(t, genome);
  const clients: ChatClient[] = [];
  t.teardown(() => {
    if (!t.passed) t.log(cellLogs(o.stateDir), o.observer.census.list().map((c) => `${c.id} ${c.state} ${c.url} seen ${Date.now() - c.lastSeen} ms ago`));
    for (const c of clients) c.close();
  });
  const pulses: string[] = [];
  o.observer.bus.on((h) => {
    if (h.kind === 'pulse' && (h.body as { tissue: string }).tissue === 'receiver') pulses.push(`${(h.body as { n: number }).n}:${(h.body as { url: string | null }).url}`);
  });
  t.teardown(() => {
    if (!t.passed) t.log(pulses.slice(-12).join(' '));
  });
  await o.waitForPopulation();
  const receivers = () => liveReceivers(o);
  await until(() => receivers().length >= genome.tissues.receiver!.min, 10_000, 'receivers with a URL');
  const first = receivers()[0]!.url!;
  const connect = async (url = first, options: { origin?: string } = {}) => {
    const c = await ChatClient.connect(url, options);
    clients.push(c);
    return c;
  };
  /** A registered (OPAQUE, as the page does), logged-in user on a fresh socket. */
  const user = async (name: string, url?: string) => {
    const c = await connect(url);
    const identity = generateIdentity();
    const r = await registerAccount(c, name, `pw-${name}-secret`, identity);
    return { c, token: r.session.token, identity, exportKey: r.exportKey };
  };
  return { o, nats, genome, receivers, url: first, front: `http://127.0.0.1:${frontPort}`, connect, user, storeDir: join(dirname(nats.configPath), 'jetstream') };
}

/** Warnings and errors of every cell (and their stderr), for a failed test. */
function cellLogs(stateDir: string): string {
  const dir = join(stateDir, 'logs');
  return readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l.length > 0 && (f.endsWith('.stderr.log') || /"level":(4|5)\d/.test(l) || /"msg":"dead"/.test(l))).map((l) => `${f}: ${l.slice(0, 400)}`)).join('\n');
}

const KEY = randomBytes(32);
/** What a client does before sending: the server only ever sees this. */
function seal(text: string): Uint8Array {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', KEY, iv);
  return Buffer.concat([iv, c.update(text, 'utf8'), c.final(), c.getAuthTag()]);
}

const msgId = () => randomBytes(12).toString('base64url');
const code = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    // The server's FrameError, or the client's own (account.ts finds a wrong password itself).
    const c = (e as { code?: unknown }).code;
    return e instanceof FrameError || typeof c === 'string' ? String(c) : String(e);
  }
};

test.serial('messenger - register, log in, publish and fetch keys, search users; a message sent while the recipient is offline is delivered once it logs in, and an ack moves its cursor', async (t) => {
  const m = await messenger(t);
  const alice = await m.user('alice');
  const hello = await alice.c.request({ t: 'hello' });
  t.is(hello.t, 'welcome');
  const x = alice.identity.x25519.publicKey; // published by register.finish
  // bob registers but is not logged in: offline.
  const b0 = await m.connect();
  await registerAccount(b0, 'bob', 'pw-bob-secret', generateIdentity());
  b0.close();
  const keys = await alice.c.request({ t: 'keys.get', users: ['alice', 'nobody'] }) as unknown as { keys: { user: string; x25519: Uint8Array }[] };
  t.deepEqual(keys.keys.map((k) => k.user), ['alice']);
  t.deepEqual(Buffer.from(keys.keys[0]!.x25519), Buffer.from(x));
  const found = await alice.c.request({ t: 'users', query: 'b' }) as unknown as { users: { user: string }[] };
  t.deepEqual(found.users.map((u) => u.user), ['bob']);

  const ids = [msgId(), msgId(), msgId()];
  const seqs: number[] = [];
  for (const [i, msg] of ids.entries()) seqs.push((await alice.c.request({ t: 'send', msg, to: 'bob', body: seal(`offline message ${i}`) }) as unknown as { seq: number }).seq);
  t.true(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'acks carry increasing stream sequences');
  // Resending the same id is acknowledged with the same sequence and stored once.
  t.is((await alice.c.request({ t: 'send', msg: ids[0], to: 'bob', body: seal('offline message 0') }) as unknown as { seq: number }).seq, seqs[0]!);

  const bob = await m.connect();
  const s = (await logIn(bob, 'bob', 'pw-bob-secret')).session;
  await bob.until(() => bob.inbox.length === 3, 5_000);
  t.deepEqual(bob.inbox.map((d) => d.msg), ids);
  t.true(bob.inbox.every((d) => d.from === 'alice' && d.to === 'bob'));
  t.is(bob.duplicates, 0);
  // The receivers count what they delivered and how long it waited (the dashboard plots both).
  const delivered = await Promise.all(m.receivers().map(async (r) => openReply<{ tissueStats: { delivered: number; deliveryP99Ms: number | null } }>((await m.o.observer.nc.request(m.o.observer.ns.cell(r.id, 'stats'), new Uint8Array(0), { timeout: 2_000 })).data).tissueStats));
  t.true(delivered.reduce((n, x) => n + x.delivered, 0) >= 3, 'deliveries counted');
  const p99 = Math.max(...delivered.map((x) => x.deliveryP99Ms ?? -1));
  t.true(p99 >= 0 && p99 < 10_000, `a delivery p99 (${p99} ms) within the 10 s window`);
  await bob.request({ t: 'deliver.ack', seq: bob.inbox[1]!.seq });
  bob.close();
  // A new socket resumes the session from the cursor: only what was not acked comes again.
  const again = await m.connect();
  const w = await again.request({ t: 'hello', session: s.token }) as unknown as { user: string };
  t.is(w.user, 'bob');
  await again.until(() => again.inbox.length === 1, 5_000);
  t.is(again.inbox[0]!.msg, ids[2]!);
  // Logging out ends the session on every socket that uses it (4005), not on the one that asked.
  const third = await m.connect();
  await third.request({ t: 'hello', session: s.token });
  await again.request({ t: 'logout' });
  t.is((await third.closed).code, 4005);
  t.is(await code(again.request({ t: 'send', msg: msgId(), to: 'alice', body: seal('after logout') })), 'AUTH_ERR_REQUIRED');
  t.is(await code(again.request({ t: 'resume', token: s.token })), 'AUTH_ERR_SESSION');
});

test.serial('messenger - a session that expires closes its sockets with 4005', async (t) => {
  const m = await messenger(t, ['messenger.sessionTtlMs=10000']);
  const uma = await m.user('uma');
  const t0 = Date.now();
  const closed = await uma.c.closed;
  t.is(closed.code, 4005);
  t.true(Date.now() - t0 < 11_000);
});

test.serial('messenger - every bad frame gets an error frame with its code, the socket stays usable, and the cell does not crash', async (t) => {
  const m = await messenger(t, ['messenger.maxFrameBytes=4096', 'messenger.maxBodyBytes=2048']);
  const c = await m.connect();
  t.is((await c.raw(Buffer.from([0xc1, 0xff, 0x00]))).code, 'PROTO_ERR_MALFORMED');
  t.is((await c.raw('a text frame')).code, 'PROTO_ERR_MALFORMED');
  t.is((await c.raw(encode({ v: 2, t: 'ping', id: 1 }))).code, 'PROTO_ERR_MALFORMED');
  t.is((await c.raw(encode({ v: 1, t: 'teleport', id: 2 }))).code, 'PROTO_ERR_UNKNOWN_TYPE');
  t.is((await c.raw(encode({ v: 1, t: 'send', id: 3, msg: 'short' }))).code, 'PROTO_ERR_BAD_FIELD');
  t.is((await c.raw(encode({ v: 1, t: 'ping', id: 4, pad: 'x'.repeat(5000) }))).code, 'PROTO_ERR_TOO_LARGE');
  t.is(await code(c.request({ t: 'send', msg: msgId(), to: 'bob', body: seal('before login') })), 'AUTH_ERR_REQUIRED');
  t.is(await code(c.request({ t: 'resume', token: 'not-a-token' })), 'AUTH_ERR_SESSION');
  t.is(await code(registerAccount(c, 'No Spaces', 'long enough', generateIdentity())), 'ACCOUNT_ERR_USERNAME');
  t.is(await code(registerAccount(c, 'carol', 'short', generateIdentity())), 'ACCOUNT_ERR_PASSWORD', 'refused in the client: no server sees a password');
  await registerAccount(c, 'carol', 'long enough', generateIdentity());
  t.is(await code(registerAccount(c, 'carol', 'long enough', generateIdentity())), 'ACCOUNT_ERR_EXISTS');
  t.is(await code(logIn(c, 'carol', 'wrong password')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(logIn(c, 'nobody', 'wrong password')), 'AUTH_ERR_CREDENTIALS');
  // The server's own word on a forged finish (a client that skips OPAQUE's check).
  const started = await c.request<Extract<ServerFrame, { t: 'login.response' }>>({ t: 'login.start', user: 'carol', request: 'AAAA' }).catch((e: unknown) => e);
  t.is((started as { code?: string }).code, 'TISSUE_ERR_BAD_REQUEST', 'a login.start that is not an OPAQUE message');
  t.is(await code(c.request({ t: 'login.finish', user: 'carol', finish: 'AAAA', state: randomBytes(64) })), 'AUTH_ERR_CREDENTIALS', 'a state no worker sealed');
  t.is(await code(c.request({ t: 'login', user: 'carol', password: 'long enough' })), 'AUTH_ERR_CREDENTIALS', 'the password login answers only for accounts from before OPAQUE');
  await logIn(c, 'carol', 'long enough');
  t.is(await code(c.request({ t: 'send', msg: msgId(), to: 'nobody', body: seal('to nobody') })), 'ACCOUNT_ERR_NOT_FOUND');
  t.is(await code(c.request({ t: 'send', msg: msgId(), to: 'carol', body: randomBytes(3000) })), 'PROTO_ERR_TOO_LARGE');
  t.is(await code(c.request({ t: 'deliver.ack', seq: 999_999 })), 'PROTO_ERR_BAD_FIELD');
  // Still usable after all of that.
  t.is((await c.request({ t: 'ping' })).t, 'pong');
  t.is(m.receivers().length, 1, 'the receiver is alive');
  // Every bad frame was counted by code, in the cell's stats.
  const stats = await receiverStats(m);
  t.is(stats.bad.PROTO_ERR_MALFORMED, 3);
  t.is(stats.bad.PROTO_ERR_UNKNOWN_TYPE, 1);
  t.is(stats.bad.PROTO_ERR_BAD_FIELD, 1);
  t.is(stats.bad.PROTO_ERR_TOO_LARGE, 2, 'the frame over maxFrameBytes, and the send whose body is over maxBodyBytes');
  // A client that keeps sending garbage is cut off with 4002.
  const noisy = await m.connect();
  for (let i = 0; i < 40; i++) noisy.ws.send(Buffer.from([0xc1]));
  t.is((await noisy.closed).code, 4002);
});

test.serial('messenger - limits: frames per second, connections per IP, origin', async (t) => {
  const m = await messenger(t, ['messenger.framesPerSecond=20', 'messenger.connectionsPerIp=3']);
  const c = await m.connect();
  const replies = await Promise.all(Array.from({ length: 60 }, () => code(c.request({ t: 'ping' }))));
  t.true(replies.filter((r) => r === 'PROTO_ERR_RATE').length >= 30, `most of a burst of 60 over 20/s is refused (${replies.filter((r) => r === 'PROTO_ERR_RATE').length})`);
  t.true(replies.filter((r) => r === 'resolved').length >= 20, 'the first 20 pass');
  await m.connect();
  await m.connect();
  t.is(await code(m.connect()), 'HTTP_429', 'a fourth socket from one IP is refused');
  t.is(await code(m.connect(m.url, { origin: 'https://evil.example' })), 'HTTP_403', 'a foreign origin is refused');
  t.is(await code(m.connect(m.url, { origin: m.url })), 'HTTP_429', 'its own origin is allowed (and then counted against the IP)');
  const stats = await receiverStats(m);
  t.true(stats.rateLimited >= 30);
  t.deepEqual(stats.refused, { 'Too Many Requests': 2, Forbidden: 1 });
});

test.serial('messenger - delivery waits for a client that reads slowly, and one that stops reading is cut off cleanly (4001) after slowClientMs; nothing stored is lost', async (t) => {
  // The kernel's socket buffers hold megabytes before the receiver's own queue grows: send more than they hold.
  const m = await messenger(t, ['messenger.maxPendingBytes=65536', 'messenger.slowClientMs=1000', 'messenger.framesPerSecond=10000', 'messenger.pageMax=4000']);
  const lee = await m.user('lee');
  const max = await m.user('max');
  // max stops reading: his socket's receive side is paused, so the receiver's buffer fills.
  (max.c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const ids: string[] = [];
  const sending = (async () => {
    for (let i = 0; i < 1500; i++) {
      const msg = msgId();
      ids.push(msg);
      await lee.c.request({ t: 'send', msg, to: 'max', body: randomBytes(30_000) });
    }
  })();
  await sending;
  // The receiver cuts max off; the close reaches him once he reads again.
  await until(async () => (await receiverStats(m)).slowClosed >= 1, 10_000, 'the slow client cut off');
  (max.c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  t.is((await max.c.closed).code, 4001);
  // Everything is still stored: a new socket gets it all, from his cursor.
  const again = await m.connect();
  again.autoAck();
  await again.request({ t: 'hello', session: max.token });
  await again.until(() => new Set([...max.c.inbox, ...again.inbox].map((d) => d.msg)).size === ids.length, 30_000);
  t.deepEqual([...new Set([...max.c.inbox, ...again.inbox].map((d) => d.msg))].sort(), [...ids].sort());
});

test.serial('messenger - healthz and receivers answer over HTTP; the client page is served with a strict CSP', async (t) => {
  const m = await messenger(t);
  const url = m.url;
  const h = await fetch(`${url}/healthz`);
  t.is(h.status, 200);
  t.is(((await h.json()) as { cell: string }).cell, m.receivers()[0]!.id);
  const r = (await (await fetch(`${url}/receivers`)).json()) as { receivers: string[] };
  t.deepEqual(r.receivers, m.receivers().map((e) => e.url).sort());
  const page = await fetch(`${url}/`);
  t.is(page.status, 200);
  t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  t.is((await fetch(`${url}/../../etc/passwd`)).status, 404);
  // A request line no URL parser accepts gets a 400, and the cell lives on.
  const raw = await new Promise<string>((resolve, reject) => {
    const sock = connect(Number(new URL(url).port), '127.0.0.1', () => sock.end('GET //[ HTTP/1.1\r\nHost: x\r\n\r\n'));
    let got = '';
    sock.on('data', (d) => (got += d.toString()));
    sock.on('close', () => resolve(got));
    sock.on('error', reject);
  });
  t.regex(raw, /^HTTP\/1\.1 400/);
  t.is((await fetch(`${url}/healthz`)).status, 200, 'still serving');
});

test.serial('messenger - no plaintext marker reaches the JetStream store', async (t) => {
  const m = await messenger(t);
  const a = await m.user('dora');
  await m.user('eve');
  const marker = `PLAINTEXT-MARKER-${randomBytes(6).toString('hex')}`;
  for (let i = 0; i < 20; i++) await a.c.request({ t: 'send', msg: msgId(), to: 'eve', body: seal(`${marker} #${i}`) });
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(m.storeDir);
  t.true(files.length > 0, 'the store has files');
  const hits = files.filter((f) => readFileSync(f).includes(marker));
  t.deepEqual(hits, []);
  t.true(files.some((f) => readFileSync(f).includes('Cm-From')), 'the scan reads the stored messages (their headers are there)');
});

test.serial('messenger - kill -9 of the recipient\'s receiver in the middle of 1,000 messages: the client fails over and every message arrives exactly once', async (t) => {
  const m = await messenger(t, ['tissues.receiver.min=2', 'tissues.receiver.max=2', 'messenger.framesPerSecond=10000']);
  await until(() => m.receivers().length === 2, 10_000, 'two receivers');
  const [a, b] = m.receivers();
  const ann = await m.user('ann', b!.url!);
  const ben = await m.user('ben', a!.url!);
  ben.c.autoAck();
  const sent: string[] = [];
  const acked = new Set<string>();
  const TOTAL = 1_000;
  let killed = false;
  const sending = (async () => {
    // A window of 16 sends in flight, as a client that pipelines.
    let next = 0;
    const lane = async () => {
      while (next < TOTAL) {
        const i = next++;
        const msg = `m${String(i).padStart(6, '0')}-${randomBytes(4).toString('hex')}`;
        sent.push(msg);
        const r = (await ann.c.request({ t: 'send', msg, to: 'ben', body: seal(`message ${i}`) })) as unknown as { msg: string };
        acked.add(r.msg);
      }
    };
    await Promise.all(Array.from({ length: 16 }, lane));
  })();
  await ben.c.until(() => ben.c.inbox.length >= 300, 20_000);
  process.kill(a!.pid, 'SIGKILL');
  killed = true;
  const closed = await ben.c.closed;
  t.not(closed.code, 1000, 'the socket broke');
  // The client knows the other receivers; it resumes its session there.
  const again = await m.connect(b!.url!);
  again.autoAck();
  const w = (await again.request({ t: 'hello', session: ben.token })) as unknown as { user: string };
  t.is(w.user, 'ben');
  await sending;
  t.is(acked.size, TOTAL, 'every send was acknowledged');
  const received = () => new Set([...ben.c.inbox, ...again.inbox].map((d) => d.msg));
  await again.until(() => received().size >= TOTAL, 30_000);
  t.true(killed);
  t.deepEqual([...received()].sort(), [...sent].sort(), 'exactly the sent messages, each once at the application level');
  const onWire = ben.c.inbox.length + again.inbox.length;
  t.log(`${onWire - TOTAL} duplicates on the wire after the failover (dropped by msg id), ${ben.c.inbox.length} delivered before the kill`);
  // Homeostasis regrows the receiver that was killed.
  await until(() => m.receivers().length === 2 && !m.receivers().some((r) => r.id === a!.id), 15_000, 'a replacement receiver');
});

interface ReceiverStats {
  connections: number;
  bad: Record<string, number>;
  rateLimited: number;
  slowClosed: number;
  refused: Record<string, number>;
}

/** The first receiver's own counters, from its cell's `stats` reply. */
async function receiverStats(m: { o: Organism; receivers(): CensusEntry[] }): Promise<ReceiverStats> {
  const reply = await m.o.observer.nc.request(m.o.observer.ns.cell(m.receivers()[0]!.id, 'stats'), new Uint8Array(0), { timeout: 2_000 });
  return openReply<{ tissueStats: ReceiverStats }>(reply.data).tissueStats;
}

/** The cell answering on a URL's /healthz, or undefined if nothing answers. */
async function holder(url: string): Promise<string | undefined> {
  try {
    return ((await (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(300) })).json()) as { cell: string }).cell;
  } catch {
    return undefined;
  }
}

test.serial('messenger - the front door is held by one receiver; when it dies another takes it within a second, and a draining receiver sends its clients elsewhere ("moved")', async (t) => {
  const m = await messenger(t, ['tissues.receiver.min=2', 'tissues.receiver.max=2'], { frontDoor: true });
  await until(() => m.receivers().length === 2, 10_000, 'two receivers');
  let first: string | undefined;
  await until(async () => (first = await holder(m.front)) !== undefined, 5_000, 'the front door');
  const ids = m.receivers().map((r) => r.id);
  t.true(ids.includes(first!), 'a receiver of ours holds it');
  // Through the front door, the protocol works like on any receiver.
  const viaFront = await m.user('fay', m.front);
  t.is((await viaFront.c.request({ t: 'ping' })).t, 'pong');

  // kill -9 the holder: the other receiver takes the port over.
  const victim = m.receivers().find((r) => r.id === first)!;
  const survivor = m.receivers().find((r) => r.id !== first)!;
  process.kill(victim.pid, 'SIGKILL');
  const killedAt = Date.now();
  let next: string | undefined;
  await until(async () => (next = await holder(m.front)) === survivor.id, 5_000, 'the front door taken over');
  const takeover = Date.now() - killedAt;
  t.log(`front door taken over in ${takeover} ms`);
  t.true(takeover < 1_500, `taken over in ${takeover} ms`);
  t.is(next, survivor.id);
  const closed = await viaFront.c.closed;
  t.not(closed.code, 4000, 'a killed receiver could not say goodbye');

  // A draining receiver (SIGTERM) sends "moved" with the live receivers, then closes 4000.
  await until(() => m.receivers().length === 2 && m.receivers().every((r) => r.id !== victim.id), 15_000, 'the killed receiver regrown');
  const other = m.receivers().find((r) => r.id !== survivor.id)!;
  // (The replacement may have taken the dead one's port: compare whole lists, not one URL.)
  const live = () => m.receivers().map((r) => r.url).sort().join(' ');
  await until(async () => ((await fetch(`${survivor.url}/receivers`).then((r) => r.json())) as { receivers: string[] }).receivers.join(' ') === live(), 5_000, 'the survivor to list the same live receivers');
  const c = await m.connect(survivor.url!);
  await until(async () => (await holder(m.front)) === survivor.id, 5_000, 'the survivor holding the door');
  const viaDoor = await m.connect(m.front);
  process.kill(survivor.pid, 'SIGTERM');
  const bye = await c.closed;
  t.is(bye.code, 4000);
  t.is((await viaDoor.closed).code, 4000, 'a client that came in through the front door is moved too');
  t.true(viaDoor.frames.some((f) => f.t === 'moved'));
  const moved = c.frames.find((f) => f.t === 'moved') as { receivers: string[] } | undefined;
  t.truthy(moved, 'a moved frame came before the close');
  t.deepEqual(moved!.receivers, [other.url], 'it names the other live receiver, not itself');
  // Handed over: the other receiver, or the survivor's replacement if it was born first.
  const drainedAt = Date.now();
  let after: string | undefined;
  await until(async () => (after = await holder(m.front)) !== undefined && after !== survivor.id, 5_000, 'the front door handed over on drain');
  t.log(`front door handed over ${Date.now() - drainedAt} ms after the drain, to ${after}`);
  // It may be the survivor's brand-new replacement, which the census lists a moment later.
  await until(() => m.receivers().some((r) => r.id === after), 5_000, `${after} to be a live receiver of ours`);
  t.not(after, survivor.id);
});

test.serial('messenger - every client that said hello is told when a receiver is born or dies ("receivers" push); one that did not is not', async (t) => {
  const m = await messenger(t, ['tissues.receiver.min=1', 'tissues.receiver.max=3']);
  const a = m.receivers()[0]!;
  const told = await m.connect(a.url!);
  const welcome = await told.request<Extract<ServerFrame, { t: 'welcome' }>>({ t: 'hello' });
  t.deepEqual(welcome.receivers, [a.url]);
  const silent = await m.connect(a.url!);
  const pushes = () => told.frames.filter((f): f is Extract<ServerFrame, { t: 'receivers' }> => f.t === 'receivers').map((f) => [...f.receivers].sort().join(' '));

  // Born: the new receiver's URL is pushed, without the client asking.
  const born = await m.o.spawn('receiver');
  let url: string | undefined;
  await until(() => (url = m.receivers().find((r) => r.id === born.id)?.url ?? undefined) !== undefined, 10_000, 'the new receiver listening');
  const both = [a.url!, url!].sort().join(' ');
  await until(() => pushes().includes(both), 5_000, `a push of both receivers (pushes: ${JSON.stringify(pushes())})`);

  // Died (kill -9, no goodbye): the census declares it dead, and the list without it is pushed.
  process.kill(born.pid, 'SIGKILL');
  await until(() => pushes().at(-1) === a.url, 10_000, `a push without the dead receiver (pushes: ${JSON.stringify(pushes())})`);
  t.true(pushes().indexOf(both) < pushes().lastIndexOf(a.url!), 'born, then gone, in that order');
  t.false(silent.frames.some((f) => f.t === 'receivers'), 'a socket that never said hello is not pushed to');
  // The push changes nothing else: the socket still answers.
  t.is((await told.request({ t: 'ping' })).t, 'pong');
});

test.serial('messenger - group sends store one copy per member and ack once every copy is stored; history pages an inbox from a cursor; receipts and deletions reach the other side', async (t) => {
  const m = await messenger(t, ['messenger.pageMax=8']);
  const gil = await m.user('gil');
  const hal = await m.user('hal');
  hal.c.autoAck();
  const ivy = await m.user('ivy');
  // Group: one ciphertext per member; the ack lists each copy's sequence.
  const gmsg = msgId();
  const ack = (await gil.c.request({ t: 'send.group', msg: gmsg, group: 'group-0001', copies: [{ to: 'hal', body: seal('group hi hal') }, { to: 'ivy', body: seal('group hi ivy') }] })) as unknown as { seq: number; seqs: number[] };
  t.is(ack.seqs.length, 2);
  t.is(ack.seq, ack.seqs[0]!);
  await hal.c.until(() => hal.c.inbox.some((d) => d.msg === gmsg), 5_000);
  await ivy.c.until(() => ivy.c.inbox.some((d) => d.msg === gmsg), 5_000);
  t.is(hal.c.inbox.find((d) => d.msg === gmsg)!.group, 'group-0001');
  // The same group send again (a retry after a lost ack) stores nothing new.
  const again = (await gil.c.request({ t: 'send.group', msg: gmsg, group: 'group-0001', copies: [{ to: 'hal', body: seal('group hi hal') }, { to: 'ivy', body: seal('group hi ivy') }] })) as unknown as { seqs: number[] };
  t.deepEqual(again.seqs, ack.seqs);
  t.is((await gil.c.raw(encode({ v: 1, t: 'send.group', id: 999, msg: msgId(), group: 'group-0001', copies: [{ to: 'hal', body: seal('x') }, { to: 'hal', body: seal('y') }] }))).code, 'PROTO_ERR_BAD_FIELD', 'a member twice');

  // History: 12 more to hal, from two senders; pages of at most 5, oldest first, from a cursor.
  for (let i = 0; i < 6; i++) await gil.c.request({ t: 'send', msg: `gil-${String(i).padStart(6, '0')}`, to: 'hal', body: seal(`g${i}`) });
  for (let i = 0; i < 6; i++) await ivy.c.request({ t: 'send', msg: `ivy-${String(i).padStart(6, '0')}`, to: 'hal', body: seal(`i${i}`) });
  const pages: string[][] = [];
  let after = 0;
  for (let more = true; more; ) {
    const page = (await hal.c.request({ t: 'history', after, limit: 5 })) as unknown as { messages: { seq: number; msg: string }[]; more: boolean };
    pages.push(page.messages.map((d) => d.msg));
    t.true(page.messages.every((d, i) => i === 0 || d.seq > page.messages[i - 1]!.seq), 'oldest first');
    after = page.messages.at(-1)?.seq ?? after;
    more = page.more;
    t.true(pages.length < 10, 'paging ends');
  }
  t.deepEqual(pages.map((p) => p.length), [5, 5, 3]);
  t.is(pages.flat()[0], gmsg);
  const fromIvy = (await hal.c.request({ t: 'history', with: 'ivy', limit: 8 })) as unknown as { messages: { from: string }[]; more: boolean };
  t.is(fromIvy.messages.length, 6);
  t.true(fromIvy.messages.every((d) => d.from === 'ivy'));
  t.false(fromIvy.more);
  t.deepEqual(((await ivy.c.request({ t: 'history', after: 1e12 })) as unknown as { messages: unknown[] }).messages, [], 'nothing after the end');

  // A read receipt reaches the sender's live socket.
  const halSeq = hal.c.inbox.find((d) => d.msg === gmsg)!.seq;
  t.is(await code(ivy.c.request({ t: 'read', msg: gmsg, from: 'gil', seq: halSeq })), 'MESSAGE_ERR_FORBIDDEN', "a receipt for another user's copy");
  t.is(await code(hal.c.request({ t: 'read', msg: gmsg, from: 'ivy', seq: halSeq })), 'MESSAGE_ERR_NOT_FOUND', 'a receipt to someone who did not send it');
  await hal.c.request({ t: 'read', msg: gmsg, from: 'gil', seq: halSeq });
  await gil.c.until(() => gil.c.frames.some((f) => f.t === 'receipt' && f.msg === gmsg && f.by === 'hal'), 5_000);

  // Delete for everyone: only the sender may, and each copy goes from the store.
  const halCopy = hal.c.inbox.find((d) => d.msg === gmsg)!;
  t.is(await code(hal.c.request({ t: 'delete', msg: gmsg, scope: 'everyone', seqs: ack.seqs })), 'MESSAGE_ERR_FORBIDDEN', 'not the sender');
  t.is(await code(ivy.c.request({ t: 'delete', msg: gmsg, scope: 'me', seqs: [halCopy.seq] })), 'MESSAGE_ERR_FORBIDDEN', "another user's inbox");
  t.is(await code(ivy.c.request({ t: 'delete', msg: msgId(), scope: 'me', seqs: [halCopy.seq] })), 'MESSAGE_ERR_NOT_FOUND', 'the id does not match');
  await gil.c.request({ t: 'delete', msg: gmsg, scope: 'everyone', seqs: ack.seqs });
  await ivy.c.until(() => ivy.c.frames.some((f) => f.t === 'deleted' && f.msg === gmsg && f.by === 'gil'), 5_000);
  const afterDelete = (await hal.c.request({ t: 'history', limit: 8 })) as unknown as { messages: { msg: string }[] };
  t.false(afterDelete.messages.some((d) => d.msg === gmsg), 'gone from the store');
  // Delete for me: hal removes one of ivy's messages from his own inbox.
  const one = hal.c.inbox.find((d) => d.msg === 'ivy-000000') ?? (await hal.c.until(() => hal.c.inbox.some((d) => d.msg === 'ivy-000000'), 5_000), hal.c.inbox.find((d) => d.msg === 'ivy-000000'))!;
  await hal.c.request({ t: 'delete', msg: 'ivy-000000', scope: 'me', seqs: [one.seq] });
  const mine = (await hal.c.request({ t: 'history', with: 'ivy', limit: 8 })) as unknown as { messages: { msg: string }[] };
  t.is(mine.messages.length, 5);
});

test.serial('messenger - deleting an account removes the account, its keys, its sessions and its stored messages', async (t) => {
  const m = await messenger(t);
  const joe = await m.user('joe');
  const kim = await m.user('kim');
  for (let i = 0; i < 5; i++) await joe.c.request({ t: 'send', msg: msgId(), to: 'kim', body: seal(`for kim ${i}`) });
  const jsm = await jetstreamManager(m.o.observer.nc);
  const stream = m.o.observer.ns.stream('messages');
  const kimsInbox = new MessengerSubjects(m.o.observer.ns).inbox('kim');
  const inKim = async () => (await jsm.streams.info(stream, { subjects_filter: kimsInbox })).state.subjects?.[kimsInbox] ?? 0;
  t.is(await inKim(), 5);
  // A session alone (a thief's) deletes nothing: it takes the grant of a login just made.
  t.is(await code(kim.c.request({ t: 'account.delete', grant: randomBytes(32).toString('base64url') })), 'AUTH_ERR_PROOF');
  t.is(await code(kim.c.request({ t: 'account.delete', grant: joe.token })), 'AUTH_ERR_PROOF', 'a session token is not a grant');
  const kim2 = await m.connect();
  await kim2.request({ t: 'hello', session: kim.token });
  t.is((await logIn(await m.connect(), 'kim', 'pw-kim-secret')).session.grant, undefined, 'no grant unless asked for');
  const { grant } = (await logIn(await m.connect(), 'kim', 'pw-kim-secret', { grant: true })).session;
  t.is(await code(joe.c.request({ t: 'account.delete', grant: grant! })), 'AUTH_ERR_PROOF', "kim's grant does not delete joe");
  await kim.c.request({ t: 'account.delete', grant: grant! });
  t.is((await kim.c.closed).code, 4004);
  t.is((await kim2.closed).code, 4004, "the user's other sockets end too");
  t.is(await inKim(), 0, 'the inbox is purged');
  t.deepEqual(((await joe.c.request({ t: 'keys.get', users: ['kim'] })) as unknown as { keys: unknown[] }).keys, [], 'keys gone');
  t.is(await code(joe.c.request({ t: 'send', msg: msgId(), to: 'kim', body: seal('too late') })), 'ACCOUNT_ERR_NOT_FOUND');
  const c = await m.connect();
  t.is(await code(c.request({ t: 'resume', token: kim.token })), 'AUTH_ERR_SESSION', 'sessions gone');
  t.is(await code(logIn(c, 'kim', 'pw-kim-secret')), 'AUTH_ERR_CREDENTIALS', 'account gone');
  await registerAccount(c, 'kim', 'a-new-owner', generateIdentity());
  t.is(await code(c.request({ t: 'resume', token: kim.token })), 'AUTH_ERR_SESSION', "the old token does not open the name's new account");
});

test.serial('messenger - logins and registrations from one address are limited organism-wide, before any OPAQUE work', async (t) => {
  // A day-long window: the counter is a fixed window (floor(now / window)), and a test that
  // straddled a minute boundary would start counting again half way (seen once in CI).
  const m = await messenger(t, ['messenger.loginAttemptsPerIp=6', 'messenger.loginWindowMs=86400000']);
  const c = await m.connect();
  // register.start, register.finish and login.start count (login.finish finishes a counted attempt).
  await registerAccount(c, 'ned', 'pw-ned-secret', generateIdentity()); // 1, 2
  await logIn(c, 'ned', 'pw-ned-secret'); // 3
  t.is(await code(logIn(c, 'ned', 'wrong-password')), 'AUTH_ERR_CREDENTIALS'); // 4
  await registerAccount(c, 'ola', 'pw-ola-secret', generateIdentity()); // 5, 6
  t.is(await code(registerAccount(c, 'pat', 'pw-pat-secret', generateIdentity())), 'AUTH_ERR_RATE_LIMITED');
  t.is(await code(logIn(c, 'ned', 'pw-ned-secret')), 'AUTH_ERR_RATE_LIMITED', 'even with the right password');
  // A second receiver socket is the same address: the budget is organism-wide.
  const d = await m.connect();
  t.is(await code(logIn(d, 'ola', 'pw-ola-secret')), 'AUTH_ERR_RATE_LIMITED');
});

test.serial('messenger - presence is merged across a user\'s sockets and receivers, goes only to the user\'s contacts, and a dead receiver takes its users offline', async (t) => {
  const m = await messenger(t, ['tissues.receiver.min=2', 'tissues.receiver.max=2']);
  await until(() => m.receivers().length === 2, 10_000, 'two receivers');
  const [r1, r2] = m.receivers();
  const presence = (c: ChatClient, user: string) => c.frames.filter((f): f is Extract<typeof f, { t: 'presence' }> => f.t === 'presence' && f.user === user).map((f) => f.online);
  const una = await m.user('una', r1!.url!);
  await una.c.request({ t: 'contacts.set', users: ['vic'] }); // vic may see una; wes may not
  const vic = await m.user('vic', r1!.url!);
  const wes = await m.user('wes', r2!.url!);
  await vic.c.until(() => presence(vic.c, 'una').length === 1, 5_000);
  t.deepEqual(presence(vic.c, 'una'), [true], 'told at login that una is online');
  // una's second socket, on the other receiver; then the first goes: still online.
  const una2 = await m.connect(r2!.url!);
  await una2.request({ t: 'hello', session: una.token });
  una.c.close();
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(presence(vic.c, 'una'), [true], 'one socket left: no change');
  // kill -9 the receiver holding una's last socket: una goes offline for vic.
  process.kill(r2!.pid, 'SIGKILL');
  await vic.c.until(() => presence(vic.c, 'una').length === 2, 10_000);
  t.deepEqual(presence(vic.c, 'una'), [true, false]);
  // una comes back; vic hears it. wes, not una's contact, never heard a thing.
  const una3 = await m.connect(r1!.url!);
  await una3.request({ t: 'hello', session: una.token });
  await vic.c.until(() => presence(vic.c, 'una').length === 3, 5_000);
  t.deepEqual(presence(vic.c, 'una'), [true, false, true]);
  t.deepEqual(presence(wes.c, 'una'), []);
  // Adding wes to the list tells wes at once (wes's socket was on the killed receiver: a new one).
  const wes2 = await m.connect(r1!.url!);
  await wes2.request({ t: 'hello', session: wes.token });
  await una3.request({ t: 'contacts.set', users: ['vic', 'wes'] });
  await wes2.until(() => presence(wes2, 'una').length === 1, 5_000);
  t.deepEqual(presence(wes2, 'una'), [true]);
  // una logs out everywhere: both contacts hear offline.
  una3.close();
  await vic.c.until(() => presence(vic.c, 'una').length === 4, 5_000);
  await wes2.until(() => presence(wes2, 'una').length === 2, 5_000);
  t.is(presence(vic.c, 'una').at(-1), false);
});

test.serial('messenger - the key backup stored at registration opens on another browser with the login\'s export key; replacing it needs the owner; it goes with the account', async (t) => {
  const m = await messenger(t);
  const viv = await m.user('viv');
  // "Another browser": a new socket, a new login, the same password.
  const other = await m.connect();
  const login = await logIn(other, 'viv', 'pw-viv-secret', { grant: true });
  t.deepEqual(login.exportKey, viv.exportKey, 'the export key is the same at every login with the password');
  const opened = await openStoredBackup(other, 'viv', login.exportKey);
  t.deepEqual(opened.ed25519.secretKey, viv.identity.ed25519.secretKey);
  t.deepEqual(opened.x25519.secretKey, viv.identity.x25519.secretKey);
  t.is(await code(m.connect().then((c) => c.request({ t: 'keys.backup.get' }))), 'AUTH_ERR_REQUIRED', 'only for the logged-in user');
  // A thief with viv's session cannot replace the backup (or the keys): it takes the owner.
  const thief = await m.connect();
  await thief.request({ t: 'hello', session: viv.token });
  const junk = randomBytes(106);
  t.is(await code(thief.request({ t: 'keys.backup.put', blob: junk })), 'AUTH_ERR_PROOF');
  t.is(await code(thief.request({ t: 'keys.publish', x25519: randomBytes(32), ed25519: randomBytes(32) })), 'AUTH_ERR_PROOF');
  t.is(await code(thief.request({ t: 'keys.backup.put', blob: junk, sig: randomBytes(64), at: Date.now() })), 'AUTH_ERR_PROOF', 'a signature by any other key');
  // The owner: a signature by the current identity key over the owner statement, once.
  const at = Date.now();
  const statement = ownerStatement('keys.backup.put', 'viv', at, junk);
  const sig = ed25519.sign(statement, viv.identity.ed25519.secretKey);
  await viv.c.request({ t: 'keys.backup.put', blob: junk, sig, at });
  t.is(await code(thief.request({ t: 'keys.backup.put', blob: junk, sig, at })), 'AUTH_ERR_PROOF', 'a captured statement is not replayed');
  // Or the grant of a fresh login (used once), as for a new identity after a lost backup.
  const fresh = generateIdentity();
  await other.request({ t: 'keys.publish', x25519: fresh.x25519.publicKey, ed25519: fresh.ed25519.publicKey, grant: login.session.grant! });
  t.is(await code(other.request({ t: 'keys.backup.put', blob: junk, grant: login.session.grant! })), 'AUTH_ERR_PROOF', 'a grant is used once');
  const keys = (await viv.c.request({ t: 'keys.get', users: ['viv'] })) as unknown as { keys: { ed25519: Uint8Array }[] };
  t.deepEqual(new Uint8Array(keys.keys[0]!.ed25519), fresh.ed25519.publicKey);
  const { grant } = (await logIn(other, 'viv', 'pw-viv-secret', { grant: true })).session;
  await other.request({ t: 'account.delete', grant: grant! });
  const again = await m.connect();
  await registerAccount(again, 'viv', 'a-new-owner', generateIdentity());
  const blob = ((await again.request({ t: 'keys.backup.get' })) as unknown as { blob: Uint8Array }).blob;
  t.throws(() => openBackup(blob, 'viv', { mode: 'password', exportKey: viv.exportKey }), undefined, "the old account's secret does not open the new account's backup");
});

test.serial('messenger - kill -9 of the only worker: requests made while it is regrown wait for the new one instead of failing (no responders is retried, never a timeout)', async (t) => {
  const m = await messenger(t, ['messenger.workerWaitMs=20000']);
  const ann = await m.user('ann');
  const worker = m.o.observer.census.living().find((c) => c.tissue === 'worker' && c.state === 'alive');
  t.truthy(worker?.pid);
  const diedAt = Date.now();
  process.kill(worker!.pid!, 'SIGKILL');
  // The broker must first see the socket close; a request routed to the dead one would time out.
  await sleep(300);
  // Straight after the kill no worker listens: these find no responders and wait for the regrown one.
  const [users, reg] = await Promise.all([
    ann.c.request({ t: 'users', query: 'a' }),
    m.connect().then((c) => registerAccount(c, 'bea', 'pw-bea-secret', generateIdentity())),
  ]);
  t.log(`answered ${Date.now() - diedAt} ms after the kill`);
  t.true((users as unknown as { users: { user: string }[] }).users.some((u) => u.user === 'ann'));
  t.is(reg.session.user, 'bea');
  const regrown = m.o.observer.census.living().filter((c) => c.tissue === 'worker' && c.state === 'alive');
  t.true(regrown.length >= 1 && regrown.every((c) => c.id !== worker!.id), 'a new worker answered');
});

test.serial('messenger - with no worker for workerWaitMs a request fails with TISSUE_ERR_UNAVAILABLE, and the socket stays usable', async (t) => {
  const m = await messenger(t, ['messenger.workerWaitMs=300', 'limits.regrowBackoffMs=20000', 'limits.regrowBackoffMaxMs=20000']);
  const c = await m.connect();
  const worker = m.o.observer.census.living().find((e) => e.tissue === 'worker' && e.state === 'alive');
  process.kill(worker!.pid!, 'SIGKILL');
  await sleep(300);
  t.is(await code(registerAccount(c, 'cat', 'pw-cat-secret', generateIdentity())), 'TISSUE_ERR_UNAVAILABLE');
  t.is(await code(c.request({ t: 'keys.backup.get' })), 'AUTH_ERR_REQUIRED', 'the socket still answers');
});

test.serial('messenger - kill -9 of the broker and a restart: a logged-in socket keeps receiving without reconnecting, nothing lost (its delivery restarts on the new server)', async (t) => {
  const m = await messenger(t);
  const alice = await m.user('alice');
  const bob = await m.user('bob');
  await bob.c.request({ t: 'hello', session: bob.token });
  bob.c.autoAck();
  await alice.c.request({ t: 'send', msg: msgId(), to: 'bob', body: seal('before') });
  await bob.c.until(() => bob.c.inbox.length === 1, 5_000);
  await m.nats.crash();
  await new Promise((r) => setTimeout(r, 1_000));
  await m.nats.restart();
  // Sent until acknowledged (the receiver's JetStream comes back a moment after the broker).
  const sent: string[] = [];
  for (let i = 0; i < 5; i++) {
    const id = msgId();
    await until(async () => (await code(alice.c.request({ t: 'send', msg: id, to: 'bob', body: seal(`after ${i}`) }))) === 'resolved', 15_000, `send ${i} acknowledged`);
    sent.push(id);
  }
  await bob.c.until(() => bob.c.inbox.length === 6, 15_000);
  t.deepEqual(bob.c.inbox.slice(1).map((d) => d.msg), sent, 'every message after the restart, in order, on the same socket');
  t.is(bob.c.duplicates, 0);
  t.is(bob.c.ws.readyState, bob.c.ws.OPEN, 'bob never had to reconnect');
});

test.serial('messenger - attacker: the password crosses no socket and no NATS subject, and what the server stores and sees opens the key backup only by guessing the password, one Argon2id run per guess', async (t) => {
  const m = await messenger(t);
  const password = 'correct horse battery staple ✓';
  const forms = [Buffer.from(password), Buffer.from(password.normalize('NFD')), Buffer.from(Buffer.from(password).toString('base64')), Buffer.from(Buffer.from(password).toString('base64url')), Buffer.from(Buffer.from(password).toString('hex'))];
  const carries = (bytes: Uint8Array) => forms.some((f) => Buffer.from(bytes).includes(f));
  // A worker answers before the firehose opens: a '>' subscriber is a responder to every
  // subject, so a request that would find no worker (and be retried) waits out its whole
  // timeout instead (twice in CI, at the first register-start).
  await until(async () => (await m.o.observer.nc.request(m.o.observer.ns.tissue('worker', 'users'), pack({ query: 'a', limit: 1 }), { timeout: 2_000 }).then(() => true, () => false)), 15_000, 'a worker answering');
  // Everything on the broker, as a cell holding the broker token would see it: on a
  // connection of its own, so the firehose never shares one with the organism's observer.
  const nc = await connectNats(natsOptions(m.o.access, 'attacker'));
  t.teardown(() => nc.close());
  const seen: Uint8Array[] = [];
  nc.subscribe('>', {
    callback: (_e, msg) => {
      seen.push(msg.data);
      if (msg.headers) seen.push(Buffer.from(msg.headers.toString()));
    },
  });
  await nc.flush();
  // Every frame the client sends, encoded as it goes out.
  const c = await m.connect();
  const frames: Uint8Array[] = [];
  const spy = { request: (f: Record<string, unknown>) => (frames.push(encodeClientFrame({ v: 1, id: 1, ...f } as never)), c.request(f)) };
  const identity = generateIdentity();
  await registerAccount(spy, 'zoe', password, identity);
  const login = await logIn(spy, 'zoe', password);
  t.is(await code(logIn(spy, 'zoe', `${password}!`)), 'AUTH_ERR_CREDENTIALS');
  await nc.flush();
  t.true(frames.length >= 5 && seen.length > 10, `${frames.length} frames, ${seen.length} NATS messages looked at`);
  t.deepEqual(frames.filter(carries).length, 0, 'no frame the page sends carries the password');
  t.deepEqual(seen.filter(carries).length, 0, 'no NATS message carries it');

  // What the server stores: the OPAQUE setup secret and record, the backup. Nothing it holds or saw is the key.
  const kvm = new Kvm(nc);
  const accounts = await kvm.open(m.o.observer.ns.bucket('accounts'));
  const setup = (decode((await accounts.get('opaque.setup'))!.value) as { setup: string }).setup;
  const record = (decode((await accounts.get('u.zoe'))!.value) as { v: number; opaque: string });
  t.is(record.v, 2);
  const blob = ((await c.request({ t: 'keys.backup.get' })) as unknown as { blob: Uint8Array }).blob;
  const b64 = (s: string) => Buffer.from(s, 'base64url');
  const candidates = [b64(setup), b64(record.opaque), ...seen.filter((x) => x.length >= 32)];
  const opens = candidates.filter((k) => {
    try {
      openBackup(blob, 'zoe', { mode: 'password', exportKey: new Uint8Array(k.subarray(0, 64)) });
      return true;
    } catch {
      return false;
    }
  });
  t.is(opens.length, 0, `none of ${candidates.length} stored or seen byte strings opens the backup`);
  // Holding the setup and the record, the server can guess offline — at one Argon2id run per guess (no precomputation: the OPRF key is per user).
  await opaque.ready;
  const guess = (pw: string) => {
    const started = opaque.client.startLogin({ password: pw });
    const server = opaque.server.startLogin({ serverSetup: setup, userIdentifier: 'zoe', registrationRecord: record.opaque, startLoginRequest: started.startLoginRequest });
    return opaque.client.finishLogin({ clientLoginState: started.clientLoginState, loginResponse: server.loginResponse, password: pw, keyStretching: { 'argon2id-custom': { ...KEY_STRETCHING['argon2id-custom'] } } });
  };
  const t0 = performance.now();
  for (const wrong of ['123456', 'password', 'correct horse battery staple']) t.is(guess(wrong), undefined);
  t.log(`an offline guess costs ${((performance.now() - t0) / 3).toFixed(0)} ms of Argon2id here (64 MiB, 3 passes)`);
  const right = guess(password);
  t.truthy(right, 'the right guess opens it: the backup is as strong as the password against a server that holds its setup secret');
  t.deepEqual(openBackup(blob, 'zoe', { mode: 'password', exportKey: b64(right!.exportKey) }).ed25519.publicKey, identity.ed25519.publicKey);
  t.deepEqual(b64(right!.exportKey), Buffer.from(login.exportKey));
});

test.serial('messenger - a recovery-key backup opens with the recovery key only: not with the password, so not by any guess of it', async (t) => {
  const m = await messenger(t);
  const c = await m.connect();
  const identity = generateIdentity();
  const recoveryKey = newRecoveryKey();
  const r = await registerAccount(c, 'rey', 'pw-rey-secret', identity, recoveryKey);
  const other = await m.connect();
  const login = await logIn(other, 'rey', 'pw-rey-secret');
  t.deepEqual(login.exportKey, r.exportKey);
  t.is(await code(openStoredBackup(other, 'rey', login.exportKey)), 'CLIENT_ERR_RECOVERY_KEY', 'the password alone does not open it');
  t.is(await code(openStoredBackup(other, 'rey', login.exportKey, async () => newRecoveryKey())), 'CLIENT_ERR_RECOVERY_BAD');
  const typed = formatRecoveryKey(recoveryKey).toUpperCase().replace(/-/g, ' ');
  const opened = await openStoredBackup(other, 'rey', login.exportKey, async () => parseRecoveryKey(typed));
  t.deepEqual(opened.ed25519.secretKey, identity.ed25519.secretKey);
});

test.serial('messenger - an account from before OPAQUE: login.start says AUTH_ERR_LEGACY, nothing is sent unless the person agrees, then one password login upgrades it for good', async (t) => {
  const m = await messenger(t);
  // An account as a v1 organism left it: a scrypt hash, keys, a v1 (scrypt-sealed) backup.
  const stores = await openMessengerStores(m.o.observer.nc, m.o.observer.ns);
  const identity = generateIdentity();
  const password = 'pw-old-timer';
  await stores.accounts.put('u.old', encode({ v: 1, user: 'old', hash: await scryptHasher.hash(password, { logN: 12, r: 8, p: 1 }), created: Date.now() }));
  await stores.directory.put('u.old', encode({ v: 1, user: 'old', x25519: identity.x25519.publicKey, ed25519: identity.ed25519.publicKey, at: Date.now() }));
  await stores.directory.put('b.old', encode({ v: 1, user: 'old', blob: await backupKeys(identity, 'old', password, { logN: 10, r: 8, p: 1 }), at: Date.now() }));
  const c = await m.connect();
  const frames: Record<string, unknown>[] = [];
  const spy = { request: (f: Record<string, unknown>) => (frames.push(f), c.request(f)) };
  t.is(await code(logIn(spy, 'old', password)), 'CLIENT_ERR_LEGACY_DECLINED');
  t.is(await code(logIn(spy, 'old', password, { confirmLegacy: () => false })), 'CLIENT_ERR_LEGACY_DECLINED');
  t.false(frames.some((f) => f.t === 'login'), 'declined: the password was not sent');
  const up = await logIn(spy, 'old', password, { confirmLegacy: () => true });
  t.true(up.upgraded);
  t.is(frames.filter((f) => f.t === 'login').length, 1, 'the password went out once');
  const record = decode((await stores.accounts.get('u.old'))!.value) as { v: number; created: number };
  t.is(record.v, 2, 'the account is OPAQUE now');
  // From now on: OPAQUE, and the new backup opens with the export key.
  const other = await m.connect();
  const again = await logIn(other, 'old', password);
  t.falsy(again.upgraded);
  t.deepEqual((await openStoredBackup(other, 'old', again.exportKey)).ed25519.secretKey, identity.ed25519.secretKey);
  t.is(await code(other.request({ t: 'login', user: 'old', password })), 'AUTH_ERR_CREDENTIALS', 'the password login is closed for it');
  // A thief with the session cannot run the upgrade again, nor use upgrade.start as a guessing oracle.
  const started = await opaque.ready.then(() => opaque.client.startRegistration({ password: 'thief-password' }));
  t.is(await code(other.request({ t: 'upgrade.start', request: started.registrationRequest })), 'AUTH_ERR_PROOF');
  t.is(await code(other.request({ t: 'upgrade.finish', record: 'AAAA', backup: randomBytes(106), grant: again.session.token })), 'AUTH_ERR_PROOF');
});
