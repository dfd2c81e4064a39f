/**
 * The hormone envelope `{v, kind, from, seq, ts, body, sig}`: msgpackr-encoded and
 * Ed25519-signed by the sender. Decoding never throws: bad bytes, unknown kinds, oversize,
 * bad signatures, replayed or stale sequence numbers come back as a drop reason, which
 * the caller counts (see HormoneGate).
 *
 * Only the canonical encoding is accepted: the decoded envelope must re-encode to the
 * exact bytes received, so no two byte strings carry one signed meaning.
 */
import type { KeyObject } from 'node:crypto';
import { codec as packr } from '../wire/codec.ts';
import { CellularError } from '../wire/errors.ts';
import { signBytes, verifyBytes } from './keys.ts';
import { CELL_ID } from './namespace.ts';
import { ROOT_ISSUER } from './lineage.ts';
import { bodyFits, checkBody, HORMONE_VERSION, isHormoneKind, type HormoneKind } from './vocabulary.ts';

export interface Hormone<B = unknown> {
  v: number;
  kind: HormoneKind;
  /** Sender cell id, or `root` for the operator (grow, stop). */
  from: string;
  /** Strictly increasing per sender and never behind its clock in µs, so restarts never reuse one. */
  seq: number;
  /** Send time, ms since the epoch. */
  ts: number;
  body: B;
  sig: Uint8Array;
}

export const DROP_REASONS = ['malformed', 'tooLarge', 'unknownKind', 'badBody', 'quarantined', 'foreign', 'badSignature', 'replayed', 'stale', 'flooded'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * A drop for an unknown kind or a bad body still carries the well-formed envelope, so the
 * receiver can check its signature and hold the sender to account (a signed bad body is
 * forgery, see docs/immune.md); it is never delivered.
 */
export type Opened = { ok: true; hormone: Hormone } | { ok: false; reason: DropReason; envelope?: Hormone };


/**
 * What a signature covers: a domain tag, the organism id, and the envelope. The subject a
 * hormone travels on is `org.<organism>.hormone.<kind>.<from>`, all of it signed, so a
 * captured hormone (a root `shutdown`) cannot be replayed into another organism sharing the
 * root key, nor onto another subject: it fails there as a bad signature or a misfiled one.
 */
export function hormoneSigningInput(h: Omit<Hormone, 'sig'>, organism: string): Uint8Array {
  const body = receivedBodies.get(h);
  if (body === undefined) return packr.pack([HORMONE_DOMAIN, organism, h.v, h.kind, h.from, h.seq, h.ts, h.body]);
  // The same bytes, without encoding the body again: an array's encoding is its header and
  // its elements' encodings one after the other, so the head of seven elements with the
  // header of eight (msgpack fixarray 0x97 → 0x98), then the body as it was received.
  const head = packr.pack([HORMONE_DOMAIN, organism, h.v, h.kind, h.from, h.seq, h.ts]);
  const input = new Uint8Array(head.length + body.length);
  input.set(head);
  input[0] = 0x98;
  input.set(body, head.length);
  return input;
}

/**
 * The bytes of each received hormone's body, as they arrived (openEnvelope): a canonical
 * envelope re-encodes to exactly those bytes, so they are the body's encoding. Checking a
 * signature then needs no second encoding of the body (a host digest's rows are most of what
 * an idle cell receives, and encoding them again was ≈ 15 % of its CPU).
 */
const receivedBodies = new WeakMap<object, Uint8Array>();

/** `{"sig": bin8(64)}`'s tail of an envelope: the key (fixstr 3) and the 64-byte value (bin8). */
const SIG_TAIL = 1 + 3 + 2 + 64;
/** The key `body` (fixstr 4). */
const BODY_KEY = 1 + 4;

/** Domain separation: these bytes are signed as a hormone and as nothing else. */
export const HORMONE_DOMAIN = 'cellular hormone v2';

export interface Signer {
  /** The sending cell's id (or `root`). */
  readonly id: string;
  /** The organism the hormone is for (bound into the signature). */
  readonly organism: string;
  readonly key: KeyObject;
  /** Next sequence number; may be shared between threads (see SharedSequence). */
  nextSeq(): number;
}

/**
 * A sender's sequence: strictly increasing and never behind the clock (µs since the
 * epoch), so two processes speaking as one sender (grow and `cellular stop`, both `root`)
 * or a restarted one never fall behind each other's replay windows. Atomic over a
 * SharedArrayBuffer, so threads of one process may share it too.
 */
export class SharedSequence {
  readonly buffer: SharedArrayBuffer;
  readonly #cell: BigInt64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(8);
    this.#cell = new BigInt64Array(this.buffer);
  }

  next(): number {
    for (;;) {
      const current = Atomics.load(this.#cell, 0);
      const clock = BigInt(Date.now()) * 1000n;
      const next = current + 1n > clock ? current + 1n : clock;
      if (Atomics.compareExchange(this.#cell, 0, current, next) === current) return Number(next);
    }
  }
}

/** Encodes and signs. Throws HORMONE_ERR_* for a caller bug (unknown kind, oversize). */
export function sealHormone<B>(signer: Signer, kind: HormoneKind, body: B, maxBytes: number, now: number = Date.now()): Uint8Array {
  if (!isHormoneKind(kind)) throw new CellularError('HORMONE_ERR_KIND', `unknown hormone kind ${JSON.stringify(kind)}`);
  checkBody(kind, body); // HORMONE_ERR_BODY naming the field (docs/hormones.md)
  const unsigned = { v: HORMONE_VERSION, kind, from: signer.id, seq: signer.nextSeq(), ts: now, body };
  const sig = signBytes(signer.key, hormoneSigningInput(unsigned, signer.organism));
  const bytes = packr.pack({ ...unsigned, sig });
  if (bytes.length > maxBytes) {
    throw new CellularError('HORMONE_ERR_TOO_LARGE', `a ${kind} hormone of ${bytes.length} bytes exceeds limits.hormoneMaxBytes (${maxBytes})`);
  }
  // What every receiver will do to it: a body that does not survive would be dropped
  // everywhere in silence, so refuse it here, loudly.
  const check = openEnvelope(bytes, maxBytes);
  if (!check.ok) {
    throw new CellularError('HORMONE_ERR_BODY', `a ${kind} body does not survive decoding (${check.reason}): use well-formed strings, no -0, no __proto__ keys`);
  }
  return bytes;
}

/**
 * Signs any kind and body without the checks sealHormone makes: only for injected faults
 * (cells/immune/faults.ts), which must be able to send what an honest cell never would.
 */
export function sealUnchecked(signer: Signer, kind: string, body: unknown, now: number = Date.now()): Uint8Array {
  const unsigned = { v: HORMONE_VERSION, kind: kind as HormoneKind, from: signer.id, seq: signer.nextSeq(), ts: now, body };
  return packr.pack({ ...unsigned, sig: signBytes(signer.key, hormoneSigningInput(unsigned, signer.organism)) });
}

const ENVELOPE_KEYS = ['v', 'kind', 'from', 'seq', 'ts', 'body', 'sig'];

/** Parses bytes into an envelope without checking the signature or freshness. */
export function openEnvelope(bytes: Uint8Array, maxBytes: number): Opened {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) return { ok: false, reason: 'malformed' };
  if (bytes.length > maxBytes) return { ok: false, reason: 'tooLarge' };
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'malformed' };
  const e = value as Record<string, unknown>;
  const keys = Object.keys(e);
  if (keys.length !== ENVELOPE_KEYS.length || !keys.every((k, i) => k === ENVELOPE_KEYS[i])) return { ok: false, reason: 'malformed' };
  if (e.v !== HORMONE_VERSION) return { ok: false, reason: 'malformed' };
  if (typeof e.from !== 'string' || (e.from !== ROOT_ISSUER && !CELL_ID.test(e.from))) return { ok: false, reason: 'malformed' };
  if (typeof e.seq !== 'number' || !Number.isSafeInteger(e.seq) || e.seq <= 0) return { ok: false, reason: 'malformed' };
  if (typeof e.ts !== 'number' || !Number.isSafeInteger(e.ts) || e.ts <= 0) return { ok: false, reason: 'malformed' };
  if (!(e.sig instanceof Uint8Array) || e.sig.length !== 64) return { ok: false, reason: 'malformed' };
  if (!isHormoneKind(e.kind)) return { ok: false, reason: 'unknownKind', envelope: e as unknown as Hormone };
  if (!bodyFits(e.kind, e.body)) return { ok: false, reason: 'badBody', envelope: e as unknown as Hormone };
  // Canonical form: anything that does not re-encode to the same bytes was not made by us.
  let again: Uint8Array;
  try {
    again = packr.pack(e);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (!Buffer.from(again.buffer, again.byteOffset, again.byteLength).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) {
    return { ok: false, reason: 'malformed' };
  }
  // Where the body's encoding sits: after the map header and the first five entries (their
  // encoding, measured), and the key `body`; before the key `sig` and its 64 bytes.
  const start = packr.pack({ v: e.v, kind: e.kind, from: e.from, seq: e.seq, ts: e.ts }).length + BODY_KEY;
  receivedBodies.set(e, bytes.slice(start, bytes.length - SIG_TAIL));
  return { ok: true, hormone: e as unknown as Hormone };
}

/** Checks a parsed envelope's signature against the sender's key, for organism `organism`. */
export function signatureHolds(h: Hormone, key: KeyObject, organism: string): boolean {
  return verifyBytes(key, hormoneSigningInput(h, organism), h.sig);
}
