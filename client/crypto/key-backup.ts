/**
 * The encrypted backup of a user's private identity keys, so another browser can log in
 * and read. The server stores the blob and cannot open it.
 *
 * Version 2 (every backup written now): the key comes from a secret the server never sees —
 * OPAQUE's export key (mode "password": known only to whoever runs the login with the
 * password; guessing it takes the server one Argon2id run per guess) or a random recovery
 * key shown once to the person (mode "recovery": nothing the server holds helps at all).
 *
 *   blob = 0x02 || mode (1: password, 2: recovery) || nonce (24) || ciphertext (64 + 16)
 *   ciphertext = XChaCha20-Poly1305(key, nonce, x25519 secret || ed25519 secret,
 *                AAD = "cellular/v2/key-backup" || 0x02 || mode || user)
 *   key = HKDF-SHA256(ikm = secret, salt = none, info = "cellular/v2/key-backup/" || mode name || 0x00 || user, 32)
 *
 * Version 1 (accounts from before OPAQUE; read only, to upgrade them): the key came from the
 * password through scrypt, which the server could run too, since it saw the password:
 *   blob = 0x01 || logN || r || p || salt (16) || nonce (24) || ciphertext
 *   key = scrypt(password, salt || "cellular/v1/key-backup" || user, N = 2^logN, r, p, 32 bytes)
 *
 * Isomorphic: @noble only, no Buffer, no node: imports.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
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

// ---- version 2 -------------------------------------------------------------------------

export const LABEL_KEY_BACKUP_V2 = 'cellular/v2/key-backup';
export const BACKUP_V2 = 2;
/** A v2 blob: version, mode, nonce, sealed secrets. */
export const BACKUP_V2_BYTES = 2 + NONCE_BYTES + SECRETS_BYTES + TAG_BYTES;

/** What a backup is sealed under: OPAQUE's export key, or a recovery key (recovery-key.ts). */
export type BackupSecret = { mode: 'password'; exportKey: Uint8Array } | { mode: 'recovery'; recoveryKey: Uint8Array };
export type BackupMode = BackupSecret['mode'] | 'legacy';

const MODE_BYTE = { password: 1, recovery: 2 } as const;

function v2Key(secret: BackupSecret, user: string): Uint8Array {
  const ikm = secret.mode === 'password' ? secret.exportKey : secret.recoveryKey;
  if (!(ikm instanceof Uint8Array) || ikm.length < 32) throw new CryptoError('CRYPTO_ERR_FORMAT', `a backup secret is at least 32 bytes (received ${ikm?.length ?? 0})`);
  return hkdf(sha256, ikm, undefined, concatBytes(enc.encode(`${LABEL_KEY_BACKUP_V2}/${secret.mode}`), Uint8Array.of(0), enc.encode(user)), 32);
}

const v2Aad = (head: Uint8Array, user: string) => concatBytes(enc.encode(LABEL_KEY_BACKUP_V2), head.subarray(0, 2), enc.encode(user));

/** Seals `identity`'s private keys for `user` under a secret the server never sees. */
export function sealBackup(identity: Identity, user: string, secret: BackupSecret, nonce: Uint8Array = randomBytes(NONCE_BYTES)): Uint8Array {
  if (nonce.length !== NONCE_BYTES) throw new CryptoError('CRYPTO_ERR_FORMAT', `a backup nonce is ${NONCE_BYTES} bytes`);
  const head = concatBytes(Uint8Array.of(BACKUP_V2, MODE_BYTE[secret.mode]), nonce);
  const secrets = concatBytes(identity.x25519.secretKey, identity.ed25519.secretKey);
  return concatBytes(head, xchacha20poly1305(v2Key(secret, user), nonce, v2Aad(head, user)).encrypt(secrets));
}

/** Which secret opens `blob`: "password" or "recovery" (v2), "legacy" (v1: the password through scrypt). */
export function backupMode(blob: Uint8Array): BackupMode {
  if (blob instanceof Uint8Array && blob.length === HEAD_BYTES + SECRETS_BYTES + TAG_BYTES && blob[0] === BACKUP_VERSION) return 'legacy';
  if (!(blob instanceof Uint8Array) || blob.length !== BACKUP_V2_BYTES || blob[0] !== BACKUP_V2) throw new CryptoError('CRYPTO_ERR_FORMAT', 'not a key backup of a known version');
  if (blob[1] === MODE_BYTE.password) return 'password';
  if (blob[1] === MODE_BYTE.recovery) return 'recovery';
  throw new CryptoError('CRYPTO_ERR_FORMAT', `unknown key backup mode ${blob[1]}`);
}

/**
 * Opens a v2 backup. A wrong secret, another user's blob or any change to the blob fails
 * with CRYPTO_ERR_DECRYPT; a blob of the wrong shape or mode with CRYPTO_ERR_FORMAT.
 */
export function openBackup(blob: Uint8Array, user: string, secret: BackupSecret): Identity {
  const mode = backupMode(blob);
  if (mode !== secret.mode) throw new CryptoError('CRYPTO_ERR_FORMAT', `this backup is sealed under the ${mode === 'legacy' ? 'password (version 1)' : `${mode} key`}, not the ${secret.mode} key`);
  let secrets: Uint8Array;
  try {
    secrets = xchacha20poly1305(v2Key(secret, user), blob.subarray(2, 2 + NONCE_BYTES), v2Aad(blob, user)).decrypt(blob.subarray(2 + NONCE_BYTES));
  } catch (cause) {
    throw new CryptoError('CRYPTO_ERR_DECRYPT', `the key backup does not open with this ${secret.mode === 'password' ? 'password' : 'recovery key'}`, { cause });
  }
  return identityFromSecrets(secrets.subarray(0, 32), secrets.subarray(32, 64));
}
