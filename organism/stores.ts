/**
 * The organism's JetStream state, created idempotently at every grow: the lineage bucket
 * (every cell's certificate, so a late observer can verify a cell it never saw born) and
 * the events stream (births, deaths, shutdowns, decisions: a short durable history), and the
 * homeostasis bucket (one compare-and-set record per tissue: organism/homeostasis-record.ts).
 */
import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Namespace } from './namespace.ts';
import { CellularError } from './errors.ts';
import { HOMEOSTASIS_BUCKET } from './homeostasis-record.ts';

export const LINEAGE_BUCKET = 'lineage';
export const EVENTS_STREAM = 'events';

export interface StoreOptions {
  /** JetStream replicas; 1 on a single server. @default 1 */
  replicas?: number;
}

/** Creates (or binds to) every stream and bucket; safe to run on every start. */
export async function ensureStores(nc: NatsConnection, ns: Namespace, options: StoreOptions = {}): Promise<{ lineage: KV; homeostasis: KV }> {
  try {
    return await setUp(nc, ns, options.replicas ?? 1);
  } catch (cause) {
    throw new CellularError('STORE_ERR_SETUP', `cannot create the organism's streams and buckets (is JetStream enabled on the server?): ${(cause as Error).message}`, { cause });
  }
}

async function setUp(nc: NatsConnection, ns: Namespace, replicas: number): Promise<{ lineage: KV; homeostasis: KV }> {
  const jsm = await jetstreamManager(nc);
  const events = {
    name: ns.stream(EVENTS_STREAM),
    subjects: [ns.hormone('birth'), ns.hormone('death'), ns.hormone('shutdown'), ns.hormone('decision'), ns.hormone('differentiate')],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: 60 * 60 * 1e9, // one hour, in ns
    max_bytes: 64 * 1024 * 1024,
    num_replicas: replicas,
  };
  try {
    await jsm.streams.info(events.name);
    await jsm.streams.update(events.name, events);
  } catch {
    await jsm.streams.add(events);
  }
  const lineage = await new Kvm(nc).create(ns.bucket(LINEAGE_BUCKET), { history: 1, replicas, max_bytes: 64 * 1024 * 1024, storage: StorageType.File });
  // Compare-and-set needs no history; a short one shows the last decisions when debugging.
  const homeostasis = await new Kvm(nc).create(ns.bucket(HOMEOSTASIS_BUCKET), { history: 5, replicas, max_bytes: 16 * 1024 * 1024, storage: StorageType.File });
  return { lineage, homeostasis };
}

/** Binds to the homeostasis bucket without creating it (cells). */
export async function openHomeostasis(nc: NatsConnection, ns: Namespace): Promise<KV> {
  return new Kvm(nc).open(ns.bucket(HOMEOSTASIS_BUCKET));
}

/** Binds to the lineage bucket without creating it (cells and CLI observers). */
export async function openLineage(nc: NatsConnection, ns: Namespace): Promise<KV> {
  return new Kvm(nc).open(ns.bucket(LINEAGE_BUCKET));
}
