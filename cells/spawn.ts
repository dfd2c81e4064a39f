/**
 * Making a cell: a fresh keypair, a lineage certificate signed by the maker (the root key
 * for the first cells, the parent cell at mitosis), the certificate put in the lineage
 * bucket, and a detached OS process started from compiled JavaScript with its birth packet
 * on stdin.
 */
import type { FaultKind } from './immune/faults.ts';
import { spawn } from 'node:child_process';
import { randomBytes, type KeyObject } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KV } from '@nats-io/kv';
import { HOST_ENV, hostName } from '../organism/kernel/host.ts';
import { CellularError } from '../organism/wire/errors.ts';
import type { Genome } from '../organism/kernel/genome/index.ts';
import type { NatsAccess } from '../organism/kernel/access.ts';
import { generateKeypair, toHex } from '../organism/kernel/keys.ts';
import { childBudget, issueCertificate, packCertificate, ROOT_ISSUER, type Certificate } from '../organism/kernel/lineage.ts';
import type { BirthPacket } from './birth-packet.ts';
import { resolveTissueModule } from './tissue-loader.ts';
import { claimZygote, zygoteDir } from './zygote.ts';
import { isProcessOf } from '../organism/kernel/processes.ts';

export const CELL_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/**
 * V8 flags for cell processes. A small young generation keeps an idle cell's heap slack
 * low (cells are many and mostly idle); measured in simulations/bench-spawn.
 */
export const CELL_NODE_FLAGS: readonly string[] = (process.env.CELLULAR_CELL_FLAGS ?? '--max-semi-space-size=1').split(' ').filter(Boolean);

export { childBudget } from '../organism/kernel/lineage.ts';

export interface Maker {
  /** `root`, or the parent cell's id. */
  id: string;
  key: KeyObject;
  /** The maker's own generation (-1 for the root) and remaining budget (ignored for the root). */
  generation: number;
  budget: number;
}

export interface SpawnOptions {
  organism: string;
  access: NatsAccess;
  genome: Readonly<Genome>;
  stateDir: string;
  rootPub: Uint8Array;
  maker: Maker;
  tissue: string;
  lineage: KV;
  /** Anchors relative tissue module paths (the genome file's directory). */
  baseDir?: string;
  host?: string;
  /** The new cell's id, when the maker chose it beforehand (to record it as pending). */
  id?: string;
  /** Tests and simulations only: the child misbehaves (cells/immune/faults.ts). */
  fault?: FaultKind;
  /**
   * Operator mode: records the child's certificate in the lineage bucket and returns its
   * broker credential (a JWT for its key): the mint does both, so no cell writes lineage.
   */
  credential?: (cert: Certificate, packed: Uint8Array) => Promise<string>;
  /** Called when the child process exits (the maker watches for failed births). */
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface SpawnedCell {
  id: string;
  pid: number;
  cert: Certificate;
  /** Command-line markers that identify this process before it is signalled. */
  markers: string[];
  /** Whether a waiting zygote became this cell (cells/zygote.ts) instead of a new process. */
  zygote: boolean;
}

/** The markers on a cell's command line, checked before any signal is sent to its pid. */
export function cellMarkers(id: string): string[] {
  return [CELL_MAIN, `--cell ${id}`];
}

/** A fresh cell id: the tissue name and 32 random bits. */
export function newCellId(tissue: string): string {
  return `${tissue}-${randomBytes(4).toString('hex')}`;
}

export async function spawnCell(o: SpawnOptions): Promise<SpawnedCell> {
  const gene = o.genome.tissues[o.tissue];
  if (!gene) throw new CellularError('CELL_ERR_SPAWN', `no tissue ${JSON.stringify(o.tissue)} in the genome`);
  const module = resolveTissueModule(gene.module, o.baseDir);
  if (o.maker.id !== ROOT_ISSUER && o.maker.budget < 1) {
    throw new CellularError('HOMEOSTASIS_ERR_REFUSED', `cell ${o.maker.id} has no replication budget left (Hayflick limit)`);
  }
  const id = o.id ?? newCellId(o.tissue);
  const pair = generateKeypair();
  const born = Date.now();
  const host = o.host ?? hostName();
  const cert = issueCertificate(
    {
      cell: id, pub: pair.pub, tissue: o.tissue, host, born,
      generation: o.maker.generation + 1,
      budget: o.maker.id === ROOT_ISSUER ? o.genome.limits.lineageBudget : childBudget(o.maker.budget),
      parent: o.maker.id === ROOT_ISSUER ? null : o.maker.id,
      issuer: o.maker.id,
    },
    o.maker.key,
  );
  const packed = packCertificate(cert);
  // Before the process exists, so no observer ever sees a hormone it cannot verify.
  // create(), not put(): a certificate once published is never replaced.
  let jwt: string | null = null;
  if (o.credential) jwt = await o.credential(cert, packed);
  else await o.lineage.create(id, packed);
  const packet: BirthPacket = {
    v: 1, organism: o.organism, servers: o.access.servers, token: o.access.token, jwt, tlsCa: o.access.tls?.ca ?? null, genome: o.genome as Genome, rootPub: toHex(o.rootPub), stateDir: o.stateDir,
    genomeDir: o.baseDir ?? null,
    cell: { id, tissue: o.tissue, module, parent: cert.parent, host, born, seed: toHex(pair.seed), cert: Buffer.from(packed).toString('base64') },
  };
  // A zygote waiting on this host takes the packet: no process to start, no imports to run.
  // (A fault is a command-line flag: a cell made to misbehave is always started fresh.)
  if (!o.fault && o.genome.limits.zygotes > 0) {
    const zygote = await claimZygote(zygoteDir(o.stateDir), packet);
    if (zygote !== undefined) {
      const markers = cellMarkers(id);
      if (o.onExit) watchExit(zygote, markers, o.genome.limits.joinTimeoutMs + o.genome.limits.crashWindowMs, o.onExit);
      return { id, pid: zygote, cert, markers, zygote: true };
    }
  }
  const logDir = join(o.stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const errFd = openSync(join(logDir, `${id}.stderr.log`), 'a');
  let child;
  try {
    // The host on the command line too: test hosts share one process table (organism/kernel/host.ts).
    child = spawn(process.execPath, [...CELL_NODE_FLAGS, CELL_MAIN, ...(o.fault ? ['--fault', o.fault] : []), '--host', host, '--cell', id, '--organism', o.organism], {
      detached: true,
      env: { ...process.env, [HOST_ENV]: host },
      stdio: ['pipe', 'ignore', errFd],
    });
  } finally {
    closeSync(errFd);
  }
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!));
    child.once('error', (e) => reject(new CellularError('CELL_ERR_SPAWN', `cannot start cell ${id}: ${e.message}`, { cause: e })));
  });
  child.stdin!.on('error', () => {}); // a child that died at once: its stderr log says why
  if (o.onExit) child.once('exit', o.onExit);
  child.stdin!.end(JSON.stringify(packet));
  child.unref();
  return { id, pid, cert, markers: cellMarkers(id), zygote: false };
}

/**
 * A zygote-born cell is not the maker's child, so no `exit` event comes: its pid is watched
 * instead, for as long as a failed birth matters to the maker (after that, a death is the
 * census's business, as for any cell). Exit code and signal are unknown (null).
 */
function watchExit(pid: number, markers: readonly string[], forMs: number, onExit: (code: number | null, signal: NodeJS.Signals | null) => void): void {
  const until = Date.now() + forMs;
  const timer = setInterval(() => {
    if (!isProcessOf(pid, markers)) {
      clearInterval(timer);
      onExit(null, null);
    } else if (Date.now() > until) clearInterval(timer);
  }, 100);
  timer.unref();
}
