/**
 * How a command other than grow reaches an organism: from the state dir's record, or by
 * --nats and --id; with the root public key when it must verify pulses (census, stop,
 * nginx), without it for backup and restore. And the census as such a process sees it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { natsOptions, type BrokerUser, type NatsAccess } from '../../kernel/access.ts';
import { Namespace } from '../../kernel/namespace.ts';
import { Mint } from '../mint.ts';
import { isCensusEntry, type CensusEntry } from '../../kernel/census.ts';
import { BROKER_TOKEN_FILE, loadOrCreateBrokerToken } from '../../kernel/cluster.ts';
import { defaultGenome, validateGenome, type Genome } from '../../kernel/genome/index.ts';
import { fromHex } from '../../kernel/keys.ts';
import { openReply } from '../../kernel/reply.ts';
import { CellularError } from '../../wire/errors.ts';
import type { Observer } from '../observer.ts';
import { readRecord, requireRecord, type OrganismRecord } from '../record.ts';
import { loadRootKey, ROOT_KEY_FILE, ROOT_PUB_FILE } from '../root-key.ts';
import { CA_CERT_FILE } from '../organism-ca.ts';
import { servers, type Flags } from './usage.ts';

export interface Target {
  stateDir: string;
  id: string;
  servers: string[];
  token: string | null;
  /** The organism's broker runs in operator mode: a command needs a credential (commandUser). */
  operator?: boolean;
  /** The servers speak TLS: checked against the organism CA in the state dir. */
  tls?: { ca: string };
  genome: Readonly<Genome>;
  rootPub: Uint8Array;
}

/** How long a command's own credential lasts: commands are short. */
const COMMAND_CREDENTIAL_TTL_S = 3_600;

/**
 * A command's credential, minted from the root key in the state dir (a broker in operator
 * mode admits no one else). Without a readable root key, none: the server will refuse us.
 */
export async function commandUser(stateDir: string, id: string, role: 'grow' | 'observer', name: string): Promise<BrokerUser | undefined> {
  if (!existsSync(join(stateDir, ROOT_KEY_FILE))) return undefined;
  const root = loadRootKey(stateDir);
  const inbox = `${name.replace(/[^a-z0-9-]/g, '-')}-${process.pid}`;
  const cred = await new Mint(root.seed, id).credentialFor(new Namespace(id), { kind: role, name: inbox }, inbox, COMMAND_CREDENTIAL_TTL_S);
  return { ...cred, inbox };
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
  // Joining by --nats a cluster this state dir's grow belongs to: its record says how to reach it.
  const id = flags.id ?? record!.id;
  const here = record ? undefined : readRecord(stateDir);
  const local = record ?? (here?.id === id ? here : undefined);
  const tls = organismTls(stateDir, local);
  return { stateDir, id, servers: joined ?? record!.servers, token: joined ? shared : (record?.token ?? null), genome, rootPub, ...(local?.operator ? { operator: true } : {}), ...(tls ? { tls } : {}) };
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
export function reach(flags: Flags, backupOf?: string): { id: string; servers: string[]; token: string | null; record: OrganismRecord | undefined; stateDir: string; tls?: { ca: string } } {
  const stateDir = resolve(flags['state-dir'] ?? '.organism');
  const joined = servers(flags);
  const record = readRecord(stateDir);
  const id = flags.id ?? (joined ? backupOf : undefined) ?? requireRecord(stateDir).id;
  // As target(): joining a cluster by --nats uses its members' shared token when this state dir holds it.
  const shared = joined && existsSync(join(stateDir, BROKER_TOKEN_FILE)) ? loadOrCreateBrokerToken(stateDir) : null;
  const tls = organismTls(stateDir, joined ? undefined : record);
  return { id, servers: joined ?? requireRecord(stateDir).servers, token: joined ? shared : (record?.token ?? null), record, stateDir, ...(tls ? { tls } : {}) };
}

/** A short-lived connection for backup and restore: Ctrl-C aborts, every wait is bounded in organism/grow/backup.ts. */
export async function withNats<T>(r: { servers: string[]; token: string | null; user?: BrokerUser; tls?: { ca: string } }, name: string, run: (nc: NatsConnection, signal: AbortSignal) => Promise<T>): Promise<T> {
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


/** The organism CA from the state dir, when the record says the servers speak TLS (or a ca.pem is there for --nats). */
export function organismTls(stateDir: string, record: Pick<OrganismRecord, 'tls'> | undefined): { ca: string } | undefined {
  const path = join(stateDir, CA_CERT_FILE);
  if (!record?.tls && !(record === undefined && existsSync(path))) return undefined;
  try {
    return { ca: readFileSync(path, 'utf8') };
  } catch (cause) {
    throw new CellularError('BROKER_ERR_TLS', `the organism's servers speak TLS, but ${path} cannot be read: copy it from the first host`, { cause });
  }
}

/** How a process beside grow reaches the organism from its record: the token, or in operator mode a credential minted here. */
export async function recordAccess(stateDir: string, record: Pick<OrganismRecord, 'id' | 'servers' | 'token' | 'operator' | 'tls'>, role: 'grow' | 'observer', name: string): Promise<NatsAccess> {
  const user = record.operator ? await commandUser(stateDir, record.id, role, name) : undefined;
  const tls = organismTls(stateDir, record);
  return { servers: record.servers, token: record.token, ...(user ? { user } : {}), ...(tls ? { tls } : {}) };
}
