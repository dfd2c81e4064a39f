/**
 * A group's membership as its creator states it: a signed, versioned roster that travels
 * inside every group message (encrypted, so the server never sees the group's name), so
 * each member's client can refuse a copy from anyone the creator did not list. The server
 * routes on the header's `members`; it can neither add a member nor forge a roster.
 *
 *   roster = { v: 1, group, name, version (≥ 1), members (sorted by UTF-16 code units,
 *              distinct, 2..MAX_MEMBERS, the creator among them), by (the creator), at }
 *   signed = "cellular/v2/group-roster" 0x00 ‖ canonical JSON of the roster
 *   sig    = Ed25519(creator's identity key, signed)
 *
 * The canonical JSON follows the header's rules (docs/crypto.md): keys in ascending order,
 * no whitespace, strings escaped as JSON.stringify does. The creator is pinned per group
 * by the first roster a client accepts; later versions must be signed by the same creator.
 *
 * Isomorphic: @noble only.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes } from '@noble/hashes/utils.js';
import { fromBase64url, toBase64url } from './base64url.ts';
import { CryptoError, MAX_MEMBERS } from './envelope.ts';

export const LABEL_GROUP_ROSTER = 'cellular/v2/group-roster';

export interface Roster {
  v: 1;
  group: string;
  name: string;
  version: number;
  members: string[];
  by: string;
  at: number;
}

export interface SignedRoster extends Roster {
  /** Ed25519 signature, 64 bytes, base64url without padding. */
  sig: string;
}

const enc = new TextEncoder();
const FIELDS = ['at', 'by', 'group', 'members', 'name', 'sig', 'v', 'version'];
const B64URL_SIG = /^[A-Za-z0-9_-]{86}$/;

/** Why `r` is not a (signed) roster, or null. */
export function rosterProblem(r: unknown): string | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'roster is not an object';
  const o = r as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.includes(k)) return `unknown roster field ${JSON.stringify(k)}`;
  if (o['v'] !== 1) return 'roster.v must be 1';
  for (const k of ['group', 'name', 'by'] as const) {
    const s = o[k];
    if (typeof s !== 'string' || s.length === 0 || s.length > 256 || !s.isWellFormed()) return `roster.${k} must be a well-formed string of 1..256`;
  }
  const version = o['version'];
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) return 'roster.version must be an integer ≥ 1';
  const at = o['at'];
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) return 'roster.at must be a non-negative integer';
  const m = o['members'];
  if (!Array.isArray(m) || m.length < 2 || m.length > MAX_MEMBERS) return `roster.members must list 2..${MAX_MEMBERS} names`;
  for (let i = 0; i < m.length; i++) {
    const name = m[i] as unknown;
    if (typeof name !== 'string' || name.length === 0 || !name.isWellFormed()) return 'roster.members must hold well-formed names';
    if (i > 0 && !((m[i - 1] as string) < name)) return 'roster.members must be sorted and distinct';
  }
  if (!m.includes(o['by'])) return 'roster.by must be a member';
  if ('sig' in o && (typeof o['sig'] !== 'string' || !B64URL_SIG.test(o['sig']))) return 'roster.sig must be 64 bytes in base64url';
  return null;
}

/** The bytes the creator signs. */
export function rosterBytes(r: Roster): Uint8Array {
  const problem = rosterProblem(r);
  if (problem) throw new CryptoError('CRYPTO_ERR_FORMAT', problem);
  const canonical = JSON.stringify({ at: r.at, by: r.by, group: r.group, members: r.members, name: r.name, v: 1, version: r.version });
  return concatBytes(enc.encode(LABEL_GROUP_ROSTER), Uint8Array.of(0), enc.encode(canonical));
}

export function signRoster(r: Roster, creatorSecret: Uint8Array): SignedRoster {
  const { v, group, name, version, members, by, at } = r;
  const plain: Roster = { v, group, name, version, members, by, at };
  return { ...plain, sig: toBase64url(ed25519.sign(rosterBytes(plain), creatorSecret)) };
}

/** Whether `r` is signed by `creatorPublic` (strict Ed25519, as envelopes are). */
export function verifyRoster(r: SignedRoster, creatorPublic: Uint8Array): boolean {
  if (rosterProblem(r) !== null || typeof r.sig !== 'string') return false;
  try {
    const { sig, ...plain } = r;
    return ed25519.verify(fromBase64url(sig), rosterBytes(plain), creatorPublic, { zip215: false });
  } catch {
    return false;
  }
}
