/**
 * The gate every incoming hormone passes: parse, check the signature with the sender's
 * key, reject stale timestamps and replayed sequence numbers, count every drop by reason.
 * It never throws, so no bad hormone ever reaches a handler as an exception.
 *
 * Replay protection is a sliding window per sender (as in IPsec/DTLS): a cell publishes
 * from two threads over two connections, so its hormones may arrive slightly out of order.
 */
import type { KeyObject } from 'node:crypto';
import { DROP_REASONS, openEnvelope, signatureHolds, type DropReason, type Hormone } from './hormone.ts';

export type DropCounters = Record<DropReason, number>;

export interface GateOptions {
  /** The organism whose hormones this gate admits (signatures bind it). */
  organism: string;
  maxBytes: number;
  maxAgeMs: number;
  replayWindow: number;
  /** Injected clock, ms since the epoch. */
  now?: () => number;
  /** Most senders remembered for replay checks; the least recently seen are forgotten. */
  maxSenders?: number;
}

export type Admitted = { ok: true; hormone: Hormone } | { ok: false; reason: DropReason; from?: string; envelope?: Hormone };

class ReplayWindow {
  #highest = 0;
  /** Raised when a sender floods its window: everything at or below is refused. */
  #raised = 0;
  #seen = new Set<number>();

  constructor(readonly size: number) {}

  /** True (and records it) when seq is fresh. */
  accept(seq: number): boolean {
    if (seq <= Math.max(this.#highest - this.size, this.#raised) || this.#seen.has(seq)) return false;
    this.#highest = Math.max(this.#highest, seq);
    this.#seen.add(seq);
    if (this.#seen.size > MAX_REMEMBERED) this.#prune();
    return true;
  }

  /** Forgets what fell out of the window; past the cap, drops the oldest half and raises the floor. */
  #prune(): void {
    const floor = this.#highest - this.size;
    for (const s of this.#seen) if (s <= floor) this.#seen.delete(s);
    if (this.#seen.size > MAX_REMEMBERED) {
      const sorted = [...this.#seen].sort((a, b) => a - b);
      const drop = sorted.slice(0, sorted.length - MAX_REMEMBERED / 2);
      for (const s of drop) this.#seen.delete(s);
      this.#raised = Math.max(this.#raised, drop.at(-1) ?? 0);
    }
  }
}

/** Sequences remembered per sender at most, so a flood cannot grow memory without bound. */
const MAX_REMEMBERED = 4096;

export class HormoneGate {
  readonly dropped: DropCounters = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as DropCounters;
  accepted = 0;
  readonly #windows = new Map<string, ReplayWindow>();
  readonly #opts: Required<GateOptions>;

  constructor(options: GateOptions) {
    this.#opts = { now: Date.now, maxSenders: 100_000, ...options };
  }

  /** Parses only; use when the sender's key must be looked up first. */
  open(bytes: Uint8Array): Admitted {
    const opened = openEnvelope(bytes, this.#opts.maxBytes);
    if (!opened.ok) this.dropped[opened.reason]++;
    return opened;
  }

  /** Drops a parsed hormone whose sender was condemned (before any signature work). */
  quarantined(h: Hormone): Admitted {
    this.dropped.quarantined++;
    return { ok: false, reason: 'quarantined', from: h.from };
  }

  /** Finishes admission of a parsed hormone. `key` undefined means the sender is foreign. */
  admit(h: Hormone, key: KeyObject | undefined): Admitted {
    const drop = (reason: DropReason): Admitted => {
      this.dropped[reason]++;
      return { ok: false, reason, from: h.from };
    };
    if (key === undefined) return drop('foreign');
    if (!signatureHolds(h, key, this.#opts.organism)) return drop('badSignature');
    if (Math.abs(this.#opts.now() - h.ts) > this.#opts.maxAgeMs) return drop('stale');
    let window = this.#windows.get(h.from);
    if (window === undefined) {
      if (this.#windows.size >= this.#opts.maxSenders) {
        const oldest = this.#windows.keys().next().value;
        if (oldest !== undefined) this.#windows.delete(oldest);
      }
      window = new ReplayWindow(this.#opts.replayWindow);
    } else {
      // Map order is the eviction order: move this sender to the most recently seen end.
      this.#windows.delete(h.from);
    }
    this.#windows.set(h.from, window);
    if (!window.accept(h.seq)) return drop('replayed');
    this.accepted++;
    return { ok: true, hormone: h };
  }

  /** Parse and admit in one step, for senders whose key is at hand. */
  check(bytes: Uint8Array, keyOf: (from: string) => KeyObject | undefined): Admitted {
    const opened = this.open(bytes);
    if (!opened.ok) return opened;
    return this.admit(opened.hormone, keyOf(opened.hormone.from));
  }

  stats(): { accepted: number; dropped: DropCounters } {
    return { accepted: this.accepted, dropped: { ...this.dropped } };
  }
}
