/**
 * How a cell adds a cell: it recruits an idle stem cell (a request; the stem loads the
 * tissue's DNA in place, in milliseconds) or it divides: it signs a child's lineage
 * certificate with its own key, spending one unit of its replication budget, and spawns
 * the child process.
 */
import type { KeyObject } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { RequestError, type NatsConnection } from '@nats-io/transport-node';
import { CellularError } from '../organism/wire/errors.ts';
import { packetAccess } from '../organism/kernel/access.ts';
import type { Genome } from '../organism/kernel/genome/index.ts';
import type { Namespace } from '../organism/kernel/namespace.ts';
import { openReply, pack } from '../organism/kernel/reply.ts';
import type { BirthPacket } from './birth-packet.ts';
import { spawnCell, type SpawnedCell } from './spawn.ts';
import type { Certificate } from '../organism/kernel/lineage.ts';
import { fromHex } from '../organism/kernel/keys.ts';

/** How long a stem may take to get its new credential from the mint (MINT_TIMEOUT_MS) and say yes. */
const MINT_TIMEOUT_MS = 5_000;
const RECRUIT_TIMEOUT_MS = MINT_TIMEOUT_MS + 1_000;

export interface RecruitRequest {
  tissue: string;
  /** The recruiting cell and the epoch of the decision it won. */
  by: string;
  epoch: number;
}

/** Checks a recruit request from the wire. */
export function parseRecruit(value: unknown): RecruitRequest {
  const r = value as Record<string, unknown> | undefined;
  if (typeof r !== 'object' || r === null || typeof r.tissue !== 'string' || r.tissue.length > 32 || typeof r.by !== 'string' || r.by.length > 64 || typeof r.epoch !== 'number' || !Number.isSafeInteger(r.epoch) || r.epoch < 0) {
    throw new CellularError('TISSUE_ERR_BAD_REQUEST', 'differentiate expects {tissue: string, by: string, epoch: integer ≥ 0}');
  }
  return { tissue: r.tissue, by: r.by, epoch: r.epoch };
}

export interface MitosisDeps {
  nc: NatsConnection;
  ns: Namespace;
  packet: BirthPacket;
  genome: Readonly<Genome>;
  key: KeyObject;
  /** The cell's certificate generation and budget at birth. */
  generation: number;
  budget: number;
  lineage: Promise<KV | undefined>;
}

export class Mitosis {
  readonly #d: MitosisDeps;
  #spent = 0;

  constructor(deps: MitosisDeps) {
    this.#d = deps;
  }

  /** Replication budget left to this cell. */
  get budget(): number {
    return Math.max(0, this.#d.budget - this.#spent);
  }

  /**
   * Asks stem cell `stem` to become `tissue`; resolves once it accepted. Rejects with the
   * stem's own error if it said no or with HOMEOSTASIS_ERR_DIFFERENTIATE if it is gone (it is
   * not becoming anything: spawn instead), and with HOMEOSTASIS_ERR_UNANSWERED if no answer
   * came in time: the stem may be waiting for its new credential and differentiate after
   * all, so a recruiter that spawned in its place would make one cell too many.
   */
  async recruit(stem: string, request: RecruitRequest, timeoutMs = RECRUIT_TIMEOUT_MS): Promise<void> {
    let reply;
    try {
      reply = await this.#d.nc.request(this.#d.ns.cell(stem, 'differentiate'), pack(request), { timeout: timeoutMs });
    } catch (cause) {
      if (cause instanceof RequestError && cause.isNoResponders()) throw new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', `stem cell ${stem} is gone (nobody answers for it)`, { cause });
      throw new CellularError('HOMEOSTASIS_ERR_UNANSWERED', `stem cell ${stem} did not answer within ${timeoutMs} ms (${(cause as Error).message})`, { cause });
    }
    openReply(reply.data); // throws the stem's error, rebuilt
  }

  /** Divides: a child of `tissue`, certified by this cell. Spends one unit of budget, even if the child dies young. */
  async divide(tissue: string, id: string, onExit?: (code: number | null, signal: NodeJS.Signals | null) => void): Promise<SpawnedCell> {
    const budget = this.budget;
    if (budget < 1) throw new CellularError('HOMEOSTASIS_ERR_REFUSED', `${this.#d.packet.cell.id} has no replication budget left (Hayflick limit)`);
    const lineage = await this.#d.lineage;
    if (!lineage) throw new CellularError('STORE_ERR_SETUP', 'the lineage bucket is unreachable: a child could not be certified');
    const p = this.#d.packet;
    this.#spent++;
    return spawnCell({
      organism: p.organism, access: packetAccess(p), genome: this.#d.genome, stateDir: p.stateDir,
      rootPub: fromHex(p.rootPub), maker: { id: p.cell.id, key: this.#d.key, generation: this.#d.generation, budget },
      tissue, lineage, id, host: p.cell.host, ...(p.genomeDir ? { baseDir: p.genomeDir } : {}), ...(onExit ? { onExit } : {}),
      // Operator mode: the mint (any host's grow) checks the certificate's chain and issues the child's JWT.
      ...(p.jwt ? { credential: (_cert: Certificate, packed: Uint8Array) => this.mint({ op: 'child', cert: packed }) } : {}),
    });
  }

  /** Asks the mint for a credential (operator mode): a child's, or this stem cell's new tissue's. */
  async mint(request: { op: 'child'; cert: Uint8Array } | { op: 'differentiate'; cell: string; tissue: string }, timeoutMs = MINT_TIMEOUT_MS): Promise<string> {
    const reply = await this.#d.nc.request(this.#d.ns.mint, pack(request), { timeout: timeoutMs });
    return openReply<{ jwt: string }>(reply.data).jwt;
  }
}
