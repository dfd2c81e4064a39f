/**
 * The dashboard's WebSocket protocol (docs/dashboard.md): JSON text frames, one object each
 * with a type `t`. Pages send the few frames below; everything else flows from the cell.
 * Every page frame is checked here against its shape (organism/wire/schema.ts), strictly
 * (unknown types and fields are refused), before anything acts on it. Pure and isomorphic: the page builds its frames from the same types.
 */
import { CellularError } from './errors.ts';
import { anyMap, describe, fields, int, isMap, leaf, matching, quote, req, text, type AnyShape, type CheckContext, type Schemas } from './schema.ts';

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

/** How far back a replay may ask (the recorder's age cap bounds it further). */
export const REPLAY_MAX_SPAN_MS = 10 * 60_000;

function bad(message: string): CellularError {
  return new CellularError('DASHBOARD_ERR_FRAME', message);
}

const id = req(leaf<number>(int(0).test!, () => 'a non-negative integer'));
const token = req(text(0, 256));
const time = req(int(0));

const SCHEMAS: Schemas<PageFrame> = {
  auth: { id, token },
  control: { id, token, control: req(anyMap) },
  detail: { id, cell: req(matching(/^[a-z0-9][a-z0-9-]{0,63}$/, 'a cell id')) },
  replay: { id, from: time, to: time },
};

const CONTEXT: CheckContext = Object.freeze({
  code: 'DASHBOARD_ERR_FRAME',
  limits: {},
  limitPrefix: '',
  json: true,
  unknownField: (prefix: string, key: string) => bad(`a ${prefix.slice(0, -1)} frame has no field ${quote(key)}`),
});

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
  if (!isMap(v)) throw bad('frame must be a JSON object');
  const t = v.t;
  if (typeof t !== 'string' || !Object.hasOwn(SCHEMAS, t)) throw bad(`unknown frame type ${typeof t === 'string' ? quote(t) : describe(t, CONTEXT)}; types: ${Object.keys(SCHEMAS).join(', ')}`);
  const frame = { t, ...fields(v, SCHEMAS[t as PageFrame['t']] as AnyShape, `${t}.`, CONTEXT, ['t']) } as PageFrame;
  if (frame.t === 'replay') {
    if (frame.to < frame.from) throw bad(`replay.to must be at least replay.from (epoch milliseconds with from <= to), received ${frame.to} < ${frame.from}`);
    if (frame.to - frame.from > REPLAY_MAX_SPAN_MS) throw bad(`a replay spans at most ${REPLAY_MAX_SPAN_MS / 60_000} minutes`);
  }
  return frame;
}
