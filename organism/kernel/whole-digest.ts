/**
 * Asking the grows for their whole hosts, privately: a census that starts empty (a newborn
 * cell) or lost a round of a host's digests (a broker's hiccup, a partition that healed)
 * holds again at once what a host's deltas no longer say, instead of waiting up to a minute
 * for each unchanged row's refresh (organism/grow/host-digest.ts). The answers go to the
 * asker's inbox alone; no host says its whole population to everyone.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { HormoneBus } from './hormone-bus.ts';
import { ROOT_ISSUER } from './lineage.ts';
import type { Namespace } from './namespace.ts';

export interface WholeDigestOptions {
  nc: NatsConnection;
  ns: Namespace;
  /** The answers are root's digests, as if heard on the bus. */
  bus: Pick<HormoneBus, 'receiveAs'>;
  /** limits.pulseIntervalMs: an ask waits two for its answers, and a host is asked again after four to five. */
  intervalMs: number;
  /** An ask that failed (no grow answered in time, or the broker refused it). */
  onError?: (message: string, host: string | undefined) => void;
}

/** Hosts remembered for their next-ask time; past it, the oldest is forgotten. */
const HOSTS_KEPT = 256;

export class WholeDigest {
  readonly #o: WholeDigestOptions;
  /** When each host may next be asked after a lost round (gap()). */
  readonly #next = new Map<string, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;
  /** Whole hosts asked for after a lost round (shown in stats). */
  gapsAsked = 0;

  constructor(options: WholeDigestOptions) {
    this.#o = options;
  }

  /**
   * Every grow's whole host (or `host`'s alone), answered to this process alone. A host that
   * does not answer in time is learned from its deltas, a later ask and its rows' refresh.
   * True if any grow answered.
   */
  async ask(host?: string): Promise<boolean> {
    if (this.#closed) return false;
    try {
      const replies = await this.#o.nc.requestMany(this.#o.ns.digestWhole, host === undefined ? new Uint8Array(0) : new TextEncoder().encode(host), { strategy: 'timer', maxWait: 2 * this.#o.intervalMs });
      let answered = false;
      for await (const m of replies) {
        answered = true;
        this.#o.bus.receiveAs(m.data, 'digest', ROOT_ISSUER);
      }
      return answered;
    } catch (e) {
      this.#o.onError?.((e as Error).message, host);
      return false;
    }
  }

  /**
   * A round of `host`'s digests was lost here (CensusOptions.onGap): ask that grow alone for
   * its whole host. At most once every four to five intervals per host (spread, so a broker's
   * hiccup that every cell noticed at once is not answered at once: grow answers a bounded
   * number an interval, and the rest ask again at their next gap). Unanswered, it asks again
   * after that wait, `tries` times in all.
   */
  gap(host: string, tries = 3): void {
    const now = Date.now();
    if (this.#closed || (this.#next.get(host) ?? 0) > now) return;
    const wait = this.#o.intervalMs * (4 + Math.random());
    this.#next.set(host, now + wait);
    if (this.#next.size > HOSTS_KEPT) this.#next.delete(this.#next.keys().next().value!);
    this.gapsAsked++;
    void this.ask(host).then((answered) => {
      if (answered || tries <= 1 || this.#closed) return;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.gap(host, tries - 1);
      }, Math.max(0, now + wait - Date.now()) + 1);
      timer.unref();
      this.#timers.add(timer);
    });
  }

  /** No more asks (a draining cell, a closing observer); an ask under way ends by its own timer. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
