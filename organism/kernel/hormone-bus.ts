/**
 * The hormone bus: publish signed hormones on `org.<id>.hormone.<kind>` and receive the
 * organism's hormones through the gate. Hormones from a sender not yet known wait (a few
 * per sender) while its certificate is fetched, so a late observer loses nothing; a sender
 * without a valid lineage is foreign and its hormones are dropped and counted.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { CellularError } from '../wire/errors.ts';
import type { CertBook } from './cert-book.ts';
import { HormoneGate, type DropCounters } from './hormone-gate.ts';
import { sealHormone, signatureHolds, type Hormone, type Signer } from './hormone.ts';
import type { Namespace } from './namespace.ts';
import { HORMONE_KINDS, type HormoneKind } from './vocabulary.ts';

export interface HormoneBusOptions {
  nc: NatsConnection;
  ns: Namespace;
  certs: CertBook;
  gate: HormoneGate;
  maxBytes: number;
  /** Needed to publish; an observer without one only listens. */
  signer?: Signer;
  /** Hormones waiting per unknown sender. @default 16 */
  maxPendingPerSender?: number;
  /** Unknown senders waiting at once. @default 1024 */
  maxPendingSenders?: number;
  /**
   * Messages per second from one sender past which the rest are dropped unread (counted
   * `flooded`) and flood listeners told. Only where the broker makes a hormone's subject name
   * the identity that sent it (operator mode): elsewhere anyone could frame anyone.
   */
  cutoffPerSecond?: number;
  /**
   * Whose pulses this bus hears: `all` (grow, observers) or `none` (a cell: it learns the
   * population and its peers' misdeeds from the host digests, which grow makes of the
   * pulses it verifies; organism/grow/host-watch.ts). @default 'all'
   */
  pulses?: 'all' | 'none';
  /**
   * Whose pulses to read at all (grow: its own host's cells; other hosts' come in their
   * digests). A pulse from a known sender it rejects is dropped unread, before any
   * signature work. @default every sender
   */
  pulsesFrom?: (from: string) => boolean;
}

/** A sender past the cutoff, with what it sent in the current second so far. */
export type FloodListener = (sender: string, perSecond: number) => void;

export type HormoneListener = (h: Hormone) => void;
/** A hormone dropped for its kind or body whose signature verified under its sender's key. */
export type ForgeryListener = (from: string, reason: 'unknownKind' | 'badBody', kind: string) => void;

export class HormoneBus {
  readonly #o: HormoneBusOptions;
  readonly #listeners = new Set<HormoneListener>();
  readonly #pending = new Map<string, Hormone[]>();
  readonly #forgeryListeners = new Set<ForgeryListener>();
  /** Senders condemned by a verdict: their hormones are dropped unread (see docs/immune.md). */
  readonly #quarantined = new Set<string>();
  readonly #floodListeners = new Set<FloodListener>();
  /** Per sender (named by the subject): the current second and the messages in it. */
  readonly #rates = new Map<string, { second: number; count: number }>();
  #subs: Subscription[] = [];
  #closed = false;
  /** Listener exceptions: counted, never allowed to kill the bus. */
  listenerErrors = 0;

  constructor(options: HormoneBusOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#subs.length > 0 || this.#closed) return;
    const callback = (_err: unknown, msg: { data: Uint8Array; subject: string }) => this.#receive(msg.data, msg.subject);
    if ((this.#o.pulses ?? 'all') === 'all') {
      this.#subs.push(this.#o.nc.subscribe(this.#o.ns.hormones, { callback }));
      return;
    }
    // Every kind but pulses, from everyone.
    for (const kind of HORMONE_KINDS) if (kind !== 'pulse') this.#subs.push(this.#o.nc.subscribe(this.#o.ns.hormone(kind, '*'), { callback }));
  }

  /** Called for every admitted hormone, in arrival order per sender. Returns an unsubscribe. */
  on(listener: HormoneListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Called for signed hormones dropped for their kind or body (attributable: their sender signed them). */
  onForgery(listener: ForgeryListener): () => void {
    this.#forgeryListeners.add(listener);
    return () => this.#forgeryListeners.delete(listener);
  }

  /** Called once a second per sender past the cutoff (see HormoneBusOptions.cutoffPerSecond). */
  onFlood(listener: FloodListener): () => void {
    this.#floodListeners.add(listener);
    return () => this.#floodListeners.delete(listener);
  }

  /** From now on, hormones from `id` are dropped before any work (counted `quarantined`). */
  quarantine(id: string): void {
    this.#quarantined.add(id);
    this.#pending.delete(id);
  }

  /** Seals and publishes. Throws HORMONE_ERR_* on a caller bug, CELL_ERR_CLOSED after close. */
  publish<B>(kind: HormoneKind, body: B): void {
    if (this.#closed) throw new CellularError('CELL_ERR_CLOSED', `hormone bus closed; cannot publish ${kind}`);
    if (!this.#o.signer) throw new CellularError('CELL_ERR_CLOSED', 'this bus has no signer: it only listens');
    this.#o.nc.publish(this.#o.ns.hormone(kind, this.#o.signer.id), sealHormone(this.#o.signer, kind, body, this.#o.maxBytes));
  }

  /** Seals a hormone of this bus's signer without publishing it (a reply to one asker). */
  seal<B>(kind: HormoneKind, body: B): Uint8Array {
    if (!this.#o.signer) throw new CellularError('CELL_ERR_CLOSED', 'this bus has no signer: it only listens');
    return sealHormone(this.#o.signer, kind, body, this.#o.maxBytes);
  }

  /**
   * Receives `bytes` that came another way than the hormone subjects (a reply to this
   * process's ask) as if they had come on the subject of `kind` from `from`: the gate, the
   * signature and the replay window judge them like any other (a hormone of another kind or
   * sender is foreign there).
   */
  receiveAs(bytes: Uint8Array, kind: HormoneKind, from: string): void {
    if (!this.#closed) this.#receive(bytes, this.#o.ns.hormone(kind, from));
  }

  stats(): { accepted: number; dropped: DropCounters; pendingSenders: number; certsRefused: number; listenerErrors: number } {
    return { ...this.#o.gate.stats(), pendingSenders: this.#pending.size, certsRefused: this.#o.certs.refused, listenerErrors: this.listenerErrors };
  }

  /** True when `subject`'s sender is past the cutoff this second: the message is dropped unread. */
  #flooding(subject: string): boolean {
    const cutoff = this.#o.cutoffPerSecond;
    if (cutoff === undefined) return false;
    const sender = subject.slice(subject.lastIndexOf('.') + 1);
    const second = Math.floor(Date.now() / 1000);
    let r = this.#rates.get(sender);
    if (r === undefined || r.second !== second) {
      if (r === undefined && this.#rates.size >= 4096) this.#rates.clear(); // bounded: a second's worth is all it needs
      r = { second, count: 0 };
      this.#rates.set(sender, r);
    }
    r.count++;
    if (r.count <= cutoff) return false;
    this.#o.gate.dropped.flooded++;
    if (r.count === cutoff + 1) {
      for (const l of this.#floodListeners) {
        try {
          l(sender, r.count);
        } catch {
          this.listenerErrors++;
        }
      }
    }
    return true;
  }

  #receive(bytes: Uint8Array, subject: string): void {
    const { gate, certs } = this.#o;
    if (this.#flooding(subject)) return;
    const opened = gate.open(bytes);
    if (!opened.ok) {
      if (opened.envelope && (opened.reason === 'badBody' || opened.reason === 'unknownKind') && subject === this.#o.ns.hormone(opened.envelope.kind, opened.envelope.from)) {
        this.#attribute(opened.envelope, opened.reason);
      }
      return;
    }
    const h = opened.hormone;
    // The subject names the identity the broker let publish it: a hormone filed under
    // another sender's name was sent by someone else, whatever it claims.
    if (subject !== this.#o.ns.hormone(h.kind, h.from)) {
      gate.admit(h, undefined); // counted as foreign
      return;
    }
    if (this.#quarantined.has(h.from)) {
      gate.quarantined(h);
      return;
    }
    // While earlier hormones of this sender wait for its certificate, queue behind them:
    // per-sender order is kept even if the key became known meanwhile.
    const queue = this.#pending.get(h.from);
    const key = queue ? undefined : certs.keyOf(h.from);
    if (key && h.kind === 'pulse' && this.#o.pulsesFrom && !this.#o.pulsesFrom(h.from)) return;
    if (key) {
      this.#deliver(gate.admit(h, key));
      return;
    }
    if (queue) {
      if (queue.length < (this.#o.maxPendingPerSender ?? 16)) queue.push(h);
      else gate.admit(h, undefined); // counted as foreign: we will not hold more
      return;
    }
    if (this.#pending.size >= (this.#o.maxPendingSenders ?? 1024)) {
      gate.admit(h, undefined);
      return;
    }
    this.#pending.set(h.from, [h]);
    // A birth carries its own certificate; anything else is looked up in the lineage bucket.
    const lookup =
      h.kind === 'birth'
        ? certs.learn((h.body as { cert?: unknown }).cert).then((c) => (c && c.cell === h.from ? certs.keyOf(c.cell) : certs.resolve(h.from)))
        : certs.resolve(h.from);
    void lookup.then((k) => {
      const waiting = this.#pending.get(h.from) ?? [];
      this.#pending.delete(h.from);
      if (this.#closed) return;
      for (const w of waiting) this.#deliver(gate.admit(w, k));
    });
  }

  /** A bad hormone whose signature holds under a known sender's key: that sender made it. */
  #attribute(h: Hormone, reason: 'badBody' | 'unknownKind'): void {
    if (this.#forgeryListeners.size === 0 || this.#quarantined.has(h.from)) return;
    const key = this.#o.certs.keyOf(h.from);
    if (!key || !signatureHolds(h, key, this.#o.ns.id)) return;
    for (const l of this.#forgeryListeners) {
      try {
        l(h.from, reason, String(h.kind).slice(0, 32));
      } catch {
        this.listenerErrors++;
      }
    }
  }

  #deliver(result: ReturnType<HormoneGate['admit']>): void {
    if (!result.ok) return;
    for (const l of this.#listeners) {
      try {
        l(result.hormone);
      } catch {
        this.listenerErrors++;
      }
    }
  }

  /** Unsubscribes and forgets listeners. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#forgeryListeners.clear();
    this.#pending.clear();
    for (const sub of this.#subs.splice(0)) sub.unsubscribe();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
