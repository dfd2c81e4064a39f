/**
 * What this browser remembers for one user, besides the private keys: every key it has
 * accepted for each contact (trust on first use, then only by the person's explicit
 * acknowledgement), the contact list, the groups, and the stored sequences of sent
 * messages (to delete them for everyone later). Public data: kept in IndexedDB as is.
 */
import type { SignedRoster } from '../crypto/group-roster.ts';
import { PROFILES, run } from './idb.ts';

/**
 * A contact's identity as pinned: both public keys, compared byte for byte (a directory
 * that kept the Ed25519 key and swapped the X25519 key would otherwise receive what is
 * sealed to it unnoticed).
 */
export interface PinnedKey {
  x25519: Uint8Array;
  ed25519: Uint8Array;
  /** keyId of ed25519: what a message's header names. */
  id: string;
  /** The person compared safety numbers and marked this identity verified; a new key starts unverified. */
  verified?: boolean;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** The same identity: both keys, byte for byte. */
export function samePin(a: Pick<PinnedKey, 'x25519' | 'ed25519'>, b: Pick<PinnedKey, 'x25519' | 'ed25519'>): boolean {
  return bytesEqual(a.x25519, b.x25519) && bytesEqual(a.ed25519, b.ed25519);
}

export interface Group {
  name: string;
  members: string[];
  /** The creator's signed membership (newest version accepted); absent in groups from before rosters. */
  roster?: SignedRoster;
}

export interface Profile {
  owner: string;
  /** Accepted keys per contact, oldest first; the last is the current one. */
  pins: Record<string, PinnedKey[]>;
  contacts: string[];
  groups: Record<string, Group>;
  /** msg → the sequences of its stored copies (from the ack), newest last, bounded. */
  sent: Record<string, number[]>;
}

/** How many sent messages keep their sequences (for delete for everyone). */
export const SENT_KEPT = 5_000;

export function emptyProfile(owner: string): Profile {
  return { owner, pins: {}, contacts: [], groups: {}, sent: {} };
}

export async function loadProfile(owner: string): Promise<Profile> {
  const stored = await run(PROFILES, 'readonly', (s) => s.get(owner) as IDBRequest<Profile | undefined>).catch(() => undefined);
  return stored ? { ...emptyProfile(owner), ...stored } : emptyProfile(owner);
}

export function saveProfile(p: Profile): Promise<unknown> {
  const sent = Object.keys(p.sent);
  for (const msg of sent.slice(0, Math.max(0, sent.length - SENT_KEPT))) delete p.sent[msg];
  return run(PROFILES, 'readwrite', (s) => s.put(p));
}
