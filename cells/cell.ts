/**
 * The cell runtime: one OS process, one cell. It connects to NATS, serves its tissue's
 * endpoints and the standard `ping`/`info`/`stats` requests, pulses (cells/heart.ts), keeps
 * a census from the hormones it hears, announces its birth, and on `shutdown` or SIGTERM
 * drains, announces its death with the cause, and exits.
 */
import { beatNow } from '../organism/kernel/phase.ts';
import { connect, type NatsConnection, type Subscription, type Msg } from '@nats-io/transport-node';
import { cellAccess, natsOptions, packetAccess, type NatsAccess } from '../organism/kernel/access.ts';
import { CertBook } from '../organism/kernel/cert-book.ts';
import { Census } from '../organism/kernel/census.ts';
import { CellularError } from '../organism/wire/errors.ts';
import { genomeHash, type Genome } from '../organism/kernel/genome/index.ts';
import { HormoneBus } from '../organism/kernel/hormone-bus.ts';
import { HormoneGate } from '../organism/kernel/hormone-gate.ts';
import type { Hormone } from '../organism/kernel/hormone.ts';
import { fromHex, privateKeyObject, publicKeyOf } from '../organism/kernel/keys.ts';
import { unpackCertificate, ROOT_ISSUER, type Certificate } from '../organism/kernel/lineage.ts';
import { Namespace, type CellVerb } from '../organism/kernel/namespace.ts';
import { WholeDigest } from '../organism/kernel/whole-digest.ts';
import type { BirthBody, DeathBody, DeathCause, DigestBody, ShutdownBody } from '../organism/kernel/vocabulary.ts';
import { openReply, pack, packError, packReply, unpack } from '../organism/kernel/reply.ts';
import type { BirthPacket } from './birth-packet.ts';
import type { Logger } from './logger.ts';
import { DEFAULT_CAPACITY, Heart } from './heart.ts';
import { endpointsOf, type CellIdentity, type Endpoints, type Tissue, type TissueContext, type TissueInstance } from './tissue.ts';
import type { WorkMeter } from './work-meter.ts';
import { Homeostat } from './homeostat.ts';
import { Mitosis, parseRecruit, type RecruitRequest } from './mitosis.ts';
import { loadTissue, resolveTissueModule } from './tissue-loader.ts';
import { Immune } from './immune/immune.ts';
import { LineageWatch } from './immune/lineage-watch.ts';
import { startFault, type FaultKind } from './immune/faults.ts';
import { within } from '../organism/kernel/within.ts';

export type CellLifecycle =
  | { state: 'embryo' }
  | { state: 'alive'; since: number }
  | { state: 'draining'; cause: DeathCause; detail: string }
  | { state: 'dead'; cause: DeathCause; detail: string };

export interface CellDeps {
  tissue: Tissue;
  log: Logger;
  /** The cell's heart (the entry point makes it first, to count the birth's CPU). @default a new Heart */
  heart?: Heart;
  /** Tests and simulations only: the cell misbehaves (cells/immune/faults.ts). */
  fault?: FaultKind;
}

export class Cell {
  readonly packet: BirthPacket;
  #identity: Readonly<CellIdentity>;
  /** The tissue whose DNA the cell runs (a stem cell's changes once, when it differentiates). */
  #tissue: Tissue;
  readonly genome: Readonly<Genome>;
  readonly ns: Namespace;
  readonly work: WorkMeter;
  readonly #deps: CellDeps;
  readonly #heart: Heart;
  readonly #drainAbort = new AbortController();
  readonly #subs: Subscription[] = [];
  readonly #endpointSubs: Subscription[] = [];
  #state: CellLifecycle = { state: 'embryo' };
  #nc: NatsConnection | undefined;
  #bus: HormoneBus | undefined;
  #whole: WholeDigest | undefined;
  #certs: CertBook | undefined;
  #census: Census;
  #url: string | null = null;
  #draining: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  /** What the tissue's start made (it holds the tissue's state), once started. */
  #instance: TissueInstance | undefined;
  /** The endpoints the started tissue serves. */
  #served: Endpoints = {};
  #homeostat: Homeostat | undefined;
  #verdicts: Promise<import('@nats-io/kv').KV> | undefined;
  #immune: Immune | undefined;
  #lineageWatch: LineageWatch | undefined;
  #stopFault: (() => void) | undefined;
  #mitosis: Mitosis | undefined;
  #differentiating: Promise<void> | undefined;
  /** How this cell reaches the broker: in operator mode, its own JWT (swapped when a stem differentiates). */
  readonly #access: NatsAccess;
  /** Tissue DNA a stem cell loads ahead of need, so differentiation takes milliseconds. */
  readonly #dna = new Map<string, Promise<Tissue>>();
  #closedResolve!: (v: DeathBody) => void;
  /** Resolves with the death announcement once the cell is gone. */
  readonly closed: Promise<DeathBody>;

  constructor(packet: BirthPacket, deps: CellDeps) {
    this.packet = packet;
    this.#deps = deps;
    this.genome = packet.genome;
    this.ns = new Namespace(packet.organism);
    this.#access = cellAccess(packet);
    this.#tissue = deps.tissue;
    this.#identity = Object.freeze({
      id: packet.cell.id,
      tissue: packet.cell.tissue,
      parent: packet.cell.parent,
      host: packet.cell.host,
      pid: process.pid,
      born: packet.cell.born,
    });
    this.#census = new Census({
      limits: packet.genome.limits,
      certOf: (id) => this.#certs?.certOf(id),
      halfLifeOf: (tissue) => packet.genome.tissues[tissue]?.halfLifeMs ?? 2_000,
      // Who lives comes from the host digests (a cell hears no pulses).
      pulsesOf: () => false,
      beat: true,
      onGap: (host) => this.#whole?.gap(host),
    });
    this.#heart = deps.heart ?? new Heart(packet);
    this.work = this.#heart.work;
    this.#heart.setCapacity(deps.tissue.capacity ?? DEFAULT_CAPACITY);
    this.#heart.onFailure((error) => {
      deps.log.error({ err: error }, 'heart failed');
      void this.drain('error', error);
    });
    this.closed = new Promise((r) => (this.#closedResolve = r));
  }

  get state(): CellLifecycle {
    return this.#state;
  }

  get identity(): Readonly<CellIdentity> {
    return this.#identity;
  }

  get census(): Census {
    return this.#census;
  }

  /** Connects, serves and announces the birth. A drain that begins meanwhile wins: no birth follows. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { packet } = this;
    const limits = this.genome.limits;
    const nc = await connect(natsOptions(this.#access, packet.cell.id));
    this.#nc = nc;
    this.#watchBroker(nc);
    // Not awaited: the bucket is only needed to look up senders born before us, and its
    // client (JetStream + KV, ≈ 10 ms of imports and a round trip) need not delay our birth.
    const lineage = import('../organism/kernel/stores.ts').then((m) => m.openLineage(nc, this.ns)).catch(() => undefined);
    const certs = new CertBook(fromHex(packet.rootPub), lineage);
    this.#certs = certs;
    const myCert = await certs.learn(unpackCertificate(Buffer.from(packet.cell.cert, 'base64')));
    if (this.#draining) return;
    if (!myCert) throw new CellularError('TRUST_ERR_CERTIFICATE', `cell ${packet.cell.id}: its own certificate does not chain to the root`);
    const seed = fromHex(packet.cell.seed);
    // A maker's bug would otherwise leave a cell whose every hormone is dropped in silence.
    if (myCert.cell !== packet.cell.id || !Buffer.from(myCert.pub).equals(Buffer.from(publicKeyOf(seed)))) {
      throw new CellularError('TRUST_ERR_CERTIFICATE', `cell ${packet.cell.id}: its certificate names ${myCert.cell} or another key`);
    }
    this.#bus = new HormoneBus({
      nc, ns: this.ns, certs, maxBytes: limits.hormoneMaxBytes, pulses: 'none',
      // On its own broker a subject names its sender: a flood is cut at the door, before decoding.
      ...(this.#access.user ? { cutoffPerSecond: this.genome.immune.cutoffPerSecond } : {}),
      gate: new HormoneGate({ organism: packet.organism, maxBytes: limits.hormoneMaxBytes, maxAgeMs: limits.hormoneMaxAgeMs, replayWindow: limits.replayWindowMs * 1000 }),
      signer: { id: packet.cell.id, organism: packet.organism, key: privateKeyObject(seed), nextSeq: () => this.#heart.seq.next() },
    });
    this.#bus.on((h) => this.#onHormone(h));
    this.#census.on((e) => e.type === 'left' && e.entry.id !== this.identity.id && certs.forget(e.entry.id));
    this.#bus.start();
    this.#census.start();
    // Its census holds the organism from its first moments: every grow's whole host, to this
    // cell alone (organism/kernel/whole-digest.ts), and again for a host whose round it lost.
    const whole = new WholeDigest({ nc, ns: this.ns, bus: this.#bus, intervalMs: limits.pulseIntervalMs, onError: (err, host) => this.#deps.log.info({ err, host }, 'no whole digest: the census fills from the next digests') });
    this.#whole = whole;
    void whole.ask();
    this.#serveStandard(nc);
    await this.#startTissue(nc);
    if (this.#draining) return;
    const birth: BirthBody = { pid: process.pid, cert: myCert, url: this.#url };
    this.#bus.publish('birth', birth);
    // Pulses from birth on: a cell reads as alive only once it serves.
    const bus = this.#bus;
    this.#heart.start((body) => bus.publish('pulse', body));
    this.#state = { state: 'alive', since: Date.now() };
    this.#deps.log.info({ pid: process.pid, parent: this.identity.parent }, 'born');
    this.#mitosis = new Mitosis({ nc, ns: this.ns, packet, genome: this.genome, key: privateKeyObject(seed), generation: myCert.generation, budget: myCert.budget, lineage });
    if (this.identity.tissue === 'stem') this.#prepareDna();
    if (this.genome.immune.enabled) {
      this.#lineageWatch = new LineageWatch({ lineage, certs, log: this.#deps.log });
      this.#immune = new Immune({
        gene: this.genome.immune, limits, organism: packet.organism, self: { id: this.identity.id, host: this.identity.host },
        bus: this.#bus, census: this.#census, certs, lineage: this.#lineageWatch, log: this.#deps.log,
        commitVerdict: (accusation, accused) => this.#commitVerdict(nc, accusation, accused),
      });
      this.#immune.start();
      this.#lineageWatch.start();
    }
    if (limits.homeostasis) void this.#startHomeostat(nc);
    if (this.#deps.fault) this.#startFault(this.#deps.fault, seed, myCert);
  }

  /** An injected fault (tests only): the misbehaviour starts once the cell is born. */
  #startFault(kind: FaultKind, seed: Uint8Array, cert: Certificate): void {
    const bus = this.#bus!;
    const nc = this.#nc!;
    const signer = { id: this.identity.id, organism: this.packet.organism, key: privateKeyObject(seed), nextSeq: () => this.#heart.seq.next() };
    this.#deps.log.warn({ fault: kind }, 'injected fault');
    this.#stopFault = startFault(kind, {
      gene: this.genome.immune, signer, log: this.#deps.log,
      publishRaw: (k, bytes) => nc.publish(this.ns.hormone(k, this.identity.id), bytes),
      publishPulse: (body) => bus.publish('pulse', body),
      pulse: () => this.#heart.pulseNow(),
      peers: () => this.#census.living().filter((c) => c.id !== this.identity.id).map((c) => c.id),
      // Cancer: its certificate's whole budget on every division (never spent), the fault passed on.
      divide: async () => {
        const { spawnCell } = await import('./spawn.ts');
        const lineage = await (await import('../organism/kernel/stores.ts')).openLineage(nc, this.ns);
        return spawnCell({
          organism: this.packet.organism, access: packetAccess(this.packet), genome: this.genome, stateDir: this.packet.stateDir,
          ...(this.#access.user ? { credential: (_c: Certificate, packed: Uint8Array) => this.#mitosis!.mint({ op: 'child', cert: packed }) } : {}),
          rootPub: fromHex(this.packet.rootPub), maker: { id: this.identity.id, key: privateKeyObject(seed), generation: cert.generation, budget: Math.max(1, cert.budget) },
          tissue: this.identity.tissue, lineage, fault: 'cancer', ...(this.packet.genomeDir ? { baseDir: this.packet.genomeDir } : {}),
        });
      },
    });
  }

  /**
   * How long a write to the homeostasis bucket may take: four intervals (a write takes
   * milliseconds; one that takes seconds has no leader to land on, and the next beat tries again).
   */
  #storeTimeoutMs(): number {
    return Math.max(1_000, 4 * this.genome.limits.pulseIntervalMs);
  }

  /** Records a guilty verdict in the homeostasis bucket (replicated: a minority cannot write). */
  async #commitVerdict(nc: NatsConnection, accusation: string, accused: string): Promise<boolean> {
    this.#verdicts ??= (await import('../organism/kernel/stores.ts')).openHomeostasis(nc, this.ns, this.#storeTimeoutMs());
    const kv = await this.#verdicts;
    // Imported when first needed: a cell's birth does not wait for the store clients.
    const { recordVerdict } = await import('./immune/verdict-record.ts');
    return (await recordVerdict(kv, { accusation, accused, by: this.identity.id }, this.genome.immune.voteDeadlineMs)) !== undefined;
  }

  async #startHomeostat(nc: NatsConnection): Promise<void> {
    try {
      const kv = await (await import('../organism/kernel/stores.ts')).openHomeostasis(nc, this.ns, this.#storeTimeoutMs());
      if (this.#draining) return;
      this.#homeostat = new Homeostat({
        kv, organism: this.packet.organism, census: this.#census, genome: this.genome, mitosis: this.#mitosis!, log: this.#deps.log,
        self: () => ({ id: this.identity.id, tissue: this.identity.tissue, host: this.identity.host, state: this.#state.state }),
        publish: (kind, body) => this.#bus?.publish(kind, body),
        die: (reason) => void this.drain('apoptosis', reason),
        placeOn: async (host, request) => {
          // That host's grow answers (organism/grow/host-agent.ts); no responder = no grow there.
          const reply = await nc.request(this.ns.place(host), pack(request), { timeout: this.genome.limits.joinTimeoutMs });
          openReply(reply.data);
        },
      });
      await this.#homeostat.start();
    } catch (e) {
      // Without its bucket a cell still serves; it just takes no part in homeostasis.
      this.#deps.log.warn({ err: (e as Error).message }, 'homeostasis unavailable');
    }
  }

  /** Loads every other tissue's DNA in the background (errors surface at differentiation). */
  #prepareDna(): void {
    for (const [name, gene] of Object.entries(this.genome.tissues)) {
      if (name === 'stem') continue;
      const dna = (async () => loadTissue(resolveTissueModule(gene.module, this.packet.genomeDir ?? undefined)))();
      dna.catch(() => {}); // reported when a recruit asks for it
      this.#dna.set(name, dna);
    }
  }

  /**
   * A stem cell becomes `tissue` in place: it runs the tissue's start hook, serves its
   * endpoints, pulses as the tissue and announces it. Once only; a draining cell refuses.
   */
  differentiate(request: RecruitRequest, accepted?: () => void): Promise<void> {
    if (this.identity.tissue !== 'stem' || this.#differentiating) {
      return Promise.reject(new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', `${this.identity.id} is not an idle stem cell (it is ${this.#differentiating ? 'already differentiating' : this.identity.tissue})`));
    }
    if (this.#state.state !== 'alive' || !this.#nc) return Promise.reject(new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', `${this.identity.id} is ${this.#state.state}`));
    const gene = this.genome.tissues[request.tissue];
    if (!gene || request.tissue === 'stem') return Promise.reject(new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', `no tissue ${JSON.stringify(request.tissue)} to differentiate into`));
    const nc = this.#nc;
    this.#differentiating = (async () => {
      let tissue: Tissue;
      try {
        tissue = await (this.#dna.get(request.tissue) ?? loadTissue(resolveTissueModule(gene.module, this.packet.genomeDir ?? undefined)));
      } catch (cause) {
        this.#differentiating = undefined; // still a healthy stem cell
        throw new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', `${this.identity.id} cannot load ${request.tissue}: ${(cause as Error).message}`, { cause });
      }
      const user = this.#access.user;
      if (user) {
        // Operator mode: the new tissue's permissions come with a new credential, which the
        // mint gives only to a stem the tissue's record holds as a pending recruit.
        let jwt: string;
        try {
          jwt = await this.#mitosis!.mint({ op: 'differentiate', cell: this.identity.id, tissue: request.tissue });
        } catch (cause) {
          this.#differentiating = undefined; // still a healthy stem cell
          throw new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', `${this.identity.id} got no ${request.tissue} credential: ${(cause as Error).message}`, { cause });
        }
        // The recruiter's reply goes out under the old identity, which received its request
        // (the broker lets a cell answer only requests its connection received).
        accepted?.();
        user.jwt = jwt;
        await this.#reconnect(nc);
      }
      this.#tissue = tissue;
      this.#instance = undefined; // the stem's (nothing to drain): the new tissue's comes with its start
      this.#identity = Object.freeze({ ...this.#identity, tissue: request.tissue });
      this.#heart.setTissue(request.tissue);
      this.#heart.setCapacity(tissue.capacity ?? DEFAULT_CAPACITY);
      this.#dna.clear();
      await this.#startTissue(nc);
      this.#bus?.publish('differentiate', { tissue: request.tissue, by: request.by, epoch: request.epoch });
      this.#deps.log.info({ tissue: request.tissue, by: request.by, epoch: request.epoch }, 'differentiated');
    })();
    return this.#differentiating;
  }

  /** Reconnects with the current credential (a new JWT) and resolves once the broker took it. */
  async #reconnect(nc: NatsConnection): Promise<void> {
    const status = nc.status();
    const back = (async () => {
      for await (const s of status) if (s.type === 'reconnect') return true;
      return false;
    })();
    await nc.reconnect();
    const ok = await within(back, this.genome.limits.brokerLossMs, false);
    if (!ok) throw new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', `${this.identity.id} could not reconnect with its new credential`);
  }

  /**
   * A cell without its broker can do nothing useful and must not linger as an orphan: if
   * the connection stays down for limits.brokerLossMs, it exits. A broker that comes back
   * sooner (a restart) finds its cells reconnected.
   */
  #watchBroker(nc: NatsConnection): void {
    const ms = this.genome.limits.brokerLossMs;
    let timer: NodeJS.Timeout | undefined;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' && timer === undefined) {
          this.#deps.log.warn({ ms }, 'broker unreachable');
          timer = setTimeout(() => void this.drain('error', `broker unreachable for ${ms} ms`), ms);
        } else if (s.type === 'reconnect') {
          clearTimeout(timer);
          timer = undefined;
          this.#deps.log.info({}, 'broker reachable again');
        }
      }
      clearTimeout(timer);
      // The connection closed for good (not by this cell's own drain): a broker that revoked
      // this cell's identity (condemned, or its lineage), or gave up reconnecting. Nothing
      // will bring it back; it waited out three failed pulses before (≈ 10 s on a calm stride).
      if (!this.#draining) void this.drain('error', 'its broker connection closed');
    })().catch(() => {});
  }

  /** Whole digests asked for after a lost round (shown in stats). */
  get gapsAsked(): number {
    return this.#whole?.gapsAsked ?? 0;
  }

  #onHormone(h: Hormone): void {
    this.#census.observe(h);
    // Its own host's digest, whole, or any host's with news: the census just moved, so the
    // beat's work is done now, in this wakeup (after every listener has seen the digest), not
    // in another one later. (A calm host digests once a stride; news from any host, such as
    // a finding against a cell this one watches, must not wait for this host's next one.)
    if (h.kind === 'digest' && h.from === ROOT_ISSUER) {
      const d = h.body as DigestBody;
      if (d.part === d.parts - 1 && (d.host === this.identity.host || d.rows.length > 0)) setImmediate(() => beatNow(this.genome.limits));
    }
    // Only the operator (root key) may stop the organism; issue-6 verdicts come later.
    if (h.kind === 'shutdown' && h.from === ROOT_ISSUER) {
      const body = h.body as ShutdownBody;
      // A host leaving the organism shuts down its own cells only.
      if (body.host === undefined || body.host === this.identity.host) void this.drain('shutdown', body.reason);
    }
  }

  #serveStandard(nc: NatsConnection): void {
    const answer = (verb: Exclude<CellVerb, 'differentiate'>) => (_e: unknown, msg: Msg) => {
      try {
        msg.respond(packReply(this.#standard(verb)));
      } catch (e) {
        msg.respond(packError(e, this.identity.id));
      }
    };
    for (const verb of ['ping', 'info', 'stats'] as const) {
      this.#subs.push(nc.subscribe(this.ns.cell(this.identity.id, verb), { callback: answer(verb) }));
      this.#subs.push(nc.subscribe(this.ns.cells(verb), { callback: answer(verb) }));
    }
    if (this.identity.tissue === 'stem') {
      this.#subs.push(nc.subscribe(this.ns.cell(this.identity.id, 'differentiate'), {
        callback: (_e, msg) => {
          let request: RecruitRequest;
          try {
            request = parseRecruit(unpack(msg.data, 'TISSUE_ERR_BAD_REQUEST'));
          } catch (e) {
            msg.respond(packError(e, this.identity.id));
            return;
          }
          let answered = false;
          const ok = () => {
            if (!answered) msg.respond(packReply({ id: this.identity.id, tissue: request.tissue }));
            answered = true;
          };
          this.differentiate(request, ok).then(ok, (e: unknown) => {
            if (answered) this.#deps.log.error({ err: (e as Error).message }, 'differentiation failed after it was accepted');
            else msg.respond(packError(e, this.identity.id));
            answered = true;
          });
        },
      }));
    }
    this.#subs.push(
      nc.subscribe(this.ns.census, { queue: 'census', callback: (_e, msg) => void msg.respond(packReply(this.#census.list())) }),
    );
  }

  #standard(verb: Exclude<CellVerb, 'differentiate'>): unknown {
    const base = { id: this.identity.id, tissue: this.identity.tissue, state: this.#state.state };
    switch (verb) {
      case 'ping':
        return { ...base, ts: Date.now() };
      case 'info':
        return {
          ...base, parent: this.identity.parent, host: this.identity.host, pid: process.pid, born: this.identity.born,
          genome: genomeHash(this.genome), url: this.#url, node: process.version, endpoints: Object.keys(this.#instance ? this.#served : (this.#tissue.endpoints ?? {})),
          budget: this.#mitosis?.budget ?? null,
        };
      case 'stats':
        return {
          ...base, hormones: this.#bus?.stats(), work: this.work.counters(), census: { known: this.#census.list().length, living: this.#census.living().length, version: this.#census.version, digests: this.#census.digests, rows: this.#census.rows, gapsAsked: this.gapsAsked },
          homeostasis: this.#homeostat?.work ?? null,
          rss: process.memoryUsage().rss, uptime: Date.now() - this.identity.born, decisions: this.#homeostat?.counts ?? {}, claims: this.#homeostat?.claims ?? { won: 0, lost: 0, failed: 0 },
          immune: this.#immune ? { ...this.#immune.stats, condemned: [...this.#immune.condemned] } : null,
          tissueStats: this.#instance ? (this.#instance.stats?.() ?? null) : null,
        };
    }
  }

  async #startTissue(nc: NatsConnection): Promise<void> {
    const tissue = this.#tissue;
    const ctx = this.#context(nc);
    const instance = (await tissue.start?.(ctx)) ?? {};
    this.#instance = instance;
    this.#served = endpointsOf(tissue, instance);
    if (this.#draining) return; // no endpoints for a cell already on its way out
    for (const [name, handler] of Object.entries(this.#served)) {
      const sub = nc.subscribe(this.ns.tissue(this.identity.tissue, name), {
        queue: this.identity.tissue,
        callback: (_e, msg) => void this.#handle(msg, handler, ctx),
      });
      this.#endpointSubs.push(sub);
    }
  }

  async #handle(msg: Msg, handler: (req: unknown, ctx: TissueContext) => unknown, ctx: TissueContext): Promise<void> {
    const done = this.work.begin();
    try {
      const request = unpack(msg.data, 'TISSUE_ERR_BAD_REQUEST');
      const value = await handler(request, ctx);
      msg.respond(packReply(value));
      done();
    } catch (e) {
      msg.respond(packError(e, this.identity.id));
      done(true);
    }
  }

  #context(nc: NatsConnection): TissueContext {
    return {
      cell: this.identity, genome: this.genome, ns: this.ns, nc, log: this.#deps.log, census: this.#census,
      work: this.work, signal: this.#drainAbort.signal,
      setUrl: (url) => {
        this.#url = url;
        this.#heart.setUrl(url);
      },
      stateDir: this.packet.stateDir,
      onHormone: (listener) => this.#bus?.on(listener) ?? (() => false),
      certOf: (id) => this.#certs?.certOf(id),
      keyOf: (id) => this.#certs?.keyOf(id),
      findCert: async (id) => {
        const certs = this.#certs;
        if (!certs) return undefined;
        await certs.resolve(id);
        return certs.certOf(id);
      },
      evidenceAgainst: (id) => this.#immune?.evidence.view(id),
    };
  }

  /**
   * Drains and dies: stop taking work, let in-flight work finish (bounded by
   * limits.drainTimeoutMs), stop pulsing, announce death, disconnect. Safe to call twice.
   */
  drain(cause: DeathCause, detail = ''): Promise<void> {
    if (this.#draining) return this.#draining;
    this.#draining = this.#drain(cause, detail);
    return this.#draining;
  }

  async #drain(cause: DeathCause, detail: string): Promise<void> {
    this.#state = { state: 'draining', cause, detail };
    this.#homeostat?.close(); // a cell on its way out takes no more decisions
    this.#whole?.close(); // nor asks for anyone's whole host
    this.#stopFault?.();
    this.#deps.log.info({ cause, detail }, 'draining');
    this.#drainAbort.abort(new CellularError('CELL_ERR_CLOSED', `cell draining: ${cause}`));
    this.#heart.setState('draining');
    const deadline = Date.now() + this.genome.limits.drainTimeoutMs;
    const bounded = <T>(p: Promise<T>) => Promise.race([p, new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
    let finalCause = cause;
    // Let a start in progress reach a checkpoint (it stops there: it sees #draining), and a
    // differentiation finish its tissue's start, so what it made is drained below, not left open.
    await bounded((this.#starting ?? Promise.resolve()).catch(() => {}));
    await bounded((this.#differentiating ?? Promise.resolve()).catch(() => {}));
    try {
      if (this.#instance) await bounded(Promise.resolve(this.#instance.drain?.()));
    } catch (e) {
      this.#deps.log.warn({ err: (e as Error).message }, 'tissue drain hook failed');
    }
    await bounded(Promise.allSettled(this.#endpointSubs.map((s) => s.drain())));
    while (this.work.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.work.inflight > 0) {
      // The cause that started the drain stands (an error stays an error); apoptosis that could not finish says so.
      finalCause = cause === 'apoptosis' ? 'drain-timeout' : cause;
      detail = `${detail} (${this.work.inflight} requests unfinished after ${this.genome.limits.drainTimeoutMs} ms)`.trim();
    }
    // Stop pulsing first, so no pulse follows the death.
    await this.#heart.stop();
    // Error text may hold lone surrogates; a hormone carries well-formed strings only.
    const death: DeathBody = { pid: process.pid, cause: finalCause, detail: detail.slice(0, 1024).toWellFormed() };
    try {
      this.#bus?.publish('death', death);
      // Bounded: with the broker gone a flush would wait for a reconnect that may never come.
      if (this.#nc) await Promise.race([this.#nc.flush(), new Promise((r) => setTimeout(r, 1_000).unref())]);
    } catch (e) {
      this.#deps.log.warn({ err: (e as Error).message }, 'could not announce death');
    }
    for (const s of this.#subs) s.unsubscribe();
    this.#immune?.close();
    this.#lineageWatch?.close();
    this.#census.close();
    await this.#bus?.close();
    await this.#nc?.close().catch(() => {});
    this.#state = { state: 'dead', cause: finalCause, detail };
    this.#deps.log.info(death, 'dead');
    this.#closedResolve(death);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.drain('shutdown', 'disposed');
  }
}
