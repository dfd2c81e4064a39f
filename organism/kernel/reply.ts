/**
 * Request/reply payloads between cells and tools: msgpackr, with errors as plain data
 * (`{ok: false, error: {name, code, message}}`) rebuilt into CellularError on arrival.
 */
import { C1 } from 'msgpackr';
import { codec as packr } from '../wire/codec.ts';
import { CellularError, type WireError } from '../wire/errors.ts';


export type Reply<T> = { ok: true; value: T } | { ok: false; error: WireError };

export function pack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes untrusted bytes; throws CellularError(code) with the given code on garbage. */
export function unpack(bytes: Uint8Array, code: 'CELL_ERR_REMOTE' | 'TISSUE_ERR_BAD_REQUEST' = 'CELL_ERR_REMOTE'): unknown {
  if (bytes.length === 0) return undefined;
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new CellularError(code, `payload is not valid msgpack (${bytes.length} bytes)`, { cause });
  }
  // msgpackr decodes the never-used byte 0xC1 to a marker object instead of failing.
  if (holdsC1(value, 0)) throw new CellularError(code, `payload is not valid msgpack (byte 0xC1 in ${bytes.length} bytes)`);
  return value;
}

function holdsC1(value: unknown, depth: number): boolean {
  if (value === C1) return true;
  if (typeof value !== 'object' || value === null || depth > 32 || value instanceof Uint8Array) return false;
  for (const v of Array.isArray(value) ? value : Object.values(value)) if (holdsC1(v, depth + 1)) return true;
  return false;
}

export function packReply<T>(value: T): Uint8Array {
  return pack({ ok: true, value } satisfies Reply<T>);
}

export function packError(error: unknown, cell?: string): Uint8Array {
  const e = error instanceof CellularError ? error : new CellularError('CELL_ERR_REMOTE', error instanceof Error ? error.message : String(error));
  const wire = e.toWire();
  if (cell !== undefined) wire.cell = cell;
  return pack({ ok: false, error: wire } satisfies Reply<never>);
}

/** Opens a reply: returns its value, or throws the remote error rebuilt. */
export function openReply<T>(bytes: Uint8Array): T {
  const r = unpack(bytes) as Reply<T> | undefined;
  if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean') {
    throw new CellularError('CELL_ERR_REMOTE', 'reply is not a {ok, value|error} object');
  }
  if (r.ok) return r.value;
  throw CellularError.fromWire(r.error);
}
