/**
 * The DNA of a tissue: one file that declares the tissue's name, its NATS endpoints and
 * how it starts, through `defineTissue`. The genome names which file a tissue uses; the
 * cell runtime loads it, calls `start` at birth, serves the endpoints in a queue group named
 * after the tissue (so the tissue's cells share the work), and drains what `start` made.
 * A tissue keeps no module state: what it holds belongs to the instance `start` returns.
 */
import type { KeyObject } from 'node:crypto';
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
  /** In-flight and queued work; the heart turns it into load. */
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
  /** The verified public key of a cell this cell knows, or the root's (`root`). */
  keyOf(id: string): KeyObject | undefined;
  /**
   * A cell's verified lineage certificate, looked up in the lineage bucket if this cell does
   * not know it yet (a cell hears no pulses: an idle peer born before it says nothing it would
   * learn the certificate from).
   */
  findCert(id: string): Promise<Certificate | undefined>;
  /** What this cell's immune system holds against `id` (undefined: nothing, or immunity off). */
  evidenceAgainst(id: string): LedgerView | undefined;
}

/** An endpoint handler gets the decoded request and returns the reply value (or throws). */
export type EndpointHandler = (request: unknown, ctx: TissueContext) => unknown;
export type Endpoints = Readonly<Record<string, EndpointHandler>>;

/** A started tissue in one cell: it owns its state, and the runtime asks it for its endpoints, counters and drain. */
export interface TissueInstance {
  /** Endpoints that use the instance's state, served beside the tissue's declared ones. */
  readonly endpoints?: Endpoints;
  /** The tissue's own counters, shown under `tissueStats` in the cell's `stats` reply. */
  stats?(): Record<string, unknown>;
  /** Called when the cell drains: finish or hand over work. Endpoints stop right after. */
  drain?(): void | Promise<void>;
}

export interface Tissue {
  /** Default tissue name; the genome's key is what the cell is called by. */
  name: string;
  /** Endpoints that need no state, served at `org.<id>.tissue.<tissue>.<endpoint>` in queue group `<tissue>`. */
  endpoints?: Endpoints;
  /**
   * Work (inflight + queued) at which this tissue counts as fully loaded.
   * @default 16
   */
  capacity?: number;
  /** Called once the cell is connected, before its birth is announced; returns the instance that holds the tissue's state. */
  start?(ctx: TissueContext): void | TissueInstance | Promise<void | TissueInstance>;
}

const ENDPOINT = /^[a-z][a-z0-9-]{0,31}$/;

/** Checks endpoint names and handlers (a tissue's declared ones, or an instance's). */
function checkEndpoints(tissue: string, endpoints: unknown): asserts endpoints is Endpoints | undefined {
  if (endpoints === undefined) return;
  if (typeof endpoints !== 'object' || endpoints === null) throw new TypeError(`defineTissue(${tissue}): endpoints must be an object of handlers`);
  for (const [name, handler] of Object.entries(endpoints)) {
    if (!ENDPOINT.test(name)) throw new TypeError(`defineTissue(${tissue}): endpoint name ${JSON.stringify(name)} must be lowercase letters, digits and dashes`);
    if (typeof handler !== 'function') throw new TypeError(`defineTissue(${tissue}): endpoint ${name} must be a function`);
  }
}

/**
 * `drain` and `stats` belong to what `start` returns (the instance owns the state they read);
 * on the tissue itself they would never be called, so a DNA file that still has them fails
 * at load instead of silently never draining.
 */
function checkNoHooks(tissue: object): void {
  for (const hook of ['drain', 'stats'] as const) {
    if (hook in tissue) throw new TypeError(`defineTissue(${String((tissue as Tissue).name)}): ${hook}() belongs on the object start() returns, not on the tissue`);
  }
}

/** Declares a tissue; checks its shape so a bad DNA file fails at load, not at first request. */
export function defineTissue(tissue: Tissue): Tissue {
  if (typeof tissue.name !== 'string' || tissue.name.length === 0) throw new TypeError('defineTissue: name must be a non-empty string');
  checkEndpoints(tissue.name, tissue.endpoints);
  checkNoHooks(tissue);
  if (tissue.capacity !== undefined && (!Number.isInteger(tissue.capacity) || tissue.capacity < 1)) {
    throw new TypeError(`defineTissue(${tissue.name}): capacity must be a positive integer, received ${tissue.capacity}`);
  }
  return Object.freeze({ ...tissue });
}

/**
 * The endpoints a started tissue serves: its declared ones and its instance's. A name
 * declared twice, or a bad instance, is a TypeError (the cell's start fails, like a bad DNA file).
 */
export function endpointsOf(tissue: Tissue, instance: TissueInstance): Endpoints {
  checkEndpoints(tissue.name, instance.endpoints);
  for (const name of Object.keys(instance.endpoints ?? {})) {
    if (Object.hasOwn(tissue.endpoints ?? {}, name)) throw new TypeError(`defineTissue(${tissue.name}): endpoint ${name} is both declared and returned by start`);
  }
  return { ...tissue.endpoints, ...instance.endpoints };
}

export function isTissue(value: unknown): value is Tissue {
  return typeof value === 'object' && value !== null && typeof (value as Tissue).name === 'string';
}
