/**
 * The flight recorder (docs/dashboard.md): the broker keeps every hormone but pulses in a
 * JetStream stream (organism/kernel/stores.ts), and the dashboard adds one census frame per
 * dashboard.frameIntervalMs. Reading a span back gives the events (signatures checked where
 * the sender's certificate is known) and the frames, thinned to at most `framesMax`.
 */
import type { KeyObject } from 'node:crypto';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ControlRecord } from '../../organism/wire/control.ts';
import { openEnvelope, signatureHolds } from '../../organism/kernel/hormone.ts';
import type { Namespace } from '../../organism/kernel/namespace.ts';
import { RECORDER_STREAM } from '../../organism/kernel/stores.ts';
import { pack, unpack } from '../../organism/kernel/reply.ts';
import type { CellRow, RecordedFrame, SwarmEvent } from '../../organism/wire/dashboard-frames.ts';
import { controlEvent, eventOf } from './model.ts';

export interface Replay {
  from: number;
  to: number;
  frames: RecordedFrame[];
  events: Omit<SwarmEvent, 'n'>[];
  /** Messages read from the stream, and those left out (malformed, or a signature that does not hold). */
  read: number;
  rejected: number;
  /** False when the read ran out of time (READ_WAIT_MS) before it reached its end. */
  complete: boolean;
}

/** Rows one frame holds at most (a frame must stay well under the broker's max payload). */
const FRAME_ROWS_MAX = 2_000;
/** Messages one replay reads at most, and how long it may take. */
const READ_MAX = 50_000;
const READ_WAIT_MS = 5_000;

export interface RecorderDeps {
  nc: NatsConnection;
  ns: Namespace;
  hormoneMaxBytes: number;
  /** A sender's verified key (the root's included); undefined for a cell not known here. */
  keyOf(id: string): KeyObject | undefined;
  tissueOf(id: string): string | null;
}

function isRow(v: unknown): v is CellRow {
  const r = v as CellRow;
  return typeof r === 'object' && r !== null && typeof r.id === 'string' && typeof r.tissue === 'string' && typeof r.host === 'string' && typeof r.state === 'string' && typeof r.load === 'number';
}

function isControlRecord(v: unknown): v is ControlRecord {
  const r = v as ControlRecord;
  return typeof r === 'object' && r !== null && typeof r.ts === 'number' && typeof r.by === 'string' && typeof r.ok === 'boolean' && typeof r.message === 'string' && typeof r.control === 'object' && r.control !== null && typeof r.control.action === 'string';
}

export class Recorder {
  readonly #d: RecorderDeps;

  constructor(deps: RecorderDeps) {
    this.#d = deps;
  }

  /** Records one census frame (core publish: the stream takes it; nothing waits on an ack). */
  frame(ts: number, cells: readonly CellRow[]): void {
    this.#d.nc.publish(this.#d.ns.recorder('frame'), pack({ ts, cells: cells.slice(0, FRAME_ROWS_MAX) }));
  }

  /**
   * Records one census frame and waits for the stream to hold it; its sequence number. The
   * server took every hormone this connection has heard before the frame into the stream
   * ahead of it, so a read through that number misses none of them (a stream's own last
   * number may still lag them).
   */
  async mark(ts: number, cells: readonly CellRow[]): Promise<number> {
    const ack = await jetstream(this.#d.nc).publish(this.#d.ns.recorder('frame'), pack({ ts, cells: cells.slice(0, FRAME_ROWS_MAX) }));
    return ack.seq;
  }

  /**
   * Reads [from, to] back. `framesMax` thins the frames evenly (events are all kept); 0 reads
   * events only. `through` reads up to that sequence number (from `mark`) whatever its time.
   */
  async read(from: number, to: number, framesMax: number, through?: number): Promise<Replay> {
    const { nc, ns } = this.#d;
    const name = ns.stream(RECORDER_STREAM);
    const out: Replay = { from, to, frames: [], events: [], read: 0, rejected: 0, complete: true };
    const info = await (await jetstreamManager(nc)).streams.info(name);
    const last = through ?? info.state.last_seq;
    if (through !== undefined) to = Number.MAX_SAFE_INTEGER;
    if (info.state.messages === 0 || info.state.last_ts === undefined || Date.parse(info.state.last_ts) < from) return out;
    const consumer = await jetstream(nc).consumers.get(name, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(from).toISOString() });
    const iter = await consumer.consume({ max_messages: 512 });
    const timer = setTimeout(() => {
      out.complete = false;
      void iter.close().catch(() => undefined);
    }, READ_WAIT_MS);
    const frames: RecordedFrame[] = [];
    const frameSubject = ns.recorder('frame');
    const controlSubject = ns.recorder('control');
    try {
      for await (const m of iter) {
        out.read++;
        const ts = Number(BigInt(m.info.timestampNanos) / 1_000_000n);
        if (ts > to) break;
        if (m.subject === frameSubject) {
          // Events only (a newborn dashboard refilling its log): a frame is not decoded at all.
          if (framesMax > 0) {
            const f = safeUnpack(m.data) as RecordedFrame | undefined;
            if (f && typeof f.ts === 'number' && Array.isArray(f.cells) && f.cells.every(isRow)) frames.push(f);
            else out.rejected++;
          }
        } else if (m.subject === controlSubject) {
          const r = safeUnpack(m.data);
          if (isControlRecord(r)) out.events.push(controlEvent(r));
          else out.rejected++;
        } else {
          const e = this.#hormoneEvent(m.data);
          if (e === null) out.rejected++;
          else if (e) out.events.push(e);
        }
        if (m.seq >= last || m.info.pending === 0 || out.read >= READ_MAX) break;
      }
    } finally {
      clearTimeout(timer);
      await iter.close().catch(() => undefined);
    }
    const step = Math.max(1, Math.ceil(frames.length / Math.max(1, framesMax)));
    out.frames = frames.filter((_f, i) => i % step === 0 || i === frames.length - 1);
    return out;
  }

  /** The event a recorded hormone makes; null when it is malformed or its signature fails; undefined when it makes none. */
  #hormoneEvent(bytes: Uint8Array): Omit<SwarmEvent, 'n'> | null | undefined {
    const opened = openEnvelope(bytes, this.#d.hormoneMaxBytes);
    if (!opened.ok) return null;
    const h = opened.hormone;
    // Certificates of cells long gone may be unknown here: their events are kept, flagged.
    // The root's key is always known, so a root hormone (a shutdown) is always checked.
    const key = this.#d.keyOf(h.from);
    if (key && !signatureHolds(h, key, this.#d.ns.id)) return null;
    const e = eventOf(h, this.#d.tissueOf);
    return e && (key ? e : { ...e, data: { ...e.data, unverified: true } });
  }
}

function safeUnpack(bytes: Uint8Array): unknown {
  try {
    return unpack(bytes);
  } catch {
    return undefined;
  }
}
