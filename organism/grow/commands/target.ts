/**
 * How a command other than grow reaches an organism: from the state dir's record, or by
 * --nats and --id; with the root public key when it must verify pulses (census, stop,
 * nginx), without it for backup and restore. And the census as such a process sees it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { natsOptions } from '../../kernel/access.ts';
import { isCensusEntry, type CensusEntry } from '../../kernel/census.ts';
import { BROKER_TOKEN_FILE, loadOrCreateBrokerToken } from '../../kernel/cluster.ts';
import { defaultGenome, validateGenome, type Genome } from '../../kernel/genome/index.ts';
import { fromHex } from '../../kernel/keys.ts';
import { openReply } from '../../kernel/reply.ts';
import { CellularError } from '../../wire/errors.ts';
import type { Observer } from '../observer.ts';
import { readRecord, requireRecord, type OrganismRecord } from '../record.ts';
import { ROOT_PUB_FILE } from '../root-key.ts';
import { servers, type Flags } from './usage.ts';

export interface Target {
  stateDir: string;
  id: string;
  servers: string[];
  token: string | null;
  genome: Readonly<Genome>;
  rootPub: Uint8Array;
}

export function target(flags: Flags): Target {
  const stateDir = resolve(flags['state-dir'] ?? '.organism');
  const joined = servers(flags);
  const record = joined && flags.id ? undefined : requireRecord(stateDir);
  let genome: Readonly<Genome>;
  try {
    genome = validateGenome(record?.genome ?? readRecord(stateDir)?.genome);
  } catch {
    // Joined by --nats --id without a record here: the defaults' timings are the best guess.
    genome = validateGenome(defaultGenome());
  }
  let rootPub: Uint8Array;
  try {
    rootPub = fromHex(readFileSync(join(stateDir, ROOT_PUB_FILE), 'utf8').trim());
  } catch (cause) {
    throw new CellularError('TRUST_ERR_ROOT_KEY', `cannot read ${join(stateDir, ROOT_PUB_FILE)}: the census verifies every pulse against the organism's root key`, { cause });
  }
  // Joining a cluster by --nats: its members' shared token, if this state dir holds it.
  const shared = joined && existsSync(join(stateDir, BROKER_TOKEN_FILE)) ? loadOrCreateBrokerToken(stateDir) : null;
  return { stateDir, id: flags.id ?? record!.id, servers: joined ?? record!.servers, token: joined ? shared : (record?.token ?? null), genome, rootPub };
}

/** The census as one process sees it: a living cell's view, refreshed by pulses heard here. */
export async function gatherCensus(observer: Observer, limits: Genome['limits']): Promise<CensusEntry[]> {
  const listen = sleep(limits.pulseIntervalMs * 2 + 100);
  let remote: CensusEntry[] = [];
  try {
    remote = openReply<CensusEntry[]>((await observer.nc.request(observer.ns.census, new Uint8Array(0), { timeout: 1_000 })).data);
  } catch {
    // No cell answered: what we hear ourselves is all there is.
  }
  await listen;
  // The cell's reply is data from the network: keep only well-formed rows.
  const merged = new Map((Array.isArray(remote) ? remote : []).filter(isCensusEntry).map((e) => [e.id, e]));
  for (const e of observer.census.list()) {
    const theirs = merged.get(e.id);
    // A death the cell heard announced stands; otherwise the fresher view wins.
    const announcedDead = theirs?.state === 'dead' && theirs.cause !== 'missed-pulses';
    if (!theirs || (!announcedDead && e.lastSeen >= theirs.lastSeen)) merged.set(e.id, e);
  }
  return [...merged.values()].sort((a, b) => a.tissue.localeCompare(b.tissue) || a.born - b.born || a.id.localeCompare(b.id));
}

/** Where backup and restore reach NATS: --nats (with --id, or the backup's id) or the state dir's record; no root key needed. */
export function reach(flags: Flags, backupOf?: string): { id: string; servers: string[]; token: string | null; record: OrganismRecord | undefined } {
  const stateDir = resolve(flags['state-dir'] ?? '.organism');
  const joined = servers(flags);
  const record = readRecord(stateDir);
  const id = flags.id ?? (joined ? backupOf : undefined) ?? requireRecord(stateDir).id;
  // As target(): joining a cluster by --nats uses its members' shared token when this state dir holds it.
  const shared = joined && existsSync(join(stateDir, BROKER_TOKEN_FILE)) ? loadOrCreateBrokerToken(stateDir) : null;
  return { id, servers: joined ?? requireRecord(stateDir).servers, token: joined ? shared : (record?.token ?? null), record };
}

/** A short-lived connection for backup and restore: Ctrl-C aborts, every wait is bounded in organism/grow/backup.ts. */
export async function withNats<T>(r: { servers: string[]; token: string | null }, name: string, run: (nc: NatsConnection, signal: AbortSignal) => Promise<T>): Promise<T> {
  let nc: NatsConnection;
  try {
    nc = await connect({ ...natsOptions(r, name), maxReconnectAttempts: 3 });
  } catch (cause) {
    throw new CellularError('BROKER_ERR_CONNECT', `cannot reach NATS at ${r.servers.join(', ')}: ${(cause as Error).message}`, { cause });
  }
  const abort = new AbortController();
  const onSignal = () => abort.abort(new CellularError('CELL_ERR_ABORTED', `${name} interrupted`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await run(nc, abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await nc.close().catch(() => {});
  }
}

