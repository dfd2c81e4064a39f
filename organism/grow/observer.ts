/**
 * An observer of an organism: a NATS connection, the certificate book, the hormone bus
 * and a census, for processes that are not cells (grow, census, stop, tests, simulations).
 * With the root key it may also speak, as the operator (`root`).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CertBook } from '../kernel/cert-book.ts';
import { Census, type CensusEntry } from '../kernel/census.ts';
import { CellularError } from '../wire/errors.ts';
import type { Limits } from '../kernel/genome/index.ts';
import { HormoneBus } from '../kernel/hormone-bus.ts';
import { HormoneGate } from '../kernel/hormone-gate.ts';
import { SharedSequence } from '../kernel/hormone.ts';
import { ROOT_ISSUER } from '../kernel/lineage.ts';
import { Namespace } from '../kernel/namespace.ts';
import type { RootKey } from './root-key.ts';
import { openLineage } from '../kernel/stores.ts';
import { natsOptions, type BrokerUser } from '../kernel/access.ts';
import { WholeDigest } from '../kernel/whole-digest.ts';
import { Witness } from '../../cells/immune/witness.ts';

export interface ObserverOptions {
  servers: string[];
  /** The private broker's token, if it has one. */
  token?: string | null;
  /** A broker identity (operator mode: organism/grow/mint.ts). */
  user?: BrokerUser;
  /** The organism CA, when the servers speak TLS. */
  tls?: { ca: string };
  organism: string;
  rootPub: Uint8Array;
  limits: Limits;
  /** With the root key the observer can publish as `root` (shutdown). */
  rootKey?: RootKey;
  name?: string;
  /** Half-life of each tissue's load smoothing, from the genome. */
  halfLifeOf?: (tissue: string) => number;
  /** The genome's immune.voteDeadlineMs (how long the witness keeps a trial open). @default 3000 */
  voteDeadlineMs?: number;
  /** The genome's immune.jury (the panel size the witness checks accusations against). @default 9 */
  jury?: number;
  /** Reuse a connection instead of opening one (it is not closed by close()). */
  nc?: NatsConnection;
  /** Operator mode: drop a sender's hormones past this many a second (HormoneBusOptions.cutoffPerSecond). */
  cutoffPerSecond?: number;
  /**
   * grow's host: the census reads only this host's cells' pulses (and makes the host digest
   * of them) and the other hosts' digests. Without it (tests, `cellular census`), every pulse.
   */
  localHost?: string;
  /** Whether a silent cell of this host still runs: busy, not dead (CensusOptions.running). */
  running?: (entry: CensusEntry) => boolean;
}

export class Observer {
  readonly ns: Namespace;
  readonly census: Census;
  readonly nc: NatsConnection;
  readonly bus: HormoneBus;
  readonly certs: CertBook;
  readonly #whole: WholeDigest;
  readonly #ownsConnection: boolean;
  #closed = false;

  private constructor(ns: Namespace, nc: NatsConnection, bus: HormoneBus, certs: CertBook, census: Census, whole: WholeDigest, owns: boolean) {
    this.ns = ns;
    this.nc = nc;
    this.bus = bus;
    this.certs = certs;
    this.census = census;
    this.#whole = whole;
    this.#ownsConnection = owns;
  }

  static async open(o: ObserverOptions): Promise<Observer> {
    const ns = new Namespace(o.organism);
    let nc = o.nc;
    if (!nc) {
      try {
        nc = await connect(natsOptions({ servers: o.servers, token: o.token ?? null, ...(o.user ? { user: o.user } : {}), ...(o.tls ? { tls: o.tls } : {}) }, o.name ?? 'observer'));
      } catch (cause) {
        throw new CellularError('BROKER_ERR_CONNECT', `cannot reach NATS at ${o.servers.join(', ')}: ${(cause as Error).message}`, { cause });
      }
    }
    const lineage = await openLineage(nc, ns).catch(() => undefined);
    const certs = new CertBook(o.rootPub, lineage);
    const seq = new SharedSequence();
    const pulsesOf = o.localHost !== undefined ? (id: string) => certs.certOf(id)?.host === o.localHost : undefined;
    const bus = new HormoneBus({
      nc, ns, certs, maxBytes: o.limits.hormoneMaxBytes, ...(pulsesOf ? { pulsesFrom: pulsesOf } : {}), ...(o.cutoffPerSecond ? { cutoffPerSecond: o.cutoffPerSecond } : {}),
      gate: new HormoneGate({ organism: o.organism, maxBytes: o.limits.hormoneMaxBytes, maxAgeMs: o.limits.hormoneMaxAgeMs, replayWindow: o.limits.replayWindowMs * 1000 }),
      ...(o.rootKey ? { signer: { id: ROOT_ISSUER, organism: o.organism, key: o.rootKey.privateKey, nextSeq: () => seq.next() } } : {}),
    });
    // A round of a host's digests lost here (a partition that healed, a broker's hiccup): that
    // host's unchanged cells are in no delta, so its grow is asked for them, privately.
    const whole = new WholeDigest({ nc, ns, bus, intervalMs: o.limits.pulseIntervalMs });
    const census = new Census({
      limits: o.limits, certOf: (id) => certs.certOf(id), ...(o.halfLifeOf ? { halfLifeOf: o.halfLifeOf } : {}),
      onGap: (host) => whole.gap(host),
      ...(o.localHost !== undefined && pulsesOf ? { ownHost: o.localHost, pulsesOf } : {}),
      ...(o.running ? { running: o.running } : {}),
    });
    bus.on((h) => census.observe(h));
    // An observer is not a juror, but it counts the votes as one does, so it shows a
    // condemned cell dead at once, and a forged verdict or toxin changes nothing it shows.
    const witness = new Witness(census, o.voteDeadlineMs ?? 3_000, o.jury ?? 9);
    bus.on((h) => witness.observe(h));
    census.on((e) => e.type === 'left' && certs.forget(e.entry.id));
    bus.start();
    census.start();
    // Unchanged cells are in no digest for up to a refresh (a minute): ask every grow for a whole one.
    try {
      nc.publish(ns.digestAsk, new Uint8Array(0));
    } catch {
      // A closed connection: the census fills with the next refresh instead.
    }
    return new Observer(ns, nc, bus, certs, census, whole, !o.nc);
  }

  /** Hosts asked for whole after a round of their digests was lost here. */
  get gapsAsked(): number {
    return this.#whole.gapsAsked;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#whole.close();
    this.census.close();
    await this.bus.close();
    if (this.#ownsConnection) await this.nc.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
