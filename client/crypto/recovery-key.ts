/**
 * Recovery keys: 32 random bytes that can seal the key backup instead of the password (the
 * stronger mode: nothing the server holds or sees helps to open it). Shown once, written
 * down by the person, typed back on a new browser, so the text form is built for people:
 *
 *   text = base32 (RFC 4648 alphabet, lowercase, no padding) of key (32) || check (3),
 *          in 14 groups of 4 characters joined by "-"
 *   check = the first 3 bytes of SHA-256("cellular/v2/recovery-key" || key)
 *
 * Parsing ignores case, spaces and dashes, reads 0 as o and 1 as l (RFC 4648 has neither
 * digit), and refuses a key whose check fails: a typo is caught before any decryption.
 *
 * Isomorphic: @noble only.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, randomBytes } from '@noble/hashes/utils.js';
import { CryptoError } from './envelope.ts';

export const RECOVERY_KEY_BYTES = 32;
const CHECK_BYTES = 3;
const LABEL = 'cellular/v2/recovery-key';
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** 35 bytes = 280 bits = 56 base32 characters, exactly. */
const TEXT_CHARS = ((RECOVERY_KEY_BYTES + CHECK_BYTES) * 8) / 5;

const check = (key: Uint8Array) => sha256(concatBytes(new TextEncoder().encode(LABEL), key)).subarray(0, CHECK_BYTES);

export function newRecoveryKey(): Uint8Array {
  return randomBytes(RECOVERY_KEY_BYTES);
}

/** The text a person writes down: 14 groups of 4 characters. */
export function formatRecoveryKey(key: Uint8Array): string {
  if (!(key instanceof Uint8Array) || key.length !== RECOVERY_KEY_BYTES) throw new CryptoError('CRYPTO_ERR_FORMAT', `a recovery key is ${RECOVERY_KEY_BYTES} bytes`);
  const bytes = concatBytes(key, check(key));
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out.match(/.{4}/g)!.join('-');
}

/** The key in a typed text; CRYPTO_ERR_FORMAT saying what is wrong (length, a character, the check). */
export function parseRecoveryKey(text: string): Uint8Array {
  const clean = String(text).toLowerCase().replace(/[\s-]/g, '').replace(/0/g, 'o').replace(/1/g, 'l');
  if (clean.length !== TEXT_CHARS) throw new CryptoError('CRYPTO_ERR_FORMAT', `a recovery key has ${TEXT_CHARS} letters and digits (this has ${clean.length})`);
  const bytes = new Uint8Array(RECOVERY_KEY_BYTES + CHECK_BYTES);
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const c of clean) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) throw new CryptoError('CRYPTO_ERR_FORMAT', `a recovery key has no ${JSON.stringify(c)} (letters a-z and digits 2-7 only)`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bytes[at++] = (value >>> (bits - 8)) & 255;
      bits -= 8;
      value &= (1 << bits) - 1;
    }
  }
  const key = bytes.slice(0, RECOVERY_KEY_BYTES);
  const expected = check(key);
  if (!expected.every((b, i) => b === bytes[RECOVERY_KEY_BYTES + i])) throw new CryptoError('CRYPTO_ERR_FORMAT', 'this recovery key has a typo (its check does not match)');
  return key;
}
