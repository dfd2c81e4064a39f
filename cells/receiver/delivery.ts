/**
 * Delivery of one user's inbox to one socket: an ordered JetStream consumer on the user's
 * inbox subject, starting after the user's stored cursor, pushing `deliver` frames. The
 * client acks the highest sequence it holds; the cursor (KV `cursors`, `cursorKey` of messenger/inbox.ts)
 * only moves forward, by compare-and-set, so two sockets of one user never move it back.
 * A socket that moves to another receiver resumes from the cursor: a message can arrive
 * twice on the wire (same `msg` id, dropped by the client), never be lost.
 *
 * Flow control: at most `window` messages pushed and not yet acked, and nothing pushed while
 * the socket's unread backlog is over half of messenger.maxPendingBytes; the consumer is not
 * read further until the client catches up (the JetStream consumer buffers a batch).
 */
import { DeliverPolicy, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { updateWithRetries, type CasStep } from '../../organism/kernel/compare-and-set.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import { codec } from '../../organism/wire/codec.ts';
import { cursorKey, delivered, type Delivered } from '../messenger/inbox.ts';

/** A user's cursor: the highest sequence acked, and the revision of its KV entry (0: none). */
interface Cursor {
  seq: number;
  revision: number;
}

/** The cursor an entry of `cursors` holds (none or a delete marker: 0). */
function cursorOf(e: KvEntry | null): Cursor {
  if (!e || e.operation !== 'PUT') return { seq: 0, revision: e?.revision ?? 0 };
  const v = codec.unpack(e.value) as { seq?: unknown };
  return { seq: Number.isSafeInteger(v?.seq) && (v.seq as number) > 0 ? (v.seq as number) : 0, revision: e.revision };
}

async function readCursor(kv: KV, user: string): Promise<Cursor> {
  return cursorOf(await kv.get(cursorKey(user)));
}

/**
 * Moves a user's cursor to `seq` unless it is already there or beyond. `known` is the
 * cursor as this caller last wrote it: tried first, so the usual ack costs one KV write,
 * not a read and a write; on a conflict (another socket of the user moved it) it reads.
 */
export async function advanceCursor(kv: KV, user: string, seq: number, known?: Cursor): Promise<Cursor> {
  try {
    return await moveCursor(kv, user, seq, known);
  } catch (cause) {
    if (cause instanceof CellularError) throw cause;
    throw new CellularError('MESSAGE_ERR_STORE', `could not move the cursor of ${user} to ${seq}: ${(cause as Error).message}`, { cause });
  }
}

async function moveCursor(kv: KV, user: string, seq: number, known?: Cursor): Promise<Cursor> {
  // Forward only: a cursor already there or beyond stays (a written one takes the write's revision).
  const step = (current: Cursor): CasStep<Cursor> => (current.seq >= seq ? { keep: current } : { write: codec.pack({ v: 1, seq }), value: { seq, revision: 0 } });
  const outcome = await updateWithRetries(kv, cursorKey(user), (e) => step(cursorOf(e)), {
    attempts: 16,
    ...(known ? { first: { ...step(known), revision: known.revision } } : {}),
    // Whatever refused the write, read again: at once after the first, a little apart after that.
    retryOn: () => true,
    pauseMs: (attempt) => (attempt === 0 ? 0 : 1 + Math.random() * 4),
  });
  switch (outcome.type) {
    case 'written':
      return { seq, revision: outcome.revision };
    case 'kept':
    case 'removed':
      return outcome.value;
    case 'contended':
      throw new CellularError('MESSAGE_ERR_STORE', `could not move the cursor of ${user} to ${seq}`, { cause: outcome.error });
  }
}

/** Pull expiry of a delivery's consumer; idle heartbeats come at half of it. */
const PULL_EXPIRES_MS = 5_000;
/** Consumer notifications after which a delivery starts again on a new consumer. */
const STALLED: ReadonlySet<string> = new Set(['heartbeats_missed', 'consumer_not_found', 'consumer_deleted', 'stream_not_found', 'no_responders']);

export interface DeliveryOptions {
  js: JetStreamClient;
  stream: string;
  subject: string;
  cursors: KV;
  user: string;
  window: number;
  /** Acks within this many ms share one cursor write. */
  flushMs: number;
  /** Resolves true when the socket can take more (its backlog drained), false if it is gone. */
  writable(): Promise<boolean>;
  push(d: Delivered): void;
  onError(e: unknown): void;
  /**
   * The consumer went quiet (heartbeats missed) or away (its server lost it: a partition, a
   * member restarted, leadership moved) while this connection to NATS stayed up: restart().
   */
  onStall?(why: string): void;
  /**
   * The first message the stream leader holds in this inbox at or after `from` (its sequence
   * and id; null: none). Before the cursor moves to an acked sequence, every message the
   * leader holds between the cursor and it must have been pushed, under that sequence: a
   * consumer may be placed on a replica that disagrees with the leader (nats-server 2.9 can
   * let one diverge after a partition: a message missing there, later ones numbered one lower,
   * both seen), and a cursor moved on that replica's word would pass a message the client
   * never had.
   */
  leaderNext?(from: number): Promise<{ seq: number; msg: string | null } | null>;
  /** A check failed: the cursor stayed; rewind() starts delivery again from it. */
  onDiverged?(seq: number): void;
}

export class Delivery {
  readonly #o: DeliveryOptions;
  #messages: ConsumerMessages | undefined;
  #closed = false;
  /** Bumped by restart(): a pump of an older consumer stops. */
  #generation = 0;
  #lastSent = 0;
  #acked = 0;
  #wake: (() => void) | undefined;
  /** Sequences pushed and not yet acked, oldest first: the window counts messages, not sequence distance (sequences are shared by every inbox). */
  readonly #unacked: number[] = [];
  /** The cursor as this delivery last read or wrote it. */
  #cursor: Cursor = { seq: 0, revision: 0 };
  /** Message ids pushed above the cursor, by sequence (checked against the leader before the cursor passes them). */
  readonly #pushed = new Map<number, string>();
  /** The next cursor write, not yet started: every ack made before it starts joins it. */
  #next: Promise<void> | undefined;
  /** The write in progress (one at a time, so they land in order). */
  #writing: Promise<void> | undefined;

  constructor(o: DeliveryOptions) {
    this.#o = o;
  }

  get lastSent(): number {
    return this.#lastSent;
  }

  async start(): Promise<void> {
    this.#cursor = await readCursor(this.#o.cursors, this.#o.user);
    const seq = this.#cursor.seq;
    this.#acked = seq;
    this.#lastSent = seq;
    await this.#open(seq);
  }

  /** A consumer of the inbox from just after `seq`. */
  async #open(seq: number): Promise<void> {
    const generation = this.#generation;
    const consumer = await this.#o.js.consumers.get(this.#o.stream, {
      filter_subjects: this.#o.subject,
      ...(seq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    if (this.#closed || generation !== this.#generation) return;
    // Short pulls (heartbeats every 2.5 s): a consumer lost in a cluster is noticed in ~5 s, not 30.
    const messages = await consumer.consume({ max_messages: Math.max(16, this.#o.window), expires: PULL_EXPIRES_MS });
    // Closed (or restarted) while it opened.
    if (this.#closed || generation !== this.#generation) return void messages.close().catch(() => undefined);
    this.#messages = messages;
    void this.#pump(messages, generation);
    void (async () => {
      for await (const s of messages.status()) {
        if (this.#closed || generation !== this.#generation) break;
        if (STALLED.has(s.type)) {
          this.#o.onStall?.(s.type);
          break;
        }
      }
    })().catch(() => undefined);
  }

  /**
   * The broker came back after being away (a restart loses its consumers, and the client's
   * pulls go unanswered until heartbeats time out, ~30 s): go on from the last message this
   * socket was given, on a new consumer. Nothing is sent twice; nothing is skipped.
   */
  async restart(): Promise<void> {
    if (this.#closed) return;
    await this.#dropConsumer();
    await this.#open(this.#lastSent);
  }

  /** Stops the current consumer: a pump of it stops at its next message (the generation moved). */
  async #dropConsumer(): Promise<void> {
    this.#generation++;
    const old = this.#messages;
    this.#messages = undefined;
    await old?.close().catch(() => undefined);
  }

  /**
   * Starts again from the cursor, on a new consumer, forgetting what was pushed since: after a
   * failed check (onDiverged), what this consumer numbered cannot be trusted. The client gets
   * those messages again (same ids: it drops them); none is skipped.
   */
  async rewind(): Promise<void> {
    if (this.#closed) return;
    await this.#dropConsumer();
    this.#lastSent = this.#cursor.seq;
    this.#acked = this.#cursor.seq;
    this.#unacked.length = 0;
    this.#pushed.clear();
    this.#wake?.();
    this.#wake = undefined;
    await this.#open(this.#cursor.seq);
  }

  async #pump(messages: ConsumerMessages, generation: number): Promise<void> {
    try {
      for await (const m of messages) {
        if (this.#closed || generation !== this.#generation) break;
        while (!this.#closed && this.#unacked.length >= this.#o.window) await new Promise<void>((r) => (this.#wake = r));
        if (this.#closed || !(await this.#o.writable())) break;
        // A restart began while this waited: the new consumer delivers from lastSent on.
        if (generation !== this.#generation) break;
        const d = delivered(m);
        this.#lastSent = m.seq;
        if (d) {
          this.#unacked.push(m.seq);
          this.#pushed.set(m.seq, d.msg);
          this.#o.push(d);
        }
      }
    } catch (e) {
      if (!this.#closed && generation === this.#generation) this.#o.onError(e);
    }
  }

  /**
   * The client holds everything up to `seq`: delivery may go on at once, and the cursor
   * moves within `flushMs` — acks made meanwhile share that one write. Resolves once the
   * cursor covers `seq`.
   */
  ack(seq: number): Promise<void> {
    if (seq > this.#lastSent) throw new CellularError('PROTO_ERR_BAD_FIELD', `deliver.ack seq ${seq} is beyond the last delivered (${this.#lastSent})`);
    if (seq > this.#acked) {
      this.#acked = seq;
      while (this.#unacked.length > 0 && this.#unacked[0]! <= seq) this.#unacked.shift();
      this.#wake?.();
      this.#wake = undefined;
    }
    if (this.#cursor.seq >= seq) return Promise.resolve();
    this.#next ??= this.#flush(this.#o.flushMs);
    return this.#next;
  }

  /** After `delayMs` and the write before it, writes the highest ack so far. */
  async #flush(delayMs: number): Promise<void> {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    await this.#writing?.catch(() => undefined);
    this.#next = undefined; // acks from here on join the next flush
    const target = this.#acked;
    const write = this.#check(target)
      .then(() => advanceCursor(this.#o.cursors, this.#o.user, target, this.#cursor))
      .then((c) => {
        if (c.seq > this.#cursor.seq) this.#cursor = c;
        for (const seq of this.#pushed.keys()) if (seq <= this.#cursor.seq) this.#pushed.delete(seq);
      });
    this.#writing = write;
    try {
      await write;
    } finally {
      if (this.#writing === write) this.#writing = undefined;
    }
  }

  /**
   * Walks the leader's copy of this inbox from the cursor to `target`: each message of ours
   * there must have been pushed under its sequence (a copy whose headers are not ours is
   * skipped by both). Else MESSAGE_ERR_REPLICA, the cursor stays, and onDiverged is told.
   * One leader read per message in the range, and one more to see the range end.
   */
  async #check(target: number): Promise<void> {
    const next = this.#o.leaderNext;
    if (!next || target <= this.#cursor.seq) return;
    for (let from = this.#cursor.seq + 1; from <= target; ) {
      let held: { seq: number; msg: string | null } | null;
      try {
        held = await next(from);
      } catch (cause) {
        throw new CellularError('MESSAGE_ERR_STORE', `could not check ${this.#o.user}'s inbox from sequence ${from} against the stream leader: ${(cause as Error).message}`, { cause });
      }
      if (held === null || held.seq > target) return;
      const pushed = this.#pushed.get(held.seq);
      if (held.msg !== null && pushed !== held.msg) {
        this.#o.onDiverged?.(held.seq);
        throw new CellularError('MESSAGE_ERR_REPLICA', `the stream leader holds message ${held.msg} at sequence ${held.seq} of ${this.#o.user}'s inbox, which this delivery ${pushed === undefined ? 'never pushed' : `pushed as ${pushed}`}: the cursor stays at ${this.#cursor.seq}, delivery starts again from it`);
      }
      from = held.seq + 1;
    }
  }

  /** Stops delivering; an ack not yet written is written now (best effort). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    void this.#messages?.close().catch(() => undefined);
    if (this.#cursor.seq < this.#acked && !this.#next) void this.#flush(0).catch(() => undefined);
  }
}
