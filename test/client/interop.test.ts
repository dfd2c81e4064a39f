/**
 * Interoperability with a second, independent implementation of the client's cryptography.
 *
 * Everything in the "independent implementation" half of this file was written from
 * docs/crypto.md alone (never from client/crypto/), with only `node:crypto` (X25519, Ed25519,
 * HKDF, SHA-256) and `libsodium-wrappers` (XChaCha20-Poly1305, which node:crypto lacks). The
 * client's exported functions appear only as the other side of each exchange: what one side
 * seals, the other must open, and where both refuse something they must agree on why. A
 * mismatch here means the document and the code disagree about the wire format.
 */
import test from 'ava';
import fc from 'fast-check';
import sodium from 'libsodium-wrappers';
import { createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { generateIdentity, keyId as clientKeyId, open as clientOpen, safetyNumber as clientSafetyNumber, seal as clientSeal, type Header } from '../../client/crypto/envelope.ts';
import { openBackup as clientOpenBackup, sealBackup as clientSealBackup } from '../../client/crypto/key-backup.ts';
import { formatRecoveryKey as clientFormatRecoveryKey, parseRecoveryKey as clientParseRecoveryKey } from '../../client/crypto/recovery-key.ts';

// ───────────────────────────── the independent implementation ─────────────────────────────

interface KeyPair { secretKey: Uint8Array; publicKey: Uint8Array }
interface Ident { x25519: KeyPair; ed25519: KeyPair }
interface Hdr {
  v: 1; at: number; from: string; to: string; msg: string;
  group?: string; members?: string[];
  senderKeyId: string; recipientKeyId: string;
}
type Code = 'CRYPTO_ERR_FORMAT' | 'CRYPTO_ERR_SIGNATURE' | 'CRYPTO_ERR_DECRYPT' | 'CRYPTO_ERR_HEADER';

class IndependentError extends Error {
  constructor(readonly code: Code, message: string) { super(`${code}: ${message}`); }
}
const fail = (code: Code, message: string): never => { throw new IndependentError(code, message); };

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Always a plain Uint8Array (never a Buffer), so deepEqual against the client's values holds. */
const u8 = (b: ArrayBuffer | Uint8Array): Uint8Array => new Uint8Array(b instanceof Uint8Array ? b.slice() : b.slice(0));
function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const sha256 = (...parts: Uint8Array[]): Uint8Array => u8(createHash('sha256').update(concat(...parts)).digest());

// Raw 32-byte keys ↔ node KeyObjects through the fixed DER prefixes (RFC 8410).
const PKCS8 = { x25519: '302e020100300506032b656e04220420', ed25519: '302e020100300506032b657004220420' };
const SPKI = { x25519: '302a300506032b656e032100', ed25519: '302a300506032b6570032100' };
type Alg = keyof typeof PKCS8;
function privateKey(alg: Alg, secret: Uint8Array): KeyObject {
  if (secret.length !== 32) fail('CRYPTO_ERR_FORMAT', `${alg} secret key must be 32 bytes`);
  return createPrivateKey({ key: Buffer.concat([Buffer.from(PKCS8[alg], 'hex'), secret]), format: 'der', type: 'pkcs8' });
}
function publicKey(alg: Alg, pub: Uint8Array): KeyObject {
  if (pub.length !== 32) fail('CRYPTO_ERR_FORMAT', `${alg} public key must be 32 bytes`);
  return createPublicKey({ key: Buffer.concat([Buffer.from(SPKI[alg], 'hex'), pub]), format: 'der', type: 'spki' });
}
/** The raw public key: the last 32 bytes of the SPKI encoding. */
const rawPublic = (key: KeyObject): Uint8Array => u8(key.export({ format: 'der', type: 'spki' }).subarray(-32));
const rawSecret = (key: KeyObject): Uint8Array => u8(key.export({ format: 'der', type: 'pkcs8' }).subarray(-32));

function independentIdentity(): Ident {
  const x = generateKeyPairSync('x25519');
  const e = generateKeyPairSync('ed25519');
  return {
    x25519: { secretKey: rawSecret(x.privateKey), publicKey: rawPublic(x.publicKey) },
    ed25519: { secretKey: rawSecret(e.privateKey), publicKey: rawPublic(e.publicKey) },
  };
}
function identityFromSecrets(x25519Secret: Uint8Array, ed25519Secret: Uint8Array): Ident {
  return {
    x25519: { secretKey: x25519Secret, publicKey: rawPublic(createPublicKey(privateKey('x25519', x25519Secret))) },
    ed25519: { secretKey: ed25519Secret, publicKey: rawPublic(createPublicKey(privateKey('ed25519', ed25519Secret))) },
  };
}

/** "first 16 characters of the lowercase hex of SHA-256(pub)". */
const keyId = (pub: Uint8Array): string => Buffer.from(sha256(pub)).toString('hex').slice(0, 16);

// ── canonical header ──

/** JSON string escaping exactly as the doc lists it (ECMAScript's JSON.stringify rules). */
function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0d) out += '\\r';
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch; // `/`, U+007F, U+2028, U+2029 and all non-ASCII as themselves
  }
  return `${out}"`;
}

/** UTF-16 code-unit order, JavaScript's `<` on strings (written out, not left to sort()). */
function utf16Compare(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

const HEADER_FIELDS = ['at', 'from', 'group', 'members', 'msg', 'recipientKeyId', 'senderKeyId', 'to', 'v'] as const;
const REQUIRED = ['at', 'from', 'msg', 'recipientKeyId', 'senderKeyId', 'to', 'v'] as const;
const isString = (x: unknown): x is string => typeof x === 'string' && x.isWellFormed();

/** The field table's rules; `code` is FORMAT when parsing a received header, HEADER when sealing. */
function checkHeader(h: unknown, code: Code): Hdr {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return fail(code, 'header is not an object');
  const o = h as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!(HEADER_FIELDS as readonly string[]).includes(k)) fail(code, `unknown field ${k}`);
  for (const k of REQUIRED) if (!(k in o)) fail(code, `missing ${k}`);
  if (o.v !== 1) fail(code, 'v must be 1');
  if (typeof o.at !== 'number' || !Number.isSafeInteger(o.at) || o.at < 0) fail(code, 'at must be a non-negative safe integer');
  for (const k of ['from', 'to', 'msg', 'senderKeyId', 'recipientKeyId'] as const) if (!isString(o[k])) fail(code, `${k} must be a well-formed string`);
  if ('group' in o && !isString(o.group)) fail(code, 'group must be a well-formed string');
  if ('members' in o) {
    const m = o.members;
    if (!Array.isArray(m) || m.length < 1 || m.length > 1024) return fail(code, 'members must be 1..1024 names');
    for (let i = 0; i < m.length; i++) {
      if (!isString(m[i])) fail(code, 'members must be well-formed strings');
      // Strictly ascending also means distinct.
      if (i > 0 && utf16Compare(m[i - 1] as string, m[i] as string) >= 0) fail(code, 'members must be sorted and distinct');
    }
    if (!m.includes(o.from) || !m.includes(o.to)) fail(code, 'members must contain from and to');
  }
  return o as unknown as Hdr;
}

function canonicalHeader(h: Hdr): Uint8Array {
  const parts: string[] = [];
  for (const k of HEADER_FIELDS) {
    const value = h[k];
    if (value === undefined) continue; // an absent optional field is left out
    let json: string;
    if (typeof value === 'number') json = value.toString(10); // at ≤ 2^53−1 and v = 1: plain decimal
    else if (typeof value === 'string') json = quote(value);
    else json = `[${value.map(quote).join(',')}]`;
    parts.push(`${quote(k)}:${json}`);
  }
  return utf8(`{${parts.join(',')}}`);
}

// ── Padmé ──

function padme(L: number): number {
  if (L < 2) return L; // the doc's formula needs log₂ of E ≥ 1; never reached (L = |m| + 4)
  const E = 31 - Math.clz32(L);
  const S = 31 - Math.clz32(E) + 1;
  const step = 2 ** (E - S);
  return Math.ceil(L / step) * step;
}
function pad(m: Uint8Array): Uint8Array {
  const out = new Uint8Array(padme(m.length + 4));
  new DataView(out.buffer).setUint32(0, m.length, false);
  out.set(m, 4);
  return out;
}
function unpad(p: Uint8Array): Uint8Array {
  if (p.length < 4) fail('CRYPTO_ERR_FORMAT', 'padded message too short');
  const n = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(0, false);
  if (4 + n > p.length) fail('CRYPTO_ERR_FORMAT', 'length prefix past the end');
  if (p.length !== padme(n + 4)) fail('CRYPTO_ERR_FORMAT', 'total is not Padmé(prefix + 4)');
  for (let i = 4 + n; i < p.length; i++) if (p[i] !== 0) fail('CRYPTO_ERR_FORMAT', 'non-zero padding');
  return p.slice(4, 4 + n);
}

// ── the envelope ──

const LABEL_MESSAGE_KEY = utf8('cellular/v1/message-key');
const PREFIX = 1 + 32 + 24 + 2; // version, eph.public, nonce, u16 header length = 59
const TAG = 16;
const SIG = 64;

function messageKey(shared: Uint8Array, ephPublic: Uint8Array, recipientPublic: Uint8Array): Uint8Array {
  return u8(hkdfSync('sha256', shared, concat(ephPublic, recipientPublic), LABEL_MESSAGE_KEY, 32));
}

/**
 * Frames and signs any header bytes and padded body: `independentSeal` uses it with the canonical
 * header and `pad(m)`; the agreement tests use it to make well-signed but malformed envelopes.
 */
function sealRaw(o: { aad: Uint8Array; padded: Uint8Array; senderEd25519Secret: Uint8Array; recipientX25519: Uint8Array; version?: number; ephSecret?: Uint8Array; ephPublic?: Uint8Array }): Uint8Array {
  const recipient = publicKey('x25519', o.recipientX25519);
  let ephPublic: Uint8Array;
  let shared: Uint8Array;
  if (o.ephPublic !== undefined) {
    // a chosen (e.g. low-order) ephemeral key: nobody can compute the shared secret, use zeros
    ephPublic = o.ephPublic;
    shared = new Uint8Array(32);
  } else {
    const eph = generateKeyPairSync('x25519');
    ephPublic = rawPublic(eph.publicKey);
    shared = u8(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }));
  }
  const nonce = u8(randomBytes(24));
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(o.padded, o.aad, null, nonce, messageKey(shared, ephPublic, o.recipientX25519));
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, o.aad.length, false);
  const body = concat(Uint8Array.of(o.version ?? 1), ephPublic, nonce, len, o.aad, ct);
  return concat(body, u8(sign(null, body, privateKey('ed25519', o.senderEd25519Secret))));
}

function independentSeal(o: { plaintext: Uint8Array; header: Hdr; sender: Ident; recipientX25519: Uint8Array }): Uint8Array {
  const header = checkHeader(o.header, 'CRYPTO_ERR_HEADER');
  if (header.senderKeyId !== keyId(o.sender.ed25519.publicKey)) fail('CRYPTO_ERR_HEADER', 'senderKeyId does not match the sender');
  if (header.recipientKeyId !== keyId(o.recipientX25519)) fail('CRYPTO_ERR_HEADER', 'recipientKeyId does not match the recipient');
  const aad = canonicalHeader(header);
  if (aad.length > 0xffff) fail('CRYPTO_ERR_HEADER', 'header longer than 65535 bytes');
  return sealRaw({ aad, padded: pad(o.plaintext), senderEd25519Secret: o.sender.ed25519.secretKey, recipientX25519: o.recipientX25519 });
}

/** The header bytes framed in an envelope, per the layout (no checks: for comparing). */
function framedHeader(sealed: Uint8Array): Uint8Array {
  const len = new DataView(sealed.buffer, sealed.byteOffset).getUint16(57, false);
  return sealed.slice(PREFIX, PREFIX + len);
}

function independentOpenUnwrapped(o: { sealed: Uint8Array; recipient: Ident; senderEd25519: Uint8Array; expect?: Partial<Hdr> }): { header: Hdr; plaintext: Uint8Array } {
  const { sealed } = o;
  if (sealed.length < PREFIX + TAG + SIG) fail('CRYPTO_ERR_FORMAT', 'too short');
  // 1. the signature, before anything in the body is read
  const body = sealed.subarray(0, sealed.length - SIG);
  const signature = sealed.subarray(sealed.length - SIG);
  if (!verify(null, body, publicKey('ed25519', o.senderEd25519), signature)) fail('CRYPTO_ERR_SIGNATURE', 'bad signature');
  // 2. strict parse
  if (body[0] !== 1) fail('CRYPTO_ERR_FORMAT', 'unknown version');
  const ephPublic = body.slice(1, 33);
  const nonce = body.slice(33, 57);
  const hlen = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint16(57, false);
  if (hlen === 0 || PREFIX + hlen + TAG > body.length) fail('CRYPTO_ERR_FORMAT', 'bad header length');
  const aad = body.slice(PREFIX, PREFIX + hlen);
  const ct = body.slice(PREFIX + hlen);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(aad));
  } catch {
    return fail('CRYPTO_ERR_FORMAT', 'header is not UTF-8 JSON');
  }
  const header = checkHeader(parsed, 'CRYPTO_ERR_FORMAT');
  if (!equalBytes(canonicalHeader(header), aad)) fail('CRYPTO_ERR_FORMAT', 'header is not canonical');
  // 3. claims
  if (header.senderKeyId !== keyId(o.senderEd25519)) fail('CRYPTO_ERR_HEADER', 'senderKeyId is not the verifying key');
  for (const [k, want] of Object.entries(o.expect ?? {})) {
    const got = (header as unknown as Record<string, unknown>)[k];
    const same = Array.isArray(want) ? Array.isArray(got) && want.length === got.length && want.every((x, i) => x === got[i]) : got === want;
    if (!same) fail('CRYPTO_ERR_HEADER', `${k} is not what was expected`);
  }
  // 4. decrypt
  let padded: Uint8Array;
  try {
    const shared = u8(diffieHellman({ privateKey: privateKey('x25519', o.recipient.x25519.secretKey), publicKey: publicKey('x25519', ephPublic) }));
    padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ct, aad, nonce, messageKey(shared, ephPublic, o.recipient.x25519.publicKey));
  } catch {
    return fail('CRYPTO_ERR_DECRYPT', 'not decryptable with our key');
  }
  if (header.recipientKeyId !== keyId(o.recipient.x25519.publicKey)) fail('CRYPTO_ERR_HEADER', 'recipientKeyId is not our key');
  // 5. unpad
  return { header, plaintext: unpad(padded) };
}

function independentOpen(o: Parameters<typeof independentOpenUnwrapped>[0]): { header: Hdr; plaintext: Uint8Array } {
  try {
    return independentOpenUnwrapped(o);
  } catch (e) {
    if (e instanceof IndependentError) throw e;
    return fail('CRYPTO_ERR_FORMAT', `unexpected: ${String(e)}`); // the doc: anything else is FORMAT
  }
}

// ── key backup v2 ──

type BackupSecret = { mode: 'password'; exportKey: Uint8Array } | { mode: 'recovery'; recoveryKey: Uint8Array };
const BACKUP_MODES = { password: 1, recovery: 2 } as const;
const LABEL_KEY_BACKUP_V2 = 'cellular/v2/key-backup';

function backupKeyAndAad(secret: BackupSecret, user: string): { key: Uint8Array; aad: Uint8Array; mode: number } {
  const ikm = secret.mode === 'password' ? secret.exportKey : secret.recoveryKey;
  if (ikm.length !== (secret.mode === 'password' ? 64 : 32)) fail('CRYPTO_ERR_FORMAT', 'wrong-sized secret');
  const mode = BACKUP_MODES[secret.mode];
  const info = concat(utf8(`${LABEL_KEY_BACKUP_V2}/${secret.mode}`), Uint8Array.of(0), utf8(user));
  return {
    key: u8(hkdfSync('sha256', ikm, new Uint8Array(0), info, 32)), // salt = none
    aad: concat(utf8(LABEL_KEY_BACKUP_V2), Uint8Array.of(2, mode), utf8(user)),
    mode,
  };
}
function independentSealBackup(identity: Ident, user: string, secret: BackupSecret): Uint8Array {
  const { key, aad, mode } = backupKeyAndAad(secret, user);
  const nonce = u8(randomBytes(24));
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(concat(identity.x25519.secretKey, identity.ed25519.secretKey), aad, null, nonce, key);
  return concat(Uint8Array.of(2, mode), nonce, ct);
}
function independentOpenBackup(blob: Uint8Array, user: string, secret: BackupSecret): Ident {
  const { key, aad, mode } = backupKeyAndAad(secret, user);
  if (blob.length !== 106 || blob[0] !== 2) fail('CRYPTO_ERR_FORMAT', 'not a v2 backup');
  if (blob[1] !== mode) fail('CRYPTO_ERR_DECRYPT', 'another mode');
  let secrets: Uint8Array;
  try {
    secrets = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, blob.slice(26), aad, blob.slice(2, 26), key);
  } catch {
    return fail('CRYPTO_ERR_DECRYPT', 'wrong secret, user or blob');
  }
  return identityFromSecrets(secrets.slice(0, 32), secrets.slice(32, 64));
}

// ── recovery keys ──

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const recoveryCheck = (key: Uint8Array): Uint8Array => sha256(utf8('cellular/v2/recovery-key'), key).slice(0, 3);

function independentFormatRecoveryKey(key: Uint8Array): string {
  if (key.length !== 32) throw new Error('a recovery key is 32 bytes');
  const data = concat(key, recoveryCheck(key));
  let bits = 0;
  let acc = 0;
  let text = '';
  for (const byte of data) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      text += B32[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) text += B32[(acc << (5 - bits)) & 31]; // 35 bytes = 56 characters exactly: never taken
  return (text.match(/.{1,4}/g) ?? []).join('-');
}

function independentParseRecoveryKey(input: string): Uint8Array {
  // Ignores case, spaces (any whitespace: a guess) and dashes; 0 reads as o, 1 as l.
  const text = input.toLowerCase().replace(/[\s-]/g, '').replaceAll('0', 'o').replaceAll('1', 'l');
  if (text.length !== 56) throw new Error('a recovery key is 56 characters');
  const data = new Uint8Array(35);
  let bits = 0;
  let acc = 0;
  let at = 0;
  for (const ch of text) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new Error(`not a recovery key character: ${ch}`);
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      data[at++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  const key = data.slice(0, 32);
  if (!equalBytes(recoveryCheck(key), data.slice(32))) throw new Error('recovery key check failed (a typo?)');
  return key;
}

// ── safety numbers ──

interface PublicIdentity { user: string; ed25519: Uint8Array; x25519: Uint8Array }

function safetyHalf(p: PublicIdentity): string {
  const user = utf8(p.user);
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, user.length, false); // |user| taken as the UTF-8 byte length (a guess)
  const h = sha256(utf8('cellular/v1/safety-number'), len, user, p.ed25519, p.x25519);
  const groups: string[] = [];
  for (let j = 0; j < 6; j++) {
    let v = 0;
    for (const byte of h.subarray(5 * j, 5 * j + 5)) v = v * 256 + byte; // uint40 fits a double exactly
    groups.push(String(v % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0);
  return a.length - b.length;
}
function independentSafetyNumber(a: PublicIdentity, b: PublicIdentity): string {
  // By user name in UTF-16 order; on a tie by the keys (a guess: ed25519 ‖ x25519, bytewise).
  const order = utf16Compare(a.user, b.user) || compareBytes(concat(a.ed25519, a.x25519), concat(b.ed25519, b.x25519));
  const [first, second] = order <= 0 ? [a, b] : [b, a];
  return `${safetyHalf(first)} ${safetyHalf(second)}`; // separator: a guess (the doc names none)
}

// ──────────────────────────────────────── the tests ────────────────────────────────────────

test.before(async () => {
  await sodium.ready;
});

const codeOf = (e: unknown): unknown => (e as { code?: unknown } | undefined)?.code;
const toHeader = (h: Hdr): Header => h as unknown as Header;

/** Two parties, one of each kind, so both key formats are exercised on both sides. */
const alice = generateIdentity() as Ident; // made by the client
const bob = independentIdentity(); // made by node:crypto

function header(from: string, to: string, rest: Partial<Hdr> = {}, sender: Ident = alice, recipient: Ident = bob): Hdr {
  return { v: 1, from, to, msg: 'msg-00000001', at: 1766620800123, senderKeyId: keyId(sender.ed25519.publicKey), recipientKeyId: keyId(recipient.x25519.publicKey), ...rest };
}
const sorted = (names: string[]): string[] => [...new Set(names)].sort(utf16Compare);

const ASTRAL = '😀'; // U+1F600: UTF-16 D83D DE00, sorts before U+FF5E by code units, after it by code points
const FULLWIDTH_TILDE = '～'; // U+FF5E
const HEADERS: Array<[string, (s: Ident, r: Ident) => Hdr]> = [
  ['ASCII 1:1', (s, r) => header('alice', 'bob', {}, s, r)],
  ['ASCII 1:1 with members', (s, r) => header('alice', 'bob', { members: ['alice', 'bob'] }, s, r)],
  ['non-ASCII names', (s, r) => header('zoë', '日本', { members: sorted(['zoë', '日本']) }, s, r)],
  ['emoji names', (s, r) => header('🦊fox', 'ok👍', { msg: 'm-🦊', members: sorted(['🦊fox', 'ok👍']) }, s, r)],
  ['group, UTF-16 order differs from code points', (s, r) => header(FULLWIDTH_TILDE, ASTRAL, {
    group: 'g-00000000000000000000000000000001',
    members: sorted([ASTRAL, FULLWIDTH_TILDE, 'zoë', 'bob', 'Émile', '日本', '\u{10FFFF}x', 'a']),
  }, s, r)],
  ['escapes in every free string', (s, r) => header('a"b\\c', 'd\ne\tf', {
    msg: 'q"\\\u0001\u001f\n\t\u2028\u2029\u007f/\b\f\r\u0000é😀',
    group: 'g\u2028\u007f/',
    members: sorted(['a"b\\c', 'd\ne\tf', '\u0001', '\u001f', '\u2028']),
  }, s, r)],
  ['at = 0', (s, r) => header('x', 'y', { at: 0, msg: 'm' }, s, r)],
  ['at = 2^53 − 1', (s, r) => header('x', 'y', { at: Number.MAX_SAFE_INTEGER }, s, r)],
];
// 0, 1, and the sizes around Padmé bucket edges (|m| + 4 crossing 8, 16, 32, 64, 256, 1024, 1088, 4096)
const SIZES = [0, 1, 2, 3, 4, 5, 11, 12, 13, 28, 29, 60, 61, 96, 100, 252, 253, 1020, 1021, 1084, 1085, 4092, 4093, 6000];
const bytes = (n: number): Uint8Array => u8(randomBytes(n));
const sealedSize = (h: Hdr, n: number): number => PREFIX + canonicalHeader(h).length + padme(n + 4) + TAG + SIG;

test('interop - Padmé follows the doc\'s own examples', (t) => {
  t.is(padme(1000), 1024);
  t.is(padme(1025), 1088);
  t.is(padme(100), 104);
  for (const n of SIZES) t.deepEqual(unpad(pad(new Uint8Array(n).fill(7))), new Uint8Array(n).fill(7));
});

test('interop - client seal → independent open (names, groups, escapes, sizes)', (t) => {
  for (const [name, make] of HEADERS) {
    const h = make(alice, bob);
    for (const n of SIZES) {
      const plaintext = bytes(n);
      const sealed = clientSeal({ plaintext, header: toHeader(h), sender: alice as never, recipientX25519: bob.x25519.publicKey });
      t.is(sealed.length, sealedSize(h, n), `${name}, ${n} bytes: sealed size`);
      const opened = independentOpen({ sealed, recipient: bob, senderEd25519: alice.ed25519.publicKey, expect: { from: h.from, to: h.to } });
      t.deepEqual(opened.plaintext, plaintext, `${name}, ${n} bytes`);
      t.deepEqual(opened.header, h, `${name}, ${n} bytes`);
    }
  }
});

test('interop - independent seal → client open (names, groups, escapes, sizes)', (t) => {
  for (const [name, make] of HEADERS) {
    const h = make(bob, alice);
    for (const n of SIZES) {
      const plaintext = bytes(n);
      const sealed = independentSeal({ plaintext, header: h, sender: bob, recipientX25519: alice.x25519.publicKey });
      const opened = clientOpen({ sealed, recipient: alice as never, senderEd25519: bob.ed25519.publicKey, expect: { from: h.from, to: h.to } });
      t.deepEqual(u8(opened.plaintext), plaintext, `${name}, ${n} bytes`);
      t.deepEqual(opened.header as unknown as Hdr, h, `${name}, ${n} bytes`);
    }
  }
});

test('interop - the canonical header bytes equal the ones framed in a client envelope', (t) => {
  for (const [name, make] of HEADERS) {
    const h = make(alice, bob);
    const sealed = clientSeal({ plaintext: utf8('hi'), header: toHeader(h), sender: alice as never, recipientX25519: bob.x25519.publicKey });
    const framed = framedHeader(sealed);
    t.deepEqual(framed, canonicalHeader(h), name);
    t.is(new TextDecoder().decode(framed), JSON.stringify(Object.fromEntries(HEADER_FIELDS.filter((k) => h[k] !== undefined).map((k) => [k, h[k]]))), `${name}: same as JSON.stringify with sorted keys`);
  }
  // the doc's own example
  t.true(new TextDecoder().decode(canonicalHeader(header('zoë', 'bob', { members: ['bob', 'zoë'], msg: 'm-0001' }))).startsWith('{"at":1766620800123,"from":"zoë","members":["bob","zoë"],"msg":"m-0001",'));
  t.is(clientKeyId(alice.ed25519.publicKey), keyId(alice.ed25519.publicKey));
  t.is(clientKeyId(bob.x25519.publicKey), keyId(bob.x25519.publicKey));
});

test('interop - random headers and plaintexts round-trip both ways (property)', (t) => {
  const special = fc.constantFrom('"', '\\', '/', '\u0000', '\u0001', '\b', '\t', '\n', '\f', '\r', '\u001f', '\u007f', '\u2028', '\u2029', ASTRAL, FULLWIDTH_TILDE, 'é', '日');
  const char = fc.oneof(special, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));
  const name = fc.string({ unit: char, minLength: 1, maxLength: 12 });
  const arbitrary = fc.record({
    from: name,
    to: name,
    msg: fc.string({ unit: char, maxLength: 24 }),
    at: fc.oneof(fc.constantFrom(0, 1, Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    group: fc.option(fc.string({ unit: char, minLength: 1, maxLength: 33 }), { nil: undefined }),
    others: fc.option(fc.uniqueArray(name, { maxLength: 8 }), { nil: undefined }),
    plaintext: fc.uint8Array({ maxLength: 4096 }),
  });
  fc.assert(
    fc.property(arbitrary, ({ from, to, msg, at, group, others, plaintext }) => {
      const rest: Partial<Hdr> = { msg, at };
      if (group !== undefined) rest.group = group;
      if (others !== undefined) rest.members = sorted([from, to, ...others]);
      const toBob = header(from, to, rest, alice, bob);
      const a = independentOpen({ sealed: clientSeal({ plaintext, header: toHeader(toBob), sender: alice as never, recipientX25519: bob.x25519.publicKey }), recipient: bob, senderEd25519: alice.ed25519.publicKey });
      const toAlice = header(from, to, rest, bob, alice);
      const b = clientOpen({ sealed: independentSeal({ plaintext, header: toAlice, sender: bob, recipientX25519: alice.x25519.publicKey }), recipient: alice as never, senderEd25519: bob.ed25519.publicKey });
      return equalBytes(a.plaintext, plaintext) && equalBytes(b.plaintext, plaintext)
        && equalBytes(canonicalHeader(a.header), canonicalHeader(toBob))
        && equalBytes(canonicalHeader(b.header as unknown as Hdr), canonicalHeader(toAlice));
    }),
    { numRuns: 100 },
  );
  t.pass();
});

test('interop - both sides refuse the same bad envelopes with the same code', (t) => {
  const h = header('alice', 'bob', { members: ['alice', 'bob'] }, alice, bob);
  const good = (aad: Uint8Array, padded: Uint8Array = pad(utf8('hello')), extra: { version?: number; ephPublic?: Uint8Array } = {}): Uint8Array =>
    sealRaw({ aad, padded, senderEd25519Secret: alice.ed25519.secretKey, recipientX25519: bob.x25519.publicKey, ...extra });
  const canonical = canonicalHeader(h);
  const text = new TextDecoder().decode(canonical);
  const sealed = good(canonical);
  const flipped = sealed.slice();
  flipped[70] = (flipped[70] ?? 0) ^ 1;
  const carol = generateIdentity() as Ident;
  const cases: Array<[string, Uint8Array, Code, { recipient?: Ident; expect?: Partial<Hdr> }?]> = [
    ['a flipped body byte', flipped, 'CRYPTO_ERR_SIGNATURE'],
    ['appended byte', concat(sealed, Uint8Array.of(0)), 'CRYPTO_ERR_SIGNATURE'],
    ['too short to split', sealed.slice(0, PREFIX + TAG + SIG - 1), 'CRYPTO_ERR_FORMAT'],
    ['version 2', good(canonical, undefined, { version: 2 }), 'CRYPTO_ERR_FORMAT'],
    ['whitespace in the header', good(utf8(text.replace(',', ', '))), 'CRYPTO_ERR_FORMAT'],
    ['reordered keys', good(utf8(JSON.stringify({ v: 1, ...JSON.parse(text) }))), 'CRYPTO_ERR_FORMAT'],
    ['unknown field', good(utf8(text.replace('"v":1', '"v":1,"w":2'))), 'CRYPTO_ERR_FORMAT'],
    ['duplicate key', good(utf8(text.replace('"from":"alice"', '"from":"bob","from":"alice"'))), 'CRYPTO_ERR_FORMAT'],
    ['at with an exponent', good(utf8(text.replace('"at":1766620800123', '"at":1e3'))), 'CRYPTO_ERR_FORMAT'],
    ['escaped slash', good(utf8(text.replace('"msg":"msg-', '"msg":"\\/msg-'))), 'CRYPTO_ERR_FORMAT'],
    ['uppercase \\u escape', good(utf8(new TextDecoder().decode(canonicalHeader({ ...h, msg: 'a\u001f' })).replace('\\u001f', '\\u001F'))), 'CRYPTO_ERR_FORMAT'],
    ['negative at', good(utf8(text.replace('"at":1766620800123', '"at":-1'))), 'CRYPTO_ERR_FORMAT'],
    ['v = 2', good(utf8(text.replace('"v":1', '"v":2'))), 'CRYPTO_ERR_FORMAT'],
    ['members in code-point order', good(canonicalHeader({ ...h, from: FULLWIDTH_TILDE, members: [FULLWIDTH_TILDE, ASTRAL, 'alice', 'bob'].sort((x, y) => (x.codePointAt(0) ?? 0) - (y.codePointAt(0) ?? 0)) })), 'CRYPTO_ERR_FORMAT'],
    ['members without to', good(canonicalHeader({ ...h, members: ['alice'] })), 'CRYPTO_ERR_FORMAT'],
    ['invalid UTF-8', good(concat(utf8(text.slice(0, -2)), Uint8Array.of(0xff), utf8('}'))), 'CRYPTO_ERR_FORMAT'],
    ['non-zero padding', good(canonical, pad(utf8('hello')).map((b, i, a) => (i === a.length - 1 ? 1 : b))), 'CRYPTO_ERR_FORMAT'],
    ['wrong padded length', good(canonical, concat(pad(utf8('hello')), new Uint8Array(1))), 'CRYPTO_ERR_FORMAT'],
    ['for someone else', sealed, 'CRYPTO_ERR_DECRYPT', { recipient: carol }],
    ['low-order ephemeral key', good(canonical, undefined, { ephPublic: new Uint8Array(32) }), 'CRYPTO_ERR_DECRYPT'],
    ['expect mismatch', sealed, 'CRYPTO_ERR_HEADER', { expect: { to: 'carol' } }],
    ['recipientKeyId not ours', good(canonicalHeader({ ...h, recipientKeyId: keyId(carol.x25519.publicKey) })), 'CRYPTO_ERR_HEADER'],
    ['senderKeyId not the verifying key', good(canonicalHeader({ ...h, senderKeyId: keyId(carol.ed25519.publicKey) })), 'CRYPTO_ERR_HEADER'],
  ];
  t.deepEqual(independentOpen({ sealed, recipient: bob, senderEd25519: alice.ed25519.publicKey }).plaintext, utf8('hello'), 'the unmodified envelope opens');
  // Collected as one table, so a disagreement shows every case at once.
  const outcome = (f: () => unknown): unknown => {
    try {
      f();
      return 'opened';
    } catch (e) {
      return codeOf(e);
    }
  };
  const want: Record<string, unknown> = {};
  const got: Record<string, unknown> = {};
  for (const [name, blob, code, opts] of cases) {
    const args = { sealed: blob, recipient: opts?.recipient ?? bob, senderEd25519: alice.ed25519.publicKey, ...(opts?.expect ? { expect: opts.expect } : {}) };
    want[name] = { independent: code, client: code };
    got[name] = {
      independent: outcome(() => independentOpen(args)),
      client: outcome(() => clientOpen({ ...args, recipient: args.recipient as never, expect: args.expect as never })),
    };
  }
  t.deepEqual(got, want);
});

test('interop - client backup → independent open, both modes, same secret keys', (t) => {
  const id = generateIdentity() as Ident;
  const secrets: BackupSecret[] = [{ mode: 'password', exportKey: bytes(64) }, { mode: 'recovery', recoveryKey: bytes(32) }];
  for (const secret of secrets) {
    for (const user of ['bob', 'zoë 日本 🦊']) {
      const blob = clientSealBackup(id as never, user, secret);
      t.is(blob.length, 106, `${secret.mode}: 106 bytes`);
      t.is(blob[0], 2, `${secret.mode}: version byte`);
      t.is(blob[1], BACKUP_MODES[secret.mode], `${secret.mode}: mode byte`);
      const opened = independentOpenBackup(blob, user, secret);
      t.deepEqual(opened.x25519.secretKey, u8(id.x25519.secretKey), `${secret.mode}/${user}`);
      t.deepEqual(opened.ed25519.secretKey, u8(id.ed25519.secretKey), `${secret.mode}/${user}`);
      t.deepEqual(opened.x25519.publicKey, u8(id.x25519.publicKey), `${secret.mode}/${user}`);
      t.deepEqual(opened.ed25519.publicKey, u8(id.ed25519.publicKey), `${secret.mode}/${user}`);
    }
  }
});

test('interop - independent backup → client open, both modes', (t) => {
  const id = independentIdentity();
  const secrets: BackupSecret[] = [{ mode: 'password', exportKey: bytes(64) }, { mode: 'recovery', recoveryKey: bytes(32) }];
  for (const secret of secrets) {
    for (const user of ['alice', 'zoë 日本 🦊']) {
      const blob = independentSealBackup(id, user, secret);
      t.is(blob.length, 106);
      const opened = clientOpenBackup(blob, user, secret) as Ident;
      t.deepEqual(u8(opened.x25519.secretKey), id.x25519.secretKey, `${secret.mode}/${user}`);
      t.deepEqual(u8(opened.ed25519.secretKey), id.ed25519.secretKey, `${secret.mode}/${user}`);
      t.deepEqual(u8(opened.x25519.publicKey), id.x25519.publicKey, `${secret.mode}/${user}`);
      t.deepEqual(u8(opened.ed25519.publicKey), id.ed25519.publicKey, `${secret.mode}/${user}`);
    }
  }
});

test('interop - a backup for another user, secret or mode opens on neither side', (t) => {
  const id = independentIdentity();
  const password: BackupSecret = { mode: 'password', exportKey: bytes(64) };
  const recovery: BackupSecret = { mode: 'recovery', recoveryKey: bytes(32) };
  for (const secret of [password, recovery]) {
    const fromClient = clientSealBackup(id as never, 'bob', secret);
    const fromUs = independentSealBackup(id, 'bob', secret);
    for (const blob of [fromClient, fromUs]) {
      t.is(codeOf(t.throws(() => independentOpenBackup(blob, 'bob2', secret))), 'CRYPTO_ERR_DECRYPT');
      t.is(codeOf(t.throws(() => clientOpenBackup(blob, 'bob2', secret))), 'CRYPTO_ERR_DECRYPT');
      const wrong: BackupSecret = secret.mode === 'password' ? { mode: 'password', exportKey: bytes(64) } : { mode: 'recovery', recoveryKey: bytes(32) };
      t.is(codeOf(t.throws(() => independentOpenBackup(blob, 'bob', wrong))), 'CRYPTO_ERR_DECRYPT');
      t.is(codeOf(t.throws(() => clientOpenBackup(blob, 'bob', wrong))), 'CRYPTO_ERR_DECRYPT');
    }
  }
  // the mode byte is bound (key and AAD): a recovery backup relabelled as password mode opens nowhere
  const key32 = bytes(32);
  const asRecovery = independentSealBackup(id, 'bob', { mode: 'recovery', recoveryKey: key32 });
  const relabelled = asRecovery.slice();
  relabelled[1] = 1;
  t.throws(() => clientOpenBackup(relabelled, 'bob', { mode: 'recovery', recoveryKey: key32 }));
  t.throws(() => independentOpenBackup(relabelled, 'bob', { mode: 'recovery', recoveryKey: key32 }));
});

test('interop - recovery keys: format and parse agree, and a typo is refused', (t) => {
  for (let i = 0; i < 20; i++) {
    const key = bytes(32);
    const theirs = clientFormatRecoveryKey(key);
    const ours = independentFormatRecoveryKey(key);
    t.is(ours, theirs, 'the same text');
    t.regex(ours, /^[a-z2-7]{4}(-[a-z2-7]{4}){13}$/);
    t.deepEqual(independentParseRecoveryKey(theirs), key);
    t.deepEqual(u8(clientParseRecoveryKey(ours)), key);
    // case, spaces, dashes, 0 for o and 1 for l
    const sloppy = ours.toUpperCase().replaceAll('-', ' ').replaceAll('O', '0').replaceAll('L', '1');
    t.deepEqual(independentParseRecoveryKey(sloppy), key);
    t.deepEqual(u8(clientParseRecoveryKey(sloppy)), key);
    // one changed character, anywhere: key part (check fails) or check part
    for (const at of [0, 7, 31, 44, 50, ours.length - 1]) {
      const was = ours[at] ?? 'a';
      const now = B32[(B32.indexOf(was) + 1 + (i % 31)) % 32] ?? 'a';
      if (now === was) continue;
      const typo = ours.slice(0, at) + now + ours.slice(at + 1);
      t.throws(() => independentParseRecoveryKey(typo), undefined, `position ${at}`);
      t.throws(() => clientParseRecoveryKey(typo), undefined, `client, position ${at}`);
    }
  }
});

test('interop - safety numbers agree, in both argument orders', (t) => {
  const pub = (user: string, id: Ident): PublicIdentity => ({ user, ed25519: id.ed25519.publicKey, x25519: id.x25519.publicKey });
  const ids = [generateIdentity() as Ident, independentIdentity(), generateIdentity() as Ident, independentIdentity()];
  const [i0, i1, i2, i3] = ids as [Ident, Ident, Ident, Ident];
  const pairs: Array<[PublicIdentity, PublicIdentity]> = [
    [pub('alice', i0), pub('bob', i1)],
    [pub('zoë', i2), pub('日本', i3)],
    [pub(ASTRAL, i0), pub(FULLWIDTH_TILDE, i1)], // UTF-16 order ≠ code-point order
    [pub('🦊fox', i2), pub('Émile', i1)],
  ];
  // Ties on the name, where the keys decide: several, so a wrong tie-break rule cannot pass by luck.
  for (let i = 0; i < 8; i++) pairs.push([pub('same', i % 2 ? generateIdentity() as Ident : independentIdentity()), pub('same', independentIdentity())]);
  for (const [a, b] of pairs) {
    const ours = independentSafetyNumber(a, b);
    t.regex(ours, /^\d{5}( \d{5}){11}$/);
    t.is(independentSafetyNumber(b, a), ours, `${a.user}/${b.user}: symmetric`);
    t.is(clientSafetyNumber(a, b), ours, `${a.user}/${b.user}`);
    t.is(clientSafetyNumber(b, a), ours, `${b.user}/${a.user}`);
  }
});
