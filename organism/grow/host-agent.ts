/**
 * The host agent: grow, on every host, answers growth requests for its host
 * (`org.<id>.place.<host>`, cells/placement.ts). A cell on another host won a homeostasis
 * decision that placed a new cell here; only a process on this host can fork it. The
 * request is honoured only if the tissue's record really holds that cell as pending for
 * this host (so no one can make cells here at will), and if the host has room.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { SpawnedCell } from '../../cells/spawn.ts';
import { hostRoom } from '../../cells/atp.ts';
import { parsePlaceRequest } from '../../cells/placement.ts';
import type { CensusEntry } from '../kernel/census.ts';
import { CellularError } from '../wire/errors.ts';
import type { Limits } from '../kernel/genome/index.ts';
import { readTissueRecord } from '../kernel/homeostasis-record.ts';
import type { Namespace } from '../kernel/namespace.ts';
import { packError, packReply, unpack } from '../kernel/reply.ts';

export interface HostAgentDeps {
  nc: NatsConnection;
  ns: Namespace;
  host: string;
  homeostasis: KV;
  limits: Pick<Limits, 'cellsPerHost' | 'rssPerHostMb'>;
  census: () => CensusEntry[];
  /** Makes the cell (Organism.spawn: it checks tissues.<t>.max and limits.cellsPerHost against the process table). */
  spawn: (tissue: string, id: string) => Promise<SpawnedCell>;
  say: (line: string) => void;
}

export class HostAgent {
  readonly #d: HostAgentDeps;
  #sub: Subscription | undefined;
  /** Requests answered: made, refused. */
  readonly stats = { made: 0, refused: 0 };
  readonly #made = new Map<string, number>();

  constructor(deps: HostAgentDeps) {
    this.#d = deps;
  }

  start(): void {
    if (this.#sub) return;
    this.#sub = this.#d.nc.subscribe(this.#d.ns.place(this.#d.host), {
      callback: (err, msg) => {
        if (err) return;
        void this.#handle(msg.data).then(
          (pid) => msg.respond(packReply({ pid })),
          (e: unknown) => {
            this.stats.refused++;
            msg.respond(packError(e));
          },
        );
      },
    });
  }

  async #handle(data: Uint8Array): Promise<number> {
    const r = parsePlaceRequest(unpack(data, 'TISSUE_ERR_BAD_REQUEST'));
    const again = this.#made.get(r.id);
    if (again !== undefined) return again; // a retried request: made once
    const { record } = await readTissueRecord(this.#d.homeostasis, r.tissue);
    const now = Date.now();
    const mine = record.pending.find((p) => p.id === r.id && p.host === this.#d.host && p.how === 'spawn' && p.due > now);
    if (!mine) throw new CellularError('PLACEMENT_ERR_REFUSED', `${r.id} is not a pending ${r.tissue} cell placed on ${this.#d.host} in the tissue's record (epoch ${record.epoch})`);
    const pending = record.pending.filter((p) => p.id !== r.id);
    const room = hostRoom(this.#d.census(), pending, this.#d.host, this.#d.limits);
    if (room.cells < 1 || room.memory < 1) {
      throw new CellularError('PLACEMENT_ERR_REFUSED', `${this.#d.host} is full: ${room.living} cells (limits.cellsPerHost ${this.#d.limits.cellsPerHost}), ${room.rssMb} MiB (limits.rssPerHostMb ${this.#d.limits.rssPerHostMb})`);
    }
    const cell = await this.#d.spawn(r.tissue, r.id);
    this.#made.set(r.id, cell.pid);
    if (this.#made.size > 1024) this.#made.delete(this.#made.keys().next().value!);
    this.stats.made++;
    this.#d.say(`placed here: ${r.id} (pid ${cell.pid}), decided by ${r.by} at epoch ${r.epoch}`);
    return cell.pid;
  }

  close(): void {
    this.#sub?.unsubscribe();
    this.#sub = undefined;
  }
}
