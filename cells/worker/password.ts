/**
 * Password hashes: scrypt (node:crypto, off the event loop) with a 16-byte random salt and a
 * 32-byte key, stored as a self-describing string
 *
 *   $scrypt$ln=17,r=8,p=1$<salt base64>$<hash base64>
 *
 * so every hash carries the cost it was made with: the genome's cost can be raised later and
 * old hashes still verify. Since OPAQUE (opaque-server.ts) no new hash is made: these are the
 * hashes of accounts from before it, checked once more at their upgrading login.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { CellularError } from '../../organism/wire/errors.ts';

export interface ScryptParams {
  /** log2 of the cost N. */
  logN: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** The genome's ranges (messenger.scryptLogN/R/P): a stored hash outside them is not ours. */
const RANGE = { logN: [10, 22], r: [1, 32], p: [1, 16] } as const;

const B64 = /^[A-Za-z0-9+/]+$/;
const ENCODED = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{1,128})\$([A-Za-z0-9+/]{1,128})$/;

interface Decoded extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

const inRange = (params: ScryptParams): boolean =>
  (Object.keys(RANGE) as (keyof ScryptParams)[]).every((k) => Number.isInteger(params[k]) && params[k] >= RANGE[k][0] && params[k] <= RANGE[k][1]);

/** Base64 without padding (the PHC string convention). */
const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

function fromB64(s: string): Buffer {
  if (!B64.test(s)) throw malformed('bad base64');
  return Buffer.from(s, 'base64');
}

const malformed = (why: string) => new CellularError('STORE_ERR_RECORD', `password hash rejected: ${why}`);

function decode(encoded: string): Decoded {
  if (typeof encoded !== 'string') throw malformed('not a string');
  const m = ENCODED.exec(encoded);
  if (!m) throw malformed('not a $scrypt$ string');
  const params = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (!inRange(params)) throw malformed(`parameters ln=${params.logN},r=${params.r},p=${params.p} out of range`);
  const salt = fromB64(m[4]!);
  const hash = fromB64(m[5]!);
  // Salt and key lengths we could have written (16..64 bytes), so a truncated string is caught.
  if (salt.length < SALT_BYTES || salt.length > 64) throw malformed(`salt of ${salt.length} bytes`);
  if (hash.length < KEY_BYTES || hash.length > 64) throw malformed(`hash of ${hash.length} bytes`);
  return { ...params, salt, hash };
}

/**
 * Passwords are compared as NFC, so one password typed on two keyboards (composed é or
 * e + combining accent) is one password.
 */
const normalise = (password: string): string => password.normalize('NFC');

function derive(password: string, salt: Buffer, keylen: number, { logN, r, p }: ScryptParams): Promise<Buffer> {
  const N = 2 ** logN;
  // OpenSSL refuses anything above maxmem (32 MiB by default, so N = 2^17 would fail); scrypt
  // needs 128·N·r for V plus 128·r·p for B; allow twice that plus slack.
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 128 * r * p + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(normalise(password), salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A fresh hash of `password` with the given cost. */
export async function hashPassword(password: string, params: ScryptParams): Promise<string> {
  if (!inRange(params)) {
    throw new CellularError('GENOME_ERR_INVALID', `scrypt parameters ln=${params.logN},r=${params.r},p=${params.p} are out of range`);
  }
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, params);
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/** Whether `password` matches; a malformed `encoded` throws STORE_ERR_RECORD. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const d = decode(encoded);
  const key = await derive(password, d.salt, d.hash.length, d);
  return timingSafeEqual(key, d.hash);
}

/** Whether a (verified) hash was made with other parameters than the genome's current ones. */
export function needsRehash(encoded: string, params: ScryptParams): boolean {
  const d = decode(encoded);
  return d.logN !== params.logN || d.r !== params.r || d.p !== params.p || d.salt.length !== SALT_BYTES || d.hash.length !== KEY_BYTES;
}

/**
 * A well-formed hash of no password at all (random salt and key, no scrypt spent making it):
 * verifying against it costs one scrypt at `params` and always fails. Logins of unknown
 * users verify against it, so they take as long as a wrong password for a real user.
 */
export function dummyHash(params: ScryptParams): string {
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(randomBytes(SALT_BYTES))}$${b64(randomBytes(KEY_BYTES))}`;
}

/** The three operations, as one object so a test (or a benchmark) can count or replace them. */
export interface PasswordHasher {
  hash(password: string, params: ScryptParams): Promise<string>;
  verify(password: string, encoded: string): Promise<boolean>;
  needsRehash(encoded: string, params: ScryptParams): boolean;
}

export const scryptHasher: PasswordHasher = { hash: hashPassword, verify: verifyPassword, needsRehash };
