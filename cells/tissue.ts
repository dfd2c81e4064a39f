/**
 * The DNA of a tissue: one file that declares the tissue's name, its NATS endpoints and
 * its lifecycle hooks through `defineTissue`. The genome names which file a tissue uses;
 * the cell runtime loads it, serves the endpoints in a queue group named after the tissue
 * (so the tissue's cells share the work) and calls the hooks at birth and at drain.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Census } from '../organism/kernel/census.ts';
import type { Genome } from '../organism/kernel/genome/index.ts';
import type { Hormone } from '../organism/kernel/hormone.ts';
import type { Certificate } from '../organism/kernel/lineage.ts';
import type { LedgerView } from './immune/evidence.ts';
import type { Namespace } from '../organism/kernel/namespace.ts';
import type { Logger } from './logger.ts';
import type { WorkMeter } from './work-meter.ts';

export interface CellIdentity {
  id: string;
  tissue: string;
  parent: string | null;
  host: string;
  pid: number;
  born: number;
}

export interface TissueContext {
  cell: Readonly<CellIdentity>;
  genome: Readonly<Genome>;
  ns: Namespace;
  nc: NatsConnection;
  log: Logger;
  census: Census;
  /** In-flight and queued work; the pacemaker turns it into load. */
  work: WorkMeter;
  /** Aborted when the cell starts to drain: stop taking new work. */
  signal: AbortSignal;
  /** Announces the URL this cell listens on (shown in the census). */
  setUrl(url: string | null): void;
  /** The organism's state dir on this host (the dashboard reads its token there). */
  stateDir: string;
  /** Every hormone the cell admits (verified, in the vocabulary), as it arrives. */
  onHormone(listener: (h: Hormone) => void): () => void;
  /** A cell's verified lineage certificate, if this cell knows it. */
  certOf(id: string): Certificate | undefined;
  /** What this cell's immune system holds against `id` (undefined: nothing, or immunity off). */
  evidenceAgainst(id: string): LedgerView | undefined;
}

/** An endpoint handler gets the decoded request and returns the reply value (or throws). */
export type EndpointHandler = (request: unknown, ctx: TissueContext) => unknown;

export interface Tissue {
  /** Default tissue name; the genome's key is what the cell is called by. */
  name: string;
  /** Served at `org.<id>.tissue.<tissue>.<endpoint>` in queue group `<tissue>`. */
  endpoints?: Record<string, EndpointHandler>;
  /**
   * Work (inflight + queued) at which this tissue counts as fully loaded.
   * @default 16
   */
  capacity?: number;
  /** Called once the cell is connected, before its birth is announced. */
  start?(ctx: TissueContext): void | Promise<void>;
  /** Called when the cell drains: finish or hand over work. Endpoints stop right after. */
  drain?(ctx: TissueContext): void | Promise<void>;
  /** The tissue's own counters, shown under `tissueStats` in the cell's `stats` reply. */
  stats?(): Record<string, unknown>;
}

const ENDPOINT = /^[a-z][a-z0-9-]{0,31}$/;

/** Declares a tissue; checks its shape so a bad DNA file fails at load, not at first request. */
export function defineTissue(tissue: Tissue): Tissue {
  if (typeof tissue.name !== 'string' || tissue.name.length === 0) throw new TypeError('defineTissue: name must be a non-empty string');
  for (const [name, handler] of Object.entries(tissue.endpoints ?? {})) {
    if (!ENDPOINT.test(name)) throw new TypeError(`defineTissue(${tissue.name}): endpoint name ${JSON.stringify(name)} must be lowercase letters, digits and dashes`);
    if (typeof handler !== 'function') throw new TypeError(`defineTissue(${tissue.name}): endpoint ${name} must be a function`);
  }
  if (tissue.capacity !== undefined && (!Number.isInteger(tissue.capacity) || tissue.capacity < 1)) {
    throw new TypeError(`defineTissue(${tissue.name}): capacity must be a positive integer, received ${tissue.capacity}`);
  }
  return Object.freeze({ ...tissue });
}

export function isTissue(value: unknown): value is Tissue {
  return typeof value === 'object' && value !== null && typeof (value as Tissue).name === 'string';
}
