/**
 * The organism's JetStream state, created idempotently at every grow: the lineage bucket
 * (every cell's certificate, so a late observer can verify a cell it never saw born) and
 * the flight recorder (every hormone but pulses, and the dashboard's census frames, kept
 * within the genome's dashboard.recorderMaxAgeMs / recorderMaxBytes), and the
 * homeostasis bucket (one compare-and-set record per tissue: organism/kernel/homeostasis-record.ts).
 */
import { jetstream, jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Namespace } from './namespace.ts';
import { CellularError } from '../wire/errors.ts';
import { HOMEOSTASIS_BUCKET } from './homeostasis-record.ts';
import { tuneStream } from './cluster.ts';

export const LINEAGE_BUCKET = 'lineage';
/** The flight recorder stream (docs/dashboard.md). */
export const RECORDER_STREAM = 'recorder';

/** Hormones the recorder keeps: every kind but pulses (those are summed up in census frames). */
export const RECORDED_KINDS = ['birth', 'death', 'shutdown', 'decision', 'differentiate', 'mitosis', 'accuse', 'vote', 'verdict', 'toxin'] as const;

export interface StoreOptions {
  /** JetStream replicas; 1 on a single server. @default 1 */
  replicas?: number;
  /** How long the flight recorder keeps what it holds, ms. @default 1800000 */
  recorderMaxAgeMs?: number;
  /** The flight recorder's size cap, bytes. @default 67108864 */
  recorderMaxBytes?: number;
}

/** Creates (or binds to) every stream and bucket; safe to run on every start. */
export async function ensureStores(nc: NatsConnection, ns: Namespace, options: StoreOptions = {}): Promise<{ lineage: KV; homeostasis: KV }> {
  try {
    return await setUp(nc, ns, options);
  } catch (cause) {
    throw new CellularError('STORE_ERR_SETUP', `cannot create the organism's streams and buckets (is JetStream enabled on the server?): ${(cause as Error).message}`, { cause });
  }
}

async function setUp(nc: NatsConnection, ns: Namespace, options: StoreOptions): Promise<{ lineage: KV; homeostasis: KV }> {
  const replicas = options.replicas ?? 1;
  const jsm = await jetstreamManager(nc);
  // The broker records the signed hormones themselves: nothing in a cell's path waits on it.
  const recorder = {
    name: ns.stream(RECORDER_STREAM),
    subjects: [...RECORDED_KINDS.map((k) => ns.hormone(k, '*')), ns.recorder('>')],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: (options.recorderMaxAgeMs ?? 30 * 60_000) * 1e6, // ns
    max_bytes: options.recorderMaxBytes ?? 64 * 1024 * 1024,
    num_replicas: replicas,
  };
  // The stream that held births and deaths before the flight recorder took its subjects.
  await jsm.streams.delete(ns.stream('events')).catch(() => false);
  try {
    const info = await jsm.streams.info(recorder.name);
    // Never fewer replicas than it has (a member down at this grow is not a smaller cluster).
    await jsm.streams.update(recorder.name, { ...recorder, num_replicas: Math.max(replicas, info.config.num_replicas) });
  } catch {
    await jsm.streams.add(recorder);
  }
  // Replicated: reads from the leader only (allow_direct off; see cluster.ts tuneStream).
  const direct = replicas === 1;
  const lineage = await new Kvm(nc).create(ns.bucket(LINEAGE_BUCKET), { history: 1, replicas, max_bytes: 64 * 1024 * 1024, storage: StorageType.File, allow_direct: direct });
  // Compare-and-set needs no history; a short one shows the last decisions when debugging.
  const homeostasis = await new Kvm(nc).create(ns.bucket(HOMEOSTASIS_BUCKET), { history: 5, replicas, max_bytes: 16 * 1024 * 1024, storage: StorageType.File, allow_direct: direct });
  // Buckets made by an earlier grow (a smaller cluster, older settings) keep theirs on create(): tune them.
  for (const bucket of [LINEAGE_BUCKET, HOMEOSTASIS_BUCKET]) await tuneStream(jsm, `KV_${ns.bucket(bucket)}`, replicas, !direct);
  return { lineage, homeostasis };
}

/**
 * Binds to the homeostasis bucket without creating it (cells). `timeoutMs` bounds each write:
 * while a partition's majority elects the bucket's leader a write is answered by nobody, and
 * a cell waiting out the client's default 5 s for each attempt regrew the cut-off host's
 * cells seconds after the store could take writes again. A write that lands after its
 * timeout only costs a decision: the planners see the record moved and plan again.
 */
export async function openHomeostasis(nc: NatsConnection, ns: Namespace, timeoutMs?: number): Promise<KV> {
  return kvm(nc, timeoutMs).open(ns.bucket(HOMEOSTASIS_BUCKET));
}

/** Binds to the lineage bucket without creating it (cells and CLI observers); `timeoutMs` bounds each request (see openHomeostasis). */
export async function openLineage(nc: NatsConnection, ns: Namespace, timeoutMs?: number): Promise<KV> {
  return kvm(nc, timeoutMs).open(ns.bucket(LINEAGE_BUCKET));
}

/** A bucket manager whose requests wait `timeoutMs` (the client's default without one). */
function kvm(nc: NatsConnection, timeoutMs: number | undefined): Kvm {
  return new Kvm(timeoutMs === undefined ? nc : jetstream(nc, { timeout: timeoutMs }));
}
