/**
 * Padmé length padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
 * Communication with PURBs", PETS 2019, section 4) with a 4-byte length prefix.
 *
 * Scheme, exactly:
 *
 *   framed  = u32be(plaintext.length) || plaintext            (length L + 4)
 *   padded  = framed || 0x00 * (padme(L + 4) - (L + 4))
 *
 * `unpad` is strict: the total must be exactly `padme(prefix + 4)`, the prefix must fit, and every
 * padding byte must be zero. The padded length reveals only the exponent E = floor(log2 n) and the
 * top floor(log2 E) + 1 bits of the length, i.e. O(log log n) bits; overhead is at most ~12%.
 *
 * Browser-safe: Uint8Array only, no Buffer, no node: imports.
 */

/** Bytes used by the big-endian u32 length prefix. */
export const PAD_PREFIX_BYTES = 4;

/** Largest plaintext accepted (the u32 prefix and 32-bit Padmé arithmetic). */
export const PAD_MAX_PLAINTEXT = 0x7fff_0000;

/** floor(log2 n) for 1 <= n < 2^32. */
function log2floor(n: number): number {
  return 31 - Math.clz32(n);
}

/**
 * Padmé: the padded size of a length-`len` object. Lengths 0 and 1 are returned unchanged.
 * Works on integers 0 <= len <= PAD_MAX_PLAINTEXT + PAD_PREFIX_BYTES.
 */
export function padme(len: number): number {
  if (!Number.isSafeInteger(len) || len < 0 || len > PAD_MAX_PLAINTEXT + PAD_PREFIX_BYTES) {
    throw new RangeError(`padme: length out of range: ${len}`);
  }
  if (len < 2) return len;
  const e = log2floor(len); // E
  const s = log2floor(e) + 1; // S: bits needed to represent E (0 when E = 0 is excluded above)
  const lastBits = e - s; // low bits forced to zero
  const mask = 2 ** lastBits - 1;
  // (len + mask) & ~mask, in floating-point-safe arithmetic (len may exceed 2^31).
  return Math.floor((len + mask) / (mask + 1)) * (mask + 1);
}

/** Size of `pad(x)` for a plaintext of `plaintextLength` bytes. */
export function paddedLength(plaintextLength: number): number {
  return padme(plaintextLength + PAD_PREFIX_BYTES);
}

/** u32be(len) || plaintext || zeros, to padme(len + 4) bytes. */
export function pad(plaintext: Uint8Array): Uint8Array {
  const len = plaintext.length;
  if (len > PAD_MAX_PLAINTEXT) throw new RangeError(`pad: plaintext too large: ${len}`);
  const out = new Uint8Array(paddedLength(len));
  new DataView(out.buffer).setUint32(0, len, false);
  out.set(plaintext, PAD_PREFIX_BYTES);
  return out;
}

/** Inverse of `pad`; returns null (never throws) when `padded` is not exactly what `pad` makes. */
export function unpad(padded: Uint8Array): Uint8Array | null {
  if (padded.length < PAD_PREFIX_BYTES) return null;
  const len = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint32(0, false);
  if (len > PAD_MAX_PLAINTEXT || len > padded.length - PAD_PREFIX_BYTES) return null;
  if (padded.length !== paddedLength(len)) return null;
  let nonZero = 0;
  for (let i = PAD_PREFIX_BYTES + len; i < padded.length; i++) nonZero |= padded[i]!;
  if (nonZero !== 0) return null;
  return padded.slice(PAD_PREFIX_BYTES, PAD_PREFIX_BYTES + len);
}
