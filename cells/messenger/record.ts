/**
 * Reading the messenger's KV records back: every record is a msgpack map with `v: 1`,
 * checked field by field by its own parser; this is the part they share.
 */
import { codec } from '../../organism/wire/codec.ts';
import { CellularError } from '../../organism/wire/errors.ts';

export const nonNeg = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A record's map, or STORE_ERR_RECORD naming `what` (a bucket is writable by any cell: trust nothing). */
export function unpackRecord(bytes: Uint8Array, what: string): Record<string, unknown> {
  let r: unknown;
  try {
    r = codec.unpack(bytes);
  } catch (cause) {
    throw new CellularError('STORE_ERR_RECORD', `${what} is not msgpack`, { cause });
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r) || (r as Record<string, unknown>).v !== 1) {
    throw new CellularError('STORE_ERR_RECORD', `${what} rejected: not a v1 record`);
  }
  return r as Record<string, unknown>;
}
