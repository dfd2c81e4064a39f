/**
 * Broker identities as NATS nkeys. A cell's broker identity is its lineage key: the same
 * Ed25519 pair, written the way NATS writes user keys (`U…` public, `SU…` seed), so the
 * key that signs its hormones is the key the broker authenticates, and nothing new is
 * stored. The organism's operator, account and system-account keys are derived from the
 * root seed and the organism id (HKDF-SHA256), so every host holding the root key trusts
 * and signs with the same keys without another file to copy.
 */
import { hkdfSync } from 'node:crypto';
import { fromPublic, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { Prefix } from '@nats-io/nkeys/lib/nkeys.js';
import { CellularError } from '../wire/errors.ts';
import { privateKeyObject, signBytes } from './keys.ts';

export type OrganismRole = 'operator' | 'account' | 'system';

const PREFIX: Record<OrganismRole, Prefix> = { operator: Prefix.Operator, account: Prefix.Account, system: Prefix.Account };

/**
 * The organism's `role` key: HKDF(root seed, salt = organism id, info = the role). It signs
 * with node:crypto (a JWT per cell born: the pure-JS signature cost ~10 ms on a spawn's path).
 */
export function organismKey(rootSeed: Uint8Array, organism: string, role: OrganismRole): KeyPair {
  if (rootSeed.length !== 32) throw new CellularError('TRUST_ERR_ROOT_KEY', `a root seed has 32 bytes, received ${rootSeed.length}`);
  const raw = new Uint8Array(hkdfSync('sha256', rootSeed, `cellular/${organism}`, `cellular nats ${role} key v1`, 32));
  const pair = fromSeed(Codec.encodeSeed(PREFIX[role], raw));
  const key = privateKeyObject(raw);
  const publicKey = pair.getPublicKey();
  return {
    getPublicKey: () => publicKey,
    getPrivateKey: () => pair.getPrivateKey(),
    getSeed: () => pair.getSeed(),
    sign: (data: Uint8Array) => signBytes(key, data),
    verify: (data: Uint8Array, sig: Uint8Array) => pair.verify(data, sig),
    clear: () => pair.clear(),
    seal: (...args: Parameters<KeyPair['seal']>) => pair.seal(...args),
    open: (...args: Parameters<KeyPair['open']>) => pair.open(...args),
  };
}

/** A cell's broker key pair from its raw Ed25519 seed (what its birth packet holds). */
export function userKeyFromSeed(seed: Uint8Array): KeyPair {
  if (seed.length !== 32) throw new CellularError('CELL_ERR_BIRTH_PACKET', `an Ed25519 seed has 32 bytes, received ${seed.length}`);
  return fromSeed(Codec.encodeSeed(Prefix.User, seed));
}

/** The NATS user public key (`U…`) of a raw Ed25519 public key (a certificate's `pub`). */
export function userPublicKey(pub: Uint8Array): string {
  if (pub.length !== 32) throw new RangeError(`an Ed25519 public key has 32 bytes, received ${pub.length}`);
  return new TextDecoder().decode(Codec.encode(Prefix.User, pub));
}

/** The public-only key pair of a user public key (what a JWT's subject is encoded from). */
export function userPublic(pub: Uint8Array): KeyPair {
  return fromPublic(userPublicKey(pub));
}

/** The encoded nkey seed (`SU…`) nats.js authenticates with. */
export function userSeedText(seed: Uint8Array): Uint8Array {
  return userKeyFromSeed(seed).getSeed();
}
