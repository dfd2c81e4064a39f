/**
 * A host's zygote pool (cells/zygote.ts): grow keeps `limits.zygotes` cell processes
 * started, their imports done, waiting to be claimed by a division. A claimed one is a cell
 * from then on and no longer the pool's; the pool starts another, one at a time.
 *
 * A zygote dies with its grow: it reads grow's end of a pipe on stdin, and an unclaimed
 * zygote exits when that closes (close(), or grow killed), so nothing is left to sweep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { CELL_MAIN, CELL_NODE_FLAGS } from '../../cells/spawn.ts';
import { prepareZygoteDir, SOCKET_PATH_MAX, zygoteDir, zygoteSocket } from '../../cells/zygote.ts';
import { HOST_ENV } from '../kernel/host.ts';
import { isProcessOf } from '../kernel/processes.ts';

export interface ZygotePoolOptions {
  stateDir: string;
  organism: string;
  host: string;
  /** How many wait at a time (limits.zygotes). */
  size: number;
  /** The tissue modules a zygote imports while it waits (every tissue of the genome). */
  modules: string[];
  say: (line: string) => void;
  /** How often the pool is checked for claimed or dead zygotes, ms. @default 200 */
  checkMs?: number;
}

/** Room on a zygote's command line for the `--cell <id>` it takes when claimed (cells/main.ts). */
const TITLE_ROOM = 'x'.repeat(96);

export class ZygotePool {
  readonly #o: ZygotePoolOptions;
  readonly #dir: string;
  /** Zygotes this pool started and that were not claimed or gone when last looked at. */
  readonly #waiting = new Map<number, ChildProcess>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Zygotes started, and how many of them were claimed (tests, the bench). */
  readonly stats = { started: 0, claimed: 0, died: 0 };

  constructor(options: ZygotePoolOptions) {
    this.#o = options;
    this.#dir = zygoteDir(options.stateDir);
  }

  /** False (and says why) when this state dir cannot hold a pool: its socket paths are too long. */
  start(): boolean {
    if (this.#closed || this.#o.size <= 0) return false;
    if (zygoteSocket(this.#dir, 4_194_304).length > SOCKET_PATH_MAX) {
      this.#o.say(`no zygotes: the state dir's path is too long for a Unix socket (${this.#dir}); every birth starts a process`);
      return false;
    }
    prepareZygoteDir(this.#dir, (pid) => isProcessOf(pid, [CELL_MAIN, '--zygote']));
    this.#check();
    this.#timer = setInterval(() => this.#check(), this.#o.checkMs ?? 200);
    this.#timer.unref();
    return true;
  }

  /** Zygotes waiting (started by this pool, not claimed, alive). */
  get waiting(): number {
    return this.#waiting.size;
  }

  #check(): void {
    if (this.#closed) return;
    for (const [pid, child] of this.#waiting) {
      if (child.exitCode !== null || child.signalCode !== null) {
        this.#waiting.delete(pid);
        this.stats.died++;
      } else if (!isProcessOf(pid, ['--zygote'])) {
        // Its command line is a cell's now: claimed. Not ours to end any more.
        this.#waiting.delete(pid);
        this.stats.claimed++;
        child.stdin?.destroy();
        child.unref();
      }
    }
    // One at a time: a zygote's start is CPU the host's cells share.
    const booting = [...this.#waiting.keys()].some((pid) => !existsSync(zygoteSocket(this.#dir, pid)));
    if (!booting && this.#waiting.size < this.#o.size) this.#startOne();
  }

  #startOne(): void {
    const logDir = join(this.#o.stateDir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const log = join(logDir, `zygote-${randomBytes(4).toString('hex')}.stderr.log`);
    const errFd = openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...CELL_NODE_FLAGS, CELL_MAIN, '--zygote', this.#dir, '--host', this.#o.host, '--organism', this.#o.organism, '--room', TITLE_ROOM], {
        detached: true,
        env: { ...process.env, [HOST_ENV]: this.#o.host },
        stdio: ['pipe', 'ignore', errFd],
      });
    } finally {
      closeSync(errFd);
    }
    child.stdin!.on('error', () => {}); // it died at once: its log says why
    child.once('error', (e) => this.#o.say(`zygote not started: ${e.message}`));
    if (child.pid === undefined) return;
    this.#waiting.set(child.pid, child);
    this.stats.started++;
    child.stdin!.write(`${JSON.stringify({ modules: this.#o.modules, log })}\n`);
  }

  /** Ends every zygote still waiting (their stdin closes); claimed ones live on as cells. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const child of this.#waiting.values()) child.stdin?.end();
    this.#waiting.clear();
  }
}
