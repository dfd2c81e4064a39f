/**
 * The organism record in the state dir (`organism.json`): which NATS to reach, which
 * broker and grow process to stop. `census` and `stop` from another terminal read it.
 * The organism id is kept in `<stateDir>/id`, so a state dir is one organism.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CellularError } from './errors.ts';
import { ORGANISM_ID } from './namespace.ts';
import { commandLineOf } from './processes.ts';

export interface OrganismRecord {
  v: 1;
  id: string;
  servers: string[];
  /** The private broker, when grow started one. */
  broker: { pid: number; config: string; monitorUrl: string } | null;
  /** The process that owns the organism (grow, or a simulation), and its command line to recognise it by. */
  grow: { pid: number; cmdline: string };
  genome: string;
  started: number;
}

export const RECORD_FILE = 'organism.json';

export function readRecord(stateDir: string): OrganismRecord | undefined {
  const path = join(stateDir, RECORD_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as OrganismRecord;
    return r.v === 1 && typeof r.id === 'string' && Array.isArray(r.servers) ? r : undefined;
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

/** True when the record's owner still runs (same pid, same command line: pids get reused). */
export function ownerAlive(record: OrganismRecord): boolean {
  return record.grow.pid !== process.pid && commandLineOf(record.grow.pid) === record.grow.cmdline;
}

export function removeRecord(stateDir: string): void {
  rmSync(join(stateDir, RECORD_FILE), { force: true });
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
