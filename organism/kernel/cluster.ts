/**
 * The organism across hosts: each host's `grow --cluster NAME --routes h:p,…` starts its
 * nats-server as a member of one NATS cluster (JetStream replicated by the servers, not by
 * us). Members share the broker token (`<state-dir>/broker.token`, copied like the root
 * key): clients and routes both present it. Streams and buckets get 3 replicas when the
 * cluster has at least three JetStream servers, else 1, and the organism says which.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CellularError } from '../wire/errors.ts';
import type { Namespace } from './namespace.ts';
import { loadOrCreateSecret } from './secret-file.ts';

export const BROKER_TOKEN_FILE = 'broker.token';
/** The route port members listen on unless `--cluster-port` says otherwise (NATS's own default). */
export const DEFAULT_CLUSTER_PORT = 6222;
const CLUSTER_NAME = /^[A-Za-z0-9_-]{1,32}$/;
const ROUTE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** The broker token every member of the cluster shares (0600; copy it to each host). */
export function loadOrCreateBrokerToken(stateDir: string): string {
  return loadOrCreateSecret(join(stateDir, BROKER_TOKEN_FILE), 'BROKER_ERR_CLUSTER');
}

/** This server's part in a NATS cluster. */
export interface ClusterConfig {
  /** The cluster's name: every member names the same. */
  name: string;
  /** The route port this server listens on (on gene.host). */
  port: number;
  /** Every member's route address `host:port` (this one's may be listed too: servers skip themselves). */
  routes: string[];
}

/** `--cluster NAME --routes h:p,… [--cluster-port P]` → the broker's cluster config (BROKER_ERR_CLUSTER if malformed). */
export function parseCluster(name: string, routes: string | undefined, port: string | undefined): ClusterConfig {
  if (!CLUSTER_NAME.test(name)) throw new CellularError('BROKER_ERR_CLUSTER', `--cluster ${JSON.stringify(name)}: a cluster name is 1-32 letters, digits, '-' or '_'`);
  const list = (routes ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  if (list.length === 0) throw new CellularError('BROKER_ERR_CLUSTER', '--cluster needs --routes host:port[,host:port...]: the route address of every member (this host\'s may be included)');
  if (list.length > 64) throw new CellularError('BROKER_ERR_CLUSTER', `--routes lists ${list.length} members; at most 64`);
  for (const r of list) {
    const m = ROUTE.exec(r);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65_535) throw new CellularError('BROKER_ERR_CLUSTER', `--routes: ${JSON.stringify(r)} is not host:port`);
  }
  const p = port === undefined ? DEFAULT_CLUSTER_PORT : Number(port);
  if (!Number.isInteger(p) || p < 1 || p > 65_535 || p === 4222) throw new CellularError('BROKER_ERR_CLUSTER', `--cluster-port ${JSON.stringify(port)}: a port 1-65535 other than 4222`);
  return { name, port: p, routes: [...new Set(list)] };
}

export interface Replication {
  replicas: 1 | 3;
  why: string;
}

/**
 * How many replicas the organism's streams and buckets get. `wanted` is the genome's
 * broker.replicas: 1 or 3 as said, 0 = 3 when the cluster can place three, else 1. Asking a
 * clustered JetStream to place a scratch R3 stream is the one test that counts servers that
 * are up and have JetStream (a server's own view of its cluster may include dead peers).
 */
export async function chooseReplication(nc: NatsConnection, ns: Namespace, wanted: 0 | 1 | 3): Promise<Replication> {
  if (wanted === 1) return { replicas: 1, why: 'genome broker.replicas is 1' };
  const cluster = nc.info?.cluster;
  if (!cluster) {
    if (wanted === 3) throw new CellularError('STORE_ERR_SETUP', 'genome broker.replicas is 3 but the NATS server is not clustered (grow --cluster, or broker.replicas=0)');
    return { replicas: 1, why: 'a single NATS server (not clustered)' };
  }
  const jsm = await jetstreamManager(nc);
  const probe = ns.stream('replicas_probe');
  // Members started together find each other within seconds: keep asking for a while.
  const end = Date.now() + PROBE_MS;
  for (let pause = 250; ; pause = Math.min(pause * 2, 2_000)) {
    try {
      await jsm.streams.add({ name: probe, subjects: [probe], storage: StorageType.Memory, num_replicas: 3, max_msgs: 1 });
      await jsm.streams.delete(probe).catch(() => false);
      return { replicas: 3, why: `cluster ${cluster} placed three replicas` };
    } catch (e) {
      if (/already in use/i.test((e as Error).message)) {
        // Another host's probe of the same organism: it is placed, so three can be.
        await jsm.streams.delete(probe).catch(() => false);
        return { replicas: 3, why: `cluster ${cluster} placed three replicas` };
      }
      if (Date.now() + pause > end) {
        const why = `cluster ${cluster} cannot place three replicas (${(e as Error).message}, for ${PROBE_MS / 1000} s): fewer than three JetStream servers are up`;
        if (wanted === 3) throw new CellularError('STORE_ERR_SETUP', `genome broker.replicas is 3 but ${why}`, { cause: e });
        return { replicas: 1, why };
      }
      await sleep(pause);
    }
  }
}

/** How long a clustered grow keeps asking for three replicas before it settles for one. */
const PROBE_MS = 15_000;

/** JetStream errors of a cluster still forming (no leader yet, a peer not caught up, a race with another member's grow). */
export function transientClusterError(e: unknown): boolean {
  return /no suitable peers|peer offline|not enabled|temporarily unavailable|no responders|timeout|already in use|insufficient resources|leader/i.test(`${(e as Error)?.message ?? e} ${String((e as { cause?: Error })?.cause?.message ?? '')}`);
}

/**
 * Runs `step` until it succeeds, for up to `ms`, while its failures are those of a cluster
 * still forming; the first other failure, or the last one, is thrown.
 */
export async function whileForming<T>(step: () => Promise<T>, ms: number, say?: (line: string) => void): Promise<T> {
  const end = Date.now() + ms;
  for (let pause = 250, tries = 1; ; pause = Math.min(pause * 2, 2_000), tries++) {
    try {
      return await step();
    } catch (e) {
      if (!transientClusterError(e) || Date.now() + pause > end) throw e;
      if (tries === 2) say?.(`the JetStream cluster is still forming (${(e as Error).message}): retrying for up to ${Math.round(ms / 1000)} s`);
      await sleep(pause);
    }
  }
}

/**
 * Brings an existing stream (a KV bucket is the stream KV_<bucket>) to what a cluster needs:
 * scaled up to `replicas` (never down: a member that is down for a while must not cost the
 * others their copies), and without direct gets where `leaderReads` (a direct get may be
 * answered by a replica that is behind — a member just back from a partition — and a session
 * or certificate written a moment ago would look unknown).
 */
export async function tuneStream(jsm: JetStreamManager, stream: string, replicas: number, leaderReads = true): Promise<void> {
  const info = await jsm.streams.info(stream);
  const scale = replicas > 1 && info.config.num_replicas < replicas;
  const direct = leaderReads && info.config.allow_direct === true;
  if (!scale && !direct) return;
  await jsm.streams.update(stream, { ...info.config, num_replicas: Math.max(replicas, info.config.num_replicas), ...(leaderReads ? { allow_direct: false } : {}) });
}
