/**
 * The durability checker, in the manner of Jepsen's: after a run, every acknowledged message
 * is looked for in the messages stream itself (not only in what clients received), and each
 * one missing at its recipient is classified by the step that lost it:
 *
 *   never stored         no copy in the stream: the acknowledgement outran the write
 *   stored, not delivered  a copy is there; the recipient never had it pushed (`skipped`
 *                        when the recipient's cursor is already past it: delivery went by it)
 *   delivered, not counted  pushed to the recipient's socket but missing from its tally
 *                        (the checker's own bookkeeping)
 *
 * Copies stored twice under one dedupe id are listed with both sequences and how far apart
 * they were written, so a double can be set against the stream leader's changes.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { codec } from '../organism/wire/codec.ts';
import { cursorKey, H } from '../cells/messenger/inbox.ts';
import { recipientOf } from '../cells/messenger/subjects.ts';

/** One copy read back from the stream. */
export interface StoredCopy {
  seq: number;
  to: string;
  from: string;
  msg: string;
  /** When the receiver stored it (its `Cm-At`), ms since the epoch. */
  at: number;
}

/** What the checker needs of a run's participants. */
export interface Participant {
  user: string;
  sent: ReadonlyMap<string, { msg: string; to: string; ackedAt: number | null; seq: number | null; via?: string | null }>;
  received: ReadonlyMap<string, unknown>;
  /** Every `deliver` frame its socket got, in order (duplicates included). */
  deliveries: readonly { msg: string; seq: number; from?: string; via?: string | null; at?: number }[];
}

export type LossClass = 'never-stored' | 'not-delivered' | 'skipped' | 'not-counted';

export interface Loss {
  class: LossClass;
  msg: string;
  from: string;
  to: string;
  /** The sequence the sender was acknowledged with, and where the stream has it (if at all). */
  ackedSeq: number | null;
  storedSeqs: number[];
  /** The recipient's cursor when checked (0: none). */
  cursor: number;
  via: string | null;
}

export interface Double {
  msg: string;
  from: string;
  to: string;
  seqs: number[];
  /** Time between the first and the last copy's store, ms. */
  apartMs: number;
  firstAt: number;
}

export interface DurabilityReport {
  /** Messages in the stream when read, and the sequence range read. */
  streamMessages: number;
  firstSeq: number;
  lastSeq: number;
  acknowledged: number;
  losses: Loss[];
  byClass: Record<LossClass, number>;
  doubles: Double[];
  /** Acknowledged with a sequence that holds another message (or none). */
  ackSeqMismatches: number;
  /** Deliveries of a (msg, seq) that is no copy in the recipient's inbox: invented or relabelled. */
  phantoms: number;
  /** The first phantom deliveries: what was delivered, where the stream has that message, and what its sequence holds. */
  phantomSamples: { to: string; msg: string; from: string | null; seq: number; storedSeqs: number[]; atSeq: string | null; via: string | null; at: number | null }[];
}

const key = (to: string, from: string, msg: string) => `${to}\u0000${from}\u0000${msg}`;

/**
 * Whether a double is the known nats-server 2.9 case: written within the dedupe window, with
 * the stream's leader changing around it (`leaders`: each change as sampled, oldest first).
 * Any other double is a bug of ours (a second dedupe id, a window too short).
 */
export function explainedDouble(x: Double, leaders: readonly { t: number; leader: string }[], dedupeWindowMs: number, slackMs = 5_000): boolean {
  if (x.apartMs >= dedupeWindowMs) return false;
  return leaders.slice(1).some((l) => l.t >= x.firstAt - slackMs && l.t <= x.firstAt + x.apartMs + slackMs);
}

/** Reads every copy in `stream` (an ordered consumer from its first message), bounded by `timeoutMs`. */
export async function readStream(js: JetStreamClient, jsm: JetStreamManager, stream: string, timeoutMs = 60_000): Promise<{ copies: StoredCopy[]; firstSeq: number; lastSeq: number; messages: number }> {
  const info = await jsm.streams.info(stream);
  const { first_seq: firstSeq, last_seq: lastSeq, messages } = info.state;
  const copies: StoredCopy[] = [];
  if (messages === 0) return { copies, firstSeq, lastSeq, messages };
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const iter = await consumer.consume({ max_messages: 512 });
  const timer = setTimeout(() => void iter.close().catch(() => undefined), timeoutMs);
  let complete = false;
  try {
    for await (const m of iter) {
      const from = m.headers?.get(H.FROM) ?? '';
      const msg = m.headers?.get(H.MSG) ?? '';
      copies.push({ seq: m.seq, to: recipientOf(m.subject), from, msg, at: Number(m.headers?.get(H.AT) ?? 0) });
      if (m.seq >= lastSeq || m.info.pending === 0) {
        complete = true;
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    await iter.close().catch(() => undefined);
  }
  // A partial read would class every unread copy as never stored: refuse to judge on it.
  if (!complete) throw new Error(`read ${copies.length} of ${messages} messages of ${stream} within ${timeoutMs} ms`);
  return { copies, firstSeq, lastSeq, messages };
}

/** A user's read cursor from the `cursors` bucket (0: none). */
export async function cursorOf(cursors: KV, user: string): Promise<number> {
  const e = await cursors.get(cursorKey(user)).catch(() => null);
  if (!e || e.operation !== 'PUT') return 0;
  const v = codec.unpack(e.value) as { seq?: unknown };
  return typeof v?.seq === 'number' ? v.seq : 0;
}

/** Classifies every acknowledged message of `participants` against the copies read back. */
export function classify(participants: readonly Participant[], copies: readonly StoredCopy[], cursors: ReadonlyMap<string, number>): Omit<DurabilityReport, 'streamMessages' | 'firstSeq' | 'lastSeq'> {
  const stored = new Map<string, StoredCopy[]>();
  const bySeq = new Map<number, StoredCopy>();
  for (const c of copies) {
    const k = key(c.to, c.from, c.msg);
    stored.set(k, [...(stored.get(k) ?? []), c]);
    bySeq.set(c.seq, c);
  }
  const byUser = new Map(participants.map((p) => [p.user, p]));
  const losses: Loss[] = [];
  let acknowledged = 0;
  let ackSeqMismatches = 0;
  for (const p of participants) {
    for (const s of p.sent.values()) {
      if (s.ackedAt === null) continue;
      acknowledged++;
      const here = stored.get(key(s.to, p.user, s.msg)) ?? [];
      const atAck = s.seq === null ? undefined : bySeq.get(s.seq);
      if (!atAck || atAck.msg !== s.msg || atAck.to !== s.to) ackSeqMismatches++;
      const r = byUser.get(s.to);
      if (r?.received.has(s.msg)) continue;
      const cursor = cursors.get(s.to) ?? 0;
      const seqs = here.map((c) => c.seq);
      let cls: LossClass;
      if (r?.deliveries.some((d) => d.msg === s.msg)) cls = 'not-counted';
      else if (here.length === 0) cls = 'never-stored';
      else cls = seqs.every((q) => q <= cursor) ? 'skipped' : 'not-delivered';
      losses.push({ class: cls, msg: s.msg, from: p.user, to: s.to, ackedSeq: s.seq, storedSeqs: seqs, cursor, via: s.via ?? null });
    }
  }
  const doubles: Double[] = [...stored.values()].filter((cs) => cs.length > 1).map((cs) => ({
    msg: cs[0]!.msg, from: cs[0]!.from, to: cs[0]!.to, seqs: cs.map((c) => c.seq), firstAt: cs[0]!.at,
    apartMs: Math.max(...cs.map((c) => c.at)) - Math.min(...cs.map((c) => c.at)),
  }));
  const byClass: Record<LossClass, number> = { 'never-stored': 0, 'not-delivered': 0, skipped: 0, 'not-counted': 0 };
  for (const l of losses) byClass[l.class]++;
  let phantoms = 0;
  const phantomSamples: DurabilityReport['phantomSamples'] = [];
  for (const p of participants) {
    for (const d of p.deliveries) {
      const c = bySeq.get(d.seq);
      if (!c || c.msg !== d.msg || c.to !== p.user || (d.from !== undefined && c.from !== d.from)) {
        phantoms++;
        if (phantomSamples.length < 20) {
          const storedSeqs = copies.filter((x) => x.msg === d.msg && x.to === p.user).map((x) => x.seq);
          phantomSamples.push({ to: p.user, msg: d.msg, from: d.from ?? null, seq: d.seq, storedSeqs, atSeq: c ? `${c.msg} ${c.from} → ${c.to}` : null, via: d.via ?? null, at: d.at ?? null });
        }
      }
    }
  }
  return { acknowledged, losses, byClass, doubles, ackSeqMismatches, phantoms, phantomSamples };
}

/** Reads the stream and the recipients' cursors, then classifies (see classify). */
export async function checkDurability(o: { js: JetStreamClient; jsm: JetStreamManager; stream: string; cursors: KV; participants: readonly Participant[] }): Promise<DurabilityReport> {
  const read = await readStream(o.js, o.jsm, o.stream);
  const cursors = new Map<string, number>();
  for (const p of o.participants) cursors.set(p.user, await cursorOf(o.cursors, p.user));
  return { streamMessages: read.messages, firstSeq: read.firstSeq, lastSeq: read.lastSeq, ...classify(o.participants, read.copies, cursors) };
}

/** The report as log lines: a summary, then each loss and each double. */
export function describeDurability(d: DurabilityReport, leaderAt?: (t: number) => string | undefined): string[] {
  const lines = [
    `durability: ${d.acknowledged} acknowledged, ${d.streamMessages} copies in the stream (seq ${d.firstSeq}–${d.lastSeq}); missing at the recipient: ${d.losses.length} (never stored ${d.byClass['never-stored']}, stored not delivered ${d.byClass['not-delivered']}, skipped by the cursor ${d.byClass.skipped}, delivered not counted ${d.byClass['not-counted']}); acknowledged with a sequence holding something else: ${d.ackSeqMismatches}; deliveries of no stored copy: ${d.phantoms}; stored twice: ${d.doubles.length}`,
  ];
  for (const l of d.losses.slice(0, 20)) lines.push(`  lost (${l.class}): ${l.msg} ${l.from} → ${l.to}, acked as seq ${l.ackedSeq} via ${l.via ?? '?'}, in the stream at [${l.storedSeqs.join(', ')}], ${l.to}'s cursor ${l.cursor}`);
  for (const x of d.phantomSamples) lines.push(`  delivered to ${x.to} by ${x.via ?? '?'}${x.at ? ` at ${new Date(x.at).toISOString().slice(11, 23)}` : ''}: ${x.msg} from ${x.from ?? '?'} as seq ${x.seq}; the stream has it at [${x.storedSeqs.join(', ')}], and seq ${x.seq} holds ${x.atSeq ?? 'nothing'}`);
  for (const x of d.doubles.slice(0, 20)) {
    const leaders = leaderAt ? ` (stream leader ${leaderAt(x.firstAt) ?? '?'} → ${leaderAt(x.firstAt + x.apartMs) ?? '?'})` : '';
    lines.push(`  stored twice: ${x.msg} ${x.from} → ${x.to} at seqs [${x.seqs.join(', ')}], written ${x.apartMs} ms apart${leaders}`);
  }
  return lines;
}
