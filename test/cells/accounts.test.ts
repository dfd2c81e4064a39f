/**
 * Accounts, sessions, login rate limits and legacy password hashes on a real nats-server,
 * with a real OPAQUE client (@serenity-kit/opaque) on the other side. The client's key
 * stretching is the client's choice, invisible to the server (it stretches before the OPRF
 * and after), so these server tests use a light Argon2id (1 MiB, 1 pass) to run hundreds of
 * logins; the browser's cost is tested in test/client and the messenger tests. Legacy scrypt
 * hashes use logN 12 except one test that proves the production cost (logN 17). Two
 * Accounts on two NATS connections stand for two worker cells: rate limits and
 * registrations must hold across them.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { codec } from '../../organism/wire/codec.ts';
import { CellularError, isCellularError, type ErrorCode } from '../../organism/wire/errors.ts';
import { defaultGenome, loadGenome, type MessengerGene } from '../../organism/kernel/genome/index.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { Inboxes } from '../../cells/messenger/inbox.ts';
import { MessengerSubjects } from '../../cells/messenger/subjects.ts';
import { ensureMessengerStores, openMessengerStores, type MessengerStores } from '../../cells/messenger/stores.ts';
import { Accounts, ownerStatement, REGISTER_RETRY_MS } from '../../cells/worker/accounts.ts';
import { LOGIN_STATE_TTL_MS, OpaqueServer } from '../../cells/worker/opaque-server.ts';
import * as opaque from '@serenity-kit/opaque';
import { ed25519 } from '@noble/curves/ed25519.js';
import { encode } from 'msgpackr';
import { USER_NAME } from '../../organism/wire/frames.ts';
import { dummyHash, hashPassword, needsRehash, verifyPassword, type PasswordHasher } from '../../cells/worker/password.ts';
import { ipBucket, ipKey, RateLimiter } from '../../cells/worker/rate-limit.ts';
import { MAX_SESSIONS_PER_USER, Sessions } from '../../cells/worker/sessions.ts';
import { startNats, uniqueId } from '../helpers/nats.ts';

const FAST = 'messenger.scryptLogN=12';
const PASSWORD = 'correct horse battery';

/** A hasher that counts scrypt runs (hash and verify each run exactly one). */
function countingHasher(): { hasher: PasswordHasher; calls: { hash: number; verify: number } } {
  const calls = { hash: 0, verify: 0 };
  const hasher: PasswordHasher = {
    hash: (p, params) => (calls.hash++, hashPassword(p, params)),
    verify: (p, encoded) => (calls.verify++, verifyPassword(p, encoded)),
    needsRehash,
  };
  return { hasher, calls };
}

/** A settable clock. */
function clock(start = Date.now()) {
  const c = { at: start, now: () => c.at };
  return c;
}

interface Worker {
  opaque: OpaqueServer;
  nc: NatsConnection;
  stores: MessengerStores;
  accounts: Accounts;
  sessions: Sessions;
  limiter: RateLimiter;
  calls: { hash: number; verify: number };
}

/**
 * An organism's messenger stores on a fresh nats-server, and `workers` Accounts each on its
 * own NATS connection (the first creates the stores, the others bind, as cells do).
 */
async function setup(t: ExecutionContext, options: { sets?: string[]; workers?: number; now?: () => number } = {}) {
  const nats = await startNats(t);
  const ns = new Namespace(uniqueId());
  const gene = loadGenome({ sets: [FAST, ...(options.sets ?? [])] }).messenger;
  const workers: Worker[] = [];
  for (let i = 0; i < (options.workers ?? 1); i++) {
    const nc = await connect({ servers: nats.url, name: `worker-${i}` });
    t.teardown(() => nc.close());
    const stores = i === 0 ? await ensureMessengerStores(nc, ns, gene) : await openMessengerStores(nc, ns);
    workers.push(await worker(nc, stores, gene, options.now));
  }
  return { nats, ns, gene, workers, w: workers[0]! };
}

async function worker(nc: NatsConnection, stores: MessengerStores, gene: MessengerGene, now?: () => number): Promise<Worker> {
  const { hasher, calls } = countingHasher();
  const sessions = new Sessions(stores.sessions, gene.sessionTtlMs, now);
  const limiter = new RateLimiter(stores.rate, gene.loginWindowMs, now);
  const server = await OpaqueServer.open(stores.accounts, now);
  const accounts = new Accounts(stores, gene, limiter, sessions, server, { hasher, ...(now ? { now } : {}) });
  return { opaque: server, nc, stores, accounts, sessions, limiter, calls };
}

/** The test client's key stretching (see the header): light, and the server cannot tell. */
const LIGHT = { 'argon2id-custom': { memory: 1024, iterations: 1, parallelism: 1 } };
const key = (fill: number, n = 32) => new Uint8Array(n).fill(fill);
const BACKUP = key(9, 106);

/** A registration as the client runs it: OPAQUE's two messages, keys and a backup. */
async function register(w: Worker, user: string, password = PASSWORD, ip?: string, keys = { x25519: key(1), ed25519: key(2) }) {
  await opaque.ready;
  const start = opaque.client.startRegistration({ password });
  const { response } = await w.accounts.registerStart(user, start.registrationRequest, ip);
  const fin = opaque.client.finishRegistration({ clientRegistrationState: start.clientRegistrationState, registrationResponse: response, password, keyStretching: LIGHT });
  return { ...(await w.accounts.registerFinish({ user, record: fin.registrationRecord, ...keys, backup: BACKUP, ...(ip ? { ip } : {}) })), exportKey: fin.exportKey };
}

/** A login as the client runs it; a wrong password is found by the client (AUTH_ERR_CREDENTIALS) after login.start counted. */
async function login(w: Worker, user: string, password: string, ip: string, device?: string) {
  await opaque.ready;
  const start = opaque.client.startLogin({ password });
  const { response, state } = await w.accounts.loginStart(user, start.startLoginRequest, ip, device);
  const fin = opaque.client.finishLogin({ clientLoginState: start.clientLoginState, loginResponse: response, password, keyStretching: LIGHT });
  if (!fin) throw new CellularError('AUTH_ERR_CREDENTIALS', 'the client found the password wrong');
  return w.accounts.loginFinish(user, state, fin.finishLoginRequest, true, ip) as Promise<{ token: string; expires: number; user: string; grant: string; device: string }>;
}

async function code(p: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isCellularError(e)) return e.code;
    throw e;
  }
}

test.serial('password - the production cost (logN 17) hashes and verifies; time logged', async (t) => {
  const gene = defaultGenome().messenger;
  const params = { logN: gene.scryptLogN, r: gene.scryptR, p: gene.scryptP };
  t.is(params.logN, 17);
  const start = process.hrtime.bigint();
  const encoded = await hashPassword(PASSWORD, params);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.log(`one scrypt hash at logN 17, r 8, p 1 (128 MiB): ${ms.toFixed(0)} ms`);
  t.regex(encoded, /^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  t.true(await verifyPassword(PASSWORD, encoded));
  t.false(needsRehash(encoded, params));
});

test('password - wrong passwords fail, NFC forms match, every tampered encoding is STORE_ERR_RECORD', async (t) => {
  const params = { logN: 12, r: 8, p: 1 };
  const encoded = await hashPassword('caf\u00e9 au lait', params);
  t.true(await verifyPassword('cafe\u0301 au lait', encoded), 'decomposed é is the same password');
  t.false(await verifyPassword('cafe au lait', encoded));
  t.false(await verifyPassword(PASSWORD, dummyHash(params)), 'the dummy hash matches nothing');
  const [, , cost, salt, hash] = encoded.split('$') as [string, string, string, string, string];
  const tampered = [
    '',
    'plain',
    encoded.replace('$scrypt$', '$bcrypt$'),
    encoded.replace('ln=12', 'ln=99'),
    encoded.replace('ln=12', 'ln=9'),
    encoded.replace('r=8', 'r=0'),
    encoded.replace('p=1', 'p=17'),
    `$scrypt$${cost}$${salt}`,
    `$scrypt$${cost}$${salt}$${hash.slice(0, 20)}`,
    `$scrypt$${cost}$${salt.slice(0, 8)}$${hash}`,
    `$scrypt$${cost}$${salt}$${hash}!`,
    `$scrypt$${cost}$${salt}$${hash}$extra`,
  ];
  for (const bad of tampered) t.is(await code(verifyPassword(PASSWORD, bad)), 'STORE_ERR_RECORD', bad);
  t.true(needsRehash(encoded, { logN: 13, r: 8, p: 1 }));
  t.true(needsRehash(encoded, { logN: 12, r: 16, p: 1 }));
  t.false(needsRehash(encoded, params));
});

test('accounts - register, login and resume round trip; the store holds an OPAQUE record, never the password', async (t) => {
  const c = clock();
  const { w, gene } = await setup(t, { now: c.now });
  t.false(await w.accounts.exists('alice'));
  const reg = await register(w, 'alice');
  t.true(await w.accounts.exists('alice'));
  t.is(reg.user, 'alice');
  t.deepEqual(await w.sessions.resolve(reg.token), { user: 'alice', expires: reg.expires, created: c.at }, 'registration opens a session');
  const s = await login(w, 'alice', PASSWORD, '192.0.2.1');
  t.is(s.user, 'alice');
  t.regex(s.token, /^[A-Za-z0-9_-]{43}$/);
  t.regex(s.grant, /^[A-Za-z0-9_-]{43}$/);
  t.is(s.expires, c.at + gene.sessionTtlMs);
  t.deepEqual(await w.accounts.resume(s.token), { user: 'alice', expires: s.expires });
  t.deepEqual(w.calls, { hash: 0, verify: 0 }, 'no scrypt: the memory-hard work ran in the client');
  // The bucket holds the token's hash, never the token.
  const keys: string[] = [];
  for await (const k of await w.stores.sessions.keys()) keys.push(k);
  t.true(keys.some((k) => /^s\.[0-9a-f]{64}$/.test(k)));
  t.false(keys.some((k) => k.includes(s.token)));
  const stored = codec.unpack((await w.stores.accounts.get('u.alice'))!.value) as Record<string, unknown>;
  t.like(stored, { v: 2, user: 'alice' });
  t.regex(stored.opaque as string, /^[A-Za-z0-9_-]{200,400}$/);
  t.false(Buffer.from(codec.pack(stored)).includes(Buffer.from(PASSWORD)));
  // A second worker shares the setup secret: it finishes a login the first one started.
  const other = await OpaqueServer.open(w.stores.accounts);
  t.is(other.publicKey, w.opaque.publicKey);
});

test('accounts - the login state: bound to its user, sealed by the workers, valid for LOGIN_STATE_TTL_MS', async (t) => {
  const c = clock();
  const { w } = await setup(t, { now: c.now, sets: ['messenger.loginAttemptsPerUser=1000'] });
  await register(w, 'alice');
  await register(w, 'bob');
  await opaque.ready;
  const start = opaque.client.startLogin({ password: PASSWORD });
  const { response, state } = await w.accounts.loginStart('alice', start.startLoginRequest, '192.0.2.1');
  const fin = opaque.client.finishLogin({ clientLoginState: start.clientLoginState, loginResponse: response, password: PASSWORD, keyStretching: LIGHT })!;
  t.is(await code(w.accounts.loginFinish('bob', state, fin.finishLoginRequest)), 'AUTH_ERR_CREDENTIALS', "alice's state does not log in bob");
  const flipped = new Uint8Array(state);
  flipped[20] = flipped[20]! ^ 1;
  t.is(await code(w.accounts.loginFinish('alice', flipped, fin.finishLoginRequest)), 'AUTH_ERR_CREDENTIALS', 'a changed state');
  t.is(await code(w.accounts.loginFinish('alice', state, fin.finishLoginRequest.slice(0, -4) + 'AAAA')), 'AUTH_ERR_CREDENTIALS', 'a changed proof');
  c.at += LOGIN_STATE_TTL_MS;
  t.is(await code(w.accounts.loginFinish('alice', state, fin.finishLoginRequest)), 'AUTH_ERR_CREDENTIALS', 'too late');
  c.at -= 1;
  const done = await w.accounts.loginFinish('alice', state, fin.finishLoginRequest);
  t.truthy(done.token, 'in time');
  t.is(done.grant, undefined, 'a grant only when asked for');
  t.is(await code(w.accounts.loginFinish('alice', state, fin.finishLoginRequest)), 'AUTH_ERR_CREDENTIALS', 'a captured state and proof, replayed');
  t.is(await code(w.accounts.loginStart('alice', 'not-opaque', '192.0.2.1')), 'TISSUE_ERR_BAD_REQUEST');
});

test('accounts - a taken name is ACCOUNT_ERR_EXISTS; of 5 concurrent registrations on two workers exactly one wins, and a retried finish completes', async (t) => {
  const { workers, w, gene } = await setup(t, { workers: 2 });
  await register(w, 'taken');
  t.is(await code(register(workers[1]!, 'taken', 'another password')), 'ACCOUNT_ERR_EXISTS');
  const results = await Promise.all([0, 1, 2, 3, 4].map((i) => code(register(workers[i % 2]!, 'race', `password-${i}`))));
  t.is(results.filter((r) => r === 'ok').length, 1, results.join(','));
  t.is(results.filter((r) => r === 'ACCOUNT_ERR_EXISTS').length, 4, results.join(','));
  // The winner's password is the one stored.
  const winner = results.indexOf('ok');
  t.truthy((await login(w, 'race', `password-${winner}`, '192.0.2.1')).token);
  // A finish whose answer was lost, sent again: the same record completes it.
  await opaque.ready;
  const start = opaque.client.startRegistration({ password: PASSWORD });
  const { response } = await w.accounts.registerStart('retry', start.registrationRequest);
  const fin = opaque.client.finishRegistration({ clientRegistrationState: start.clientRegistrationState, registrationResponse: response, password: PASSWORD, keyStretching: LIGHT });
  const finish = { user: 'retry', record: fin.registrationRecord, x25519: key(1), ed25519: key(2), backup: BACKUP };
  await w.accounts.registerFinish(finish);
  t.truthy((await workers[1]!.accounts.registerFinish(finish)).token);
  t.is(await code(w.accounts.registerFinish({ ...finish, record: fin.registrationRecord.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A')) })), 'ACCOUNT_ERR_EXISTS', 'another record is another registrant');
  // The record is no credential: with other keys, or later, the same record opens nothing.
  t.is(await code(w.accounts.registerFinish({ ...finish, x25519: key(7) })), 'ACCOUNT_ERR_EXISTS', 'a retry must carry what the first finish stored');
  const later = await worker(w.nc, w.stores, gene, () => Date.now() + REGISTER_RETRY_MS + 1_000);
  t.is(await code(later.accounts.registerFinish(finish)), 'ACCOUNT_ERR_EXISTS', 'past REGISTER_RETRY_MS the same finish opens nothing');
});

test('accounts - a username is accepted iff it matches the rule', async (t) => {
  const { w } = await setup(t);
  await opaque.ready;
  const request = opaque.client.startRegistration({ password: PASSWORD }).registrationRequest;
  const chars = [...'abcdefghijklmnopqrstuvwxyz0123456789_-', ...'AZ. */>é\u0000\n$'];
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.string({ unit: fc.constantFrom(...chars), maxLength: 40 }), fc.stringMatching(USER_NAME)),
      async (name) => {
        const result = await code(w.accounts.registerStart(name, request));
        const accepted = result !== 'ACCOUNT_ERR_USERNAME';
        if (accepted !== USER_NAME.test(name)) throw new Error(`${JSON.stringify(name)}: ${result}`);
        if (accepted && result !== 'ok') throw new Error(`${JSON.stringify(name)}: ${result}`);
      },
    ),
    { numRuns: 300 },
  );
  t.is(await code(register(w, 'Upper')), 'ACCOUNT_ERR_USERNAME');
  t.is(await code(w.accounts.registerFinish({ user: 'junk', record: 'not a record!', x25519: key(1), ed25519: key(2), backup: BACKUP })), 'TISSUE_ERR_BAD_REQUEST');
  t.is(await code(register(w, 'shortkey', PASSWORD, undefined, { x25519: key(1, 31), ed25519: key(2) })), 'ACCOUNT_ERR_KEYS');
});

test('accounts - a wrong password and an unknown user look alike: a response of the same size, then AUTH_ERR_CREDENTIALS', async (t) => {
  const { w } = await setup(t);
  await register(w, 'alice');
  await opaque.ready;
  const start = opaque.client.startLogin({ password: PASSWORD });
  const known = await w.accounts.loginStart('alice', start.startLoginRequest, '192.0.2.1');
  const unknown = await w.accounts.loginStart('zelda', start.startLoginRequest, '192.0.2.1'); // a name of the same length
  t.is(unknown.response.length, known.response.length);
  t.is(unknown.state.length, known.state.length);
  t.is(opaque.client.finishLogin({ clientLoginState: start.clientLoginState, loginResponse: unknown.response, password: PASSWORD, keyStretching: LIGHT }), undefined, 'the fake response opens nothing');
  t.is(await code(login(w, 'alice', 'wrong password', '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(w.accounts.loginStart('No Such', start.startLoginRequest, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS', 'a name the rules refuse');
  t.deepEqual(w.calls, { hash: 0, verify: 0 });
});

test('accounts - failed logins per user from all addresses are limited organism-wide (loginCeilingPerUser); the next attempt is refused at login.start', async (t) => {
  const c = clock();
  const { workers, gene } = await setup(t, { workers: 2, now: c.now, sets: ['messenger.loginCeilingPerUser=3', 'messenger.loginAttemptsPerIp=1000'] });
  const [a, b] = workers as [Worker, Worker];
  await register(a, 'alice');
  // Successes do not count per user.
  for (let i = 0; i < 5; i++) await login(i % 2 ? a : b, 'alice', PASSWORD, `192.0.2.${i}`);
  // Three failures, spread over both workers and three addresses.
  t.is(await code(login(a, 'alice', 'wrong one', '198.51.100.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(login(b, 'alice', 'wrong two', '198.51.100.2')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(login(a, 'alice', 'wrong three', '198.51.100.3')), 'AUTH_ERR_CREDENTIALS');
  for (const w of [a, b]) {
    const err = await t.throwsAsync(login(w, 'alice', PASSWORD, '203.0.113.9'));
    t.true(isCellularError(err, 'AUTH_ERR_RATE_LIMITED'), String(err));
    const retry = Number(/retryAfterMs=(\d+)/.exec(err!.message)?.[1]);
    t.true(retry > 0 && retry <= gene.loginWindowMs, err!.message);
  }
  // Other users are untouched; the next window starts afresh.
  await register(a, 'bob');
  t.truthy((await login(b, 'bob', PASSWORD, '203.0.113.9')).token);
  c.at += gene.loginWindowMs;
  t.truthy((await login(b, 'alice', PASSWORD, '203.0.113.9')).token);
});

test('accounts - attacker: failures from one address lock out only that address; filling the per-user ceiling from many does not lock out the owner\'s device', async (t) => {
  const { workers } = await setup(t, { workers: 2, sets: ['messenger.loginAttemptsPerUser=3', 'messenger.loginCeilingPerUser=6', 'messenger.loginAttemptsPerIp=1000'] });
  const [a, b] = workers as [Worker, Worker];
  await register(a, 'alice');
  // The owner's browser logged in once: it keeps the device ticket it was given.
  const owner = await login(a, 'alice', PASSWORD, '192.0.2.1');
  t.regex(owner.device, /^[A-Za-z0-9_-]{43}$/);
  // An attacker at one address: three failures, then that address is refused for alice…
  for (let i = 0; i < 3; i++) t.is(await code(login(b, 'alice', `guess-${i}`, '198.51.100.66')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(login(a, 'alice', PASSWORD, '198.51.100.66')), 'AUTH_ERR_RATE_LIMITED', 'the attacking address is locked out');
  // …but the owner, elsewhere, is not.
  t.truthy((await login(a, 'alice', PASSWORD, '192.0.2.1')).token, 'the owner at another address logs in');
  // Attackers at many addresses fill the per-user ceiling (6 failures in all).
  for (let i = 0; i < 3; i++) t.is(await code(login(b, 'alice', `guess-many-${i}`, `203.0.113.${10 + i}`)), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(login(a, 'alice', PASSWORD, '203.0.113.99')), 'AUTH_ERR_RATE_LIMITED', 'a browser without a ticket is held at the ceiling');
  t.is(await code(login(a, 'alice', PASSWORD, '203.0.113.98', 'A'.repeat(43))), 'AUTH_ERR_RATE_LIMITED', 'a made-up ticket does not pass');
  const bobTicket = (await (async () => {
    await register(a, 'bob');
    return login(a, 'bob', PASSWORD, '192.0.2.2');
  })()).device;
  t.is(await code(login(a, 'alice', PASSWORD, '203.0.113.97', bobTicket)), 'AUTH_ERR_RATE_LIMITED', 'another user\'s ticket does not pass');
  // The owner's browser shows its ticket: in, and a fresh ticket for next time.
  const again = await login(a, 'alice', PASSWORD, '192.0.2.1', owner.device);
  t.truthy(again.token);
  t.not(again.device, owner.device);
  // A wrong password with the ticket is still a failure (the ticket is no credential).
  t.is(await code(login(b, 'alice', 'wrong with ticket', '192.0.2.1', owner.device)), 'AUTH_ERR_CREDENTIALS');
});

test('accounts - concurrent wrong guesses on two workers cannot slip past the per-user limit', async (t) => {
  const { workers } = await setup(t, { workers: 2, sets: ['messenger.loginCeilingPerUser=3', 'messenger.loginAttemptsPerIp=1000'] });
  const [a, b] = workers as [Worker, Worker];
  await register(a, 'alice');
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => code(login(i % 2 ? a : b, 'alice', `wrong-guess-${i}`, `198.51.100.${i}`))));
  t.is(results.filter((r) => r === 'AUTH_ERR_CREDENTIALS').length, 3, results.join(','));
  t.is(results.filter((r) => r === 'AUTH_ERR_RATE_LIMITED').length, 9, results.join(','));
});

test('accounts - every attempt from one address counts, organism-wide; an IPv6 /64 is one address', async (t) => {
  const { workers } = await setup(t, { workers: 2, sets: ['messenger.loginAttemptsPerIp=4', 'messenger.loginAttemptsPerUser=1000'] });
  const [a, b] = workers as [Worker, Worker];
  await register(a, 'alice');
  await register(a, 'bob');
  const ip = '2001:db8:1:2::7';
  await login(a, 'alice', PASSWORD, ip);
  t.is(await code(login(b, 'bob', 'wrong password', '2001:db8:1:2:ffff::1')), 'AUTH_ERR_CREDENTIALS');
  await login(b, 'bob', PASSWORD, '2001:0db8:0001:0002:0000:0000:0000:0009');
  t.is(await code(login(a, 'nobody', PASSWORD, ip)), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(login(b, 'alice', PASSWORD, ip)), 'AUTH_ERR_RATE_LIMITED', 'the 5th attempt, right password or not');
  t.is(await code(login(a, 'bob', PASSWORD, ip)), 'AUTH_ERR_RATE_LIMITED');
  t.is(await code(register(a, 'carl', PASSWORD, ip)), 'AUTH_ERR_RATE_LIMITED', 'a registration from it too');
  t.truthy((await login(a, 'alice', PASSWORD, '2001:db8:1:3::7')).token, 'another /64 is another address');
  // IPv4 and its IPv6-mapped form are one address.
  t.is(ipBucket('::ffff:192.0.2.1'), '192.0.2.1');
  t.is(ipKey('::FFFF:192.0.2.1'), ipKey('192.0.2.1'));
  t.is(ipBucket('2001:db8:1:2::7'), '2001:db8:1:2::/64');
  t.regex(ipKey('2001:db8::1'), /^ip\.[0-9a-f]{32}$/);
});

test('rate limiter - concurrent hits on two connections are all counted; peek and reset', async (t) => {
  const { workers, gene } = await setup(t, { workers: 2 });
  const [a, b] = workers as [Worker, Worker];
  const hits = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).limiter.hit('user.hot', 1000)));
  t.true(hits.every((h) => h.allowed));
  t.deepEqual(hits.map((h) => h.count).sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1), 'each hit saw its own count');
  t.is((await a.limiter.peek('user.hot')).count, 30);
  const refused = await b.limiter.hit('user.hot', 30);
  t.false(refused.allowed);
  t.true(refused.retryAfterMs > 0 && refused.retryAfterMs <= gene.loginWindowMs);
  t.is((await a.limiter.peek('user.hot')).count, 30, 'a refused hit is not counted');
  await a.limiter.reset('user.hot');
  t.is((await b.limiter.peek('user.hot')).count, 0);
  t.true((await b.limiter.hit('user.hot', 1)).allowed, 'a reset counter counts from zero (over the delete marker)');
  await t.throwsAsync(a.limiter.peek('ip.2001:db8::1'), { instanceOf: RangeError }, 'an unhashed address is not a key');
});

test('sessions - expiry, revoke, revokeAll, malformed tokens, the per-user cap', async (t) => {
  const c = clock();
  const { w, gene } = await setup(t, { now: c.now });
  const s = w.sessions;
  const one = await s.create('alice');
  const two = await s.create('alice');
  const bobs = await s.create('bob');
  t.is((await s.resolve(one.token)).user, 'alice');
  // Expiry is checked against created + ttl, whatever the bucket TTL has swept yet.
  c.at += gene.sessionTtlMs - 1;
  t.is((await s.resolve(one.token)).user, 'alice');
  c.at += 1;
  t.is(await code(s.resolve(one.token)), 'AUTH_ERR_SESSION');
  c.at -= gene.sessionTtlMs;

  await s.revoke(two.token);
  t.is(await code(s.resolve(two.token)), 'AUTH_ERR_SESSION');
  await s.revoke(two.token); // already gone: fine

  const more = await Promise.all([s.create('alice'), s.create('alice'), s.create('alice')]);
  t.is(await s.revokeAll('alice'), 5, 'all five ever listed (dead entries are harmless)');
  for (const m of more) t.is(await code(s.resolve(m.token)), 'AUTH_ERR_SESSION');
  t.is((await s.resolve(bobs.token)).user, 'bob', "another user's session is untouched");
  t.is(await s.revokeAll('alice'), 0);
  t.truthy((await s.resolve((await s.create('alice')).token)).user, 'a login after revokeAll works');

  for (const bad of ['', 'abc', '!'.repeat(43), bobs.token.slice(1), `${bobs.token}A`, 'A'.repeat(43)]) {
    t.is(await code(s.resolve(bad)), 'AUTH_ERR_SESSION', JSON.stringify(bad));
  }
  t.is(await code(s.revoke('not a token')), 'AUTH_ERR_SESSION');

  // A session record someone mangled in the bucket: refused, the cause kept for the logs.
  const mangled = await s.create('carol');
  for await (const k of await w.stores.sessions.keys('s.*')) {
    const e = await w.stores.sessions.get(k);
    if ((codec.unpack(e!.value) as { user: string }).user === 'carol') await w.stores.sessions.put(k, codec.pack({ v: 1, user: 'carol' }));
  }
  const err = await t.throwsAsync(s.resolve(mangled.token));
  t.true(isCellularError(err, 'AUTH_ERR_SESSION'));
  t.true(isCellularError(err!.cause, 'STORE_ERR_RECORD'));

  // Past the cap, the oldest session ends, so revokeAll's index stays complete.
  const first = await s.create('dave');
  for (let i = 0; i < MAX_SESSIONS_PER_USER - 1; i++) await s.create('dave');
  t.is((await s.resolve(first.token)).user, 'dave');
  const last = await s.create('dave');
  t.is(await code(s.resolve(first.token)), 'AUTH_ERR_SESSION');
  t.is(await s.revokeAll('dave'), MAX_SESSIONS_PER_USER);
  t.is(await code(s.resolve(last.token)), 'AUTH_ERR_SESSION');
});

test('accounts - keys and backup: published at registration; replaced only with a grant (once) or a newer signature by the current identity key', async (t) => {
  const c = clock();
  const { workers } = await setup(t, { workers: 2, now: c.now });
  const [a, b] = workers as [Worker, Worker];
  const alice = { x: ed25519.utils.randomSecretKey() };
  const alicePub = ed25519.getPublicKey(alice.x);
  await register(a, 'alice', PASSWORD, undefined, { x25519: key(1), ed25519: alicePub });
  await register(a, 'bob', PASSWORD, undefined, { x25519: key(3), ed25519: key(4) });
  t.deepEqual(await b.accounts.getKeys(['bob', 'nobody', 'alice', 'Not A Name', 'bob']), [
    { user: 'bob', x25519: key(3), ed25519: key(4) },
    { user: 'alice', x25519: key(1), ed25519: alicePub },
  ]);
  t.deepEqual(await b.accounts.getBackup('alice'), BACKUP);
  // A session is not the owner.
  t.is(await code(a.accounts.publishKeys('alice', key(5), key(6))), 'AUTH_ERR_PROOF');
  t.is(await code(a.accounts.putBackup('alice', key(7, 106))), 'AUTH_ERR_PROOF');
  // A signature by the current identity key over the owner statement.
  const at = c.at;
  const sign = (op: 'keys.publish' | 'keys.backup.put', payload: Uint8Array, when: number) => ed25519.sign(ownerStatement(op, 'alice', when, payload), alice.x);
  const next = key(7, 106);
  await a.accounts.putBackup('alice', next, { sig: sign('keys.backup.put', next, at), at });
  t.deepEqual(await b.accounts.getBackup('alice'), next);
  t.is(await code(b.accounts.putBackup('alice', next, { sig: sign('keys.backup.put', next, at), at })), 'AUTH_ERR_PROOF', 'not newer than the last: a replay');
  t.is(await code(b.accounts.putBackup('alice', BACKUP, { sig: sign('keys.backup.put', next, at + 1), at: at + 1 })), 'AUTH_ERR_PROOF', 'signed for another blob');
  t.is(await code(b.accounts.putBackup('alice', next, { sig: sign('keys.backup.put', next, at - 6 * 60_000), at: at - 6 * 60_000 })), 'AUTH_ERR_PROOF', 'too far from the server clock');
  t.is(await code(b.accounts.publishKeys('alice', key(5), key(6), { sig: sign('keys.backup.put', Buffer.concat([key(5), key(6)]), at + 2), at: at + 2 })), 'AUTH_ERR_PROOF', 'signed for another operation');
  // A grant (from a password login), once.
  const { grant } = await login(b, 'alice', PASSWORD, '192.0.2.1');
  await b.accounts.publishKeys('alice', key(5), key(6), { grant });
  t.deepEqual(await a.accounts.getKeys(['alice']), [{ user: 'alice', x25519: key(5), ed25519: key(6) }]);
  t.is(await code(b.accounts.publishKeys('alice', key(1), key(2), { grant })), 'AUTH_ERR_PROOF', 'used up');
  const bobs = await login(b, 'bob', PASSWORD, '192.0.2.2');
  t.is(await code(b.accounts.publishKeys('alice', key(1), key(2), { grant: bobs.grant })), 'AUTH_ERR_PROOF', "bob's grant");
  const late = await login(b, 'alice', PASSWORD, '192.0.2.3');
  c.at += 5 * 60_000;
  t.is(await code(b.accounts.publishKeys('alice', key(1), key(2), { grant: late.grant })), 'AUTH_ERR_PROOF', 'expired');
  t.is(await code(a.accounts.publishKeys('alice', key(1, 31), key(2))), 'ACCOUNT_ERR_KEYS');
  t.is(await code(a.accounts.publishKeys('nobody', key(1), key(2))), 'ACCOUNT_ERR_NOT_FOUND');
  t.is(await code(a.accounts.publishKeys('Bad Name', key(1), key(2))), 'ACCOUNT_ERR_USERNAME');
  t.deepEqual(await a.accounts.getKeys([]), []);
});

test('accounts - search finds usernames by prefix, sorted and limited', async (t) => {
  const { w } = await setup(t);
  for (const u of ['alfred', 'alice', 'al_x', 'bob', 'albert', 'xal']) await register(w, u);
  t.deepEqual(await w.accounts.search('al', 10), ['al_x', 'albert', 'alfred', 'alice']);
  t.deepEqual(await w.accounts.search('al', 2), ['al_x', 'albert']);
  t.deepEqual(await w.accounts.search('alice', 10), ['alice']);
  t.deepEqual(await w.accounts.search('z', 10), []);
  t.deepEqual(await w.accounts.search('', 10), []);
  t.deepEqual(await w.accounts.search('a*', 10), []);
  t.deepEqual(await w.accounts.search('al', 0), []);
});

test('accounts - deleteAccount takes a grant, then removes the account, keys, sessions, cursor and (Inboxes.purge) stored messages', async (t) => {
  const { w, ns } = await setup(t);
  const subjects = new MessengerSubjects(ns);
  const inboxes = await Inboxes.open(w.nc, ns);
  await register(w, 'carol');
  await register(w, 'dave');
  const s1 = await login(w, 'carol', PASSWORD, '192.0.2.1');
  const s2 = await login(w, 'carol', PASSWORD, '192.0.2.2');
  const daves = await login(w, 'dave', PASSWORD, '192.0.2.3');
  await w.stores.cursors.put('u.carol', codec.pack({ v: 1, seq: 2 }));
  const js = jetstream(w.nc);
  await js.publish(subjects.inbox('carol'), codec.pack({ body: 1 }));
  await js.publish(subjects.inbox('carol'), codec.pack({ body: 2 }));
  await js.publish(subjects.inbox('dave'), codec.pack({ body: 3 }));

  t.is(await code(w.accounts.deleteAccount('carol', s1.token)), 'AUTH_ERR_PROOF', 'a session token is no grant');
  t.is(await code(w.accounts.deleteAccount('carol', daves.grant)), 'AUTH_ERR_PROOF', "dave's grant");
  t.true(await w.accounts.exists('carol'), 'nothing deleted');

  await w.accounts.deleteAccount('carol', s1.grant);
  t.is(await inboxes.purge('carol'), 2);
  t.false(await w.accounts.exists('carol'));
  t.deepEqual(await w.accounts.getKeys(['carol']), []);
  t.is(await w.accounts.getBackup('carol'), null);
  t.is(await code(w.sessions.resolve(s1.token)), 'AUTH_ERR_SESSION');
  t.is(await code(w.sessions.resolve(s2.token)), 'AUTH_ERR_SESSION');
  t.not((await w.stores.cursors.get('u.carol'))?.operation, 'PUT');
  t.is(await code(login(w, 'carol', PASSWORD, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.deepEqual(await w.accounts.search('carol', 10), []);
  const jsm = await jetstreamManager(w.nc);
  const info = await jsm.streams.info(w.stores.messages, { subjects_filter: subjects.inboxes });
  t.is(info.state.messages, 1, "dave's message stays");
  t.deepEqual(Object.keys(info.state.subjects ?? {}), [subjects.inbox('dave')]);
  t.is((await w.sessions.resolve(daves.token)).user, 'dave');
  // The name is free again (create over the delete marker).
  await register(w, 'carol', 'a new password');
  t.truthy((await login(w, 'carol', 'a new password', '192.0.2.1')).token);
  t.is(await code(w.accounts.deleteAccount('carol', s2.grant)), 'AUTH_ERR_PROOF', "the old account's grant went with it");
  t.is(await code(inboxes.purge('*')), 'ACCOUNT_ERR_USERNAME', 'a wildcard never reaches the purge');
});

test('accounts - a v1 account: login.start says AUTH_ERR_LEGACY; the password login answers only for it; the upgrade takes its grant', async (t) => {
  const { w } = await setup(t, { sets: ['messenger.loginAttemptsPerUser=1000'] });
  await w.stores.accounts.put('u.old', encode({ v: 1, user: 'old', hash: await hashPassword(PASSWORD, { logN: 12, r: 8, p: 1 }), created: 5 }));
  await register(w, 'new');
  await opaque.ready;
  const start = opaque.client.startLogin({ password: PASSWORD });
  t.is(await code(w.accounts.loginStart('old', start.startLoginRequest, '192.0.2.1')), 'AUTH_ERR_LEGACY');
  t.is(await code(w.accounts.legacyLogin('new', PASSWORD, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS', 'never for an OPAQUE account');
  t.is(await code(w.accounts.legacyLogin('nobody', PASSWORD, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(w.accounts.legacyLogin('old', 'wrong password', '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(w.calls.verify, 3, 'one scrypt each, whatever the account');
  const s = await w.accounts.legacyLogin('old', PASSWORD, '192.0.2.1');
  const reg = opaque.client.startRegistration({ password: PASSWORD });
  const { response } = await w.accounts.upgradeStart('old', reg.registrationRequest);
  const fin = opaque.client.finishRegistration({ clientRegistrationState: reg.clientRegistrationState, registrationResponse: response, password: PASSWORD, keyStretching: LIGHT });
  t.is(await code(w.accounts.upgradeFinish('old', fin.registrationRecord, BACKUP, s.token)), 'AUTH_ERR_PROOF', 'a session is not the owner');
  await w.accounts.upgradeFinish('old', fin.registrationRecord, BACKUP, s.grant);
  t.like(codec.unpack((await w.stores.accounts.get('u.old'))!.value), { v: 2, created: 5 });
  t.truthy((await login(w, 'old', PASSWORD, '192.0.2.1')).token, 'OPAQUE from now on');
  t.is(await code(w.accounts.upgradeStart('old', reg.registrationRequest)), 'AUTH_ERR_PROOF', 'no OPRF oracle for an OPAQUE account (a session thief would guess against its record)');
  t.is(await code(w.accounts.legacyLogin('old', PASSWORD, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS', 'and the password login is closed');
});

test('accounts - a tampered account record is STORE_ERR_RECORD, not a login', async (t) => {
  const { w } = await setup(t);
  await register(w, 'alice');
  const record = codec.unpack((await w.stores.accounts.get('u.alice'))!.value) as Record<string, unknown>;
  await w.stores.accounts.put('u.alice', codec.pack({ ...record, opaque: 'has spaces' }));
  t.is(await code(login(w, 'alice', PASSWORD, '192.0.2.1')), 'STORE_ERR_RECORD');
  await w.stores.accounts.put('u.alice', codec.pack({ ...record, user: 'mallory' }));
  t.is(await code(login(w, 'alice', PASSWORD, '192.0.2.1')), 'STORE_ERR_RECORD', 'a record for another name');
  await w.stores.accounts.put('u.alice', codec.pack({ ...record, v: 3 }));
  t.is(await code(login(w, 'alice', PASSWORD, '192.0.2.1')), 'STORE_ERR_RECORD', 'a version this worker does not know');
  await w.stores.accounts.put('opaque.setup', codec.pack({ v: 1, setup: 'short' }));
  t.is(await code(OpaqueServer.open(w.stores.accounts)), 'STORE_ERR_RECORD', 'a mangled setup secret is refused, never replaced');
});
