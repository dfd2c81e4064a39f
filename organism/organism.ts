/**
 * An organism, as grown by `grow`: its broker (started or joined), its stores, its root
 * key, the first cells of every tissue, and the propagated shutdown that leaves nothing
 * behind. The CLI is a thin shell around this class; tests and simulations use it too.
 */
import type { FaultKind } from '../cells/immune/faults.ts';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureMessengerStores } from '../cells/messenger/stores.ts';
import { newCellId, spawnCell, type SpawnedCell } from '../cells/spawn.ts';
import { emptyTissueRecord, packRecord, readTissueRecord, tissueKey } from './homeostasis-record.ts';
import { sweepCells } from './sweep.ts';
import { Broker, ensureNatsServer, stopBrokerByPid } from './broker.ts';
import type { CensusEntry } from './census.ts';
import { CellularError, throwIfAborted } from './errors.ts';
import { genomeHash, type Genome } from './genome.ts';
import { isProcessOf, localCells, signalCell, signalIfOurs } from './processes.ts';
import { claimStateDir, organismId, removeRecord, self, writeRecord, type OrganismRecord } from './record.ts';
import { loadOrCreateRootKey, type RootKey } from './root-key.ts';
import { Observer } from './observer.ts';
import { ensureStores } from './stores.ts';
import { ROOT_ISSUER } from './lineage.ts';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Namespace } from './namespace.ts';
import { natsOptions, type NatsAccess } from './access.ts';
import { loadOrCreateDashboardToken } from './dashboard-token.ts';
import { Operator } from './operator.ts';

export interface OrganismOptions {
  stateDir: string;
  genome: Readonly<Genome>;
  /** Directory that relative tissue module paths are resolved from (the genome file's). */
  genomeDir?: string;
  /** Join these NATS servers instead of starting a private broker. */
  servers?: string[];
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
  #stopping: Promise<OrganismState> | undefined;
  #ownsRecord = false;
  #id: string | undefined;
  #release: (() => void) | undefined;
  #operator: Operator | undefined;
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
    return { servers: this.#servers, token: this.#token };
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
    const { signal } = this.#o;
    throwIfAborted(signal);
    // Claim the state dir before touching anything in it.
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
    this.#rootKey = loadOrCreateRootKey(this.stateDir);
    this.#dashboardToken = loadOrCreateDashboardToken(this.stateDir);
    if (this.#o.servers && this.#o.servers.length > 0) {
      this.#servers = [...this.#o.servers];
      this.#say(`joining NATS at ${this.#servers.join(', ')} (no broker started)`);
    } else {
      const binary = ensureNatsServer({ autoInstall: this.#o.autoInstall ?? true, log: (l) => this.#say(l) });
      this.#broker = new Broker({ gene: this.genome.broker, dir: join(this.stateDir, 'broker'), name: `cellular-${this.id}`, binary, log: (l) => this.#say(l), ...(signal ? { signal } : {}) });
      await this.#broker.start();
      this.#servers = [this.#broker.url];
      this.#token = this.#broker.token;
    }
    try {
      try {
        this.#nc = await connect(natsOptions(this.access, `grow/${this.id}`));
      } catch (cause) {
        throw new CellularError('BROKER_ERR_CONNECT', `cannot reach NATS at ${this.#servers.join(', ')}: ${(cause as Error).message}`, { cause });
      }
      // Stores first: the observer's certificate book binds to the lineage bucket.
      const d = this.genome.dashboard;
      const { lineage, homeostasis } = await ensureStores(this.#nc, new Namespace(this.id), { recorderMaxAgeMs: d.recorderMaxAgeMs, recorderMaxBytes: d.recorderMaxBytes });
      await ensureMessengerStores(this.#nc, new Namespace(this.id), this.genome.messenger);
      this.#lineage = lineage;
      this.#homeostasis = homeostasis;
      this.#observer = await Observer.open({
        servers: this.#servers, organism: this.id, rootPub: this.#rootKey.pub, rootKey: this.#rootKey, limits: this.genome.limits, nc: this.#nc, voteDeadlineMs: this.genome.immune.voteDeadlineMs,
        halfLifeOf: (tissue) => this.genome.tissues[tissue]?.halfLifeMs ?? 2_000,
      });
      this.#writeRecord();
      this.#operator = new Operator({
        nc: this.#nc, ns: new Namespace(this.id), genome: this.genome, token: this.#dashboardToken!,
        living: () => this.#observer?.census.living() ?? [],
        spawn: (tissue, fault) => this.spawn(tissue, undefined, { fault }),
        stop: (reason) => void this.stop(reason),
        say: (line) => this.#say(line),
        ...(this.#broker ? { crashBroker: () => this.crashBroker(), restartBroker: () => this.restartBroker() } : {}),
      });
      this.#operator.start();
      // The operator's `stop` (a root-signed shutdown) ends this grow too, even mid-growth.
      this.#observer.bus.on((h) => {
        if (h.kind === 'shutdown' && h.from === ROOT_ISSUER && (this.#state.state === 'alive' || this.#state.state === 'growing')) {
          void this.stop('shutdown hormone', { announce: false });
        }
      });
      // The first population is grow's decision: recorded as pending before any cell can
      // look, so the newborns' homeostasis does not regrow what is already on its way.
      // Records left by an earlier run of this state dir are replaced (no cell of it lives).
      const seeds = Object.entries(this.genome.tissues).map(([tissue, gene]) => ({ tissue, ids: Array.from({ length: gene.min }, () => newCellId(tissue)) }));
      const due = Date.now() + this.genome.limits.joinTimeoutMs + seeds.reduce((n, s) => n + s.ids.length, 0) * 200;
      for (const { tissue, ids } of seeds) {
        const record = { ...emptyTissueRecord(tissue), epoch: 1, at: Date.now(), by: ROOT_ISSUER, action: 'seed' as const, pending: ids.map((id) => ({ id, host: hostname(), due, how: 'seed' as const })) };
        await homeostasis.put(tissueKey(tissue), packRecord(record));
      }
      for (const { tissue, ids } of seeds) {
        for (const id of ids) {
          throwIfAborted(signal);
          await this.spawn(tissue, id);
        }
      }
      // Unless a stop began meanwhile (a shutdown hormone while we spawned).
      if ((this.#state as OrganismState).state === 'growing') this.#state = { state: 'alive', since: Date.now() };
    } catch (e) {
      await this.stop(`start failed: ${(e as Error).message}`);
      throw e;
    }
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
      v: 1, id: this.id, servers: this.#servers, token: this.#token,
      broker: this.#broker?.pid ? { pid: this.#broker.pid, config: this.#broker.configPath, monitorUrl: this.#broker.monitorUrl } : null,
      grow: self(), genome: this.genome as Genome, genomeHash: genomeHash(this.genome), started: Date.now(),
    };
    writeRecord(this.stateDir, record);
    this.#ownsRecord = true;
  }

  /**
   * Spawns one cell of `tissue`, signed by the root key. `options.fault` (tests and
   * simulations only; never reachable from the CLI or the network) starts it misbehaving.
   */
  async spawn(tissue: string, id?: string, options: { fault?: FaultKind } = {}): Promise<SpawnedCell> {
    if (this.#state.state === 'shutting-down' || this.#state.state === 'stopped') {
      throw new CellularError('CELL_ERR_CLOSED', `organism ${this.id} is ${this.#state.state}: no new cells`);
    }
    const gene = this.genome.tissues[tissue];
    if (!gene) throw new CellularError('CELL_ERR_SPAWN', `no tissue ${JSON.stringify(tissue)} in the genome`);
    // Population: on this host the process table is the truth (a cell killed a moment ago
    // is not a member, one that has not pulsed yet is); elsewhere, the census.
    const host = hostname();
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
    if (ofTissue >= gene.max) {
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

  /** Resolves once the census holds every tissue's min living cells (or throws on timeout). */
  async waitForPopulation(timeoutMs = 15_000): Promise<CensusEntry[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const living = this.observer.census.living().filter((c) => c.state === 'alive');
      const short = Object.entries(this.genome.tissues).filter(([t, g]) => living.filter((c) => c.tissue === t).length < g.min);
      if (short.length === 0) {
        await this.#clearSeeds(new Set(living.map((c) => c.id)));
        return living;
      }
      if (Date.now() > end) {
        throw new CellularError('CELL_ERR_SPAWN', `census did not reach the genome within ${timeoutMs} ms; short: ${short.map(([t]) => t).join(', ')} (see ${join(this.stateDir, 'logs')})`);
      }
      await sleep(25);
    }
  }

  /**
   * The first cells are born: take them off their tissues' pending lists, so no cell born
   * later (which never saw them) mistakes them for births that failed, or waits for them.
   */
  async #clearSeeds(born: Set<string>): Promise<void> {
    const kv = this.#homeostasis;
    if (!kv) return;
    for (const tissue of Object.keys(this.genome.tissues)) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const current = await readTissueRecord(kv, tissue).catch(() => null);
        if (!current) break;
        const { record, revision } = current;
        const pending = record.pending.filter((p) => !(p.how === 'seed' && born.has(p.id)));
        if (pending.length === record.pending.length) break;
        try {
          await kv.update(tissueKey(tissue), packRecord({ ...record, pending }), revision);
          break;
        } catch {
          // a cell wrote meanwhile: read again
        }
      }
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
    const observer = this.#observer;
    let stragglers = 0;
    if (observer) {
      if (announce) {
        try {
          observer.bus.publish('shutdown', { reason });
          await observer.nc.flush();
        } catch {
          // The broker may be gone already; the pid sweep below still ends every cell.
        }
      }
      this.#say(`shutdown: ${reason}; waiting for cells to drain…`);
    }
    if (this.#id !== undefined) {
      const swept = await sweepCells({
        organism: this.#id, timeoutMs: this.genome.limits.shutdownTimeoutMs, intervalMs: this.genome.limits.pulseIntervalMs,
        reason, say: (l) => this.#say(l), ...(observer ? { observer } : {}),
      });
      stragglers = swept.killed;
    }
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
