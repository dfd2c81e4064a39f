/**
 * An organism, as grown by `grow`: its broker (started or joined), its stores, its root
 * key, the first cells of every tissue, and the propagated shutdown that leaves nothing
 * behind. The CLI is a thin shell around this class; tests and simulations use it too.
 */
import { hostName } from '../kernel/host.ts';
import type { FaultKind } from '../../cells/immune/faults.ts';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureMessengerStores } from '../../cells/messenger/stores.ts';
import { newCellId, spawnCell, type SpawnedCell } from '../../cells/spawn.ts';
import { shareDisplaces } from '../../cells/placement.ts';
import { loadTissue, resolveTissueModule } from '../../cells/tissue-loader.ts';
import { ZygotePool } from './zygote-pool.ts';
import type { Tissue } from '../../cells/tissue.ts';
import { emptyTissueRecord, mutateTissueRecord, packRecord, tissueKey, tissueRecordOf } from '../kernel/homeostasis-record.ts';
import { writeIfUnchanged } from '../kernel/compare-and-set.ts';
import { sweepCells } from './sweep.ts';
import { Broker, ensureNatsServer, stopBrokerByPid } from './broker.ts';
import type { CensusEntry } from '../kernel/census.ts';
import { CellularError, isCellularError, throwIfAborted } from '../wire/errors.ts';
import { genomeHash, type Genome } from '../kernel/genome/index.ts';
import { cellRuns, isProcessOf, localCells, signalCell, signalIfOurs } from '../kernel/processes.ts';
import { claimStateDir, organismId, removeRecord, self, writeRecord, type OrganismRecord } from './record.ts';
import { loadOrCreateRootKey, type RootKey } from './root-key.ts';
import { Observer } from './observer.ts';
import { ensureStores, openLineage } from '../kernel/stores.ts';
import { ROOT_ISSUER, type Certificate } from '../kernel/lineage.ts';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Namespace } from '../kernel/namespace.ts';
import { pack } from '../kernel/reply.ts';
import { natsOptions, type NatsAccess } from '../kernel/access.ts';
import { loadOrCreateDashboardToken } from '../kernel/dashboard-token.ts';
import { Operator } from './operator.ts';
import { Mint, MintDesk, RECORD_ATTEMPT_MS } from './mint.ts';
import { openRevoked, Revocations } from './revocations.ts';
import { caPem, issueHostCertificate } from './organism-ca.ts';
import type { BrokerUser } from '../kernel/access.ts';
import { randomBytes } from 'node:crypto';
import { HostAgent } from './host-agent.ts';
import { HostDigest } from './host-digest.ts';
import { HostWatch } from './host-watch.ts';
import { codeHash } from '../../cells/code-hash.ts';
import { beacons } from './beacon.ts';
import { Renewal } from './renewal.ts';
import { chooseReplication, loadOrCreateBrokerToken, whileForming, type ClusterConfig, type Replication } from '../kernel/cluster.ts';
import type { DigestBody, ShutdownBody } from '../kernel/vocabulary.ts';

/** The homeostasis bucket key hosts race for: whoever creates it seeds the organism. */
const SEED_KEY = 'seed';
/** How long a grow waits for its JetStream cluster to form (members elect a leader, find their peers). */
const CLUSTER_FORMING_MS = 60_000;

export interface OrganismOptions {
  stateDir: string;
  genome: Readonly<Genome>;
  /** Directory that relative tissue module paths are resolved from (the genome file's). */
  genomeDir?: string;
  /** Join these NATS servers instead of starting a private broker. */
  servers?: string[];
  /** Start the private broker as a member of this NATS cluster (grow --cluster). */
  cluster?: ClusterConfig;
  id?: string;
  /** Install nats-server with apt-get when missing (root, Debian). @default true */
  autoInstall?: boolean;
  /** Progress lines for the operator. */
  say?: (line: string) => void;
  signal?: AbortSignal;
}

export type OrganismState =
  | { state: 'idle' }
  | { state: 'growing' }
  | { state: 'alive'; since: number }
  | { state: 'shutting-down'; reason: string }
  | { state: 'stopped'; stragglers: number };

/** Private whole-host answers to newborns' asks per interval (past it, asks are dropped). */
const WHOLE_REPLIES_PER_INTERVAL = 32;
/** Of those, to one asker (one inbox prefix) per interval. */
const WHOLE_REPLIES_PER_ASKER = 2;
/** A reply subject grow answers a whole-digest ask on: a client's request inbox, nothing else. */
const INBOX_REPLY = /^_INBOX\.[A-Za-z0-9_-]{1,80}(\.[A-Za-z0-9_-]{1,40}){1,2}$/;

export class Organism {
  readonly stateDir: string;
  readonly genome: Readonly<Genome>;
  readonly spawned = new Map<string, SpawnedCell>();
  #o: OrganismOptions;
  #state: OrganismState = { state: 'idle' };
  #broker: Broker | undefined;
  #observer: Observer | undefined;
  #rootKey: RootKey | undefined;
  #lineage: KV | undefined;
  #homeostasis: KV | undefined;
  #nc: NatsConnection | undefined;
  #servers: string[] = [];
  #token: string | null = null;
  /** Operator mode (the private broker): the authority over broker identities, and grow's own. */
  #mint: Mint | undefined;
  #user: BrokerUser | undefined;
  #mintDesk: MintDesk | undefined;
  /** Cluster mode: the organism CA clients check the servers' certificates against. */
  #tls: { ca: string } | undefined;
  #revocations: Revocations | undefined;
  #stopping: Promise<OrganismState> | undefined;
  #ownsRecord = false;
  #id: string | undefined;
  #release: (() => void) | undefined;
  #operator: Operator | undefined;
  #agent: HostAgent | undefined;
  #digest: HostDigest | undefined;
  #hostWatch: HostWatch | undefined;
  #digestAsk: Subscription | undefined;
  #digestWhole: Subscription | undefined;
  #renewal: Renewal | undefined;
  #zygotes: ZygotePool | undefined;
  #shareTimer: NodeJS.Timeout | undefined;
  /** How many replicas the streams and buckets got, and why (known after start()). */
  replication: Replication | undefined;
  #dashboardToken: string | undefined;

  constructor(options: OrganismOptions) {
    this.#o = options;
    this.stateDir = resolve(options.stateDir);
    this.genome = options.genome;
  }

  /** The organism id: known once start() has claimed the state dir. */
  get id(): string {
    if (this.#id === undefined) throw new CellularError('CELL_ERR_CLOSED', 'organism not started: its id is read from the state dir at start()');
    return this.#id;
  }

  get state(): OrganismState {
    return this.#state;
  }
  /** The organism's root public key (what every certificate chains to). */
  get rootPub(): Uint8Array {
    if (!this.#rootKey) throw new CellularError('CELL_ERR_CLOSED', 'organism not started');
    return this.#rootKey.pub;
  }
  get servers(): string[] {
    return this.#servers;
  }
  /** Servers and token: what any other process needs to reach this organism's NATS. */
  get access(): NatsAccess {
    return { servers: this.#servers, token: this.#token, ...(this.#user ? { user: this.#user } : {}), ...(this.#tls ? { tls: this.#tls } : {}) };
  }

  /** The mint (operator mode only): issues credentials from the root key. */
  get mint(): Mint | undefined {
    return this.#mint;
  }
  get broker(): Broker | undefined {
    return this.#broker;
  }
  get observer(): Observer {
    if (!this.#observer) throw new CellularError('CELL_ERR_CLOSED', 'organism not started');
    return this.#observer;
  }

  /** The token that unlocks the dashboard's controls (kept in the state dir, 0600). */
  get dashboardToken(): string {
    if (this.#dashboardToken === undefined) throw new CellularError('CELL_ERR_CLOSED', 'organism not started');
    return this.#dashboardToken;
  }

  #say(line: string): void {
    this.#o.say?.(line);
  }

  /** Starts (or joins) the broker, creates the stores, spawns every tissue's min cells. */
  async start(): Promise<void> {
    if (this.#state.state !== 'idle') return;
    this.#state = { state: 'growing' };
    throwIfAborted(this.#o.signal);
    await this.#claimStateDir();
    this.#rootKey = loadOrCreateRootKey(this.stateDir);
    this.#dashboardToken = loadOrCreateDashboardToken(this.stateDir);
    await this.#startOrJoinBroker();
    try {
      await this.#connect();
      const homeostasis = await this.#openStores();
      await this.#openObserver();
      await this.#startMint(homeostasis);
      this.#writeRecord();
      this.#startOperator();
      this.#startHostAgent(homeostasis);
      this.#startDigest();
      this.#startRenewal(homeostasis);
      this.#obeyShutdown();
      // A host joining a living organism (another host's grow seeded it) brings only its
      // share (tissues.<t>.perHost); homeostasis places the rest where there is room.
      const seeds = (this.#o.cluster || this.#o.servers) && !(await this.#claimSeed(homeostasis)) ? 'joined' : 'seeded';
      // A store that times out under load (seen joining a 100-cell organism on a saturated
      // cluster) does not make this host leave: homeostasis places its share, and
      // in a cluster #keepShare refills it from here on.
      if (seeds === 'joined') await this.#fillShare(homeostasis, 'joined with').catch((e: unknown) => this.#say(`share not filled yet (${(e as Error).message}): homeostasis places the rest (and in a cluster, the share is kept every ${Math.max(1_000, 2 * this.genome.limits.pulseIntervalMs)} ms)`));
      else await this.#seedFirstCells(homeostasis);
      // After the first cells: a zygote's start is CPU the seeds would wait for.
      this.#startZygotes();
      // Unless a stop began meanwhile (a shutdown hormone while we spawned).
      if ((this.#state as OrganismState).state === 'growing') this.#state = { state: 'alive', since: Date.now() };
      if (this.#o.cluster) this.#keepShare(homeostasis);
    } catch (e) {
      await this.stop(`start failed: ${(e as Error).message}`);
      throw e;
    }
  }

  /** Claims the state dir before touching anything in it (ending what a dead owner left), and reads the organism id. */
  async #claimStateDir(): Promise<void> {
    const claim = claimStateDir(this.stateDir);
    this.#release = claim.release;
    try {
      if (claim.stale) await this.#recover(claim.stale);
      this.#id = organismId(this.stateDir, this.#o.id);
    } catch (e) {
      this.#release();
      this.#state = { state: 'stopped', stragglers: 0 };
      throw e;
    }
  }

  /** The private nats-server (a cluster member with --cluster), or the servers given to join. */
  async #startOrJoinBroker(): Promise<void> {
    if (this.#o.servers && this.#o.servers.length > 0) {
      this.#servers = [...this.#o.servers];
      this.#say(`joining NATS at ${this.#servers.join(', ')} (no broker started)`);
      return;
    }
    const { signal, cluster } = this.#o;
    const binary = ensureNatsServer({ autoInstall: this.#o.autoInstall ?? true, log: (l) => this.#say(l) });
    // Our own server: every process gets its own identity and its tissue's permissions.
    this.#mint = new Mint(this.#rootKey!.seed, this.id);
    const inbox = `grow-${randomBytes(4).toString('hex')}`;
    this.#user = { ...(await this.#mint.credentialFor(new Namespace(this.id), { kind: 'grow', name: inbox }, inbox)), inbox };
    // Hosts talk TLS under the organism's CA; a lone server on loopback stays plain (and says so).
    const tls = cluster ? issueHostCertificate(this.stateDir, this.id, join(this.stateDir, 'broker', 'tls'), hostName(), [this.genome.broker.host]) : undefined;
    if (tls) this.#tls = { ca: caPem(tls.caFile) };
    else this.#say(`broker: plain TCP on ${this.genome.broker.host} (one host; TLS is for a cluster: grow --cluster)`);
    this.#broker = new Broker({
      operator: this.#mint,
      ...(tls ? { tls } : {}),
      gene: this.genome.broker, dir: join(this.stateDir, 'broker'), name: `cellular-${this.id}-${hostName()}`, binary, log: (l) => this.#say(l),
      // Members share one token: cells fail over to any member, and routes present it too.
      ...(cluster ? { cluster, token: loadOrCreateBrokerToken(this.stateDir) } : {}),
      ...(signal ? { signal } : {}),
    });
    await this.#broker.start();
    this.#servers = [this.#broker.url];
    // The token now guards only a cluster's routes: clients present their own credentials.
    this.#token = null;
  }

  async #connect(): Promise<void> {
    try {
      this.#nc = await connect(natsOptions(this.access, `grow/${this.id}`));
    } catch (cause) {
      throw new CellularError('BROKER_ERR_CONNECT', `cannot reach NATS at ${this.#servers.join(', ')}: ${(cause as Error).message}`, { cause });
    }
  }

  /**
   * The streams and buckets, at the replication the servers allow (a cluster still forming
   * is waited for). Before the observer: its certificate book binds to the lineage bucket.
   * Returns the homeostasis bucket.
   */
  async #openStores(): Promise<KV> {
    const d = this.genome.dashboard;
    const ns = new Namespace(this.id);
    const nc = this.#nc!;
    // Only a cluster forms: a lone server's errors are final at once.
    const forming = nc.info?.cluster ? CLUSTER_FORMING_MS : 0;
    const replication = await whileForming(() => chooseReplication(nc, ns, this.genome.broker.replicas), forming, (l) => this.#say(l));
    this.replication = replication;
    this.#say(`JetStream: R${replication.replicas} streams and buckets (${replication.why})`);
    const replicas = replication.replicas;
    // Hosts started together create the same streams at once: a lost race is retried (it is idempotent).
    const { lineage, homeostasis } = await whileForming(async () => {
      const stores = await ensureStores(nc, ns, { replicas, recorderMaxAgeMs: d.recorderMaxAgeMs, recorderMaxBytes: d.recorderMaxBytes });
      await ensureMessengerStores(nc, ns, this.genome.messenger, replicas);
      return stores;
    }, forming, (l) => this.#say(l));
    this.#lineage = lineage;
    this.#homeostasis = homeostasis;
    return homeostasis;
  }

  async #openObserver(): Promise<void> {
    this.#observer = await Observer.open({
      servers: this.#servers, organism: this.id, rootPub: this.#rootKey!.pub, rootKey: this.#rootKey!, limits: this.genome.limits, nc: this.#nc!, voteDeadlineMs: this.genome.immune.voteDeadlineMs, jury: this.genome.immune.jury,
      halfLifeOf: (tissue) => this.genome.tissues[tissue]?.halfLifeMs ?? 2_000,
      // This host's cells from their own pulses (the digest is made of them); other hosts' from their digests.
      localHost: hostName(),
      // A cell pulses from its main thread: one stuck in a long task is silent, but its
      // process runs. That is busy, not dead (a stopped process is dead, as before).
      running: (e) => e.host === hostName() && e.pid > 0 && cellRuns(e.pid, e.id, this.id),
      ...(this.#mint ? { cutoffPerSecond: this.genome.immune.cutoffPerSecond } : {}),
    });
  }

  /** Serves credential requests and revokes the dead (operator mode only). */
  async #startMint(homeostasis: KV): Promise<void> {
    const mint = this.#mint;
    if (!mint) return;
    const ns = new Namespace(this.id);
    const observer = this.#observer!;
    const lineage = await openLineage(this.#nc!, ns, RECORD_ATTEMPT_MS).catch(() => this.#lineage!);
    this.#mintDesk = new MintDesk({ mint, nc: this.#nc!, ns, certs: observer.certs, homeostasis, lineage, tissues: () => Object.keys(this.genome.tissues) });
    this.#mintDesk.start();
    this.#revocations = new Revocations({
      mint, ns, servers: this.#servers, ...(this.#tls ? { tls: this.#tls } : {}), bucket: await openRevoked(this.#nc!, ns, this.replication?.replicas ?? 1),
      pubOf: async (id) => {
        await observer.certs.resolve(id);
        return observer.certs.certOf(id)?.pub;
      },
      log: (line) => this.#say(line),
    });
    await this.#revocations.start();
    observer.census.on((e) => this.#revocations?.observe(e));
    // A flood is evidence against one identity (the broker named it): cut it off, no trial.
    observer.bus.onFlood((sender, n) => {
      if (sender === ROOT_ISSUER) return;
      this.#say(`flood: ${sender} sent over ${n - 1} hormones within a second (immune.cutoffPerSecond ${this.genome.immune.cutoffPerSecond}): its broker identity is revoked`);
      void this.#revocations?.revoke(sender);
    });
  }

  /** Revocation state (operator mode only), for tests and the dashboard. */
  get revocations(): Revocations | undefined {
    return this.#revocations;
  }

  /** The dashboard's controls, carried out by this grow. */
  #startOperator(): void {
    this.#operator = new Operator({
      nc: this.#nc!, ns: new Namespace(this.id), genome: this.genome, token: this.#dashboardToken!,
      living: () => this.#observer?.census.living() ?? [],
      spawn: (tissue, fault) => this.spawn(tissue, undefined, { fault }),
      tissueModule: (tissue) => this.tissueModule(tissue),
      stop: (reason) => void this.stop(reason),
      say: (line) => this.#say(line),
      ...(this.#broker ? { crashBroker: () => this.crashBroker(), restartBroker: () => this.restartBroker() } : {}),
    });
    this.#operator.start();
  }

  /** This host's digest: its cells' pulses, verified here once, told to every cell (organism/grow/host-digest.ts). */
  #startDigest(): void {
    const observer = this.#observer!;
    // The evidence in this host's pulses and processes, gathered here once for every watcher
    // of these cells (organism/grow/host-watch.ts).
    let watch: HostWatch | undefined;
    if (this.genome.immune.enabled) {
      let code: string | undefined;
      void codeHash().then((h) => (code = h), (e: unknown) => this.#say(`code hash unreadable: cells' code not compared (${(e as Error).message})`));
      const w = new HostWatch({ gene: this.genome.immune, organism: this.id, host: hostName(), genomeHash: genomeHash(this.genome), code: () => code, census: observer.census });
      observer.bus.on((h) => {
        w.observe(h);
        if (h.kind !== 'digest' || h.from !== ROOT_ISSUER) return;
        const d = h.body as DigestBody;
        const theirs = w.otherHost(d.host, d.genome);
        if (theirs !== undefined) this.#say(`host ${d.host} runs genome/code ${theirs}, this host ${w.holdsTo()}: each grow holds only its own cells to its genome, so neither side's cells are convicted for it; stop the organism and grow every host again from one build and one genome`);
      });
      this.#hostWatch = watch = w;
    }
    this.#digest = new HostDigest({
      ...(watch ? { watch } : {}),
      census: observer.census, host: hostName(), limits: this.genome.limits, beacon: beacons(this.#rootKey!.privateKey, this.id),
      // A signal-0 probe, not a /proc read: a system call per cell per quarter interval. (A pid
      // reused within the seconds after a kill would only delay the finding to missed pulses.)
      exists: (e) => {
        try {
          process.kill(e.pid, 0);
          return true;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code === 'EPERM';
        }
      },
      publish: (body) => {
        try {
          observer.bus.publish('digest', body);
        } catch (e) {
          this.#say(`digest not sent: ${(e as Error).message}`);
        }
      },
    });
    this.#digest.start();
    // A newcomer that is not a cell (a joining grow, `cellular census`) asks on digest.ask,
    // which cells may not publish: the next digest is whole, for everyone.
    const digest = this.#digest;
    this.#digestAsk = observer.nc.subscribe(observer.ns.digestAsk, { callback: () => digest.requestFull() });
    // A newborn cell asks on digest.whole and alone gets this host whole. Only to a reply
    // inbox (grow may publish on JetStream's and the KV API's subjects: a reply subject a cell
    // chose must never make grow write there), and at most WHOLE_REPLIES_PER_INTERVAL an
    // interval (each is work in proportion to the host); past that, asks are dropped: the
    // asker's census counts its first delta from this host as a lost round and asks again.
    // A cell that lost a round of this host's digests names it: other hosts' grows stay silent.
    // Each asker (its inbox: a process's own prefix) gets at most WHOLE_REPLIES_PER_ASKER of
    // them an interval, so one cell asking in a loop cannot spend the bound newborns need.
    const privately = { interval: 0, count: 0, byAsker: new Map<string, number>() };
    this.#digestWhole = observer.nc.subscribe(observer.ns.digestWhole, {
      callback: (_err, msg) => {
        if (!msg.reply || !INBOX_REPLY.test(msg.reply)) return;
        if (msg.data.length > 0 && Buffer.from(msg.data).toString('utf8') !== hostName()) return;
        const interval = Math.floor(Date.now() / this.genome.limits.pulseIntervalMs);
        if (interval !== privately.interval) Object.assign(privately, { interval, count: 0, byAsker: new Map() });
        const asker = msg.reply.slice(0, msg.reply.indexOf('.', '_INBOX.'.length));
        const asked = (privately.byAsker.get(asker) ?? 0) + 1;
        if (asked > WHOLE_REPLIES_PER_ASKER || privately.count >= WHOLE_REPLIES_PER_INTERVAL) return;
        privately.byAsker.set(asker, asked);
        privately.count++;
        try {
          for (const part of digest.whole()) observer.nc.publish(msg.reply, observer.bus.seal('digest', part));
        } catch (e) {
          this.#say(`whole digest not sent: ${(e as Error).message}`);
        }
      },
    });
  }

  /** This host's zygotes (organism/grow/zygote-pool.ts): cold births without a process start. */
  #startZygotes(): void {
    const size = this.genome.limits.zygotes;
    if (size <= 0) return;
    const modules = Object.values(this.genome.tissues).flatMap((gene) => {
      try {
        return [resolveTissueModule(gene.module, this.#o.genomeDir)];
      } catch {
        return []; // its births fail and say why
      }
    });
    const pool = new ZygotePool({ stateDir: this.stateDir, organism: this.id, host: hostName(), size, modules, say: (line) => this.#say(line) });
    this.#zygotes = pool;
    // Once the first cells pulse (or a join timeout passed): a zygote's start is CPU that
    // newborn cells still importing would wait for.
    const end = Date.now() + this.genome.limits.joinTimeoutMs;
    void (async () => {
      while (this.#shortTissues().length > 0 && Date.now() < end && this.#zygotes === pool) await sleep(100);
      if (this.#zygotes === pool && (this.#state.state === 'alive' || this.#state.state === 'growing')) pool.start();
    })();
  }

  /** The zygote pool's counts (tests, the bench); undefined without one. */
  /** This host's watch over its cells (immune evidence in the digest rows); undefined with the immune system off. */
  get hostWatch(): HostWatch | undefined {
    return this.#hostWatch;
  }

  get zygotes(): (ZygotePool['stats'] & { waiting: number }) | undefined {
    return this.#zygotes && { ...this.#zygotes.stats, waiting: this.#zygotes.waiting };
  }

  /** Renews a tissue whose every lineage spent its budget (organism/grow/renewal.ts). */
  #startRenewal(homeostasis: KV): void {
    const observer = this.#observer!;
    const renewal = new Renewal({
      kv: homeostasis, genome: this.genome, host: hostName(), census: observer.census,
      spawn: (tissue, id) => this.spawn(tissue, id),
      announce: (body) => {
        try {
          observer.bus.publish('decision', body);
        } catch (e) {
          this.#say(`renewal not announced: ${(e as Error).message}`);
        }
      },
      say: (line) => this.#say(line),
    });
    this.#renewal = renewal;
    observer.bus.on((h) => {
      if (this.#state.state === 'alive' || this.#state.state === 'growing') renewal.observe(h);
    });
  }

  /** Renewals made so far (tests). */
  get renewals(): { renewals: number; cells: number } {
    return { ...(this.#renewal?.stats ?? { renewals: 0, cells: 0 }) };
  }

  /** Makes the cells other hosts' decisions place on this host. */
  #startHostAgent(homeostasis: KV): void {
    this.#agent = new HostAgent({
      nc: this.#nc!, ns: new Namespace(this.id), host: hostName(), homeostasis, limits: this.genome.limits, census: () => this.#observer?.census.list() ?? [],
      spawn: (tissue, id) => this.spawn(tissue, id), say: (line) => this.#say(line),
    });
    this.#agent.start();
  }

  /**
   * The operator's `stop` (a root-signed shutdown) ends this grow too, even mid-growth;
   * another host leaving (a shutdown naming its host) does not.
   */
  #obeyShutdown(): void {
    this.#observer!.bus.on((h) => {
      const to = h.kind === 'shutdown' ? (h.body as ShutdownBody).host : undefined;
      if (h.kind === 'shutdown' && h.from === ROOT_ISSUER && (to === undefined || to === hostName()) && (this.#state.state === 'alive' || this.#state.state === 'growing')) {
        void this.stop('shutdown hormone', { announce: false });
      }
    });
  }

  /**
   * The first population is grow's decision: recorded as pending before any cell can
   * look, so the newborns' homeostasis does not regrow what is already on its way.
   * Records left by an earlier run of this state dir are replaced (no cell of it lives).
   */
  async #seedFirstCells(homeostasis: KV): Promise<void> {
    const seeds = Object.entries(this.genome.tissues).map(([tissue, gene]) => ({ tissue, ids: Array.from({ length: gene.min }, () => newCellId(tissue)) }));
    const due = Date.now() + this.genome.limits.joinTimeoutMs + seeds.reduce((n, s) => n + s.ids.length, 0) * 200;
    for (const { tissue, ids } of seeds) {
      const record = { ...emptyTissueRecord(tissue), epoch: 1, at: Date.now(), by: ROOT_ISSUER, action: 'seed' as const, pending: ids.map((id) => ({ id, host: hostName(), due, how: 'seed' as const })) };
      await homeostasis.put(tissueKey(tissue), packRecord(record));
    }
    // A big seed (a crowd of 100) outlasts any fixed due on a loaded host: seeds not made yet
    // would look like failed births, homeostasis would make them too, and the tissue would
    // run past its max. Births slow down as the host fills, so by time, not by count: every
    // half join timeout the due of what is left moves to at least a join timeout ahead.
    const left = seeds.flatMap(({ tissue, ids }) => ids.map((id) => ({ tissue, id })));
    let extendAt = Date.now() + this.genome.limits.joinTimeoutMs / 2;
    for (let i = 0; i < left.length; i++) {
      throwIfAborted(this.#o.signal);
      if (Date.now() >= extendAt) {
        await this.#extendSeeds(homeostasis, left.slice(i));
        extendAt = Date.now() + this.genome.limits.joinTimeoutMs / 2;
      }
      const { tissue, id } = left[i]!;
      try {
        await this.spawn(tissue, id);
      } catch (e) {
        // Homeostasis already made what this seed was for: the tissue is whole without it.
        if (!isCellularError(e, 'CELL_ERR_POPULATION_MAX')) throw e;
        this.#say(`seed ${id} not made: ${e.message}`);
      }
    }
  }

  /** Moves the due of seeds not made yet to when they can be, from now. */
  async #extendSeeds(homeostasis: KV, left: { tissue: string; id: string }[]): Promise<void> {
    const due = Date.now() + this.genome.limits.joinTimeoutMs + left.length * 200;
    for (const tissue of new Set(left.map((l) => l.tissue))) {
      const ids = new Set(left.filter((l) => l.tissue === tissue).map((l) => l.id));
      const outcome = await mutateTissueRecord(homeostasis, tissue, (record) =>
        record.pending.some((p) => ids.has(p.id)) ? { ...record, pending: record.pending.map((p) => (ids.has(p.id) ? { ...p, due: Math.max(p.due, due) } : p)) } : undefined,
      { attempts: 8 }).catch((e: unknown) => ({ type: 'failed', error: e }) as const);
      if (outcome.type === 'contended' || outcome.type === 'failed') this.#say(`seed due not extended for ${tissue}: ${(outcome.error as Error)?.message}`);
    }
  }

  /**
   * Whether this grow seeds the organism. Hosts started together race for one KV key
   * (compare-and-set: one wins). A loser joins once the winner's cells pulse; a key left by
   * an organism whose cells are all gone (a restart) is taken over, again by compare-and-set.
   */
  async #claimSeed(kv: KV): Promise<boolean> {
    const mine = pack({ host: hostName(), pid: process.pid, at: Date.now() });
    if ((await writeIfUnchanged(kv, SEED_KEY, mine, 0)) !== undefined) return true;
    const limits = this.genome.limits;
    // The winner may be spawning its first cells right now: give them time to be born and pulse.
    const firstPulses = limits.pulseIntervalMs * (limits.suspectAfterPulses + 1);
    if (await this.#someoneAlive(limits.joinTimeoutMs + firstPulses)) return false;
    // A winner on a loaded host may still be spawning: the seeds it recorded as pending say
    // until when (seed 16 of the multihost batch seeded twice by not waiting for them). A due
    // far ahead (another clock) is waited for no longer than four join timeouts.
    const due = await this.#seededElsewhereDue(kv);
    if (due > Date.now() && (await this.#someoneAlive(Math.min(due - Date.now(), limits.joinTimeoutMs * 4) + firstPulses))) return false;
    const entry = await kv.get(SEED_KEY);
    // Lost (undefined), or the store could not say (a cluster electing a leader): either way
    // another host may have taken it over first, so join what it grows if anything pulses.
    const taken = await writeIfUnchanged(kv, SEED_KEY, mine, entry?.revision ?? 0).catch(() => undefined);
    if (taken !== undefined) {
      const heard = this.observer.census.list();
      const states = [...new Set(heard.map((c) => c.state))].map((st) => `${heard.filter((c) => c.state === st).length} ${st}`).join(', ') || 'no cell';
      this.#say(`organism ${this.id} has no living cell: host ${hostName()} seeds it again (heard ${this.observer.census.digests} digest parts; census: ${states})`);
      return true;
    }
    if (await this.#someoneAlive(limits.joinTimeoutMs * 2)) return false;
    throw new CellularError('CELL_ERR_SPAWN', `another host claimed the seeding of organism ${this.id} but no cell of it pulsed within ${limits.joinTimeoutMs * 2} ms`);
  }

  /** The latest due of a first cell another host recorded as pending (0 if none). */
  async #seededElsewhereDue(kv: KV): Promise<number> {
    let due = 0;
    for (const tissue of Object.keys(this.genome.tissues)) {
      const { record } = tissueRecordOf(await kv.get(tissueKey(tissue)).catch(() => null), tissue);
      for (const p of record.pending) if (p.how === 'seed' && p.host !== hostName()) due = Math.max(due, p.due);
    }
    return due;
  }

  /**
   * Waits up to `ms` for a sign that the organism lives on some host: a cell this census
   * does not know to be dead, another host's recent digest saying cells live there, or a
   * cell answering a census request (the queue group only the organism's cells serve). Three
   * signs, so one late or lost message does not make a host seed a living organism again.
   */
  async #someoneAlive(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    const { pulseIntervalMs, deadAfterPulses } = this.genome.limits;
    const observer = this.observer;
    let answered: string | undefined;
    let askedAt = 0;
    while (Date.now() < end) {
      const census = observer.census;
      const living = census.living();
      const hosts = new Set([...living.map((c) => c.host), ...census.hostsWithCells(pulseIntervalMs * deadAfterPulses)]);
      if (hosts.size > 0 || answered !== undefined) {
        const where = hosts.size > 0 ? `${living.length} cells heard, on ${[...hosts].join(', ')}` : answered;
        this.#say(`organism ${this.id} is alive (${where}): host ${hostName()} joins it`);
        return true;
      }
      if (Date.now() - askedAt >= 1_000) {
        askedAt = Date.now();
        // No responders (no cell) fails at once; a reply, whatever it holds, is a living cell.
        void observer.nc.request(observer.ns.census, new Uint8Array(0), { timeout: 750 }).then(() => (answered ??= 'a cell answered a census request'), () => undefined);
      }
      await sleep(50);
    }
    return false;
  }

  /**
   * Makes this host's share of every tissue (tissues.<t>.perHost) that it lacks, each cell
   * recorded as pending for this host first (compare-and-set: a homeostasis decision placing
   * one here at the same time is seen, and nothing is made twice). At join, and then
   * regularly in cluster mode: a host whose last cell died is no longer a live host to the
   * others, so only its own grow can bring it back into the organism.
   */
  async #fillShare(kv: KV, why: 'joined with' | 'refilled'): Promise<void> {
    const host = hostName();
    const running = new Set(localCells(this.id).map((c) => c.cell));
    for (const [tissue, gene] of Object.entries(this.genome.tissues)) {
      if (gene.perHost <= 0) continue;
      const living = this.observer.census.living().filter((c) => c.tissue === tissue && c.state !== 'dead');
      const here = living.filter((c) => c.host === host && running.has(c.id)).length;
      for (let k = here; k < gene.perHost; k++) {
        const id = newCellId(tissue);
        const recorded = await mutateTissueRecord(kv, tissue, (record) => {
          const now = Date.now();
          const coming = record.pending.filter((p) => p.due > now && !living.some((c) => c.id === p.id));
          // Already on its way here: nothing to do. The tissue full: nothing either, unless this
          // host's share displaces an extra elsewhere (the survivors grew while it was away).
          if (here + coming.filter((p) => p.host === host).length > k) return undefined;
          if (living.length + coming.length >= gene.max && (coming.length > 0 || !shareDisplaces(living, host, gene.perHost, gene.max))) return undefined;
          return { ...record, epoch: record.epoch + 1, at: now, by: ROOT_ISSUER, action: 'seed' as const, pending: [...record.pending, { id, host, due: now + this.genome.limits.joinTimeoutMs, how: 'seed' as const }] };
        }, { attempts: 8, pauseMs: () => 5 + Math.random() * 20, retryOn: () => true }); // a cell wrote meanwhile (or no quorum): read again
        if (recorded.type !== 'written') return;
        try {
          const full = living.length >= gene.max;
          await this.spawn(tissue, id, { share: true });
          this.#say(`${why} ${id} (tissues.${tissue}.perHost ${gene.perHost}${full ? `; ${tissue} was at its max ${gene.max}: an extra on another host leaves` : ''})`);
        } catch (e) {
          this.#say(`no ${tissue} cell here: ${(e as Error).message}`);
        }
      }
    }
  }

  /** In cluster mode: keeps this host's share (see #fillShare) every two pulse intervals. */
  #keepShare(kv: KV): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.#state.state !== 'alive' || !this.genome.limits.homeostasis) return;
      busy = true;
      void this.#fillShare(kv, 'refilled').catch(() => undefined).finally(() => (busy = false));
    }, Math.max(1_000, 2 * this.genome.limits.pulseIntervalMs));
    timer.unref();
    this.#shareTimer = timer;
  }

  /** A previous owner died (SIGKILL, power cut): end what it left running before we grow. */
  async #recover(stale: OrganismRecord): Promise<void> {
    const cells = localCells(stale.id);
    const brokerUp = stale.broker !== null && isProcessOf(stale.broker.pid, [`-c ${stale.broker.config}`]);
    if (cells.length === 0 && !brokerUp) return;
    this.#say(`the previous owner (pid ${stale.grow.pid}) died and left ${cells.length} cells${brokerUp ? ' and its nats-server' : ''}: stopping them first`);
    for (const c of cells) signalCell(c.pid, c.cell, stale.id, 'SIGTERM');
    await sweepCells({ organism: stale.id, timeoutMs: stale.genome?.limits?.shutdownTimeoutMs ?? 10_000, intervalMs: 1_000 });
    if (stale.broker) await stopBrokerByPid(stale.broker.pid, stale.broker.config);
  }

  #writeRecord(): void {
    const record: OrganismRecord = {
      v: 1, id: this.id, servers: this.#servers, token: this.#token, ...(this.#mint ? { operator: true } : {}), ...(this.#tls ? { tls: true } : {}),
      broker: this.#broker?.pid ? { pid: this.#broker.pid, config: this.#broker.configPath, monitorUrl: this.#broker.monitorUrl } : null,
      grow: self(), genome: this.genome as Genome, genomeHash: genomeHash(this.genome), started: Date.now(),
    };
    writeRecord(this.stateDir, record);
    this.#ownsRecord = true;
  }

  /** A tissue's module, loaded as its cells load it (the genome names it; relative to the genome file). */
  tissueModule(tissue: string): Promise<Tissue> {
    const gene = this.genome.tissues[tissue];
    if (!gene) return Promise.reject(new CellularError('CELL_ERR_TISSUE_MODULE', `no tissue ${tissue} in the genome`));
    return loadTissue(resolveTissueModule(gene.module, this.#o.genomeDir));
  }

  /**
   * Spawns one cell of `tissue`, signed by the root key. `options.fault` (tests and
   * simulations only; never reachable from the CLI or the network) starts it misbehaving.
   */
  async spawn(tissue: string, id?: string, options: { fault?: FaultKind; share?: boolean } = {}): Promise<SpawnedCell> {
    if (this.#state.state === 'shutting-down' || this.#state.state === 'stopped') {
      throw new CellularError('CELL_ERR_CLOSED', `organism ${this.id} is ${this.#state.state}: no new cells`);
    }
    const gene = this.genome.tissues[tissue];
    if (!gene) throw new CellularError('CELL_ERR_SPAWN', `no tissue ${JSON.stringify(tissue)} in the genome`);
    // Population: on this host the process table is the truth (a cell killed a moment ago
    // is not a member, one that has not pulsed yet is); elsewhere, the census.
    const host = hostName();
    const members = new Map<string, { tissue: string; host: string }>();
    for (const c of this.#observer?.census.living() ?? []) if (c.host !== host) members.set(c.id, c);
    for (const c of localCells(this.id)) {
      const known = this.#observer?.census.get(c.cell) ?? this.spawned.get(c.cell)?.cert;
      members.set(c.cell, { tissue: known?.tissue ?? c.cell.replace(/-[0-9a-f]+$/, ''), host });
    }
    for (const [id, c] of this.spawned) if (!members.has(id) && !isProcessOf(c.pid, c.markers)) this.spawned.delete(id);
    const all = [...members.values()];
    const here = all.filter((c) => c.host === host).length;
    const ofTissue = all.filter((c) => c.tissue === tissue).length;
    // A host's perHost share may go one past max for a moment (#fillShare says when; an extra elsewhere then leaves).
    if (ofTissue >= gene.max + (options.share ? gene.perHost : 0)) {
      throw new CellularError('CELL_ERR_POPULATION_MAX', `spawning a ${tissue} cell would exceed tissues.${tissue}.max (${gene.max})`);
    }
    if (here >= this.genome.limits.cellsPerHost) {
      throw new CellularError('CELL_ERR_POPULATION_MAX', `spawning a ${tissue} cell would exceed limits.cellsPerHost (${this.genome.limits.cellsPerHost})`);
    }
    const cell = await spawnCell({
      organism: this.id, access: this.access, genome: this.genome, stateDir: this.stateDir, rootPub: this.#rootKey!.pub,
      maker: { id: ROOT_ISSUER, key: this.#rootKey!.privateKey, generation: -1, budget: 0 },
      tissue, lineage: this.#lineage!, ...(this.#o.genomeDir ? { baseDir: this.#o.genomeDir } : {}), ...(id ? { id } : {}),
      ...(options.fault ? { fault: options.fault } : {}),
      ...(this.#mint
        ? {
            credential: async (cert: Certificate, packed: Uint8Array) => {
              await this.#lineage!.create(cert.cell, packed);
              return this.#mint!.cellJwt(new Namespace(this.id), cert);
            },
          }
        : {}),
    });
    this.spawned.set(cell.id, cell);
    // stop() began while we were spawning: its sweep may have looked before this process
    // existed, so end it here (it is too young to have handlers: SIGTERM ends it at once).
    const now = this.#state as OrganismState; // may have changed while we awaited
    if (now.state === 'shutting-down' || now.state === 'stopped') {
      signalCell(cell.pid, cell.id, this.id, 'SIGTERM');
      throw new CellularError('CELL_ERR_CLOSED', `organism ${this.id} began to stop while ${cell.id} was spawning; it was ended`);
    }
    return cell;
  }

  /** Chaos only: kill -9 the private broker (nothing else is touched). */
  async crashBroker(): Promise<void> {
    if (!this.#broker) throw new CellularError('CELL_ERR_CLOSED', 'this organism joined a NATS it did not start: there is no broker of its own to crash');
    await this.#broker.crash();
  }

  /** Starts the private broker again after crashBroker(), and records its new pid. */
  async restartBroker(): Promise<void> {
    if (!this.#broker) throw new CellularError('CELL_ERR_CLOSED', 'no private broker');
    await this.#broker.restart();
    if (this.#ownsRecord) this.#writeRecord();
  }

  /**
   * Resolves once the census holds every tissue's min living cells, or throws once `timeoutMs`
   * passed with no new cell alive. A big genome (a hundred cells of a tissue) takes longer than
   * any fixed wait on a small machine, and a host that joins it waits for every cell: so each
   * new living cell gives the wait `timeoutMs` more, up to eight times `timeoutMs` in all.
   */
  async waitForPopulation(timeoutMs = 15_000): Promise<CensusEntry[]> {
    const start = Date.now();
    const cap = start + 8 * timeoutMs;
    let end = start + timeoutMs;
    let most = 0;
    const { census } = this.observer; // (throws before grow's census exists, as it did)
    for (;;) {
      const short = this.#shortTissues();
      const living = census.living().filter((c) => c.state === 'alive');
      if (short.length === 0) {
        await this.#clearSeeds(new Set(living.map((c) => c.id)));
        return living;
      }
      if (living.length > most) {
        most = living.length;
        end = Math.min(cap, Math.max(end, Date.now() + timeoutMs));
      }
      if (Date.now() > end) {
        throw new CellularError('CELL_ERR_SPAWN', `census did not reach the genome within ${Date.now() - start} ms (${timeoutMs} ms without a new living cell, or ${8 * timeoutMs} ms in all); short: ${short.join(', ')} (see ${join(this.stateDir, 'logs')})`);
      }
      await sleep(25);
    }
  }

  /** The tissues with fewer alive cells in grow's census than their min (before it exists, every tissue with a min). */
  #shortTissues(): string[] {
    const living = (this.#observer?.census.living() ?? []).filter((c) => c.state === 'alive');
    return Object.entries(this.genome.tissues).filter(([t, g]) => living.filter((c) => c.tissue === t).length < g.min).map(([t]) => t);
  }

  /**
   * The first cells are born: take them off their tissues' pending lists, so no cell born
   * later (which never saw them) mistakes them for births that failed, or waits for them.
   */
  async #clearSeeds(born: Set<string>): Promise<void> {
    const kv = this.#homeostasis;
    if (!kv) return;
    for (const tissue of Object.keys(this.genome.tissues)) {
      await mutateTissueRecord(kv, tissue, (record) => {
        const pending = record.pending.filter((p) => !(p.how === 'seed' && born.has(p.id)));
        return pending.length === record.pending.length ? undefined : { ...record, pending };
      }, { attempts: 5, retryOn: () => true }).catch(() => undefined); // a cell wrote meanwhile: read again; unreadable: left to the cells
    }
  }

  /**
   * Propagated shutdown: publish `shutdown`, wait (bounded by limits.shutdownTimeoutMs)
   * until no cell lives, kill stragglers by pid after checking each is that cell, stop the
   * broker we started. Safe to call twice.
   */
  stop(reason = 'operator', options: { announce?: boolean } = {}): Promise<OrganismState> {
    this.#stopping ??= this.#stop(reason, options.announce ?? true);
    return this.#stopping;
  }

  async #stop(reason: string, announce: boolean): Promise<OrganismState> {
    this.#state = { state: 'shutting-down', reason };
    this.#operator?.close();
    this.#agent?.close();
    this.#renewal?.close();
    this.#zygotes?.close();
    this.#zygotes = undefined;
    clearInterval(this.#shareTimer);
    // Draining cells need no revocation (the broker stops, or other hosts' grows carry on).
    await this.#revocations?.close();
    this.#revocations = undefined;
    const observer = this.#observer;
    let stragglers = 0;
    // Other hosts still hold cells: this host leaves the organism, which lives on there.
    const host = hostName();
    const hostOnly = announce && (observer?.census.living().some((c) => c.host !== host && c.state !== 'dead') ?? false);
    if (observer) {
      if (announce) {
        try {
          observer.bus.publish('shutdown', { reason, ...(hostOnly ? { host } : {}) });
          await observer.nc.flush();
        } catch {
          // The broker may be gone already; the pid sweep below still ends every cell.
        }
      }
      this.#say(hostOnly ? `host ${host} leaves the organism (${reason}): its cells drain; the other hosts carry on` : `shutdown: ${reason}; waiting for cells to drain…`);
    }
    if (this.#id !== undefined) {
      const swept = await sweepCells({
        organism: this.#id, timeoutMs: this.genome.limits.shutdownTimeoutMs, intervalMs: this.genome.limits.pulseIntervalMs,
        reason, hostOnly, say: (l) => this.#say(l), ...(observer ? { observer } : {}),
      });
      stragglers = swept.killed;
    }
    // The whole organism is gone: the next grow seeds at once instead of waiting for cells.
    if (!hostOnly) await this.#homeostasis?.delete(SEED_KEY).catch(() => {});
    await this.#mintDesk?.close();
    this.#mintDesk = undefined;
    this.#digest?.close();
    this.#digest = undefined;
    this.#digestAsk?.unsubscribe();
    this.#digestAsk = undefined;
    this.#digestWhole?.unsubscribe();
    this.#digestWhole = undefined;
    await observer?.close();
    this.#observer = undefined;
    await this.#nc?.close().catch(() => {});
    if (this.#broker) {
      await this.#broker.close();
      this.#say('nats-server stopped');
    }
    if (this.#ownsRecord) removeRecord(this.stateDir);
    this.#release?.();
    this.#state = { state: 'stopped', stragglers };
    return this.#state;
  }

  /**
   * Last resort, synchronous (safe in a process 'exit' handler): SIGTERM every cell we
   * spawned and the broker we started, each after checking its pid is still ours, without
   * waiting. Cells drain on SIGTERM; nats-server shuts down on it. A no-op after stop().
   */
  emergencyStop(): number {
    if (this.#state.state === 'stopped' || this.#state.state === 'idle') return 0;
    let signalled = 0;
    this.#zygotes?.close();
    this.#zygotes = undefined;
    if (this.#id !== undefined) for (const c of localCells(this.#id)) if (signalCell(c.pid, c.cell, this.#id, 'SIGTERM')) signalled++;
    const pid = this.#broker?.pid;
    if (pid !== undefined && signalIfOurs(pid, [`-c ${this.#broker!.configPath}`], 'SIGTERM')) signalled++;
    this.#state = { state: 'stopped', stragglers: signalled };
    this.#release?.();
    return signalled;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop('disposed');
  }
}
