/**
 * Reading the messenger's KV records back: every record is a msgpack map with a version `v`,
 * checked field by field by its own parser; this is the part they share.
 */
import { codec } from '../../organism/wire/codec.ts';
import { CellularError } from '../../organism/wire/errors.ts';

export const nonNeg = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A record's map, or STORE_ERR_RECORD naming `what` (a bucket is writable by any cell: trust nothing). */
export function unpackRecord(bytes: Uint8Array, what: string, versions: readonly number[] = [1]): Record<string, unknown> {
  let r: unknown;
  try {
    r = codec.unpack(bytes);
  } catch (cause) {
    throw new CellularError('STORE_ERR_RECORD', `${what} is not msgpack`, { cause });
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r) || !versions.includes((r as Record<string, unknown>).v as number)) {
    throw new CellularError('STORE_ERR_RECORD', `${what} rejected: not a v${versions.join('/v')} record`);
  }
  return r as Record<string, unknown>;
}
