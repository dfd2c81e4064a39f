/**
 * An organism, as grown by `grow`: its broker (started or joined), its stores, its root
 * key, the first cells of every tissue, and the propagated shutdown that leaves nothing
 * behind. The CLI is a thin shell around this class; tests and simulations use it too.
 */
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cellMarkers, spawnCell, type SpawnedCell } from '../cells/spawn.ts';
import { sweepCells } from './sweep.ts';
import { Broker, ensureNatsServer } from './broker.ts';
import type { CensusEntry } from './census.ts';
import { CellularError, throwIfAborted } from './errors.ts';
import { genomeHash, type Genome } from './genome.ts';
import { commandLineOf, isProcessOf, signalIfOurs } from './processes.ts';
import { organismId, ownerAlive, readRecord, removeRecord, writeRecord, type OrganismRecord } from './record.ts';
import { loadOrCreateRootKey, type RootKey } from './root-key.ts';
import { Observer } from './observer.ts';
import { ensureStores } from './stores.ts';
import { ROOT_ISSUER } from './lineage.ts';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Namespace } from './namespace.ts';

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
  readonly id: string;
  readonly spawned = new Map<string, SpawnedCell>();
  #o: OrganismOptions;
  #state: OrganismState = { state: 'idle' };
  #broker: Broker | undefined;
  #observer: Observer | undefined;
  #rootKey: RootKey | undefined;
  #lineage: KV | undefined;
  #nc: NatsConnection | undefined;
  #servers: string[] = [];
  #stopping: Promise<OrganismState> | undefined;
  #ownsRecord = false;

  constructor(options: OrganismOptions) {
    this.#o = options;
    this.stateDir = resolve(options.stateDir);
    this.genome = options.genome;
    this.id = organismId(this.stateDir, options.id);
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
  get broker(): Broker | undefined {
    return this.#broker;
  }
  get observer(): Observer {
    if (!this.#observer) throw new CellularError('CELL_ERR_CLOSED', 'organism not started');
    return this.#observer;
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
    const previous = readRecord(this.stateDir);
    if (previous && ownerAlive(previous)) {
      throw new CellularError('STATE_ERR_LOCKED', `grow (pid ${previous.grow.pid}) already runs with state dir ${this.stateDir}; stop it with: npx cellular stop --state-dir ${this.stateDir}`);
    }
    this.#rootKey = loadOrCreateRootKey(this.stateDir);
    if (this.#o.servers && this.#o.servers.length > 0) {
      this.#servers = [...this.#o.servers];
      this.#say(`joining NATS at ${this.#servers.join(', ')} (no broker started)`);
    } else {
      const binary = ensureNatsServer({ autoInstall: this.#o.autoInstall ?? true, log: (l) => this.#say(l) });
      this.#broker = new Broker({ gene: this.genome.broker, dir: join(this.stateDir, 'broker'), name: `cellular-${this.id}`, binary, log: (l) => this.#say(l), ...(signal ? { signal } : {}) });
      await this.#broker.start();
      this.#servers = [this.#broker.url];
    }
    try {
      try {
        this.#nc = await connect({ servers: this.#servers, name: `grow/${this.id}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      } catch (cause) {
        throw new CellularError('BROKER_ERR_CONNECT', `cannot reach NATS at ${this.#servers.join(', ')}: ${(cause as Error).message}`, { cause });
      }
      // Stores first: the observer's certificate book binds to the lineage bucket.
      const { lineage } = await ensureStores(this.#nc, new Namespace(this.id));
      this.#lineage = lineage;
      this.#observer = await Observer.open({
        servers: this.#servers, organism: this.id, rootPub: this.#rootKey.pub, rootKey: this.#rootKey, limits: this.genome.limits, nc: this.#nc,
      });
      this.#writeRecord();
      // The operator's `stop` (a root-signed shutdown) ends this grow too.
      this.#observer.bus.on((h) => {
        if (h.kind === 'shutdown' && h.from === ROOT_ISSUER && this.#state.state === 'alive') void this.stop('shutdown hormone', { announce: false });
      });
      for (const [tissue, gene] of Object.entries(this.genome.tissues)) {
        for (let i = 0; i < gene.min; i++) {
          throwIfAborted(signal);
          await this.spawn(tissue);
        }
      }
      this.#state = { state: 'alive', since: Date.now() };
    } catch (e) {
      await this.stop(`start failed: ${(e as Error).message}`);
      throw e;
    }
  }

  #writeRecord(): void {
    const record: OrganismRecord = {
      v: 1, id: this.id, servers: this.#servers,
      broker: this.#broker?.pid ? { pid: this.#broker.pid, config: this.#broker.configPath, monitorUrl: this.#broker.monitorUrl } : null,
      grow: { pid: process.pid, cmdline: commandLineOf(process.pid) ?? '' }, genome: genomeHash(this.genome), started: Date.now(),
    };
    writeRecord(this.stateDir, record);
    this.#ownsRecord = true;
  }

  /** Spawns one cell of `tissue`, signed by the root key. */
  async spawn(tissue: string): Promise<SpawnedCell> {
    if (this.#state.state === 'shutting-down' || this.#state.state === 'stopped') {
      throw new CellularError('CELL_ERR_CLOSED', `organism ${this.id} is ${this.#state.state}: no new cells`);
    }
    const gene = this.genome.tissues[tissue];
    if (!gene) throw new CellularError('CELL_ERR_SPAWN', `no tissue ${JSON.stringify(tissue)} in the genome`);
    // Population = the census's living cells plus our spawns it has not heard from yet.
    // A spawn whose process is gone no longer counts (and is forgotten).
    for (const [id, c] of this.spawned) if (!isProcessOf(c.pid, c.markers)) this.spawned.delete(id);
    const members = new Map<string, { tissue: string; host: string }>();
    const host = hostname();
    for (const c of this.#observer?.census.living() ?? []) {
      // On this host the process table is the truth: a cell killed a moment ago is not a member.
      if (c.host !== host || isProcessOf(c.pid, cellMarkers(c.id))) members.set(c.id, c);
    }
    for (const c of this.spawned.values()) if (!members.has(c.id)) members.set(c.id, { tissue: c.cert.tissue, host: c.cert.host });
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
      organism: this.id, servers: this.#servers, genome: this.genome, stateDir: this.stateDir, rootPub: this.#rootKey!.pub,
      maker: { id: ROOT_ISSUER, key: this.#rootKey!.privateKey, generation: -1, budget: 0 },
      tissue, lineage: this.#lineage!, ...(this.#o.genomeDir ? { baseDir: this.#o.genomeDir } : {}),
    });
    this.spawned.set(cell.id, cell);
    return cell;
  }

  /** Resolves once the census holds every tissue's min living cells (or throws on timeout). */
  async waitForPopulation(timeoutMs = 15_000): Promise<CensusEntry[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const living = this.observer.census.living().filter((c) => c.state === 'alive');
      const short = Object.entries(this.genome.tissues).filter(([t, g]) => living.filter((c) => c.tissue === t).length < g.min);
      if (short.length === 0) return living;
      if (Date.now() > end) {
        throw new CellularError('CELL_ERR_SPAWN', `census did not reach the genome within ${timeoutMs} ms; short: ${short.map(([t]) => t).join(', ')} (see ${join(this.stateDir, 'logs')})`);
      }
      await sleep(25);
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
      const swept = await sweepCells({
        observer, timeoutMs: this.genome.limits.shutdownTimeoutMs, intervalMs: this.genome.limits.pulseIntervalMs,
        spawned: [...this.spawned.values()], reason, say: (l) => this.#say(l),
      });
      stragglers = swept.killed;
      await observer.close();
      this.#observer = undefined;
    }
    await this.#nc?.close().catch(() => {});
    if (!observer) {
      for (const c of this.spawned.values()) if (signalIfOurs(c.pid, c.markers, 'SIGKILL')) stragglers++;
    }
    if (this.#broker) {
      await this.#broker.close();
      this.#say('nats-server stopped');
    }
    // Only our own record: a grow refused by the lock must not erase the running one's.
    if (this.#ownsRecord) removeRecord(this.stateDir);
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
    for (const c of this.spawned.values()) if (signalIfOurs(c.pid, c.markers, 'SIGTERM')) signalled++;
    const pid = this.#broker?.pid;
    if (pid !== undefined && signalIfOurs(pid, ['nats-server', this.#broker!.configPath], 'SIGTERM')) signalled++;
    this.#state = { state: 'stopped', stragglers: signalled };
    return signalled;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop('disposed');
  }
}
