/**
 * Accounts, sessions, login rate limits and password hashes on a real nats-server. Hashes
 * use scrypt logN 12 (fast) except one test that proves the production cost (logN 17)
 * works and logs how long it takes here. Two Accounts on two NATS connections stand for
 * two worker cells: rate limits and registrations must hold across them.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { codec } from '../../organism/wire/codec.ts';
import { isCellularError, type ErrorCode } from '../../organism/wire/errors.ts';
import { defaultGenome, loadGenome, type MessengerGene } from '../../organism/kernel/genome/index.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { Inboxes } from '../../cells/messenger/inbox.ts';
import { MessengerSubjects } from '../../cells/messenger/subjects.ts';
import { ensureMessengerStores, openMessengerStores, type MessengerStores } from '../../cells/messenger/stores.ts';
import { Accounts } from '../../cells/worker/accounts.ts';
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
    workers.push(worker(nc, stores, gene, options.now));
  }
  return { nats, ns, gene, workers, w: workers[0]! };
}

function worker(nc: NatsConnection, stores: MessengerStores, gene: MessengerGene, now?: () => number): Worker {
  const { hasher, calls } = countingHasher();
  const sessions = new Sessions(stores.sessions, gene.sessionTtlMs, now);
  const limiter = new RateLimiter(stores.rate, gene.loginWindowMs, now);
  const accounts = new Accounts(stores, gene, limiter, sessions, { hasher, ...(now ? { now } : {}) });
  return { nc, stores, accounts, sessions, limiter, calls };
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

test('accounts - register, login and resume round trip', async (t) => {
  const c = clock();
  const { w, gene } = await setup(t, { now: c.now });
  t.false(await w.accounts.exists('alice'));
  await w.accounts.register('alice', PASSWORD);
  t.true(await w.accounts.exists('alice'));
  const login = await w.accounts.login('alice', PASSWORD, '192.0.2.1');
  t.is(login.user, 'alice');
  t.regex(login.token, /^[A-Za-z0-9_-]{43}$/);
  t.is(login.expires, c.at + gene.sessionTtlMs);
  t.deepEqual(await w.sessions.resolve(login.token), { user: 'alice', expires: login.expires, created: c.at });
  t.deepEqual(await w.accounts.resume(login.token), { user: 'alice', expires: login.expires });
  t.deepEqual(w.calls, { hash: 1, verify: 1 });
  // The bucket holds the token's hash, never the token.
  const keys: string[] = [];
  for await (const k of await w.stores.sessions.keys()) keys.push(k);
  t.true(keys.some((k) => /^s\.[0-9a-f]{64}$/.test(k)));
  t.false(keys.some((k) => k.includes(login.token)));
  const stored = codec.unpack((await w.stores.accounts.get('u.alice'))!.value) as Record<string, unknown>;
  t.like(stored, { v: 1, user: 'alice' });
  t.regex(stored.hash as string, /^\$scrypt\$ln=12,r=8,p=1\$/);
});

test('accounts - a taken name is ACCOUNT_ERR_EXISTS; of 5 concurrent registrations on two workers exactly one wins', async (t) => {
  const { workers, w } = await setup(t, { workers: 2 });
  await w.accounts.register('taken', PASSWORD);
  t.is(await code(workers[1]!.accounts.register('taken', 'another password')), 'ACCOUNT_ERR_EXISTS');
  t.is(w.calls.hash + workers[1]!.calls.hash, 1, 'a name already taken costs no scrypt');

  const results = await Promise.all([0, 1, 2, 3, 4].map((i) => code(workers[i % 2]!.accounts.register('race', `password-${i}`))));
  t.is(results.filter((r) => r === 'ok').length, 1, results.join(','));
  t.is(results.filter((r) => r === 'ACCOUNT_ERR_EXISTS').length, 4, results.join(','));
  // The winner's password is the one stored.
  const winner = results.indexOf('ok');
  t.truthy((await w.accounts.login('race', `password-${winner}`, '192.0.2.1')).token);
});

test('accounts - a username is accepted iff it matches the rule; passwords are 8-1024 UTF-8 bytes', async (t) => {
  // Validation is the property; a hasher that runs no scrypt keeps 300 registrations quick.
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const gene = loadGenome({ sets: [FAST] }).messenger;
  const stores = await ensureMessengerStores(nc, new Namespace(uniqueId()), gene);
  const cheap: PasswordHasher = { hash: async (_p, params) => dummyHash(params), verify: async () => false, needsRehash: () => false };
  const accounts = new Accounts(stores, gene, new RateLimiter(stores.rate, gene.loginWindowMs), new Sessions(stores.sessions, gene.sessionTtlMs), { hasher: cheap });
  const chars = [...'abcdefghijklmnopqrstuvwxyz0123456789_-', ...'AZ. */>é\u0000\n$'];
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.string({ unit: fc.constantFrom(...chars), maxLength: 40 }), fc.stringMatching(USER_NAME)),
      async (name) => {
        const result = await code(accounts.register(name, PASSWORD));
        const accepted = result !== 'ACCOUNT_ERR_USERNAME';
        if (accepted !== USER_NAME.test(name)) throw new Error(`${JSON.stringify(name)}: ${result}`);
        if (accepted && result !== 'ok' && result !== 'ACCOUNT_ERR_EXISTS') throw new Error(`${JSON.stringify(name)}: ${result}`);
      },
    ),
    { numRuns: 300 },
  );
  t.is(await code(accounts.register('pw-short', '1234567')), 'ACCOUNT_ERR_PASSWORD');
  t.is(await code(accounts.register('pw-min', '12345678')), 'ok');
  t.is(await code(accounts.register('pw-max', 'x'.repeat(1024))), 'ok');
  t.is(await code(accounts.register('pw-long', 'x'.repeat(1025))), 'ACCOUNT_ERR_PASSWORD');
  t.is(await code(accounts.register('pw-utf8', '\u00e9'.repeat(4))), 'ok', '4 characters, 8 bytes');
  t.is(await code(accounts.register('pw-utf8-long', '\u00e9'.repeat(513))), 'ACCOUNT_ERR_PASSWORD', '513 characters, 1026 bytes');
  t.is(await code(accounts.register('Upper', PASSWORD)), 'ACCOUNT_ERR_USERNAME');
});

test('accounts - a wrong password and an unknown user are both AUTH_ERR_CREDENTIALS, each for one scrypt', async (t) => {
  const { w } = await setup(t);
  await w.accounts.register('alice', PASSWORD);
  const before = w.calls.verify;
  t.is(await code(w.accounts.login('alice', 'wrong password', '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(w.calls.verify, before + 1);
  t.is(await code(w.accounts.login('nobody', PASSWORD, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(w.calls.verify, before + 2, 'an unknown user still costs one scrypt');
  // Names and passwords the rules refuse cannot match an account: no scrypt at all.
  t.is(await code(w.accounts.login('No Such', PASSWORD, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(w.accounts.login('alice', 'short', '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(w.calls.verify, before + 2);
});

test('accounts - failed logins per user are limited organism-wide; the next attempt is refused before scrypt', async (t) => {
  const c = clock();
  const { workers, gene } = await setup(t, { workers: 2, now: c.now, sets: ['messenger.loginAttemptsPerUser=3', 'messenger.loginAttemptsPerIp=1000'] });
  const [a, b] = workers as [Worker, Worker];
  await a.accounts.register('alice', PASSWORD);
  // Successes do not count per user.
  for (let i = 0; i < 5; i++) await (i % 2 ? a : b).accounts.login('alice', PASSWORD, `192.0.2.${i}`);
  // Three failures, spread over both workers and three addresses.
  t.is(await code(a.accounts.login('alice', 'wrong one', '198.51.100.1')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(b.accounts.login('alice', 'wrong two', '198.51.100.2')), 'AUTH_ERR_CREDENTIALS');
  t.is(await code(a.accounts.login('alice', 'wrong three', '198.51.100.3')), 'AUTH_ERR_CREDENTIALS');
  const verifies = a.calls.verify + b.calls.verify;
  for (const w of [a, b]) {
    const err = await t.throwsAsync(w.accounts.login('alice', PASSWORD, '203.0.113.9'));
    t.true(isCellularError(err, 'AUTH_ERR_RATE_LIMITED'), String(err));
    const retry = Number(/retryAfterMs=(\d+)/.exec(err!.message)?.[1]);
    t.true(retry > 0 && retry <= gene.loginWindowMs, err!.message);
  }
  t.is(a.calls.verify + b.calls.verify, verifies, 'refused attempts run no scrypt');
  // Other users are untouched; the next window starts afresh.
  await a.accounts.register('bob', PASSWORD);
  t.truthy((await b.accounts.login('bob', PASSWORD, '203.0.113.9')).token);
  c.at += gene.loginWindowMs;
  t.truthy((await b.accounts.login('alice', PASSWORD, '203.0.113.9')).token);
});

test('accounts - concurrent wrong guesses on two workers cannot slip past the per-user limit', async (t) => {
  const { workers } = await setup(t, { workers: 2, sets: ['messenger.loginAttemptsPerUser=3', 'messenger.loginAttemptsPerIp=1000'] });
  const [a, b] = workers as [Worker, Worker];
  await a.accounts.register('alice', PASSWORD);
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => code((i % 2 ? a : b).accounts.login('alice', `wrong-guess-${i}`, `198.51.100.${i}`))));
  t.is(results.filter((r) => r === 'AUTH_ERR_CREDENTIALS').length, 3, results.join(','));
  t.is(results.filter((r) => r === 'AUTH_ERR_RATE_LIMITED').length, 9, results.join(','));
  t.is(a.calls.verify + b.calls.verify, 3, 'exactly the limit of scrypts ran');
});

test('accounts - every attempt from one address counts, organism-wide; an IPv6 /64 is one address', async (t) => {
  const { workers } = await setup(t, { workers: 2, sets: ['messenger.loginAttemptsPerIp=4', 'messenger.loginAttemptsPerUser=1000'] });
  const [a, b] = workers as [Worker, Worker];
  await a.accounts.register('alice', PASSWORD);
  await a.accounts.register('bob', PASSWORD);
  const ip = '2001:db8:1:2::7';
  await a.accounts.login('alice', PASSWORD, ip);
  t.is(await code(b.accounts.login('bob', 'wrong password', '2001:db8:1:2:ffff::1')), 'AUTH_ERR_CREDENTIALS');
  await b.accounts.login('bob', PASSWORD, '2001:0db8:0001:0002:0000:0000:0000:0009');
  t.is(await code(a.accounts.login('nobody', PASSWORD, ip)), 'AUTH_ERR_CREDENTIALS');
  const verifies = a.calls.verify + b.calls.verify;
  t.is(await code(b.accounts.login('alice', PASSWORD, ip)), 'AUTH_ERR_RATE_LIMITED', 'the 5th attempt, right password or not');
  t.is(await code(a.accounts.login('bob', PASSWORD, ip)), 'AUTH_ERR_RATE_LIMITED');
  t.is(a.calls.verify + b.calls.verify, verifies, 'refused attempts run no scrypt');
  t.truthy((await a.accounts.login('alice', PASSWORD, '2001:db8:1:3::7')).token, 'another /64 is another address');
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

test('accounts - publishKeys and getKeys round trip; keys must be 32 bytes', async (t) => {
  const { workers } = await setup(t, { workers: 2 });
  const [a, b] = workers as [Worker, Worker];
  await a.accounts.register('alice', PASSWORD);
  await a.accounts.register('bob', PASSWORD);
  const key = (fill: number, n = 32) => new Uint8Array(n).fill(fill);
  await a.accounts.publishKeys('alice', key(1), key(2));
  await a.accounts.publishKeys('bob', key(3), key(4));
  await b.accounts.publishKeys('bob', key(5), key(6)); // replaces
  const got = await b.accounts.getKeys(['bob', 'nobody', 'alice', 'Not A Name', 'bob']);
  t.deepEqual(got, [
    { user: 'bob', x25519: key(5), ed25519: key(6) },
    { user: 'alice', x25519: key(1), ed25519: key(2) },
  ]);
  t.true(got.every((k) => k.x25519 instanceof Uint8Array && k.x25519.length === 32));
  t.is(await code(a.accounts.publishKeys('alice', key(1, 31), key(2))), 'ACCOUNT_ERR_KEYS');
  t.is(await code(a.accounts.publishKeys('alice', key(1), key(2, 33))), 'ACCOUNT_ERR_KEYS');
  t.is(await code(a.accounts.publishKeys('nobody', key(1), key(2))), 'ACCOUNT_ERR_NOT_FOUND');
  t.is(await code(a.accounts.publishKeys('Bad Name', key(1), key(2))), 'ACCOUNT_ERR_USERNAME');
  t.deepEqual(await a.accounts.getKeys([]), []);
});

test('accounts - search finds usernames by prefix, sorted and limited', async (t) => {
  const { w } = await setup(t);
  for (const u of ['alfred', 'alice', 'al_x', 'bob', 'albert', 'xal']) await w.accounts.register(u, PASSWORD);
  t.deepEqual(await w.accounts.search('al', 10), ['al_x', 'albert', 'alfred', 'alice']);
  t.deepEqual(await w.accounts.search('al', 2), ['al_x', 'albert']);
  t.deepEqual(await w.accounts.search('alice', 10), ['alice']);
  t.deepEqual(await w.accounts.search('z', 10), []);
  t.deepEqual(await w.accounts.search('', 10), []);
  t.deepEqual(await w.accounts.search('a*', 10), []);
  t.deepEqual(await w.accounts.search('al', 0), []);
});

test('accounts - deleteAccount removes the account, keys, sessions, cursor and (Inboxes.purge) stored messages', async (t) => {
  const { w, ns } = await setup(t);
  const subjects = new MessengerSubjects(ns);
  const inboxes = await Inboxes.open(w.nc, ns);
  await w.accounts.register('carol', PASSWORD);
  await w.accounts.register('dave', PASSWORD);
  const s1 = await w.accounts.login('carol', PASSWORD, '192.0.2.1');
  const s2 = await w.accounts.login('carol', PASSWORD, '192.0.2.2');
  const daves = await w.accounts.login('dave', PASSWORD, '192.0.2.3');
  await w.accounts.publishKeys('carol', new Uint8Array(32).fill(7), new Uint8Array(32).fill(8));
  await w.stores.cursors.put('u.carol', codec.pack({ v: 1, seq: 2 }));
  const js = jetstream(w.nc);
  await js.publish(subjects.inbox('carol'), codec.pack({ body: 1 }));
  await js.publish(subjects.inbox('carol'), codec.pack({ body: 2 }));
  await js.publish(subjects.inbox('dave'), codec.pack({ body: 3 }));

  t.is(await code(w.accounts.deleteAccount('carol', 'wrong password')), 'AUTH_ERR_CREDENTIALS');
  t.true(await w.accounts.exists('carol'), 'a wrong password deletes nothing');
  t.is(await code(w.accounts.deleteAccount('nobody', PASSWORD)), 'AUTH_ERR_CREDENTIALS');

  await w.accounts.deleteAccount('carol', PASSWORD);
  t.is(await inboxes.purge('carol'), 2);
  t.false(await w.accounts.exists('carol'));
  t.deepEqual(await w.accounts.getKeys(['carol']), []);
  t.is(await code(w.sessions.resolve(s1.token)), 'AUTH_ERR_SESSION');
  t.is(await code(w.sessions.resolve(s2.token)), 'AUTH_ERR_SESSION');
  t.not((await w.stores.cursors.get('u.carol'))?.operation, 'PUT');
  t.is(await code(w.accounts.login('carol', PASSWORD, '192.0.2.1')), 'AUTH_ERR_CREDENTIALS');
  t.deepEqual(await w.accounts.search('carol', 10), []);
  const jsm = await jetstreamManager(w.nc);
  const info = await jsm.streams.info(w.stores.messages, { subjects_filter: subjects.inboxes });
  t.is(info.state.messages, 1, "dave's message stays");
  t.deepEqual(Object.keys(info.state.subjects ?? {}), [subjects.inbox('dave')]);
  t.is((await w.sessions.resolve(daves.token)).user, 'dave');
  // The name is free again (create over the delete marker).
  await w.accounts.register('carol', 'a new password');
  t.truthy((await w.accounts.login('carol', 'a new password', '192.0.2.1')).token);
  t.is(await code(inboxes.purge('*')), 'ACCOUNT_ERR_USERNAME', 'a wildcard never reaches the purge');
});

test('accounts - a login rehashes a password made at a lower cost than the genome now asks', async (t) => {
  const { w, gene } = await setup(t);
  await w.accounts.register('alice', PASSWORD);
  const hashOf = async () => (codec.unpack((await w.stores.accounts.get('u.alice'))!.value) as { hash: string }).hash;
  t.regex(await hashOf(), /^\$scrypt\$ln=12,/);
  // Another worker under a genome that raised the cost.
  const raised = loadGenome({ sets: ['messenger.scryptLogN=13'] }).messenger;
  t.is(gene.scryptLogN, 12);
  const w13 = worker(w.nc, w.stores, raised);
  t.truthy((await w13.accounts.login('alice', PASSWORD, '192.0.2.1')).token);
  t.regex(await hashOf(), /^\$scrypt\$ln=13,r=8,p=1\$/);
  t.deepEqual(w13.calls, { hash: 1, verify: 1 });
  t.truthy((await w13.accounts.login('alice', PASSWORD, '192.0.2.1')).token);
  t.deepEqual(w13.calls, { hash: 1, verify: 2 }, 'no second rehash');
  t.truthy((await w13.accounts.login('alice', PASSWORD, '192.0.2.1')).token, 'the new hash verifies');
});

test('accounts - a tampered stored hash is STORE_ERR_RECORD, not a login', async (t) => {
  const { w } = await setup(t);
  await w.accounts.register('alice', PASSWORD);
  const e = (await w.stores.accounts.get('u.alice'))!;
  const record = codec.unpack(e.value) as { hash: string };
  await w.stores.accounts.put('u.alice', codec.pack({ ...record, hash: record.hash.replace(/\$[^$]+$/, '$AAAA') }));
  t.is(await code(w.accounts.login('alice', PASSWORD, '192.0.2.1')), 'STORE_ERR_RECORD');
  await w.stores.accounts.put('u.alice', codec.pack({ v: 1, user: 'mallory', hash: record.hash, created: 1 }));
  t.is(await code(w.accounts.login('alice', PASSWORD, '192.0.2.1')), 'STORE_ERR_RECORD', 'a record for another name');
});
