/**
 * Synthetic cells: hundreds of certified cells that exist only as hormones, to load the
 * organism's observers (the dashboard above all) as a large swarm would, on a small machine.
 * Each has its own key and a root-signed certificate in the lineage bucket (so every cell
 * verifies it like any other), announces its birth, pulses every interval with a slowly
 * varying load, and announces its death at close. They live on made-up hosts (`sim-0`…),
 * so no cell looks for their processes. With `immune`, each also runs the real immune system
 * (simulations/synthetic-immune.ts): it watches, accuses and sits on juries like a real cell;
 * without, it never votes, and a jury drawn from a census of mostly synthetic cells cannot
 * reach 2/3.
 *
 * Each made-up host also has what a real host has for membership: a census of its cells'
 * pulses and the real host digest (organism/grow/host-digest.ts) published as the root with
 * the organism's beacon, as that host's grow would. Cells learn the population from digests
 * only, so without them no cell (the dashboard included) would see a synthetic cell.
 */
import { CellularError } from '../organism/wire/errors.ts';
import { randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { codeHash } from '../cells/code-hash.ts';
import { genomeHash, type Genome } from '../organism/kernel/genome/index.ts';
import { sealHormone, SharedSequence, type Signer } from '../organism/kernel/hormone.ts';
import { generateKeypair, privateKeyObject } from '../organism/kernel/keys.ts';
import { issueCertificate, packCertificate, ROOT_ISSUER, type Certificate } from '../organism/kernel/lineage.ts';
import type { Namespace } from '../organism/kernel/namespace.ts';
import type { HormoneKind, PulseBody } from '../organism/kernel/vocabulary.ts';
import type { Subscription } from '@nats-io/transport-node';
import { Census } from '../organism/kernel/census.ts';
import { openEnvelope } from '../organism/kernel/hormone.ts';
import { beacons } from '../organism/grow/beacon.ts';
import { HostDigest } from '../organism/grow/host-digest.ts';
import { SyntheticImmune } from './synthetic-immune.ts';

/** Certificates written to the lineage bucket at once. */
const CREATES_AT_ONCE = 32;
/** Tries of each certificate write (a saturated cluster times some out). */
const CREATE_ATTEMPTS = 4;

export interface SyntheticOptions {
  nc: NatsConnection;
  ns: Namespace;
  lineage: KV;
  genome: Readonly<Genome>;
  rootKey: KeyObject;
  count: number;
  /** Made-up hosts the cells are spread over. @default 4 */
  hosts?: number;
  /** Tissue name on their certificates. @default 'synthetic' */
  tissue?: string;
  /**
   * Pulse what an idle cell pulses: the same load every time, so their hosts' digests carry
   * no news (an idle organism's). Without, each cell's load drifts slowly, as a dashboard
   * should show. @default false
   */
  steady?: boolean;
  /** Each cell runs the real immune system and votes (the organism's root public key checks what it hears). */
  immune?: { rootPub: Uint8Array };
}

/** A made-up host's membership: its cells' census and its digest, as its grow would keep them. */
interface SimHost {
  census: Census;
  digest: HostDigest;
}

interface Synthetic {
  signer: Signer;
  cert: Certificate;
  pid: number;
  n: number;
  cpuMs: number;
  phase: number;
}

export class SyntheticSwarm {
  readonly #o: SyntheticOptions;
  readonly cells: Synthetic[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #hosts = new Map<string, SimHost>();
  #ask: Subscription | undefined;
  #askWhole: Subscription | undefined;
  /** The cells' immune systems, with `immune`. */
  immune: SyntheticImmune | undefined;
  /** Hormones published so far. */
  published = 0;

  constructor(o: SyntheticOptions) {
    this.#o = o;
  }

  /**
   * A certificate written once. A write that timed out (a saturated cluster: one ended a
   * 1,000-cell run with a bare TimeoutError) may have landed: tried again, and one found
   * already there with the same bytes counts as written.
   */
  async #write(id: string, packed: Uint8Array): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#o.lineage.create(id, packed);
        return;
      } catch (e) {
        const there = await this.#o.lineage.get(id).catch(() => null);
        if (there && Buffer.from(there.value).equals(Buffer.from(packed))) return;
        if (attempt >= CREATE_ATTEMPTS) throw new CellularError('STORE_ERR_UNAVAILABLE', `synthetic cell ${id}'s certificate not written after ${attempt} attempts: ${(e as Error).message}`, { cause: e });
      }
    }
  }

  async start(): Promise<void> {
    const { genome, count } = this.#o;
    const hosts = this.#o.hosts ?? 4;
    const tissue = this.#o.tissue ?? 'synthetic';
    const genomeH = genomeHash(genome);
    const code = await codeHash();
    for (let i = 0; i < count; i++) {
      const pair = generateKeypair();
      const id = `${tissue}-${randomBytes(4).toString('hex')}`;
      const cert = issueCertificate({ cell: id, pub: pair.pub, tissue, host: `sim-${i % hosts}`, born: Date.now(), generation: 0, budget: 0, parent: null, issuer: ROOT_ISSUER }, this.#o.rootKey);
      const seq = new SharedSequence();
      this.cells.push({ signer: { id, organism: this.#o.ns.id, key: privateKeyObject(pair.seed), nextSeq: () => seq.next() }, cert, pid: 4_000_000 + i, n: 0, cpuMs: 0, phase: Math.random() * Math.PI * 2 });
    }
    // Written a few dozen at a time: one after another, 900 replicated writes took minutes on
    // a loaded three-host cluster.
    for (let i = 0; i < this.cells.length; i += CREATES_AT_ONCE) {
      await Promise.all(this.cells.slice(i, i + CREATES_AT_ONCE).map((c) => this.#write(c.signer.id, packCertificate(c.cert))));
    }
    this.#startHosts();
    for (const c of this.cells) this.#publish(c, 'birth', { pid: c.pid, cert: c.cert, url: null });
    if (this.#o.immune) {
      this.immune = new SyntheticImmune({ nc: this.#o.nc, ns: this.#o.ns, genome, rootPub: this.#o.immune.rootPub, lineage: this.#o.lineage, cells: this.cells });
      await this.immune.start();
    }
    // Pulses spread evenly over the interval, as real cells' are (each on its own clock); a
    // steady (idle) cell pulses once a stride, as a calm real cell does (cells/heart.ts).
    const interval = genome.limits.pulseIntervalMs * (this.#o.steady ? Math.max(1, genome.limits.calmStride) : 1);
    const slice = Math.max(5, Math.floor(interval / 20));
    let tick = 0;
    this.#timer = setInterval(() => {
      const now = Date.now();
      const share = Math.ceil(this.cells.length / Math.max(1, Math.floor(interval / slice)));
      const from = (tick * share) % Math.max(1, this.cells.length);
      tick++;
      for (const c of this.cells.slice(from, from + share)) {
        const load = this.#o.steady ? 0.01 : 0.15 + 0.1 * Math.sin(now / 20_000 + c.phase);
        c.cpuMs += load * interval;
        c.n++;
        const body: PulseBody = {
          tissue, host: c.cert.host, pid: c.pid, parent: null, born: c.cert.born, state: 'alive', load: Math.round(load * 1000) / 1000, demand: load, cpu: Math.round(load * 1000) / 10, cpuMs: Math.round(c.cpuMs),
          rss: 60 * 1_048_576, lag: 1, work: { handled: c.n, inflight: 0, queued: 0, errors: 0 }, genome: genomeH, code, url: null, n: c.n,
        };
        this.#publish(c, 'pulse', body);
      }
    }, slice);
  }

  /** One census and digest per made-up host; the digests are signed with the root key, as a grow's are. */
  #startHosts(): void {
    const { nc, ns, genome, rootKey } = this.#o;
    const seq = new SharedSequence();
    const root: Signer = { id: ROOT_ISSUER, organism: ns.id, key: rootKey, nextSeq: () => seq.next() };
    const beacon = beacons(rootKey, ns.id);
    for (const host of new Set(this.cells.map((c) => c.cert.host))) {
      const census = new Census({ limits: genome.limits });
      const digest = new HostDigest({
        census, host, limits: genome.limits, beacon, exists: () => true,
        publish: (body) => {
          nc.publish(ns.hormone('digest', ROOT_ISSUER), sealHormone(root, 'digest', body, genome.limits.hormoneMaxBytes));
          this.published++;
        },
      });
      this.#hosts.set(host, { census, digest });
      digest.start();
    }
    // A newcomer asks every host for a whole digest; these hosts answer too.
    this.#ask = nc.subscribe(ns.digestAsk, { callback: () => { for (const h of this.#hosts.values()) h.digest.requestFull(); } });
    // A newborn cell asks for every host whole, to its inbox alone; a cell that lost a round names one host.
    this.#askWhole = nc.subscribe(ns.digestWhole, {
      callback: (_err, msg) => {
        if (!msg.reply) return;
        const named = msg.data.length > 0 ? Buffer.from(msg.data).toString('utf8') : undefined;
        for (const [name, h] of this.#hosts) {
          if (named !== undefined && name !== named) continue;
          for (const part of h.digest.whole()) nc.publish(msg.reply, sealHormone(root, 'digest', part, genome.limits.hormoneMaxBytes));
        }
      },
    });
  }

  #publish(c: Synthetic, kind: HormoneKind, body: unknown): void {
    const bytes = sealHormone(c.signer, kind, body, this.#o.genome.limits.hormoneMaxBytes);
    this.#o.nc.publish(this.#o.ns.hormone(kind, c.signer.id), bytes);
    this.published++;
    // Its host's grow hears it (in-process here: no broker round trip for what a grow reads locally).
    const opened = openEnvelope(bytes, this.#o.genome.limits.hormoneMaxBytes);
    if (opened.ok) this.#hosts.get(c.cert.host)?.census.observe(opened.hormone);
  }

  /** Stops pulsing and announces every death (in the hormones and the hosts' digests), so every census lets them go at once. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.immune?.close();
    this.#ask?.unsubscribe();
    this.#askWhole?.unsubscribe();
    for (const c of this.cells) this.#publish(c, 'death', { pid: c.pid, cause: 'shutdown', detail: 'synthetic swarm closed' });
    for (const h of this.#hosts.values()) {
      h.digest.round();
      h.digest.close();
      h.census.close();
    }
    await this.#o.nc.flush();
  }
}
