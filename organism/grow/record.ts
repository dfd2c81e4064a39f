/**
 * The state dir's claim and record. One owner (grow, or a simulation) at a time holds
 * `grow.lock`, taken with O_EXCL before anything else in the state dir is touched; a lock
 * whose owner died is stale and can be taken over. The record (`organism.json`) then says
 * which NATS to reach, which broker and cells to stop, and the genome in force: what
 * `census` and `stop` read from another terminal. The organism id is kept in `<stateDir>/id`,
 * so a state dir is one organism across restarts.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CellularError } from '../wire/errors.ts';
import type { Genome } from '../kernel/genome/index.ts';
import { ORGANISM_ID } from '../kernel/namespace.ts';
import { commandLineOf } from '../kernel/processes.ts';

export interface Owner {
  pid: number;
  /** The owner's command line: a reused pid will not match it. */
  cmdline: string;
}

export interface OrganismRecord {
  v: 1;
  id: string;
  servers: string[];
  /** The private broker's token (this file is 0600), or null when joined. */
  token: string | null;
  /** The private broker runs in operator mode: every process needs its own credential (organism/grow/mint.ts). */
  operator?: boolean;
  /** The servers speak TLS under the organism CA (`<state-dir>/ca.pem`): clients must check it. */
  tls?: boolean;
  /** The private broker, when the owner started one. */
  broker: { pid: number; config: string; monitorUrl: string } | null;
  /** The process that owns the organism. */
  grow: Owner;
  /** The validated genome in force, and its hash. */
  genome: Genome;
  genomeHash: string;
  started: number;
}

export const RECORD_FILE = 'organism.json';
export const LOCK_FILE = 'grow.lock';

export function readRecord(stateDir: string): OrganismRecord | undefined {
  const path = join(stateDir, RECORD_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as OrganismRecord;
    return r.v === 1 && typeof r.id === 'string' && Array.isArray(r.servers) && typeof r.grow?.pid === 'number' ? r : undefined;
  } catch {
    return undefined;
  }
}

export function requireRecord(stateDir: string): OrganismRecord {
  const r = readRecord(stateDir);
  if (!r) throw new CellularError('STATE_ERR_NO_ORGANISM', `no organism found in ${stateDir} (no ${RECORD_FILE}); start one with: npm run grow, or pass --state-dir`);
  return r;
}

export function writeRecord(stateDir: string, record: OrganismRecord): void {
  const path = join(stateDir, RECORD_FILE);
  // Write then rename: a reader never sees half a record.
  writeFileSync(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** True when `owner` still runs (same pid, same command line: pids get reused). */
export function isRunning(owner: Owner): boolean {
  return owner.pid !== process.pid && commandLineOf(owner.pid) === owner.cmdline;
}

/** True when the record's owner still runs. */
export function ownerAlive(record: OrganismRecord): boolean {
  return isRunning(record.grow);
}

export function removeRecord(stateDir: string): void {
  rmSync(join(stateDir, RECORD_FILE), { force: true });
}

export function self(): Owner {
  return { pid: process.pid, cmdline: commandLineOf(process.pid) ?? '' };
}

/**
 * Claims the state dir for this process. Throws STATE_ERR_LOCKED while a live owner holds
 * it; takes over a stale lock (its owner died) and returns that dead owner's record, if it
 * left one, so the caller can clean up what it left running.
 */
export function claimStateDir(stateDir: string): { stale: OrganismRecord | undefined; release: () => void } {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = join(stateDir, LOCK_FILE);
  const me = self();
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${JSON.stringify(me)}\n`);
      closeSync(fd);
      const stale = readRecord(stateDir);
      return {
        stale: stale && !ownerAlive(stale) ? stale : undefined,
        release: () => {
          // Only our own lock: never a lock a later owner took over.
          try {
            const holder = JSON.parse(readFileSync(path, 'utf8')) as Owner;
            if (holder.pid === me.pid && holder.cmdline === me.cmdline) rmSync(path, { force: true });
          } catch {
            // already gone
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new CellularError('STATE_ERR_LOCKED', `cannot create ${path}: ${(e as Error).message}`, { cause: e });
      }
    }
    let holder: Owner | undefined;
    try {
      holder = JSON.parse(readFileSync(path, 'utf8')) as Owner;
    } catch {
      holder = undefined; // half-written or garbage: its writer died mid-write
    }
    if (holder && isRunning(holder)) {
      throw new CellularError('STATE_ERR_LOCKED', `pid ${holder.pid} (${holder.cmdline.slice(0, 80)}) already owns state dir ${stateDir}; stop it with: npx cellular stop --state-dir ${stateDir}`);
    }
    rmSync(path, { force: true }); // stale: its owner is gone
  }
  throw new CellularError('STATE_ERR_LOCKED', `could not claim ${path}: another process keeps taking it`);
}

/** The organism id for a state dir: the one given, else the one kept there, else a new one. */
export function organismId(stateDir: string, given?: string): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = join(stateDir, 'id');
  if (given !== undefined) {
    if (!ORGANISM_ID.test(given)) throw new CellularError('CLI_ERR_USAGE', `--id must be 1-32 lowercase letters, digits or dashes, received ${JSON.stringify(given)}`);
    writeFileSync(path, `${given}\n`);
    return given;
  }
  if (existsSync(path)) {
    const id = readFileSync(path, 'utf8').trim();
    if (ORGANISM_ID.test(id)) return id;
  }
  const id = `o${randomBytes(4).toString('hex')}`;
  writeFileSync(path, `${id}\n`);
  return id;
}
