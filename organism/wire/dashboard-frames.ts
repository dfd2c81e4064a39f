/**
 * The dashboard's WebSocket protocol (docs/dashboard.md): JSON text frames, one object each
 * with a type `t`. Pages send the few frames below; everything else flows from the cell.
 * Every page frame is checked here, strictly (unknown types and fields are refused), before
 * anything acts on it. Pure and isomorphic: the page builds its frames from the same types.
 */
import { CellularError } from './errors.ts';

/** A compact census row (the page draws hundreds of these twice a second). */
export interface CellRow {
  id: string;
  tissue: string;
  host: string;
  parent: string | null;
  state: string;
  /** Load in [0,1] (last pulse) and smoothed. */
  load: number;
  smoothed: number;
  cpu: number;
  rss: number;
  lag: number;
  born: number;
  pid: number;
  url: string | null;
  cause: string | null;
  died: number | null;
  inflight: number;
  handled: number;
}

export type EventKind = 'birth' | 'death' | 'state' | 'decision' | 'differentiate' | 'accuse' | 'vote' | 'verdict' | 'toxin' | 'shutdown' | 'control';
export const EVENT_KINDS: readonly EventKind[] = ['birth', 'death', 'state', 'decision', 'differentiate', 'accuse', 'vote', 'verdict', 'toxin', 'shutdown', 'control'];

export interface SwarmEvent {
  /** Ordinal within this dashboard cell's life (the page dedupes by it). */
  n: number;
  ts: number;
  kind: EventKind;
  /** Who sent it (a cell id, `root`, or `census` for what the census concluded). */
  from: string;
  /** The cells it concerns (for the cell detail and the graph's animation). */
  cells: string[];
  tissue: string | null;
  /** One line for people. */
  text: string;
  /** The numbers behind it (a decision's readings, a verdict's votes). */
  data: Record<string, unknown> | null;
}

/** One point of the time series (one per second). */
export interface SeriesPoint {
  ts: number;
  population: Record<string, number>;
  stress: Record<string, number>;
  /** Messages delivered per second, all receivers. */
  delivered: number;
  /** Worst receiver's delivery p99 over its last 10 s, ms (null: nothing delivered). */
  p99: number | null;
  /** Summed CPU percent and RSS bytes of the living cells, per host. */
  cpu: Record<string, number>;
  rss: Record<string, number>;
}

/** A census frame as the flight recorder keeps it. */
export interface RecordedFrame {
  ts: number;
  cells: CellRow[];
}

export type PageFrame =
  | { t: 'auth'; id: number; token: string }
  | { t: 'control'; id: number; token: string; control: Record<string, unknown> }
  | { t: 'detail'; id: number; cell: string }
  | { t: 'replay'; id: number; from: number; to: number };

const FIELDS: Record<PageFrame['t'], readonly string[]> = {
  auth: ['t', 'id', 'token'],
  control: ['t', 'id', 'token', 'control'],
  detail: ['t', 'id', 'cell'],
  replay: ['t', 'id', 'from', 'to'],
};

/** How far back a replay may ask (the recorder's age cap bounds it further). */
export const REPLAY_MAX_SPAN_MS = 10 * 60_000;

function bad(message: string): CellularError {
  return new CellularError('DASHBOARD_ERR_FRAME', message);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses one text frame from a page; throws DASHBOARD_ERR_FRAME saying what is wrong. */
export function parsePageFrame(text: string, maxBytes: number): PageFrame {
  if (typeof text !== 'string') throw bad('frames are JSON text');
  if (text.length > maxBytes) throw bad(`frame of ${text.length} characters exceeds dashboard.frameMaxBytes (${maxBytes})`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad('frame is not JSON');
  }
  if (!isObject(v)) throw bad('frame must be a JSON object');
  const t = v.t;
  if (typeof t !== 'string' || !Object.hasOwn(FIELDS, t)) throw bad(`unknown frame type ${JSON.stringify(t)?.slice(0, 40)}; types: ${Object.keys(FIELDS).join(', ')}`);
  const fields = FIELDS[t as PageFrame['t']];
  const extra = Object.keys(v).find((k) => !fields.includes(k));
  if (extra !== undefined) throw bad(`a ${t} frame has no field ${JSON.stringify(extra).slice(0, 40)}`);
  if (typeof v.id !== 'number' || !Number.isSafeInteger(v.id) || v.id < 0) throw bad(`${t}.id must be a non-negative integer`);
  const id = v.id;
  switch (t) {
    case 'auth':
      if (typeof v.token !== 'string' || v.token.length > 256) throw bad('auth.token must be a string of at most 256 characters');
      return { t, id, token: v.token };
    case 'control':
      if (typeof v.token !== 'string' || v.token.length > 256) throw bad('control.token must be a string of at most 256 characters');
      if (!isObject(v.control)) throw bad('control.control must be an object');
      return { t, id, token: v.token, control: v.control };
    case 'detail':
      if (typeof v.cell !== 'string' || !/^[a-z0-9][a-z0-9-]{0,63}$/.test(v.cell)) throw bad('detail.cell must be a cell id');
      return { t, id, cell: v.cell };
    default: {
      const { from, to } = v;
      if (typeof from !== 'number' || typeof to !== 'number' || !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
        throw bad('replay.from and replay.to must be epoch milliseconds with from <= to');
      }
      if (to - from > REPLAY_MAX_SPAN_MS) throw bad(`a replay spans at most ${REPLAY_MAX_SPAN_MS / 60_000} minutes`);
      return { t: 'replay', id, from, to };
    }
  }
}
