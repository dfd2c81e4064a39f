/**
 * The operator: grow's side of the dashboard's controls. It holds what a cell must not — the
 * root key (to spawn, and to stop the organism) and the right to kill by pid on this host —
 * and does a control only when the request carries the dashboard token. Every control it
 * does or refuses is written to the flight recorder, so the dashboard's log shows it.
 */
import { hostName } from '../kernel/host.ts';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { SpawnedCell } from '../../cells/spawn.ts';
import type { FaultKind } from '../../cells/immune/faults.ts';
import type { Tissue } from '../../cells/tissue.ts';
import { LIVE_SCENARIOS, pause, type ChaosContext } from '../chaos/scenarios.ts';
import type { Shape } from '../chaos/load-shape.ts';
import { runLoad } from '../chaos/load.ts';
import { seeded } from '../chaos/seeded.ts';
import type { CensusEntry } from '../kernel/census.ts';
import { describeControl, parseControl, type Control, type ControlRecord } from '../wire/control.ts';
import { ControlVerifier, type SignedControl } from '../kernel/dashboard-token.ts';
import { CellularError } from '../wire/errors.ts';
import type { Genome } from '../kernel/genome/index.ts';
import type { Namespace } from '../kernel/namespace.ts';
import { signalCell } from '../kernel/processes.ts';
import { openReply, pack, packError, packReply, unpack } from '../kernel/reply.ts';

export interface OperatorDeps {
  nc: NatsConnection;
  ns: Namespace;
  genome: Readonly<Genome>;
  token: string;
  living(): CensusEntry[];
  spawn(tissue: string, fault: FaultKind): Promise<SpawnedCell>;
  /** A tissue's DNA as its cells load it: what it declares it serves needs no living cell. */
  tissueModule(tissue: string): Promise<Tissue>;
  stop(reason: string): void;
  /** kill -9 and restart of the private broker (the broker-loss scenario); absent when grow joined a NATS. */
  crashBroker?(): Promise<void>;
  restartBroker?(): Promise<void>;
  say?(line: string): void;
}

/** Request to the operator: the control, who relays it, and proof of the dashboard token (never the token). */
export type OperatorRequest = SignedControl;

export class Operator {
  readonly #d: OperatorDeps;
  readonly #verifier: ControlVerifier;
  readonly #abort = new AbortController();
  /** Loads running, by tissue (one each), and the one chaos scenario that may run. */
  readonly #loads = new Map<string, Promise<void>>();
  #chaos: string | undefined;
  #sub: Subscription | undefined;
  #hostSub: Subscription | undefined;

  constructor(deps: OperatorDeps) {
    this.#d = deps;
    this.#verifier = new ControlVerifier(deps.token, deps.ns.id);
  }

  start(): void {
    const callback = (_e: unknown, msg: Msg) => {
      void this.#handle(msg.data).then(
        (message) => msg.respond(packReply({ message })),
        (e: unknown) => msg.respond(packError(e, 'operator')),
      );
    };
    // One grow per host runs an operator: a control goes to one of them (queue group), and
    // a kill of a cell on another host is relayed to that host's own (only it can signal).
    this.#sub = this.#d.nc.subscribe(this.#d.ns.operator, { queue: 'operator', callback });
    this.#hostSub = this.#d.nc.subscribe(this.#d.ns.operatorOn(hostName()), { callback });
  }

  close(): void {
    this.#abort.abort();
    this.#sub?.unsubscribe();
    this.#hostSub?.unsubscribe();
  }

  /** Hands a request to the operator of `host` (its grow) and gives back its answer. */
  async #relay(host: string, data: Uint8Array): Promise<string> {
    let reply;
    try {
      reply = await this.#d.nc.request(this.#d.ns.operatorOn(host), data, { timeout: 10_000 });
    } catch (cause) {
      throw new CellularError('DASHBOARD_ERR_CONTROL', `no grow on host ${host} answered (${(cause as Error).message})`, { cause });
    }
    return openReply<{ message: string }>(reply.data).message;
  }

  async #handle(data: Uint8Array): Promise<string> {
    const checked = this.#verifier.check(unpack(data, 'TISSUE_ERR_BAD_REQUEST'));
    if (!checked.ok) {
      if (checked.why === 'malformed') throw new CellularError('DASHBOARD_ERR_CONTROL', 'an operator request must be {by, control, at, nonce, mac} (organism/kernel/dashboard-token.ts)');
      const why = { mac: 'the dashboard token is missing or wrong', stale: 'the control is too old (or the clocks differ by more than 30 s)', replayed: 'the control was already carried out once (a replay)' }[checked.why];
      throw new CellularError('DASHBOARD_ERR_TOKEN', `${why}: controls are refused (the dashboard is read-only without its token)`);
    }
    const by = checked.by;
    let control: Control | undefined;
    try {
      control = parseControl(checked.control, this.#d.genome.dashboard);
      if (control.action === 'kill') {
        const cell = this.#cell(control.cell);
        if (cell.host !== hostName()) return await this.#relay(cell.host, data); // recorded there
      }
      const message = await this.#do(control);
      this.#record({ ts: Date.now(), by, control, ok: true, message });
      return message;
    } catch (e) {
      if (control) this.#record({ ts: Date.now(), by, control, ok: false, message: (e as Error).message.slice(0, 500) });
      throw e;
    }
  }

  #record(r: ControlRecord): void {
    this.#d.say?.(`control by ${r.by}: ${describeControl(r.control)} — ${r.ok ? r.message : `refused: ${r.message}`}`);
    try {
      this.#d.nc.publish(this.#d.ns.recorder('control'), pack(r));
    } catch {
      // the broker is going away: the say() line above is the record
    }
  }

  #cell(id: string): CensusEntry {
    const cell = this.#d.living().find((c) => c.id === id);
    if (!cell) throw new CellularError('DASHBOARD_ERR_CONTROL', `no living cell ${id}`);
    return cell;
  }

  /** Signals a cell of this host, after checking its pid is still that cell. */
  #signal(cell: CensusEntry, signal: NodeJS.Signals): boolean {
    return cell.host === hostName() && signalCell(cell.pid, cell.id, this.#d.ns.id, signal);
  }

  async #do(c: Control): Promise<string> {
    const genome = this.#d.genome;
    switch (c.action) {
      case 'kill': {
        const cell = this.#cell(c.cell);
        if (cell.host !== hostName()) throw new CellularError('DASHBOARD_ERR_CONTROL', `${cell.id} lives on host ${cell.host}; this operator kills only on ${hostName()}`);
        if (!this.#signal(cell, 'SIGKILL')) throw new CellularError('DASHBOARD_ERR_CONTROL', `pid ${cell.pid} is not ${cell.id} any more (it died meanwhile)`);
        return `killed ${cell.id} (pid ${cell.pid}) with SIGKILL`;
      }
      case 'inject': {
        if (!genome.tissues[c.tissue]) throw new CellularError('DASHBOARD_ERR_CONTROL', `no tissue ${c.tissue} in the genome`);
        const cell = await this.#d.spawn(c.tissue, c.fault);
        return `spawned ${cell.id} (pid ${cell.pid}) with the ${c.fault} fault`;
      }
      case 'load': {
        const { endpoint, request } = await this.#loadEndpoint(c.tissue);
        if (this.#loads.has(c.tissue)) throw new CellularError('DASHBOARD_ERR_CONTROL', `a load is already running on ${c.tissue}`);
        // Runs on after the answer; the organism's stop aborts it.
        void this.#load(c.tissue, endpoint, request, c.rate, c.seconds, this.#abort.signal);
        return `${c.rate} ${endpoint} requests/s on ${c.tissue} for ${c.seconds} s`;
      }
      case 'chaos': {
        const scenario = LIVE_SCENARIOS.find((x) => x.name === c.scenario);
        if (!scenario) throw new CellularError('DASHBOARD_ERR_CONTROL', `no chaos scenario ${JSON.stringify(c.scenario)} runs on a live organism; scenarios: ${LIVE_SCENARIOS.map((x) => x.name).join(', ')} (the others: npm run chaos)`);
        if (this.#chaos) throw new CellularError('DASHBOARD_ERR_CONTROL', `chaos ${this.#chaos} is still running`);
        this.#chaos = scenario.name;
        const by = `chaos ${scenario.name}`;
        const say = (line: string) => this.#record({ ts: Date.now(), by, control: c, ok: true, message: line });
        // The scenario's own time ends its faults (a monkey stops killing then).
        const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(scenario.defaults.durationS * 1000)]);
        void scenario.run(this.#chaosContext(c.seed, scenario.defaults.durationS, signal, say))
          .catch((e: unknown) => this.#record({ ts: Date.now(), by, control: c, ok: false, message: (e as Error).message }))
          .finally(() => {
            this.#chaos = undefined;
            say('scenario ended');
          });
        return `chaos ${scenario.name} started: ${scenario.description}`;
      }
      case 'shutdown':
        // Answer first: the operator's own connection ends with the organism.
        setTimeout(() => this.#d.stop('shutdown from the dashboard'), 100).unref();
        return 'the organism is shutting down';
    }
  }

  /** What a chaos scenario may do here: the operator's own powers, on this host. */
  #chaosContext(seed: number, durationS: number, signal: AbortSignal, say: (line: string) => void): ChaosContext {
    const unavailable = (what: string) => () => Promise.reject(new CellularError('DASHBOARD_ERR_CONTROL', `${what} is not possible on this organism`));
    return {
      random: seeded(seed), signal, durationMs: durationS * 1000,
      living: (tissue) => this.#d.living().filter((x) => x.state === 'alive' && (tissue === undefined || x.tissue === tissue)),
      signal_: (cell, sig) => this.#signal(cell, sig),
      inject: async (fault, tissue = 'echo') => (await this.#d.spawn(tissue, fault)).id,
      load: async (shape: Shape) => {
        const { endpoint, request } = await this.#loadEndpoint('echo');
        await runLoad({ nc: this.#d.nc, ns: this.#d.ns, tissue: 'echo', endpoint, request, signal, shape });
      },
      crashBroker: this.#d.crashBroker ?? unavailable('crashing the broker (grow joined a NATS it did not start)'),
      restartBroker: this.#d.restartBroker ?? unavailable('restarting the broker'),
      addChatters: unavailable('adding chat clients (npm run chaos runs this scenario)'),
      stopped: (id) => say(`${id} stopped (SIGSTOP)`),
      mark: (label) => say(label),
      say,
      sleep: (ms) => pause(ms, signal),
    };
  }

  /**
   * Where load goes. The tissue's module declares most endpoints, so the answer needs no
   * living cell (one may be dying or just recruited away); only endpoints a tissue returns
   * from its start hook are asked of its living cells, each in turn until one answers.
   */
  async #loadEndpoint(tissue: string): Promise<{ endpoint: string; request: unknown }> {
    let dna: Tissue;
    try {
      dna = await this.#d.tissueModule(tissue);
    } catch (cause) {
      throw new CellularError('DASHBOARD_ERR_CONTROL', `cannot load ${tissue}'s module: ${(cause as Error).message}`, { cause });
    }
    const declared = Object.keys(dna.endpoints ?? {});
    const chosen = loadEndpointOf(declared) ?? (dna.start ? loadEndpointOf(await this.#servedByCells(tissue)) : undefined);
    if (chosen) return chosen;
    throw new CellularError('DASHBOARD_ERR_CONTROL', `${tissue} serves no load endpoint (wait or burn); its load comes from its own clients (receivers: chat sockets)`);
  }

  /** Endpoints the living cells of `tissue` say they serve: the first that answers. */
  async #servedByCells(tissue: string): Promise<string[]> {
    const cells = this.#d.living().filter((c) => c.tissue === tissue && c.state === 'alive');
    if (cells.length === 0) throw new CellularError('DASHBOARD_ERR_CONTROL', `no living ${tissue} cell to say what ${tissue} serves`);
    const failures: string[] = [];
    for (const cell of cells) {
      try {
        return openReply<{ endpoints: string[] }>((await this.#d.nc.request(this.#d.ns.cell(cell.id, 'info'), new Uint8Array(0), { timeout: 2_000 })).data).endpoints;
      } catch (cause) {
        failures.push(`${cell.id}: ${(cause as Error).message}`);
      }
    }
    throw new CellularError('DASHBOARD_ERR_CONTROL', `no ${tissue} cell said what it serves (${failures.join('; ')})`);
  }

  #load(tissue: string, endpoint: string, request: unknown, rate: number, seconds: number, signal: AbortSignal): Promise<void> {
    const run = runLoad({
      nc: this.#d.nc, ns: this.#d.ns, tissue, endpoint, request, signal,
      shape: { name: 'constant', rate, peak: rate, durationMs: seconds * 1000 },
    }).then(() => undefined, () => undefined).finally(() => this.#loads.delete(tissue));
    this.#loads.set(tissue, run);
    return run;
  }
}

/** Work that holds a request without burning CPU is what lets a small host show growth. */
function loadEndpointOf(endpoints: readonly string[]): { endpoint: string; request: unknown } | undefined {
  if (endpoints.includes('wait')) return { endpoint: 'wait', request: { ms: 50 } };
  if (endpoints.includes('burn')) return { endpoint: 'burn', request: { ms: 2 } };
  return undefined;
}
