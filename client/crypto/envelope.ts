/**
 * Sealing one message for one recipient (issue 5, item 3). See docs/crypto.md.
 *
 *   eph      = fresh X25519 key pair (per message)
 *   shared   = X25519(eph.secret, recipient.x25519)
 *   key      = HKDF-SHA256(ikm = shared, salt = eph.public || recipient.x25519,
 *                          info = "cellular/v1/message-key", 32)
 *   nonce    = 24 random bytes
 *   aad      = canonical header (JSON, sorted keys, UTF-8)
 *   ct       = XChaCha20-Poly1305(key, nonce, pad(plaintext), aad)      (Padmé, see padding.ts)
 *   body     = 0x01 || eph.public(32) || nonce(24) || u16be(|aad|) || aad || ct
 *   sealed   = body || Ed25519.sign(sender.ed25519.secret, body)(64)
 *
 * `open` verifies the signature before looking at anything else, then parses strictly, checks the
 * caller's expectations, decrypts and unpads. Every failure is a `CryptoError` with a `code`.
 *
 * Isomorphic: @noble only, Uint8Array/TextEncoder, no Buffer, no node: imports.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, randomBytes } from '@noble/hashes/utils.js';
import { pad, unpad } from './padding.ts';

// ---------------------------------------------------------------------------------------------
// Errors

export const CRYPTO_ERR_FORMAT = 'CRYPTO_ERR_FORMAT';
export const CRYPTO_ERR_SIGNATURE = 'CRYPTO_ERR_SIGNATURE';
export const CRYPTO_ERR_DECRYPT = 'CRYPTO_ERR_DECRYPT';
export const CRYPTO_ERR_HEADER = 'CRYPTO_ERR_HEADER';
export const CRYPTO_ERROR_CODES = [CRYPTO_ERR_FORMAT, CRYPTO_ERR_SIGNATURE, CRYPTO_ERR_DECRYPT, CRYPTO_ERR_HEADER] as const;
export type CryptoErrorCode = (typeof CRYPTO_ERROR_CODES)[number];

/** Client-side crypto failure. The message never contains key material or plaintext. */
export class CryptoError extends Error {
  readonly code: CryptoErrorCode;
  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'CryptoError';
    this.code = code;
  }
}

export function isCryptoError(e: unknown, code?: CryptoErrorCode): e is CryptoError {
  return e instanceof CryptoError && (code === undefined || e.code === code);
}

// ---------------------------------------------------------------------------------------------
// Labels and sizes

/** HKDF info for the per-message AEAD key. */
export const LABEL_MESSAGE_KEY = 'cellular/v1/message-key';
/** Prefix of the hashed encoding behind a safety number. */
export const LABEL_SAFETY_NUMBER = 'cellular/v1/safety-number';
export const LABELS = { messageKey: LABEL_MESSAGE_KEY, safetyNumber: LABEL_SAFETY_NUMBER } as const;

export const ENVELOPE_VERSION = 1;
export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const SIGNATURE_BYTES = 64;
/** version || eph.public || nonce || u16 header length. */
export const PREFIX_BYTES = 1 + KEY_BYTES + NONCE_BYTES + 2;
export const MAX_HEADER_BYTES = 0xffff;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------
// Keys

export interface KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}
export interface Identity {
  x25519: KeyPair;
  ed25519: KeyPair;
}

export function generateIdentity(): Identity {
  const x = x25519.keygen();
  const e = ed25519.keygen();
  return {
    x25519: { secretKey: x.secretKey, publicKey: x.publicKey },
    ed25519: { secretKey: e.secretKey, publicKey: e.publicKey },
  };
}

/** Rebuild an identity from its two 32-byte secrets (tests, and later: restoring a backup). */
export function identityFromSecrets(x25519Secret: Uint8Array, ed25519Secret: Uint8Array): Identity {
  return {
    x25519: { secretKey: x25519Secret.slice(), publicKey: x25519.getPublicKey(x25519Secret) },
    ed25519: { secretKey: ed25519Secret.slice(), publicKey: ed25519.getPublicKey(ed25519Secret) },
  };
}

/** First 16 hex characters of SHA-256(public key). */
export function keyId(publicKey: Uint8Array): string {
  return bytesToHex(sha256(publicKey)).slice(0, 16);
}

// ---------------------------------------------------------------------------------------------
// Primitives, exported so tests can run published vectors through exactly what seal/open use.

/** X25519(secret, public) as used by seal/open (rejects low-order points). */
export function x25519Shared(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return x25519.getSharedSecret(secretKey, publicKey);
}

/** XChaCha20-Poly1305 encryption; returns ciphertext || tag. */
export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

/** XChaCha20-Poly1305 decryption of ciphertext || tag; throws on authentication failure. */
export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, aad).decrypt(sealed);
}

/** The per-message key: HKDF-SHA256(shared, eph.public || recipient.public, LABEL_MESSAGE_KEY). */
export function messageKey(shared: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array): Uint8Array {
  return hkdf(sha256, shared, concatBytes(ephemeralPublic, recipientPublic), enc.encode(LABEL_MESSAGE_KEY), KEY_BYTES);
}

// ---------------------------------------------------------------------------------------------
// Header

export interface Header {
  v: 1;
  from: string;
  to: string;
  msg: string;
  at: number;
  group?: string;
  /**
   * Everyone the message went to (sorted, distinct, sender included): binds a group copy to
   * its whole recipient list, so a member cannot be silently added or cut out.
   */
  members?: string[];
  senderKeyId: string;
  recipientKeyId: string;
}

/** The most names a header's `members` may list. */
export const MAX_MEMBERS = 1024;

const REQUIRED_STRING_FIELDS = ['from', 'to', 'msg', 'senderKeyId', 'recipientKeyId'] as const;
const ALLOWED_FIELDS = new Set(['v', 'from', 'to', 'msg', 'at', 'group', 'members', 'senderKeyId', 'recipientKeyId']);

/** Why `h` is not a valid header, or null when it is. */
function headerProblem(h: unknown): string | null {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return 'header is not an object';
  const o = h as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!ALLOWED_FIELDS.has(k)) return `unknown header field ${JSON.stringify(k)}`;
  }
  if (o['v'] !== ENVELOPE_VERSION) return 'header.v must be 1';
  for (const k of REQUIRED_STRING_FIELDS) {
    const val = o[k];
    if (typeof val !== 'string') return `header.${k} must be a string`;
    if (!val.isWellFormed()) return `header.${k} is not well-formed Unicode`;
  }
  if ('group' in o) {
    const g = o['group'];
    if (typeof g !== 'string') return 'header.group must be a string when present';
    if (!g.isWellFormed()) return 'header.group is not well-formed Unicode';
  }
  if ('members' in o) {
    const m = o['members'];
    if (!Array.isArray(m) || m.length < 1 || m.length > MAX_MEMBERS) return `header.members must be an array of 1..${MAX_MEMBERS} strings when present`;
    for (let i = 0; i < m.length; i++) {
      const name = m[i] as unknown;
      if (typeof name !== 'string' || !name.isWellFormed()) return 'header.members must hold well-formed strings';
      if (i > 0 && !((m[i - 1] as string) < name)) return 'header.members must be sorted and distinct';
    }
    if (!m.includes(o['from']) || !m.includes(o['to'])) return 'header.members must include from and to';
  }
  const at = o['at'];
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) return 'header.at must be a non-negative safe integer';
  return null;
}

/**
 * Canonical encoding: JSON of the known fields in sorted key order, no whitespace, `group` omitted
 * when undefined, UTF-8. This exact byte string is both framed in the envelope and used as AAD.
 */
export function canonicalHeader(h: Header): Uint8Array {
  const problem = headerProblem(stripUndefined(h));
  if (problem) throw new CryptoError(CRYPTO_ERR_HEADER, problem);
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(h).filter((k) => (h as unknown as Record<string, unknown>)[k] !== undefined).sort()) {
    o[k] = (h as unknown as Record<string, unknown>)[k];
  }
  return enc.encode(JSON.stringify(o));
}

function stripUndefined(h: Header): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) o[k] = v;
  return o;
}

/** Strict inverse of canonicalHeader: valid UTF-8, valid JSON, valid fields, byte-identical re-encoding. */
function parseHeader(bytes: Uint8Array): Header {
  let parsed: unknown;
  try {
    parsed = JSON.parse(dec.decode(bytes));
  } catch (cause) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'header is not UTF-8 JSON', { cause });
  }
  const problem = headerProblem(parsed);
  if (problem) throw new CryptoError(CRYPTO_ERR_FORMAT, problem);
  const header = parsed as Header;
  if (!bytesEqual(canonicalHeader(header), bytes)) throw new CryptoError(CRYPTO_ERR_FORMAT, 'header is not canonical');
  return header;
}

// ---------------------------------------------------------------------------------------------
// Seal

export interface SealInput {
  plaintext: Uint8Array;
  header: Header;
  /** Needs ed25519.secretKey (signing) and ed25519.publicKey (senderKeyId check). */
  sender: Pick<Identity, 'ed25519'>;
  recipientX25519: Uint8Array;
}

export function seal(input: SealInput): Uint8Array {
  return sealWith(input, { ephemeralSecret: x25519.utils.randomSecretKey(), nonce: randomBytes(NONCE_BYTES) });
}

/**
 * INTERNAL, for test vectors only: seal with a caller-chosen ephemeral secret and nonce.
 * Reusing either in production breaks confidentiality; use `seal`.
 */
export function sealWith(input: SealInput, fixed: { ephemeralSecret: Uint8Array; nonce: Uint8Array }): Uint8Array {
  const { plaintext, header, sender, recipientX25519 } = input;
  if (!(plaintext instanceof Uint8Array)) throw new CryptoError(CRYPTO_ERR_FORMAT, 'plaintext must be a Uint8Array');
  if (!isBytes(recipientX25519, KEY_BYTES)) throw new CryptoError(CRYPTO_ERR_FORMAT, 'recipient X25519 key must be 32 bytes');
  if (!isBytes(sender.ed25519.secretKey, KEY_BYTES) || !isBytes(sender.ed25519.publicKey, KEY_BYTES)) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'sender Ed25519 keys must be 32 bytes');
  }
  if (!isBytes(fixed.ephemeralSecret, KEY_BYTES) || !isBytes(fixed.nonce, NONCE_BYTES)) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'ephemeral secret must be 32 bytes and nonce 24 bytes');
  }
  const aad = canonicalHeader(header);
  if (aad.length > MAX_HEADER_BYTES) throw new CryptoError(CRYPTO_ERR_HEADER, 'header longer than 65535 bytes');
  if (header.senderKeyId !== keyId(sender.ed25519.publicKey)) {
    throw new CryptoError(CRYPTO_ERR_HEADER, 'header.senderKeyId is not keyId(sender Ed25519 public key)');
  }
  if (header.recipientKeyId !== keyId(recipientX25519)) {
    throw new CryptoError(CRYPTO_ERR_HEADER, 'header.recipientKeyId is not keyId(recipient X25519 public key)');
  }

  const ephPublic = x25519.getPublicKey(fixed.ephemeralSecret);
  let shared: Uint8Array;
  try {
    shared = x25519Shared(fixed.ephemeralSecret, recipientX25519);
  } catch (cause) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'recipient X25519 key is not usable', { cause });
  }
  const key = messageKey(shared, ephPublic, recipientX25519);
  const ct = xchachaSeal(key, fixed.nonce, aad, pad(plaintext));
  key.fill(0);
  shared.fill(0);

  const body = new Uint8Array(PREFIX_BYTES + aad.length + ct.length);
  let off = 0;
  body[off++] = ENVELOPE_VERSION;
  body.set(ephPublic, off);
  off += KEY_BYTES;
  body.set(fixed.nonce, off);
  off += NONCE_BYTES;
  body[off++] = aad.length >>> 8;
  body[off++] = aad.length & 0xff;
  body.set(aad, off);
  off += aad.length;
  body.set(ct, off);

  const sig = ed25519.sign(body, sender.ed25519.secretKey);
  return concatBytes(body, sig);
}

/**
 * The sender key id a sealed blob names, read without verifying anything: only to choose
 * which of the sender's known keys to verify it with (open() then checks it). Null when
 * the blob is not an envelope.
 */
export function peekSenderKeyId(sealed: Uint8Array): string | null {
  if (!(sealed instanceof Uint8Array) || sealed.length < PREFIX_BYTES + TAG_BYTES + SIGNATURE_BYTES || sealed[0] !== ENVELOPE_VERSION) return null;
  const at = 1 + KEY_BYTES + NONCE_BYTES;
  const len = (sealed[at]! << 8) | sealed[at + 1]!;
  if (at + 2 + len + TAG_BYTES + SIGNATURE_BYTES > sealed.length) return null;
  try {
    const id = (JSON.parse(dec.decode(sealed.subarray(at + 2, at + 2 + len))) as { senderKeyId?: unknown }).senderKeyId;
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}

/** Exact sealed size for a header of `headerBytes` and a padded plaintext of `paddedBytes`. */
export function sealedLength(headerBytes: number, paddedBytes: number): number {
  return PREFIX_BYTES + headerBytes + paddedBytes + TAG_BYTES + SIGNATURE_BYTES;
}

// ---------------------------------------------------------------------------------------------
// Open

export interface OpenInput {
  sealed: Uint8Array;
  /** Needs x25519.secretKey and x25519.publicKey. */
  recipient: Pick<Identity, 'x25519'>;
  senderEd25519: Uint8Array;
  /** Fields the transport claimed (e.g. from/to); each present one must equal the header's. */
  expect?: Partial<Header>;
}

export function open(input: OpenInput): { header: Header; plaintext: Uint8Array } {
  try {
    return openUnchecked(input);
  } catch (e) {
    if (e instanceof CryptoError) throw e;
    // Nothing else may escape: an unexpected exception is reported as a format problem.
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'malformed input', { cause: e });
  }
}

function openUnchecked({ sealed, recipient, senderEd25519, expect }: OpenInput): { header: Header; plaintext: Uint8Array } {
  if (!(sealed instanceof Uint8Array)) throw new CryptoError(CRYPTO_ERR_FORMAT, 'sealed must be a Uint8Array');
  if (!isBytes(senderEd25519, KEY_BYTES)) throw new CryptoError(CRYPTO_ERR_FORMAT, 'sender Ed25519 key must be 32 bytes');
  if (!isBytes(recipient.x25519.secretKey, KEY_BYTES) || !isBytes(recipient.x25519.publicKey, KEY_BYTES)) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'recipient X25519 keys must be 32 bytes');
  }
  // Smallest possible envelope: empty header is impossible, but the bound only needs to let us split.
  if (sealed.length < PREFIX_BYTES + TAG_BYTES + SIGNATURE_BYTES) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, `sealed blob too short (${sealed.length} bytes)`);
  }

  // 1. Signature first: nothing from the body is interpreted before it verifies.
  const bodyLen = sealed.length - SIGNATURE_BYTES;
  const body = sealed.subarray(0, bodyLen);
  const sig = sealed.subarray(bodyLen);
  let valid = false;
  try {
    valid = ed25519.verify(sig, body, senderEd25519, { zip215: false });
  } catch {
    valid = false;
  }
  if (!valid) throw new CryptoError(CRYPTO_ERR_SIGNATURE, 'signature does not verify against the sender key');

  // 2. Strict parse.
  if (body[0] !== ENVELOPE_VERSION) throw new CryptoError(CRYPTO_ERR_FORMAT, `unknown envelope version ${body[0]}`);
  let off = 1;
  const ephPublic = body.slice(off, off + KEY_BYTES);
  off += KEY_BYTES;
  const nonce = body.slice(off, off + NONCE_BYTES);
  off += NONCE_BYTES;
  const headerLen = (body[off]! << 8) | body[off + 1]!;
  off += 2;
  if (headerLen === 0 || off + headerLen + TAG_BYTES > bodyLen) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, `header length ${headerLen} does not fit`);
  }
  const aad = body.slice(off, off + headerLen);
  off += headerLen;
  const ct = body.slice(off);
  const header = parseHeader(aad);

  // 3. What the caller (the server's routing data) claims must match what the sender signed.
  if (header.senderKeyId !== keyId(senderEd25519)) {
    throw new CryptoError(CRYPTO_ERR_HEADER, 'header.senderKeyId does not match the verifying key');
  }
  if (expect) {
    for (const [k, want] of Object.entries(expect)) {
      if (want === undefined) continue;
      if ((header as unknown as Record<string, unknown>)[k] !== want) {
        throw new CryptoError(CRYPTO_ERR_HEADER, `header.${k} does not match the expected value`);
      }
    }
  }

  // 4. Decrypt.
  let padded: Uint8Array;
  try {
    const shared = x25519Shared(recipient.x25519.secretKey, ephPublic);
    const key = messageKey(shared, ephPublic, recipient.x25519.publicKey);
    shared.fill(0);
    try {
      padded = xchachaOpen(key, nonce, aad, ct);
    } finally {
      key.fill(0);
    }
  } catch (cause) {
    throw new CryptoError(CRYPTO_ERR_DECRYPT, 'cannot decrypt (wrong recipient key or corrupted ciphertext)', { cause });
  }
  // Decryption succeeded, so the sender did use our key; a mismatching id means an inconsistent sender.
  if (header.recipientKeyId !== keyId(recipient.x25519.publicKey)) {
    throw new CryptoError(CRYPTO_ERR_HEADER, 'header.recipientKeyId does not match our key');
  }

  // 5. Unpad.
  const plaintext = unpad(padded);
  if (plaintext === null) throw new CryptoError(CRYPTO_ERR_FORMAT, 'padding is malformed');
  return { header, plaintext };
}

// ---------------------------------------------------------------------------------------------
// Safety number

export interface PublicIdentity {
  user: string;
  ed25519: Uint8Array;
  x25519: Uint8Array;
}

/**
 * A 60-digit number both users can compare out of band, rendered as 12 groups of 5 digits.
 *
 * The two identities are sorted by user name (code-unit order; keys break a tie), so the result is
 * the same on both sides. Each identity contributes 6 groups, Signal-style:
 *   h_i = SHA-256(LABEL_SAFETY_NUMBER || u16be(|user|) || user(UTF-8) || ed25519(32) || x25519(32))
 * and group j (0..5) of h_i is the big-endian 40-bit integer h_i[5j .. 5j+5] mod 100000.
 * Changing any key of either user changes that user's half.
 */
export function safetyNumber(a: PublicIdentity, b: PublicIdentity): string {
  const [first, second] = compareIdentities(a, b) <= 0 ? [a, b] : [b, a];
  return [...fingerprintGroups(first), ...fingerprintGroups(second)].join(' ');
}

function compareIdentities(a: PublicIdentity, b: PublicIdentity): number {
  if (a.user !== b.user) return a.user < b.user ? -1 : 1;
  const ka = bytesToHex(concatBytes(a.ed25519, a.x25519));
  const kb = bytesToHex(concatBytes(b.ed25519, b.x25519));
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function fingerprintGroups(id: PublicIdentity): string[] {
  if (!isBytes(id.ed25519, KEY_BYTES) || !isBytes(id.x25519, KEY_BYTES)) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, 'identity keys must be 32 bytes');
  }
  const user = enc.encode(id.user);
  if (user.length > 0xffff) throw new CryptoError(CRYPTO_ERR_FORMAT, 'user name too long');
  const h = sha256(concatBytes(enc.encode(LABEL_SAFETY_NUMBER), new Uint8Array([user.length >>> 8, user.length & 0xff]), user, id.ed25519, id.x25519));
  const groups: string[] = [];
  for (let j = 0; j < 6; j++) {
    let n = 0;
    for (let i = 0; i < 5; i++) n = n * 256 + h[5 * j + i]!;
    groups.push(String(n % 100000).padStart(5, '0'));
  }
  return groups;
}

// ---------------------------------------------------------------------------------------------

function isBytes(x: unknown, len: number): x is Uint8Array {
  return x instanceof Uint8Array && x.length === len;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
