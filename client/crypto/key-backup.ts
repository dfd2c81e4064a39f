/**
 * The encrypted backup of a user's private identity keys, so another browser can log in
 * and read. The wrapping key comes from the password through scrypt under its own random
 * salt and its own label — never the derivation the server uses for the login hash (the
 * server sees the login password; it must not be able to derive this key from what it
 * stores or sees). The server stores the blob and cannot open it.
 *
 * Blob: version (1) || logN (1) || r (1) || p (1) || salt (16) || nonce (24) || ciphertext,
 * where ciphertext = XChaCha20-Poly1305(key, nonce, x25519 secret || ed25519 secret,
 * AAD = label || version || parameters || salt || user) and
 * key = scrypt(password, salt || label || user, N = 2^logN, r, p, 32 bytes).
 *
 * Isomorphic: @noble only, no Buffer, no node: imports.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { concatBytes, randomBytes } from '@noble/hashes/utils.js';
import { CryptoError, identityFromSecrets, type Identity } from './envelope.ts';

export const LABEL_KEY_BACKUP = 'cellular/v1/key-backup';
export const BACKUP_VERSION = 1;
const SALT_BYTES = 16;
const NONCE_BYTES = 24;
const HEAD_BYTES = 4 + SALT_BYTES + NONCE_BYTES;
const SECRETS_BYTES = 64;
const TAG_BYTES = 16;

export interface BackupParams {
  /** log2 of scrypt's N. @default 17 (128 MiB, as the server's login hash) */
  logN: number;
  r: number;
  p: number;
}

export const DEFAULT_BACKUP_PARAMS: Readonly<BackupParams> = Object.freeze({ logN: 17, r: 8, p: 1 });

const enc = new TextEncoder();

function checkParams(p: BackupParams): void {
  const ok = Number.isInteger(p.logN) && p.logN >= 10 && p.logN <= 22 && Number.isInteger(p.r) && p.r >= 1 && p.r <= 32 && Number.isInteger(p.p) && p.p >= 1 && p.p <= 16;
  if (!ok) throw new CryptoError('CRYPTO_ERR_FORMAT', `backup parameters out of range: logN ${p.logN}, r ${p.r}, p ${p.p}`);
}

function aad(head: Uint8Array, user: string): Uint8Array {
  return concatBytes(enc.encode(LABEL_KEY_BACKUP), head.subarray(0, 4 + SALT_BYTES), enc.encode(user));
}

async function wrappingKey(password: string, salt: Uint8Array, user: string, p: BackupParams): Promise<Uint8Array> {
  return scryptAsync(enc.encode(password.normalize('NFC')), concatBytes(salt, enc.encode(LABEL_KEY_BACKUP), enc.encode(user)), {
    N: 2 ** p.logN,
    r: p.r,
    p: p.p,
    dkLen: 32,
    maxmem: 2 ** p.logN * p.r * 128 + 1024 * 1024,
  });
}

/** Seals `identity`'s private keys under `password` for `user`. */
export async function backupKeys(identity: Identity, user: string, password: string, params: BackupParams = DEFAULT_BACKUP_PARAMS): Promise<Uint8Array> {
  checkParams(params);
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const head = concatBytes(Uint8Array.of(BACKUP_VERSION, params.logN, params.r, params.p), salt, nonce);
  const key = await wrappingKey(password, salt, user, params);
  const secrets = concatBytes(identity.x25519.secretKey, identity.ed25519.secretKey);
  return concatBytes(head, xchacha20poly1305(key, nonce, aad(head, user)).encrypt(secrets));
}

/**
 * Opens a backup with the password. A wrong password, another user's blob or any change
 * to the blob fails with CRYPTO_ERR_DECRYPT; a blob of the wrong shape with CRYPTO_ERR_FORMAT.
 */
export async function restoreKeys(blob: Uint8Array, user: string, password: string): Promise<Identity> {
  if (!(blob instanceof Uint8Array) || blob.length !== HEAD_BYTES + SECRETS_BYTES + TAG_BYTES || blob[0] !== BACKUP_VERSION) {
    throw new CryptoError('CRYPTO_ERR_FORMAT', 'not a key backup of this version');
  }
  const params = { logN: blob[1]!, r: blob[2]!, p: blob[3]! };
  checkParams(params);
  const salt = blob.subarray(4, 4 + SALT_BYTES);
  const nonce = blob.subarray(4 + SALT_BYTES, HEAD_BYTES);
  const key = await wrappingKey(password, salt, user, params);
  let secrets: Uint8Array;
  try {
    secrets = xchacha20poly1305(key, nonce, aad(blob, user)).decrypt(blob.subarray(HEAD_BYTES));
  } catch (cause) {
    throw new CryptoError('CRYPTO_ERR_DECRYPT', 'the key backup does not open with this password', { cause });
  }
  return identityFromSecrets(secrets.subarray(0, 32), secrets.subarray(32, 64));
}

/** The parameters a backup was made with (to rewrap it when the defaults rise). */
export function backupParams(blob: Uint8Array): BackupParams {
  if (blob.length < 4 || blob[0] !== BACKUP_VERSION) throw new CryptoError('CRYPTO_ERR_FORMAT', 'not a key backup of this version');
  return { logN: blob[1]!, r: blob[2]!, p: blob[3]! };
}
