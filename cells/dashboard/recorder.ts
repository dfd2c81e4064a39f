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
  /** A sender's key looked up in the lineage bucket (verified to the root), for one not known here. */
  findKey?(id: string): Promise<KeyObject | undefined>;
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
   * Records an empty mark (its own subject: a replay shows no frame for it) and waits for the
   * stream to hold it; its sequence number. On one server, the stream took every hormone this
   * connection has heard before the mark ahead of it, so a read through that number misses
   * none of them (the stream's own last number may still lag them). Across a cluster a
   * hormone heard here may still be on its way to the stream's leader.
   */
  async mark(): Promise<number> {
    const ack = await jetstream(this.#d.nc).publish(this.#d.ns.recorder('mark'), new Uint8Array(0));
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
    const markSubject = ns.recorder('mark');
    /** Keys looked up in the lineage bucket during this read (undefined: no certificate there either). */
    const found = new Map<string, KeyObject | undefined>();
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
        } else if (m.subject !== markSubject) {
          const e = await this.#hormoneEvent(m.subject, m.data, found);
          if (e === null) out.rejected++;
          else if (e) out.events.push(e);
        }
        if (m.seq >= last || m.info.pending === 0) break;
        if (out.read >= READ_MAX) {
          out.complete = false; // stopped short of the end: the newest are missing
          break;
        }
      }
    } finally {
      clearTimeout(timer);
      await iter.close().catch(() => undefined);
    }
    const step = Math.max(1, Math.ceil(frames.length / Math.max(1, framesMax)));
    out.frames = frames.filter((_f, i) => i % step === 0 || i === frames.length - 1);
    return out;
  }

  /**
   * The event a recorded hormone makes; null when it is malformed, was published under
   * another sender's subject, or its signature fails; undefined when it makes none.
   */
  async #hormoneEvent(subject: string, bytes: Uint8Array, found: Map<string, KeyObject | undefined>): Promise<Omit<SwarmEvent, 'n'> | null | undefined> {
    const opened = openEnvelope(bytes, this.#d.hormoneMaxBytes);
    if (!opened.ok) return null;
    const h = opened.hormone;
    // A cell may publish only under its own subject (the broker's permissions): an envelope
    // naming another sender there is a forgery, whatever key signed it (the bus refuses it too).
    if (subject !== this.#d.ns.hormone(h.kind, h.from)) return null;
    // The root's key is always known, so a root hormone (a shutdown) is always checked. A
    // sender this cell has not met is looked up in the lineage bucket; a cell long gone may
    // be in neither: its event is kept, and says it could not be checked.
    let key = this.#d.keyOf(h.from);
    if (!key && this.#d.findKey) {
      if (!found.has(h.from)) found.set(h.from, await this.#d.findKey(h.from).catch(() => undefined));
      key = found.get(h.from);
    }
    if (key && !signatureHolds(h, key, this.#d.ns.id)) return null;
    const e = eventOf(h, this.#d.tissueOf);
    return e && (key ? e : { ...e, text: `${e.text} (unverified: its sender's certificate is not known)`, data: { ...e.data, unverified: true } });
  }
}

function safeUnpack(bytes: Uint8Array): unknown {
  try {
    return unpack(bytes);
  } catch {
    return undefined;
  }
}
