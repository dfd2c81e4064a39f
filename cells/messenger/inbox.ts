/**
 * The stored-message format, in one place: one copy per recipient in the messages stream on
 * the recipient's inbox subject, the body opaque (ciphertext), who sent it and when in `Cm-*`
 * headers, deduplicated per (recipient, sender, message id); and what the receiver and the
 * worker do with copies: store, read back as `Delivered` frames (one at a sequence, or a
 * page of history), delete, purge an inbox. The user's read cursor lives in the `cursors`
 * bucket under `cursorKey` (moved by receiver/delivery.ts, removed with the account).
 * A copy whose headers are not ours is skipped, never delivered.
 */
import { DeliverPolicy, jetstream, jetstreamManager, JetStreamApiCodes, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import type { Namespace } from '../../organism/kernel/namespace.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import type { Delivered } from '../../organism/wire/frames.ts';
import { MESSAGES_STREAM } from './stores.ts';
import { MessengerSubjects, recipientOf } from './subjects.ts';
import { checkUsername } from './user-name.ts';

export type { Delivered };

/** Headers on every stored copy (the body itself is opaque). */
export const H = { FROM: 'Cm-From', MSG: 'Cm-Msg', AT: 'Cm-At', GROUP: 'Cm-Group' } as const;

/** A user's read cursor in the `cursors` bucket: {v: 1, seq}, the highest sequence acked. */
export const cursorKey = (user: string): string => `u.${user}`;

/** JetStream's dedupe id of a copy: another sender's id cannot shadow this one. */
const dedupeId = (to: string, from: string, msg: string): string => `${to}.${from}.${msg}`;

/** JetStream's API subject prefix (the organism uses the default account's). */
const JS_API = '$JS.API';
/** Longest a read of the stream leader may take. */
const LEADER_READ_MS = 5_000;

/** One header's value from a stored message's raw headers (base64 of "NATS/1.0\r\nName: value\r\n…"), or null. */
export function headerOf(hdrsBase64: string | undefined, name: string): string | null {
  if (!hdrsBase64) return null;
  const text = new TextDecoder().decode(Uint8Array.from(atob(hdrsBase64), (c) => c.charCodeAt(0)));
  const prefix = `${name.toLowerCase()}:`;
  for (const line of text.split('\r\n').slice(1)) if (line.toLowerCase().startsWith(prefix)) return line.slice(prefix.length).trim();
  return null;
}

/** Longest a history page waits for messages it was told are there. */
const HISTORY_WAIT_MS = 2_000;
/** Most messages one history read asks the consumer for at once. */
const HISTORY_BATCH_MAX = 256;

/** A copy to store: `body` into `to`'s inbox, from `from`, tagged with its group if any. */
export interface Copy {
  from: string;
  to: string;
  msg: string;
  body: Uint8Array;
  group?: string | undefined;
}

/** A stored copy as a `deliver` frame's fields; null when its headers are not ours (skipped). */
export function delivered(m: { seq: number; subject: string; data: Uint8Array; headers?: MsgHdrs | undefined }): Delivered | null {
  const from = m.headers?.get(H.FROM);
  const msg = m.headers?.get(H.MSG);
  const at = Number(m.headers?.get(H.AT));
  if (!from || !msg || !Number.isSafeInteger(at)) return null;
  const group = m.headers?.get(H.GROUP);
  return { seq: m.seq, msg, from, to: recipientOf(m.subject), at, body: m.data, ...(group ? { group } : {}) };
}

const storedCopy = (m: StoredMsg): Delivered | null => delivered({ seq: m.seq, subject: m.subject, data: m.data, headers: m.header });

interface InboxesDeps {
  /** For requests the JetStream client has no call for (the leader's next_by_subj read). */
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The messages stream's name. */
  stream: string;
  subjects: MessengerSubjects;
}

/** Every user's inbox: the messages stream, read and written in the stored-message format. */
export class Inboxes {
  readonly #d: InboxesDeps;

  constructor(deps: InboxesDeps) {
    this.#d = deps;
  }

  /** Binds to the organism's messages stream (grow made it). */
  static async open(nc: NatsConnection, ns: Namespace): Promise<Inboxes> {
    return new Inboxes({ nc, js: jetstream(nc), jsm: await jetstreamManager(nc), stream: ns.stream(MESSAGES_STREAM), subjects: new MessengerSubjects(ns) });
  }

  /** Publishes one copy (at once); resolves with its stream sequence once JetStream has it (MESSAGE_ERR_STORE if not). */
  async store(c: Copy): Promise<number> {
    const h = headers();
    h.set(H.FROM, c.from);
    h.set(H.MSG, c.msg);
    h.set(H.AT, String(Date.now()));
    if (c.group) h.set(H.GROUP, c.group);
    try {
      const ack = await this.#d.js.publish(this.#d.subjects.inbox(c.to), c.body, { msgID: dedupeId(c.to, c.from, c.msg), headers: h });
      return ack.seq;
    } catch (cause) {
      const why = (cause as Error).message;
      if (/maximum messages per subject/i.test(why)) throw new CellularError('MESSAGE_ERR_QUOTA', `${c.to}'s inbox is full (messenger.inboxMaxMessages): message ${c.msg} was not stored`, { cause });
      // The stream's own cap; a disk that filled up first stays MESSAGE_ERR_STORE (retried: room comes back).
      if (/maximum (bytes|messages) exceeded/i.test(why)) throw new CellularError('STORE_ERR_FULL', `the message store is full (messenger.storeMaxBytes): message ${c.msg} was not stored`, { cause });
      throw new CellularError('MESSAGE_ERR_STORE', `message ${c.msg} to ${c.to} was not stored: ${why}`, { cause });
    }
  }

  /** The copy at `seq`, or null if there is none (or it is not one of ours). */
  async #copyAt(seq: number): Promise<Delivered | null> {
    const m = await this.#d.jsm.streams.getMessage(this.#d.stream, { seq }).catch(() => null);
    return m ? storedCopy(m) : null;
  }

  /**
   * The first message the stream leader holds in `user`'s inbox at or after `from`: its
   * sequence and its message id (null for a copy whose headers are not ours), or null when
   * there is none. Asked of the leader (STREAM.MSG.GET with next_by_subj, never a direct get,
   * which any replica may answer); a request that fails throws, so it is never taken for "none".
   */
  async nextAt(user: string, from: number): Promise<{ seq: number; msg: string | null } | null> {
    const r = await this.#d.nc.request(`${JS_API}.STREAM.MSG.GET.${this.#d.stream}`, JSON.stringify({ seq: Math.max(1, from), next_by_subj: this.#d.subjects.inbox(user) }), { timeout: LEADER_READ_MS });
    const v = JSON.parse(new TextDecoder().decode(r.data)) as { error?: { code: number; err_code?: number; description?: string }; message?: { seq: number; hdrs?: string } };
    if (v.error) {
      if (v.error.err_code === JetStreamApiCodes.NoMessageFound) return null;
      throw new Error(`the stream leader answered ${v.error.code} ${v.error.description ?? ''}`);
    }
    if (!v.message || !Number.isSafeInteger(v.message.seq)) throw new Error('the stream leader answered no message and no error');
    return { seq: v.message.seq, msg: headerOf(v.message.hdrs, H.MSG) };
  }

  /** The copy of message `msg` at `seq`: MESSAGE_ERR_NOT_FOUND unless there is one. */
  async copyOf(msg: string, seq: number, from?: string): Promise<Delivered> {
    const c = await this.#copyAt(seq);
    if (!c || c.msg !== msg || (from !== undefined && c.from !== from)) {
      throw new CellularError('MESSAGE_ERR_NOT_FOUND', from === undefined ? `no copy of message ${msg} at ${seq}` : `no copy of message ${msg} from ${from} at ${seq}`);
    }
    return c;
  }

  /**
   * One page of `user`'s inbox after a stream sequence, oldest first, optionally only from
   * one sender: at most `limit` messages and `maxBytes` of bodies (one message at least).
   * Reads through a short-lived ordered consumer up to the inbox's last message, so an empty
   * inbox answers at once instead of waiting for a fetch to expire.
   */
  async history(user: string, o: { after: number; limit: number; from?: string | undefined; maxBytes: number }): Promise<{ messages: Delivered[]; more: boolean }> {
    const subject = this.#d.subjects.inbox(user);
    const last = (await this.#d.jsm.streams.getMessage(this.#d.stream, { last_by_subj: subject }).catch(() => null))?.seq ?? 0;
    if (last <= o.after) return { messages: [], more: false };
    const consumer = await this.#d.js.consumers.get(this.#d.stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: o.after + 1 });
    const messages: Delivered[] = [];
    let more = false;
    let bytes = 0;
    const iter = await consumer.consume({ max_messages: Math.min(o.limit + 1, HISTORY_BATCH_MAX) });
    // If what was there is deleted meanwhile, nothing comes: end the page instead of waiting.
    const timer = setTimeout(() => void iter.close().catch(() => undefined), HISTORY_WAIT_MS);
    try {
      for await (const m of iter) {
        const d = delivered(m);
        if (d && (o.from === undefined || d.from === o.from)) {
          if (messages.length === o.limit || (messages.length > 0 && bytes + d.body.length > o.maxBytes)) {
            more = true;
            break;
          }
          bytes += d.body.length;
          messages.push(d);
        }
        // The last one, or nothing more pending (it may have been deleted meanwhile).
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } finally {
      clearTimeout(timer);
      await iter.close().catch(() => undefined);
    }
    return { messages, more };
  }

  /**
   * Erases stored copies of message `msg` for `user`: with "me" copies in the user's own
   * inbox, with "everyone" copies the user sent, wherever they are. Every sequence is checked
   * before anything is removed, so a bad one removes nothing; `erased` hears each copy as it goes.
   */
  async delete(user: string, msg: string, scope: 'me' | 'everyone', seqs: readonly number[], erased?: (copy: Delivered) => void): Promise<void> {
    const found: Delivered[] = [];
    for (const seq of new Set(seqs)) {
      const c = await this.copyOf(msg, seq);
      const mine = scope === 'me' ? c.to === user : c.from === user;
      if (!mine) throw new CellularError('MESSAGE_ERR_FORBIDDEN', scope === 'me' ? `the copy at ${seq} is in another user's inbox` : `message ${msg} was not sent by ${user}`);
      found.push(c);
    }
    for (const c of found) {
      // erase: the bytes are overwritten on disk, not only unlinked from the index.
      await this.#d.jsm.streams.deleteMessage(this.#d.stream, c.seq, true);
      erased?.(c);
    }
  }

  /**
   * Removes every stored copy in `user`'s inbox (the last step of deleting an account), by
   * subject filter: one request however many there are. Returns how many went.
   */
  async purge(user: string): Promise<number> {
    // The name becomes a subject token: a '*' or '>' in it would purge other inboxes.
    checkUsername(user);
    const r = await this.#d.jsm.streams.purge(this.#d.stream, { filter: this.#d.subjects.inbox(user) });
    return r.purged;
  }
}
