/**
 * The organism's root of trust: an Ed25519 key kept in the state dir (mode 0600). It
 * signs the first cells' certificates and the operator's `shutdown`; its public half is
 * what every cell checks lineage against.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { CellularError } from '../wire/errors.ts';
import { fromHex, generateKeypair, privateKeyObject, publicKeyObject, publicKeyOf, toHex, type Keypair } from '../kernel/keys.ts';

export const ROOT_KEY_FILE = 'root.key';
export const ROOT_PUB_FILE = 'root.pub';

export interface RootKey extends Keypair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function complete(pair: Keypair): RootKey {
  return { ...pair, privateKey: privateKeyObject(pair.seed), publicKey: publicKeyObject(pair.pub) };
}

/** Loads the root key from `stateDir`, creating it (0600) the first time. */
export function loadOrCreateRootKey(stateDir: string): RootKey {
  const path = join(stateDir, ROOT_KEY_FILE);
  if (existsSync(path)) return loadRootKey(stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const pair = generateKeypair();
  // `wx`: never overwrite a key another grow just made.
  writeFileSync(path, `${JSON.stringify({ v: 1, seed: toHex(pair.seed), pub: toHex(pair.pub) })}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  writeFileSync(join(stateDir, ROOT_PUB_FILE), `${toHex(pair.pub)}\n`, { mode: 0o644 });
  return complete(pair);
}

export function loadRootKey(stateDir: string): RootKey {
  const path = join(stateDir, ROOT_KEY_FILE);
  let text: string;
  try {
    // A key others can read is a key others may have copied: refuse it, like ssh does.
    const mode = statSync(path).mode & 0o077;
    if (mode !== 0) throw new CellularError('TRUST_ERR_ROOT_KEY', `${path} is readable by group or others (mode ${(statSync(path).mode & 0o777).toString(8)}); run chmod 600 ${path}`);
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    if (cause instanceof CellularError) throw cause;
    throw new CellularError('TRUST_ERR_ROOT_KEY', `cannot read root key ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    const parsed = JSON.parse(text) as { v?: unknown; seed?: unknown; pub?: unknown };
    if (parsed.v !== 1 || typeof parsed.seed !== 'string' || typeof parsed.pub !== 'string') throw new Error('fields v, seed, pub missing');
    const pair = { seed: fromHex(parsed.seed), pub: fromHex(parsed.pub) };
    if (pair.seed.length !== 32 || pair.pub.length !== 32) throw new Error('seed and pub must be 32 bytes each');
    const key = complete(pair);
    // A pub that is not the seed's would make every certificate we sign unverifiable.
    if (!Buffer.from(pair.pub).equals(publicKeyOf(pair.seed))) throw new Error('pub is not the public half of seed');
    return key;
  } catch (cause) {
    throw new CellularError('TRUST_ERR_ROOT_KEY', `root key ${path} is malformed: ${(cause as Error).message}`, { cause });
  }
}
