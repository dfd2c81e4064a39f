/**
 * The client protocol's frame codec (organism/wire/frames.ts): every frame type round-trips,
 * every bad frame is refused with its PROTO_ERR_* code, and no bytes at all can make the
 * decoder throw anything else or hand back an object with a foreign prototype.
 * Pure functions: no sockets, no NATS.
 */
import { deepStrictEqual, ok } from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import {
  CLIENT_FRAME_TYPES,
  CLOSE,
  MAX_ID,
  MESSAGE_ID,
  PROTOCOL_VERSION,
  SERVER_FRAME_TYPES,
  USER_NAME,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  encodeServerFrame,
  errorFrame,
  frameIdOf,
  type ClientFrame,
  type FrameLimits,
  type ServerFrame,
} from '../../../organism/wire/frames.ts';
import { codec } from '../../../organism/wire/codec.ts';
import { CellularError, type ErrorCode } from '../../../organism/wire/errors.ts';
import { defaultGenome } from '../../../organism/kernel/genome/index.ts';

// Small limits, so generated frames reach them.
const LIMITS: FrameLimits = { maxFrameBytes: 16_384, maxBodyBytes: 256, groupMaxMembers: 8, pageMax: 40 };

/** msgpackr decodes bin as Buffer; compare as plain Uint8Array. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

/** Runs a fast-check property; a counterexample fails the test with fast-check's report. */
function holds(t: { notThrows: (fn: () => unknown, message?: string) => unknown }, property: fc.IProperty<never> | fc.IProperty<any>, runs = 200): void {
  t.notThrows(() => fc.assert(property, { numRuns: runs }));
}

/** Every object in a decoded frame is a plain object or array built by the codec, bins aside. */
function assertClean(value: unknown, at = 'frame'): void {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    ok(Object.getPrototypeOf(value) === Array.prototype, `${at}: foreign array prototype`);
    value.forEach((x, i) => assertClean(x, `${at}[${i}]`));
    return;
  }
  ok(Object.getPrototypeOf(value) === Object.prototype, `${at}: foreign prototype`);
  ok(!Object.hasOwn(value, '__proto__') && !Object.hasOwn(value, '__proto_'), `${at}: a __proto__ key came through`);
  for (const [k, v] of Object.entries(value)) assertClean(v, `${at}.${k}`);
}

const OBJECT_PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();
function assertNoPollution(): void {
  deepStrictEqual(Object.getOwnPropertyNames(Object.prototype).sort(), OBJECT_PROTO_KEYS);
  ok(({} as Record<string, unknown>).polluted === undefined, 'Object.prototype.polluted is set');
}

/** Decodes, and fails the property on anything but a clean frame or a CellularError with a PROTO_ERR_* code. */
function decodesOrRefuses(decode: () => unknown): 'ok' | ErrorCode {
  try {
    const f = decode();
    assertClean(f);
    return 'ok';
  } catch (e) {
    ok(e instanceof CellularError, `threw a non-CellularError: ${String(e)}`);
    ok(e.code.startsWith('PROTO_ERR_'), `threw ${e.code}: ${e.message}`);
    return e.code;
  }
}

function refusal(t: { throws: (fn: () => unknown, expectations: { instanceOf: typeof CellularError }, message?: string) => unknown }, fn: () => unknown, message?: string): CellularError {
  return t.throws(fn, { instanceOf: CellularError }, message) as CellularError;
}

// ---- generators -------------------------------------------------------------------------

/** Well-formed strings of at most `max` UTF-16 units (a code point may take two). */
const text = (min: number, max: number) => fc.string({ unit: 'binary', minLength: min, maxLength: Math.floor(max / 2) });
const user = fc.stringMatching(USER_NAME);
const msgId = fc.stringMatching(MESSAGE_ID);
const reqId = fc.integer({ min: 1, max: MAX_ID });
const seq = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const time = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const body = fc.uint8Array({ minLength: 1, maxLength: LIMITS.maxBodyBytes });
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const token = text(1, 128);
const password = text(0, 1024);
const urls = fc.array(text(1, 200), { maxLength: 6 });
const opaqueText = fc.stringMatching(/^[A-Za-z0-9_-]{1,1024}$/);
const loginState = fc.uint8Array({ minLength: 1, maxLength: 1024 });
const backupBlob = fc.uint8Array({ minLength: 1, maxLength: 1024 });
const proof = { grant: token, sig: fc.uint8Array({ minLength: 64, maxLength: 64 }), at: time };

const optional = <T extends Record<string, fc.Arbitrary<unknown>>>(model: T, required: Extract<keyof T, string>[]) => fc.record(model, { requiredKeys: required });

const CLIENT_GEN: Record<ClientFrame['t'], fc.Arbitrary<Record<string, unknown>>> = {
  hello: optional({ t: fc.constant('hello'), id: reqId, session: token }, ['t', 'id']),
  'register.start': fc.record({ t: fc.constant('register.start'), id: reqId, user: text(0, 1024), request: opaqueText }),
  'register.finish': fc.record({ t: fc.constant('register.finish'), id: reqId, user: text(0, 1024), record: opaqueText, x25519: key32, ed25519: key32, backup: backupBlob }),
  'login.start': fc.record({ t: fc.constant('login.start'), id: reqId, user: text(0, 1024), request: opaqueText }),
  'login.finish': fc.record({ t: fc.constant('login.finish'), id: reqId, user: text(0, 1024), finish: opaqueText, state: loginState }),
  login: fc.record({ t: fc.constant('login'), id: reqId, user: text(0, 1024), password }),
  'upgrade.start': fc.record({ t: fc.constant('upgrade.start'), id: reqId, request: opaqueText }),
  'upgrade.finish': fc.record({ t: fc.constant('upgrade.finish'), id: reqId, record: opaqueText, backup: backupBlob, grant: token }),
  resume: fc.record({ t: fc.constant('resume'), id: reqId, token }),
  logout: fc.record({ t: fc.constant('logout'), id: reqId }),
  'keys.publish': optional({ t: fc.constant('keys.publish'), id: reqId, x25519: key32, ed25519: key32, ...proof }, ['t', 'id', 'x25519', 'ed25519']),
  'keys.get': fc.record({ t: fc.constant('keys.get'), id: reqId, users: fc.array(user, { minLength: 1, maxLength: 64 }) }),
  'keys.backup.put': optional({ t: fc.constant('keys.backup.put'), id: reqId, blob: backupBlob, ...proof }, ['t', 'id', 'blob']),
  'keys.backup.get': fc.record({ t: fc.constant('keys.backup.get'), id: reqId }),
  users: optional({ t: fc.constant('users'), id: reqId, query: text(0, 32), limit: fc.integer({ min: 1, max: 100 }) }, ['t', 'id', 'query']),
  'contacts.set': fc.record({ t: fc.constant('contacts.set'), id: reqId, users: fc.uniqueArray(user, { maxLength: 50 }) }),
  send: fc.record({ t: fc.constant('send'), id: reqId, msg: msgId, to: user, body }),
  'send.group': fc.record({
    t: fc.constant('send.group'),
    id: reqId,
    msg: msgId,
    group: msgId,
    copies: fc.uniqueArray(fc.record({ to: user, body }), { minLength: 1, maxLength: LIMITS.groupMaxMembers, selector: (c) => c.to }),
  }),
  'deliver.ack': fc.record({ t: fc.constant('deliver.ack'), id: reqId, seq }),
  history: optional({ t: fc.constant('history'), id: reqId, with: user, after: fc.integer({ min: 0, max: 2 ** 40 }), limit: fc.integer({ min: 1, max: LIMITS.pageMax }) }, ['t', 'id']),
  read: fc.record({ t: fc.constant('read'), id: reqId, msg: msgId, from: user, seq }),
  delete: fc.record({ t: fc.constant('delete'), id: reqId, msg: msgId, scope: fc.constantFrom('me', 'everyone'), seqs: fc.array(seq, { minLength: 1, maxLength: LIMITS.groupMaxMembers }) }),
  'account.delete': fc.record({ t: fc.constant('account.delete'), id: reqId, grant: token }),
  ping: fc.record({ t: fc.constant('ping'), id: reqId }),
};

const delivered = optional({ seq, msg: msgId, from: user, to: user, at: time, body, group: msgId }, ['seq', 'msg', 'from', 'to', 'at', 'body']);

const SERVER_GEN: Record<ServerFrame['t'], fc.Arbitrary<Record<string, unknown>>> = {
  welcome: fc.record({ t: fc.constant('welcome'), id: reqId, cell: text(1, 128), receivers: urls, user: fc.option(user, { nil: null }) }),
  ok: fc.record({ t: fc.constant('ok'), id: reqId }),
  session: optional({ t: fc.constant('session'), id: reqId, user, token, expires: time, grant: token }, ['t', 'id', 'user', 'token', 'expires']),
  'register.response': fc.record({ t: fc.constant('register.response'), id: reqId, response: opaqueText }),
  'login.response': fc.record({ t: fc.constant('login.response'), id: reqId, response: opaqueText, state: loginState }),
  keys: fc.record({ t: fc.constant('keys'), id: reqId, keys: fc.array(fc.record({ user, x25519: key32, ed25519: key32 }), { maxLength: 64 }) }),
  users: fc.record({ t: fc.constant('users'), id: reqId, users: fc.array(optional({ user, online: fc.boolean() }, ['user']), { maxLength: 100 }) }),
  'keys.backup': fc.record({ t: fc.constant('keys.backup'), id: reqId, blob: fc.option(fc.uint8Array({ minLength: 1, maxLength: 1024 }), { nil: null }) }),
  ack: fc.record({ t: fc.constant('ack'), id: reqId, msg: msgId, seq, seqs: fc.array(seq, { minLength: 1, maxLength: 8 }) }),
  deliver: delivered.map((m) => ({ t: 'deliver', ...m })),
  history: fc.record({ t: fc.constant('history'), id: reqId, messages: fc.array(delivered, { maxLength: LIMITS.pageMax }), more: fc.boolean() }),
  receipt: fc.record({ t: fc.constant('receipt'), msg: msgId, by: user, at: time }),
  deleted: fc.record({ t: fc.constant('deleted'), msg: msgId, by: user }),
  presence: fc.record({ t: fc.constant('presence'), user, online: fc.boolean() }),
  error: optional({ t: fc.constant('error'), id: reqId, code: fc.stringMatching(/^[A-Z][A-Z_]{0,63}$/), message: text(0, 1024) }, ['t', 'code', 'message']),
  moved: fc.record({ t: fc.constant('moved'), receivers: urls }),
  receivers: fc.record({ t: fc.constant('receivers'), receivers: urls }),
  pong: fc.record({ t: fc.constant('pong'), id: reqId }),
};

const clientFrame = fc.oneof(...Object.values(CLIENT_GEN)) as fc.Arbitrary<ClientFrame>;
const serverFrame = fc.oneof(...Object.values(SERVER_GEN)) as fc.Arbitrary<ServerFrame>;

// ---- round trips ------------------------------------------------------------------------

test('frames - the generators cover every frame type', (t) => {
  t.deepEqual(Object.keys(CLIENT_GEN).sort(), [...CLIENT_FRAME_TYPES].sort());
  t.deepEqual(Object.keys(SERVER_GEN).sort(), [...SERVER_FRAME_TYPES].sort());
  t.is(CLIENT_FRAME_TYPES.length, 24);
  t.is(SERVER_FRAME_TYPES.length, 18);
});

for (const type of CLIENT_FRAME_TYPES) {
  test(`frames - client frame ${type} round-trips`, (t) => {
    holds(
      t,
      fc.property(CLIENT_GEN[type], (f) => {
        const bytes = encodeClientFrame(f as ClientFrame);
        const back = decodeClientFrame(bytes, LIMITS);
        deepStrictEqual(plain(back), { v: PROTOCOL_VERSION, ...(plain(f) as object) });
        assertClean(back);
        // One canonical form: what decodes re-encodes to the same bytes.
        deepStrictEqual(new Uint8Array(encodeClientFrame(back)), new Uint8Array(bytes));
        ok(frameIdOf(bytes) === f.id, 'frameIdOf reads the id');
      }),
      60,
    );
  });
}

for (const type of SERVER_FRAME_TYPES) {
  test(`frames - server frame ${type} round-trips`, (t) => {
    holds(
      t,
      fc.property(SERVER_GEN[type], (f) => {
        const bytes = encodeServerFrame(f as ServerFrame);
        const back = decodeServerFrame(bytes);
        deepStrictEqual(plain(back), { v: PROTOCOL_VERSION, ...(plain(f) as object) });
        assertClean(back);
        deepStrictEqual(new Uint8Array(encodeServerFrame(back)), new Uint8Array(bytes));
      }),
      60,
    );
  });
}

test('frames - encoding writes v, t and id first, and takes v only if it is 1', (t) => {
  const bytes = encodeClientFrame({ t: 'send', to: 'bob', body: new Uint8Array([1]), msg: 'msg-0001', id: 9 } as ClientFrame);
  t.deepEqual(Object.keys(codec.unpack(bytes)), ['v', 't', 'id', 'msg', 'to', 'body']);
  t.deepEqual(new Uint8Array(encodeClientFrame({ v: 1, t: 'ping', id: 3 })), new Uint8Array(encodeClientFrame({ t: 'ping', id: 3 })));
  t.is(refusal(t, () => encodeClientFrame({ v: 2 as 1, t: 'ping', id: 3 })).code, 'PROTO_ERR_MALFORMED');
});

test('frames - decoding accepts any Uint8Array, not only a Buffer, at any offset', (t) => {
  const bytes = encodeClientFrame({ t: 'send', id: 5, msg: 'msg-0001', to: 'bob', body: new Uint8Array([7, 8, 9]) });
  const host = new Uint8Array(bytes.length + 11);
  host.set(bytes, 11);
  for (const view of [new Uint8Array(bytes), host.subarray(11)]) {
    const f = decodeClientFrame(view, LIMITS);
    t.is(f.t, 'send');
    t.deepEqual(plain(f.t === 'send' ? f.body : null), new Uint8Array([7, 8, 9]));
    t.is(frameIdOf(view), 5);
  }
});

test('frames - the default genome limits decode a full-size body', (t) => {
  const gene = defaultGenome().messenger;
  const f = decodeClientFrame(encodeClientFrame({ t: 'send', id: 1, msg: 'msg-0001', to: 'bob', body: new Uint8Array(gene.maxBodyBytes) }), gene);
  t.is(f.t === 'send' ? f.body.length : 0, gene.maxBodyBytes);
});

// ---- refusals ---------------------------------------------------------------------------

const pack = (value: unknown) => codec.pack(value);
const SEND = { v: 1, t: 'send', id: 1, msg: 'msg-0001', to: 'bob', body: new Uint8Array(4) };
const GROUP = { v: 1, t: 'send.group', id: 1, msg: 'msg-0001', group: 'group-001', copies: [{ to: 'bob', body: new Uint8Array(4) }] };
const copies = (n: number, to = (i: number) => `user-${i}`) => Array.from({ length: n }, (_, i) => ({ to: to(i), body: new Uint8Array(1) }));
const ids = (n: number) => Array.from({ length: n }, (_, i) => `user-${i}`);

/** [what, bytes, code, words the message must contain] */
const REFUSALS: [string, Uint8Array, ErrorCode, string?][] = [
  // not msgpack
  ['empty bytes', new Uint8Array(0), 'PROTO_ERR_MALFORMED'],
  ['the never-used byte 0xc1', Uint8Array.of(0xc1), 'PROTO_ERR_MALFORMED'],
  ['a truncated map', pack(SEND).subarray(0, 20), 'PROTO_ERR_MALFORMED'],
  ['trailing bytes after the map', Uint8Array.of(...pack({ v: 1, t: 'ping', id: 1 }), 0x01), 'PROTO_ERR_MALFORMED'],
  ['JSON text', new TextEncoder().encode('{"v":1,"t":"ping","id":1}'), 'PROTO_ERR_MALFORMED'],
  // not a map
  ['an array', pack([1, 'ping', 1]), 'PROTO_ERR_MALFORMED', 'map'],
  ['a string', pack('ping'), 'PROTO_ERR_MALFORMED', 'map'],
  ['nil', pack(null), 'PROTO_ERR_MALFORMED', 'map'],
  ['a number', pack(42), 'PROTO_ERR_MALFORMED', 'map'],
  ['a bin', pack(new Uint8Array(8)), 'PROTO_ERR_MALFORMED', 'map'],
  ['a timestamp', pack(new Date(0)), 'PROTO_ERR_MALFORMED', 'map'],
  // v ≠ 1
  ['v 2', pack({ ...SEND, v: 2 }), 'PROTO_ERR_MALFORMED', 'v'],
  ['v 0', pack({ ...SEND, v: 0 }), 'PROTO_ERR_MALFORMED', 'v'],
  ['v "1"', pack({ ...SEND, v: '1' }), 'PROTO_ERR_MALFORMED', 'v'],
  ['no v', pack({ t: 'ping', id: 1 }), 'PROTO_ERR_MALFORMED', 'v'],
  // unknown t
  ['t "teleport"', pack({ v: 1, t: 'teleport', id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE', 'teleport'],
  ['a server type from a client', pack({ v: 1, t: 'deliver', id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE', 'deliver'],
  ['t "toString"', pack({ v: 1, t: 'toString', id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE'],
  ['t "__proto__"', pack({ v: 1, t: '__proto__', id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE'],
  ['t "constructor"', pack({ v: 1, t: 'constructor', id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE'],
  ['t "PING"', pack({ v: 1, t: 'PING', id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE'],
  ['no t', pack({ v: 1, id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE'],
  ['t a number', pack({ v: 1, t: 7, id: 1 }), 'PROTO_ERR_UNKNOWN_TYPE'],
  // missing field
  ['no id', pack({ v: 1, t: 'ping' }), 'PROTO_ERR_BAD_FIELD', 'id is missing'],
  ['send without body', pack({ ...SEND, body: undefined }), 'PROTO_ERR_BAD_FIELD', 'body is missing'],
  ['login without password', pack({ v: 1, t: 'login', id: 1, user: 'ann' }), 'PROTO_ERR_BAD_FIELD', 'password is missing'],
  ['a copy without body', pack({ ...GROUP, copies: [{ to: 'bob' }] }), 'PROTO_ERR_BAD_FIELD', 'copies[0].body is missing'],
  ['users without query', pack({ v: 1, t: 'users', id: 1 }), 'PROTO_ERR_BAD_FIELD', 'query is missing'],
  // extra field
  ['ping with a pad', pack({ v: 1, t: 'ping', id: 1, pad: 'x' }), 'PROTO_ERR_BAD_FIELD', '"pad" is not a field'],
  ['a copy with a group', pack({ ...GROUP, copies: [{ to: 'bob', body: new Uint8Array(1), group: 'group-001' }] }), 'PROTO_ERR_BAD_FIELD', 'copies[0]."group" is not a field'],
  ['send with a group', pack({ ...SEND, group: 'group-001' }), 'PROTO_ERR_BAD_FIELD', '"group" is not a field'],
  ['a numeric key', pack({ v: 1, t: 'ping', id: 1, 5: 5 }), 'PROTO_ERR_BAD_FIELD', '"5" is not a field'],
  // wrong type
  ['id a string', pack({ v: 1, t: 'ping', id: '1' }), 'PROTO_ERR_BAD_FIELD', 'id must be'],
  ['id a float', pack({ v: 1, t: 'ping', id: 1.5 }), 'PROTO_ERR_BAD_FIELD', 'id must be'],
  ['id nil', pack({ v: 1, t: 'ping', id: null }), 'PROTO_ERR_BAD_FIELD', 'id must be'],
  ['body a string', pack({ ...SEND, body: 'ciphertext' }), 'PROTO_ERR_BAD_FIELD', 'body must be'],
  ['body an array of bytes', pack({ ...SEND, body: [1, 2, 3] }), 'PROTO_ERR_BAD_FIELD', 'body must be'],
  ['users a string', pack({ v: 1, t: 'keys.get', id: 1, users: 'bob' }), 'PROTO_ERR_BAD_FIELD', 'users must be'],
  ['copies a map', pack({ ...GROUP, copies: { to: 'bob', body: new Uint8Array(1) } }), 'PROTO_ERR_BAD_FIELD', 'copies must be'],
  ['a copy a string', pack({ ...GROUP, copies: ['bob'] }), 'PROTO_ERR_BAD_FIELD', 'copies[0] must be a map'],
  ['scope "all"', pack({ v: 1, t: 'delete', id: 1, msg: 'msg-0001', scope: 'all', seqs: [1] }), 'PROTO_ERR_BAD_FIELD', 'scope must be one of'],
  ['password a number', pack({ v: 1, t: 'login', id: 1, user: 'ann', password: 12345678 }), 'PROTO_ERR_BAD_FIELD', 'password must be'],
  ['a password on account.delete', pack({ v: 1, t: 'account.delete', id: 1, password: 'my password' }), 'PROTO_ERR_BAD_FIELD', '"password" is not a field'],
  ['an OPAQUE request with spaces', pack({ v: 1, t: 'login.start', id: 1, user: 'ann', request: 'not base64url' }), 'PROTO_ERR_BAD_FIELD', 'request must be an OPAQUE message'],
  ['a 63-byte owner signature', pack({ v: 1, t: 'keys.backup.put', id: 1, blob: new Uint8Array(8), sig: new Uint8Array(63), at: 1 }), 'PROTO_ERR_BAD_FIELD', 'sig must be'],
  ['seq a string', pack({ v: 1, t: 'deliver.ack', id: 1, seq: '5' }), 'PROTO_ERR_BAD_FIELD', 'seq must be'],
  ['a 31-byte key', pack({ v: 1, t: 'keys.publish', id: 1, x25519: new Uint8Array(31), ed25519: new Uint8Array(32) }), 'PROTO_ERR_BAD_FIELD', 'x25519 must be'],
  ['a 33-byte key', pack({ v: 1, t: 'keys.publish', id: 1, x25519: new Uint8Array(32), ed25519: new Uint8Array(33) }), 'PROTO_ERR_BAD_FIELD', 'ed25519 must be'],
  ['an empty body', pack({ ...SEND, body: new Uint8Array(0) }), 'PROTO_ERR_BAD_FIELD', 'body must be'],
  // out of range
  ['id 0', pack({ v: 1, t: 'ping', id: 0 }), 'PROTO_ERR_BAD_FIELD', 'id must be'],
  ['id -1', pack({ v: 1, t: 'ping', id: -1 }), 'PROTO_ERR_BAD_FIELD', 'id must be'],
  ['id 2^31', pack({ v: 1, t: 'ping', id: 2 ** 31 }), 'PROTO_ERR_BAD_FIELD', 'id must be'],
  ['seq 0', pack({ v: 1, t: 'deliver.ack', id: 1, seq: 0 }), 'PROTO_ERR_BAD_FIELD', 'seq must be'],
  ['seq past 2^53', pack({ v: 1, t: 'deliver.ack', id: 1, seq: 2 ** 60 }), 'PROTO_ERR_BAD_FIELD', 'seq must be'],
  ['history after -1', pack({ v: 1, t: 'history', id: 1, after: -1 }), 'PROTO_ERR_BAD_FIELD', 'after must be'],
  ['delete without seqs', pack({ v: 1, t: 'delete', id: 1, msg: 'msg-0001', scope: 'me' }), 'PROTO_ERR_BAD_FIELD', 'seqs'],
  ['delete with no seqs', pack({ v: 1, t: 'delete', id: 1, msg: 'msg-0001', scope: 'me', seqs: [] }), 'PROTO_ERR_BAD_FIELD', 'seqs'],
  ['history limit past pageMax', pack({ v: 1, t: 'history', id: 1, limit: LIMITS.pageMax + 1 }), 'PROTO_ERR_BAD_FIELD', 'messenger.pageMax'],
  ['history limit 0', pack({ v: 1, t: 'history', id: 1, limit: 0 }), 'PROTO_ERR_BAD_FIELD', 'limit must be'],
  ['users limit 101', pack({ v: 1, t: 'users', id: 1, query: '', limit: 101 }), 'PROTO_ERR_BAD_FIELD', 'limit must be'],
  ['a 33-character query', pack({ v: 1, t: 'users', id: 1, query: 'q'.repeat(33) }), 'PROTO_ERR_BAD_FIELD', 'query must be'],
  ['a 129-character token', pack({ v: 1, t: 'resume', id: 1, token: 't'.repeat(129) }), 'PROTO_ERR_BAD_FIELD', 'token must be'],
  ['an empty token', pack({ v: 1, t: 'resume', id: 1, token: '' }), 'PROTO_ERR_BAD_FIELD', 'token must be'],
  ['a 1025-character password', pack({ v: 1, t: 'login', id: 1, user: 'ann', password: 'p'.repeat(1025) }), 'PROTO_ERR_BAD_FIELD', 'password must be'],
  ['keys.get of no users', pack({ v: 1, t: 'keys.get', id: 1, users: [] }), 'PROTO_ERR_BAD_FIELD', 'users must be'],
  ['keys.get of 65 users', pack({ v: 1, t: 'keys.get', id: 1, users: ids(65) }), 'PROTO_ERR_BAD_FIELD', 'users must be'],
  // bad user names
  ['to "Bob"', pack({ ...SEND, to: 'Bob' }), 'PROTO_ERR_BAD_FIELD', 'to must be a user name'],
  ['to "ab"', pack({ ...SEND, to: 'ab' }), 'PROTO_ERR_BAD_FIELD', 'to must be a user name'],
  ['to of 33 characters', pack({ ...SEND, to: 'a'.repeat(33) }), 'PROTO_ERR_BAD_FIELD', 'to must be a user name'],
  ['to "-bob"', pack({ ...SEND, to: '-bob' }), 'PROTO_ERR_BAD_FIELD', 'to must be a user name'],
  ['to "bob.smith" (a subject separator)', pack({ ...SEND, to: 'bob.smith' }), 'PROTO_ERR_BAD_FIELD', 'to must be a user name'],
  ['to "bob*"', pack({ ...SEND, to: 'bob*' }), 'PROTO_ERR_BAD_FIELD', 'to must be a user name'],
  ['to "bob\\n"', pack({ ...SEND, to: 'bob\n' }), 'PROTO_ERR_BAD_FIELD', 'to must be a user name'],
  ['read from "A>"', pack({ v: 1, t: 'read', id: 1, msg: 'msg-0001', from: 'A>', seq: 1 }), 'PROTO_ERR_BAD_FIELD', 'from must be a user name'],
  ['history with "x y z"', pack({ v: 1, t: 'history', id: 1, with: 'x y z' }), 'PROTO_ERR_BAD_FIELD', 'with must be a user name'],
  ['keys.get of one bad name', pack({ v: 1, t: 'keys.get', id: 1, users: ['ann', 'BAD'] }), 'PROTO_ERR_BAD_FIELD', 'users[1] must be a user name'],
  ['a copy to "x"', pack({ ...GROUP, copies: [{ to: 'x', body: new Uint8Array(1) }] }), 'PROTO_ERR_BAD_FIELD', 'copies[0].to must be a user name'],
  // bad msg ids
  ['msg "short"', pack({ ...SEND, msg: 'short' }), 'PROTO_ERR_BAD_FIELD', 'msg must be a message id'],
  ['msg with a space', pack({ ...SEND, msg: 'msg 0001' }), 'PROTO_ERR_BAD_FIELD', 'msg must be a message id'],
  ['msg of 65 characters', pack({ ...SEND, msg: 'm'.repeat(65) }), 'PROTO_ERR_BAD_FIELD', 'msg must be a message id'],
  ['msg a number', pack({ ...SEND, msg: 12345678 }), 'PROTO_ERR_BAD_FIELD', 'msg must be a message id'],
  ['group "g"', pack({ ...GROUP, group: 'g' }), 'PROTO_ERR_BAD_FIELD', 'group must be a group id'],
  ['delete msg "a/b/c/d/e"', pack({ v: 1, t: 'delete', id: 1, msg: 'a/b/c/d/e', scope: 'me', seqs: [1] }), 'PROTO_ERR_BAD_FIELD', 'msg must be a message id'],
  // too large
  ['a body past maxBodyBytes', pack({ ...SEND, body: new Uint8Array(LIMITS.maxBodyBytes + 1) }), 'PROTO_ERR_TOO_LARGE', 'messenger.maxBodyBytes'],
  ['a copy past maxBodyBytes', pack({ ...GROUP, copies: [...copies(2), { to: 'carol', body: new Uint8Array(LIMITS.maxBodyBytes + 1) }] }), 'PROTO_ERR_TOO_LARGE', 'copies[2].body'],
  // groups
  ['a group of no copies', pack({ ...GROUP, copies: [] }), 'PROTO_ERR_BAD_FIELD', 'copies must be'],
  ['a group past groupMaxMembers', pack({ ...GROUP, copies: copies(LIMITS.groupMaxMembers + 1) }), 'PROTO_ERR_BAD_FIELD', 'messenger.groupMaxMembers'],
  ['a group with a repeated recipient', pack({ ...GROUP, copies: copies(4, (i) => (i === 3 ? 'user-1' : `user-${i}`)) }), 'PROTO_ERR_BAD_FIELD', 'copies[3] repeats "user-1"'],
];

test('frames - each bad client frame is refused with its code, and the message names the field', (t) => {
  for (const [what, bytes, code, words] of REFUSALS) {
    const e = refusal(t, () => decodeClientFrame(bytes, LIMITS), what);
    t.is(e.code, code, `${what}: ${e.message}`);
    if (words) t.true(e.message.includes(words), `${what}: "${e.message}" does not say "${words}"`);
  }
});

test('frames - a group of exactly groupMaxMembers is accepted', (t) => {
  const f = decodeClientFrame(pack({ ...GROUP, copies: copies(LIMITS.groupMaxMembers) }), LIMITS);
  t.is(f.t === 'send.group' ? f.copies.length : 0, LIMITS.groupMaxMembers);
});

test('frames - frame size is checked before decoding, and maxFrameBytes itself is allowed', (t) => {
  const limits = { ...LIMITS, maxFrameBytes: 1024, maxBodyBytes: 4096 };
  // Garbage one byte past the limit says TOO_LARGE, not MALFORMED: it was never unpacked.
  const garbage = new Uint8Array(limits.maxFrameBytes + 1).fill(0xc1);
  t.is(refusal(t, () => decodeClientFrame(garbage, limits)).code, 'PROTO_ERR_TOO_LARGE');
  t.is(refusal(t, () => decodeClientFrame(garbage.subarray(0, limits.maxFrameBytes), limits)).code, 'PROTO_ERR_MALFORMED');
  // A valid frame of exactly maxFrameBytes decodes; one byte more is refused.
  const sized = (n: number) => encodeClientFrame({ t: 'send', id: 1, msg: 'msg-0001', to: 'bob', body: new Uint8Array(n) });
  let n = 1;
  while (sized(n).length < limits.maxFrameBytes) n++;
  t.is(sized(n).length, limits.maxFrameBytes);
  t.is(decodeClientFrame(sized(n), limits).t, 'send');
  const e = refusal(t, () => decodeClientFrame(sized(n + 1), limits));
  t.is(e.code, 'PROTO_ERR_TOO_LARGE');
  t.true(e.message.includes('messenger.maxFrameBytes'), e.message);
});

test('frames - a frame that is not a Uint8Array is malformed', (t) => {
  for (const bad of ['{"v":1}', null, [1, 2], new ArrayBuffer(4)]) {
    t.is(refusal(t, () => decodeClientFrame(bad as unknown as Uint8Array, LIMITS)).code, 'PROTO_ERR_MALFORMED');
  }
});

test('frames - a __proto__ key is refused and pollutes nothing', (t) => {
  const own = (o: object) => JSON.parse(JSON.stringify(o).replace('"__proto_x"', '"__proto__"')) as Record<string, unknown>;
  // As msgpackr would pack an object with an own __proto__ key (JSON.parse makes one)...
  const top = own({ v: 1, t: 'ping', id: 1, __proto_x: { polluted: true } });
  t.true(Object.hasOwn(top, '__proto__'));
  const nested = { ...GROUP, copies: [Object.assign(own({ to: 'bob', __proto_x: { polluted: true } }), { body: new Uint8Array(1) })] };
  // ...and as hand-written bytes: {v: 1, t: "ping", id: 1, "__proto__": {"polluted": true}}.
  const enc = (s: string) => [0xa0 + s.length, ...new TextEncoder().encode(s)];
  const raw = Uint8Array.of(0x84, ...enc('v'), 1, ...enc('t'), ...enc('ping'), ...enc('id'), 1, ...enc('__proto__'), 0x81, ...enc('polluted'), 0xc3);
  for (const [what, bytes] of [
    ['top level', pack(top)],
    ['in a copy', pack(nested)],
    ['hand-written', raw],
  ] as const) {
    const e = refusal(t, () => decodeClientFrame(bytes, LIMITS), what);
    t.is(e.code, 'PROTO_ERR_BAD_FIELD', `${what}: ${e.message}`);
    t.is(frameIdOf(bytes), 1, what);
  }
  t.is(refusal(t, () => decodeServerFrame(raw)).code, 'PROTO_ERR_UNKNOWN_TYPE'); // ping is no server frame
  t.is(refusal(t, () => decodeClientFrame(pack({ v: 1, t: '__proto__', id: 1 }), LIMITS)).code, 'PROTO_ERR_UNKNOWN_TYPE');
  assertNoPollution();
});

test('frames - bad server frames are refused by the decoder and by the encoder', (t) => {
  const deliver = { v: 1, t: 'deliver', seq: 1, msg: 'msg-0001', from: 'bob', to: 'ann', at: 1, body: new Uint8Array(1) };
  const cases: [string, Record<string, unknown>, ErrorCode][] = [
    ['a client type', { v: 1, t: 'ping', id: 1 }, 'PROTO_ERR_UNKNOWN_TYPE'],
    ['from "Bob"', { ...deliver, from: 'Bob' }, 'PROTO_ERR_BAD_FIELD'],
    ['seq 0', { ...deliver, seq: 0 }, 'PROTO_ERR_BAD_FIELD'],
    ['no body', { ...deliver, body: undefined }, 'PROTO_ERR_BAD_FIELD'],
    ['an extra field', { ...deliver, extra: 1 }, 'PROTO_ERR_BAD_FIELD'],
    ['welcome user undefined', { v: 1, t: 'welcome', id: 1, cell: 'receiver-1', receivers: [] }, 'PROTO_ERR_BAD_FIELD'],
    ['welcome without id', { v: 1, t: 'welcome', cell: 'receiver-1', receivers: [], user: null }, 'PROTO_ERR_BAD_FIELD'],
    ['history without more', { v: 1, t: 'history', id: 1, messages: [] }, 'PROTO_ERR_BAD_FIELD'],
    ['a message in history with a bad msg', { v: 1, t: 'history', id: 1, messages: [{ ...deliver, v: undefined, t: undefined, msg: 'x' }], more: false }, 'PROTO_ERR_BAD_FIELD'],
    ['users online "yes"', { v: 1, t: 'users', id: 1, users: [{ user: 'ann', online: 'yes' }] }, 'PROTO_ERR_BAD_FIELD'],
    ['v 2', { ...deliver, v: 2 }, 'PROTO_ERR_MALFORMED'],
  ];
  for (const [what, frame, code] of cases) {
    t.is(refusal(t, () => decodeServerFrame(pack(frame)), what).code, code, what);
    t.is(refusal(t, () => encodeServerFrame(frame as ServerFrame), what).code, code, what);
  }
  t.is(refusal(t, () => decodeServerFrame(Uint8Array.of(0xc1))).code, 'PROTO_ERR_MALFORMED');
  t.is(refusal(t, () => encodeClientFrame({ t: 'send', id: 1, msg: 'msg-0001', to: 'Bob', body: new Uint8Array(1) })).code, 'PROTO_ERR_BAD_FIELD');
  // welcome.user may be nil (not logged in).
  t.is(decodeServerFrame(pack({ v: 1, t: 'welcome', id: 1, cell: 'receiver-1', receivers: [], user: null })).t, 'welcome');
});

// ---- error frames, ids, close codes -------------------------------------------------------

test('frames - errorFrame keeps a CellularError and says nothing about any other', (t) => {
  const known = errorFrame(new CellularError('ACCOUNT_ERR_EXISTS', 'the username ann is taken'), 12);
  t.deepEqual(known, { v: 1, t: 'error', id: 12, code: 'ACCOUNT_ERR_EXISTS', message: 'the username ann is taken' });
  t.deepEqual(plain(decodeServerFrame(encodeServerFrame(known))), known);
  const secret = new Error('ENOENT /srv/secret/path');
  for (const e of [secret, new TypeError('x is undefined'), 'a string', undefined, { code: 'AUTH_ERR_SESSION', message: 'forged' }]) {
    const f = errorFrame(e, 3);
    t.is(f.code, 'CELL_ERR_REMOTE');
    t.is(f.id, 3);
    t.false(f.message.includes('secret') || f.message.includes('at ') || f.message.includes('forged'), f.message);
    t.notThrows(() => encodeServerFrame(f));
  }
  // No id, or one outside 1..2^31-1, is left out.
  for (const id of [undefined, 0, -1, 1.5, 2 ** 31, Number.NaN]) t.false('id' in errorFrame(secret, id), String(id));
  // A long message is cut so the frame stays encodable.
  t.notThrows(() => encodeServerFrame(errorFrame(new CellularError('PROTO_ERR_BAD_FIELD', 'x'.repeat(5000)), 1)));
  // Every decoder error becomes an error frame that names the request.
  const bytes = pack({ v: 1, t: 'teleport', id: 77 });
  const e = refusal(t, () => decodeClientFrame(bytes, LIMITS));
  t.like(errorFrame(e, frameIdOf(bytes)), { t: 'error', id: 77, code: 'PROTO_ERR_UNKNOWN_TYPE' });
});

test('frames - frameIdOf reads the id of a frame that fails to decode, and nothing that is not one', (t) => {
  t.is(frameIdOf(pack({ v: 1, t: 'teleport', id: 41 })), 41);
  t.is(frameIdOf(pack({ v: 9, id: 42 })), 42);
  t.is(frameIdOf(pack({ ...SEND, id: 43, body: new Uint8Array(100_000) })), 43, 'too large');
  t.is(frameIdOf(pack({ pad: [[1, [2, { a: 'b' }]], new Uint8Array(300), 'x'.repeat(70_000)], n: { m: [1, 2, 3] }, id: 44 })), 44, 'after nested values');
  t.is(frameIdOf(pack({ id: MAX_ID })), MAX_ID);
  t.is(frameIdOf(pack({ id: 2 ** 40 }).subarray(0)), undefined);
  for (const bad of [0, -5, 1.5, '7', null, 2 ** 31, [7]]) t.is(frameIdOf(pack({ v: 1, t: 'ping', id: bad })), undefined, JSON.stringify(bad));
  for (const bytes of [new Uint8Array(0), Uint8Array.of(0xc1), pack([{ id: 5 }]), pack('id'), pack({ t: 'ping' }), pack({ v: 1, t: 'ping', id: 5 }).subarray(0, 12)]) {
    t.is(frameIdOf(bytes), undefined);
  }
  // Agrees with a full decode on random maps.
  const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.uint8Array({ maxLength: 300 }), fc.integer(), fc.double({ noNaN: true }));
  holds(
    t,
    fc.property(fc.dictionary(fc.oneof(fc.constant('id'), fc.string({ maxLength: 4 })), fc.oneof(reqId, value), { maxKeys: 8, noNullPrototype: true }), (map) => {
      const bytes = pack(map);
      const id = (codec.unpack(bytes) as Record<string, unknown>).id;
      const valid = typeof id === 'number' && Number.isSafeInteger(id) && id >= 1 && id <= MAX_ID;
      deepStrictEqual(frameIdOf(bytes), valid ? id : undefined);
    }),
    500,
  );
});

test('frames - close codes', (t) => {
  t.deepEqual({ ...CLOSE }, { MOVED: 4000, SLOW: 4001, POLICY: 4002, ACCOUNT_DELETED: 4004, SESSION_ENDED: 4005, TOO_BIG: 1009 });
});

// ---- fuzz -------------------------------------------------------------------------------

test('frames - random bytes are decoded or refused with a PROTO_ERR code, never anything else', (t) => {
  const seen = new Set<string>();
  holds(
    t,
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      seen.add(decodesOrRefuses(() => decodeClientFrame(bytes, LIMITS)));
      decodesOrRefuses(() => decodeServerFrame(bytes));
      const id = frameIdOf(bytes);
      ok(id === undefined || (Number.isInteger(id) && id >= 1 && id <= MAX_ID));
    }),
    3000,
  );
  assertNoPollution();
  t.true(seen.has('PROTO_ERR_MALFORMED'));
});

test('frames - any packed value is decoded or refused with a PROTO_ERR code, and pollutes nothing', (t) => {
  // Bigints within 64 bits: msgpackr cannot pack wider ones.
  const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n });
  const anything = fc.anything({ maxDepth: 3, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withBoxedValues: true, withSparseArray: true });
  const frameish = fc.dictionary(fc.constantFrom('v', 't', 'id', 'body', 'copies', '__proto__'), fc.oneof(anything, int64, fc.constantFrom(1, 'ping', 'send')), { maxKeys: 6 });
  holds(
    t,
    fc.property(fc.oneof(anything, int64, frameish), (value) => {
      const bytes = pack(value);
      decodesOrRefuses(() => decodeClientFrame(bytes, LIMITS));
      decodesOrRefuses(() => decodeServerFrame(bytes));
      frameIdOf(bytes);
    }),
    1500,
  );
  assertNoPollution();
});

test('frames - near-valid frames (right type, random fields) decode cleanly or are refused', (t) => {
  const names = ['id', 'v', 't', 'session', 'user', 'password', 'token', 'request', 'record', 'finish', 'state', 'grant', 'sig', 'at', 'x25519', 'ed25519', 'users', 'query', 'limit', 'msg', 'to', 'body', 'group', 'copies', 'seq', 'with', 'before', 'from', 'scope', '__proto__', 'constructor', 'polluted'];
  const leaf = fc.oneof(user, msgId, reqId, body, key32, fc.constantFrom('me', 'everyone', 1, 0, -1, 2 ** 31, null, true, ''), fc.anything({ maxDepth: 1 }));
  const fieldsOf = (depth: number): fc.Arbitrary<Record<string, unknown>> =>
    fc.dictionary(fc.constantFrom(...names), depth > 0 ? fc.oneof(leaf, fc.array(fc.oneof(leaf, fieldsOf(depth - 1)), { maxLength: 10 })) : leaf, { maxKeys: 8 });
  const codes = new Set<string>();
  let decoded = 0;
  holds(
    t,
    fc.property(fc.constantFrom(...CLIENT_FRAME_TYPES), fieldsOf(1), fc.boolean(), (type, fields, withId) => {
      const frame = { ...fields, v: 1, t: type, ...(withId ? { id: 1 } : {}) };
      const bytes = pack(frame);
      const code = decodesOrRefuses(() => decodeClientFrame(bytes, LIMITS));
      codes.add(code);
      if (code === 'ok') {
        decoded++;
        const back = decodeClientFrame(bytes, LIMITS);
        deepStrictEqual(plain(decodeClientFrame(encodeClientFrame(back), LIMITS)), plain(back));
      }
    }),
    3000,
  );
  assertNoPollution();
  t.true(codes.has('PROTO_ERR_BAD_FIELD'));
  t.true(decoded > 0, 'no near-valid frame was valid');
});

test('frames - corrupted valid frames are decoded or refused with a PROTO_ERR code', (t) => {
  holds(
    t,
    fc.property(clientFrame, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (f, flips, cut) => {
      const bytes = new Uint8Array(encodeClientFrame(f));
      for (const [at, b] of flips) bytes[at % bytes.length] = b;
      decodesOrRefuses(() => decodeClientFrame(bytes, LIMITS));
      decodesOrRefuses(() => decodeClientFrame(bytes.subarray(0, cut % bytes.length), LIMITS));
      frameIdOf(bytes);
    }),
    1500,
  );
  holds(
    t,
    fc.property(serverFrame, fc.nat(), fc.integer({ min: 0, max: 255 }), (f, at, b) => {
      const bytes = new Uint8Array(encodeServerFrame(f));
      bytes[at % bytes.length] = b;
      decodesOrRefuses(() => decodeServerFrame(bytes));
    }),
    800,
  );
  assertNoPollution();
});
