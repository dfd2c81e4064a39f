/**
 * The homeostasis record: one JetStream KV entry per tissue (`tissue.<name>` in the
 * `homeostasis` bucket) that every cell reads and that a cell must rewrite by
 * compare-and-set before it divides, recruits or dies. Whoever's write lands acts; the
 * rest see the new record and stand down. That is the whole agreement: no leader, and a
 * cell that cannot get a write through (no quorum) does nothing.
 *
 * A second entry, `atp`, holds the organism's recent spawns, so mitosis per minute is a
 * hard limit across every host.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { codec } from '../wire/codec.ts';
import { updateWithRetries, type CasOutcome, type CasRetryOptions } from './compare-and-set.ts';
import { CellularError } from '../wire/errors.ts';
import { CELL_ID } from './namespace.ts';
import { DECISION_ACTIONS, type DecisionAction } from './vocabulary.ts';

export const HOMEOSTASIS_BUCKET = 'homeostasis';
export const ATP_KEY = 'atp';

export const tissueKey = (tissue: string): string => `tissue.${tissue}`;

/** A cell being made: counted as present until it pulses as a member, dies, or is overdue. */
export interface PendingCell {
  id: string;
  /** Where it will live (a recruited stem's host, or the spawner's). */
  host: string;
  /** After this (epoch ms) without a pulse it counts as a failed birth. */
  due: number;
  how: 'stem' | 'spawn' | 'seed';
}

export interface TissueRecord {
  v: 1;
  tissue: string;
  /** Decisions written so far; each write adds one. */
  epoch: number;
  /** Last decision: when, by whom, what. `seed` is grow's first population. */
  at: number;
  by: string;
  action: DecisionAction | 'seed' | 'none';
  pending: PendingCell[];
  /** Births that failed in a row (died within limits.crashWindowMs, or never pulsed). */
  failures: number;
  /** When the last failure was counted. */
  failedAt: number;
  /** No regrowth before this (back-off after failures). */
  retryAt: number;
  /** Failed births already counted, so two observers do not count one twice (newest last). */
  crashed: string[];
  /** Divisions refused so far (at max, or by an ATP limit). */
  refused: number;
  /** No stress-driven decision (grow, shrink, refuse) before this: stress must first show the last change. */
  calmUntil: number;
}

export interface AtpRecord {
  v: 1;
  /** Spawn times (epoch ms) within the last minute. */
  spawns: number[];
}

/** Most failed-birth ids remembered per tissue. */
export const CRASHED_MEMORY = 32;

export function emptyTissueRecord(tissue: string): TissueRecord {
  return { v: 1, tissue, epoch: 0, at: 0, by: '', action: 'none', pending: [], failures: 0, failedAt: 0, retryAt: 0, crashed: [], refused: 0, calmUntil: 0 };
}

const bad = (what: string, why: string) => new CellularError('STORE_ERR_RECORD', `${what} rejected: ${why}`);
const nonNeg = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const ACTIONS: ReadonlySet<string> = new Set([...DECISION_ACTIONS, 'seed', 'none']);

/** Validates an entry read from the bucket (anyone with write access could have put it). */
export function parseTissueRecord(bytes: Uint8Array, tissue: string): TissueRecord {
  const what = `homeostasis record ${tissueKey(tissue)}`;
  let r: Record<string, unknown>;
  try {
    r = codec.unpack(bytes) as Record<string, unknown>;
  } catch (cause) {
    throw new CellularError('STORE_ERR_RECORD', `${what} is not msgpack`, { cause });
  }
  if (typeof r !== 'object' || r === null || r.v !== 1) throw bad(what, 'v is not 1');
  if (r.tissue !== tissue) throw bad(what, `it names tissue ${JSON.stringify(r.tissue)}`);
  for (const k of ['epoch', 'at', 'failures', 'failedAt', 'retryAt', 'refused', 'calmUntil'] as const) {
    if (!nonNeg(r[k])) throw bad(what, `${k} is not a non-negative integer`);
  }
  if (typeof r.by !== 'string' || r.by.length > 64) throw bad(what, 'by malformed');
  if (typeof r.action !== 'string' || !ACTIONS.has(r.action)) throw bad(what, 'action unknown');
  if (!Array.isArray(r.pending) || r.pending.length > 1024) throw bad(what, 'pending is not a list');
  for (const p of r.pending as unknown[]) {
    const q = p as Record<string, unknown>;
    if (typeof q !== 'object' || q === null || typeof q.id !== 'string' || !CELL_ID.test(q.id) || typeof q.host !== 'string' || !nonNeg(q.due) || !['stem', 'spawn', 'seed'].includes(q.how as string)) {
      throw bad(what, 'a pending cell is malformed');
    }
  }
  if (!Array.isArray(r.crashed) || r.crashed.length > CRASHED_MEMORY || !r.crashed.every((c) => typeof c === 'string' && CELL_ID.test(c))) throw bad(what, 'crashed malformed');
  return r as unknown as TissueRecord;
}

/**
 * A tissue's record as the bucket holds it now, with the revision to compare-and-set
 * against (0: no record yet, so `create`). A deleted or malformed entry reads as empty,
 * to be rewritten by the next write.
 */
export async function readTissueRecord(kv: KV, tissue: string): Promise<{ record: TissueRecord; revision: number }> {
  return tissueRecordOf(await kv.get(tissueKey(tissue)), tissue);
}

/** The record an entry of `tissue.<name>` holds (null: none), with its revision, as readTissueRecord reads it. */
export function tissueRecordOf(entry: KvEntry | null, tissue: string): { record: TissueRecord; revision: number } {
  let record = emptyTissueRecord(tissue);
  if (entry && entry.operation === 'PUT') {
    try {
      record = parseTissueRecord(entry.value, tissue);
    } catch {
      // rewritten by the next write
    }
  }
  return { record, revision: entry?.revision ?? 0 };
}

export function parseAtpRecord(bytes: Uint8Array): AtpRecord {
  let r: Record<string, unknown>;
  try {
    r = codec.unpack(bytes) as Record<string, unknown>;
  } catch (cause) {
    throw new CellularError('STORE_ERR_RECORD', 'homeostasis record atp is not msgpack', { cause });
  }
  if (typeof r !== 'object' || r === null || r.v !== 1 || !Array.isArray(r.spawns) || r.spawns.length > 1_000_000 || !r.spawns.every(nonNeg)) {
    throw bad('homeostasis record atp', 'malformed');
  }
  return r as unknown as AtpRecord;
}

export function packRecord(r: TissueRecord | AtpRecord): Uint8Array {
  return codec.pack(r);
}

/** Back-off after `failures` failed births in a row: base doubling per failure, capped. */
export function backoffMs(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(30, failures - 1));
}

/**
 * A tissue record's read-modify-write by compare-and-set: `change` gets the record as
 * stored (an empty one if none) and returns the next, or undefined to leave it as it is
 * (outcome `kept`). It may run once per attempt, so it must only decide.
 */
export function mutateTissueRecord(
  kv: KV, tissue: string, change: (record: TissueRecord) => TissueRecord | undefined, options: Omit<CasRetryOptions<TissueRecord | undefined>, 'first'>,
): Promise<CasOutcome<TissueRecord | undefined>> {
  return updateWithRetries<TissueRecord | undefined>(kv, tissueKey(tissue), (entry) => {
    const next = change(tissueRecordOf(entry, tissue).record);
    return next === undefined ? { keep: undefined } : { write: packRecord(next), value: next };
  }, options);
}
