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
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CELL_MAIN, CELL_NODE_FLAGS } from '../../cells/spawn.ts';
import { prepareZygoteDir, SOCKET_PATH_MAX, zygoteDir, zygoteSocket } from '../../cells/zygote.ts';
import { HOST_ENV } from '../kernel/host.ts';
import { commandLineOf, isProcessOf } from '../kernel/processes.ts';

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

/** Zygotes in a row that may die before listening before the pool turns itself off. */
const QUICK_DEATHS_MAX = 3;

/** Room on a zygote's command line for the `--cell <id>` it takes when claimed (cells/main.ts). */
const TITLE_ROOM = 'x'.repeat(96);

export class ZygotePool {
  readonly #o: ZygotePoolOptions;
  readonly #dir: string;
  /** Zygotes this pool started and that were not claimed or gone when last looked at. */
  readonly #waiting = new Map<number, ChildProcess>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Zygotes seen listening (their socket appeared). */
  readonly #listened = new Set<number>();
  /** Zygotes in a row that died before they listened. */
  #quickDeaths = 0;
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
    try {
      prepareZygoteDir(this.#dir, (pid) => isProcessOf(pid, [CELL_MAIN, '--zygote']));
    } catch (e) {
      this.#o.say(`no zygotes: ${(e as Error).message}; every birth starts a process`);
      return false;
    }
    this.#timer = setInterval(() => this.#safeCheck(), this.#o.checkMs ?? 200);
    this.#timer.unref();
    this.#safeCheck();
    return true;
  }

  /** A pool that cannot work (no file descriptors, a full disk) turns itself off: births start processes. */
  #safeCheck(): void {
    try {
      this.#check();
    } catch (e) {
      this.#o.say(`zygotes turned off: ${(e as Error).message}; every birth starts a process`);
      this.close();
    }
  }

  /** Zygotes waiting (started by this pool, not claimed, alive). */
  get waiting(): number {
    return this.#waiting.size;
  }

  #check(): void {
    if (this.#closed) return;
    for (const [pid, child] of this.#waiting) {
      // Its command line, read once per check: claimed (a cell's markers) or still a zygote.
      const cmd = commandLineOf(pid);
      if (cmd?.includes('--cell ')) {
        // Its command line is a cell's now: claimed. Not ours to end any more.
        this.#waiting.delete(pid);
        this.stats.claimed++;
        this.#quickDeaths = 0;
        child.stdin?.destroy();
        child.unref();
      } else if (child.exitCode !== null || child.signalCode !== null || !cmd?.includes('--zygote')) {
        this.#waiting.delete(pid);
        this.stats.died++;
        // Died before it ever listened: a zygote that cannot start (bad flags, a broken
        // install) would otherwise be restarted every check, for ever.
        if (!this.#listened.has(pid) && ++this.#quickDeaths >= QUICK_DEATHS_MAX) {
          this.#o.say(`zygotes turned off: ${QUICK_DEATHS_MAX} died before they could listen (see ${join(this.#o.stateDir, 'logs')}/zygote-*.stderr.log); every birth starts a process`);
          this.close();
          return;
        }
      }
    }
    for (const pid of this.#waiting.keys()) if (existsSync(zygoteSocket(this.#dir, pid)) && !this.#listened.has(pid)) (this.#listened.add(pid), (this.#quickDeaths = 0));
    // One at a time: a zygote's start is CPU the host's cells share.
    const booting = [...this.#waiting.keys()].some((pid) => !this.#listened.has(pid));
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
    // A zygote that ends unclaimed and said nothing leaves no log behind (a claimed one
    // wrote which cell it became, and its cell's log name links here).
    child.once('exit', () => {
      try {
        if (statSync(log).size === 0) rmSync(log, { force: true });
      } catch {
        // already gone
      }
    });
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
