/**
 * The organism's public random value for an epoch: the hash of the root key's Ed25519
 * signature over the epoch. Ed25519 signing is deterministic, so every host's grow (each
 * holds the root key) gives the same value without talking to the others, and nobody
 * without the root key can know it before it is published. Cells read it from the host
 * digests and draw watchers and juries from it (organism/kernel/sortition.ts); a cell
 * that could predict it could place its own future ids beside its accomplices.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';

export const BEACON_DOMAIN = 'cellular beacon v1';

export function beaconOf(rootKey: KeyObject, organism: string, epoch: number): string {
  const signature = sign(null, Buffer.from(`${BEACON_DOMAIN}\0${organism}\0${epoch}`), rootKey);
  return createHash('sha256').update(signature).digest('hex').slice(0, 32);
}

/** A cache of the last few epochs' beacons (one signature per epoch, not per digest). */
export function beacons(rootKey: KeyObject, organism: string): (epoch: number) => string {
  const memo = new Map<number, string>();
  return (epoch) => {
    let b = memo.get(epoch);
    if (b === undefined) {
      b = beaconOf(rootKey, organism, epoch);
      memo.set(epoch, b);
      if (memo.size > 4) memo.delete(memo.keys().next().value!);
    }
    return b;
  };
}
