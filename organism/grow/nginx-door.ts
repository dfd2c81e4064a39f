/**
 * The nginx front door, kept current: watches the live receivers (the census) and, when
 * their set changes (debounced), rewrites the config atomically (temp file, `nginx -t` on
 * it, rename) and reloads nginx (SIGHUP to its master). With `run` it starts Debian's nginx
 * itself, in the foreground under its own prefix, and stops it by pid on close.
 *
 *   const door = new NginxDoor({ receivers: () => urls(), prefix, render: { listen }, run: true, signal });
 *   await door.start();   // first config written, nginx up
 *   ...
 *   await door.close();   // nginx stopped (only the one it started)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CensusEntry } from '../kernel/census.ts';
import { CellularError, throwIfAborted } from '../wire/errors.ts';
import { isReceiverUrl, renderNginxConfig, type NginxConfigOptions } from './nginx.ts';
import { commandLineOf, isAlive, isExecutableFile, waitGone } from '../kernel/processes.ts';
import { within } from '../kernel/within.ts';

export const NGINX_INSTALL_HINT = 'Install it: apt-get install -y nginx (Debian/Ubuntu; the service need not run), or set NGINX_BIN to an nginx binary.';

const SEARCH_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin', '/usr/bin', '/opt/homebrew/bin'];

/** nginx: NGINX_BIN, then /usr/sbin and the usual dirs, then PATH; else NGINX_ERR_NOT_FOUND. */
export function findNginx(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NGINX_BIN) {
    if (isExecutableFile(env.NGINX_BIN)) return env.NGINX_BIN;
    throw new CellularError('NGINX_ERR_NOT_FOUND', `NGINX_BIN=${env.NGINX_BIN} is not an executable file. ${NGINX_INSTALL_HINT}`);
  }
  for (const dir of [...SEARCH_DIRS, ...(env.PATH ?? '').split(delimiter).filter(Boolean)]) {
    if (isExecutableFile(join(dir, 'nginx'))) return join(dir, 'nginx');
  }
  throw new CellularError('NGINX_ERR_NOT_FOUND', `nginx was not found (NGINX_BIN, ${SEARCH_DIRS.join(', ')}, PATH). ${NGINX_INSTALL_HINT}`);
}

/**
 * The live receivers' URLs in a census: cells of the receiver tissue(s) that are alive or
 * suspect (a suspect one may come back, and moving its users on one missed pulse would
 * cost more than nginx skipping it if it is really gone), with a well-formed URL. A
 * draining receiver refuses new sockets and is left out; so is a URL outside the
 * renderer's grammar (`bad` hears about it).
 */
export function liveReceiverUrls(entries: readonly CensusEntry[], tissues: ReadonlySet<string> = new Set(['receiver']), bad?: (entry: CensusEntry) => void): string[] {
  const urls = new Set<string>();
  for (const e of entries) {
    if (!tissues.has(e.tissue) || (e.state !== 'alive' && e.state !== 'suspect') || e.url === null) continue;
    const url = e.url.replace(/\/$/, '');
    if (isReceiverUrl(url)) urls.add(url);
    else bad?.(e);
  }
  return [...urls].sort();
}

/** Writes `text` to `path` so a reader sees the old file or the new one, never half of one. */
export function writeAtomic(path: string, text: string, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

/** Runs `nginx -t` on a config file; throws NGINX_ERR_START with nginx's words if it is refused. */
export function testNginxConfig(bin: string, prefix: string, config: string): void {
  const r = spawnSync(bin, ['-t', '-q', '-p', prefix, '-c', config, '-e', 'stderr'], { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) {
    throw new CellularError('NGINX_ERR_START', `nginx -t refused ${config} (exit ${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim().slice(-800)}`);
  }
}

/** True when `pid` is an nginx master process (optionally: the one started with `-p prefix`). */
export function isNginxMaster(pid: number, prefix?: string): boolean {
  const cmd = commandLineOf(pid);
  return cmd !== undefined && cmd.startsWith('nginx: master process') && (prefix === undefined || cmd.includes(` -p ${prefix} `));
}

/** Reads a pid file (the first integer in it). */
function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Sends SIGHUP to the nginx master named by `pidFile` (checked first); NGINX_ERR_RELOAD if it is not one. */
export function reloadNginxByPidFile(pidFile: string): number {
  const pid = readPid(pidFile);
  if (pid === undefined) throw new CellularError('NGINX_ERR_RELOAD', `no pid in ${pidFile}: is nginx running?`);
  if (!isNginxMaster(pid)) throw new CellularError('NGINX_ERR_RELOAD', `pid ${pid} (from ${pidFile}) is not an nginx master process: ${commandLineOf(pid) ?? 'gone'}`);
  try {
    process.kill(pid, 'SIGHUP');
  } catch (cause) {
    throw new CellularError('NGINX_ERR_RELOAD', `cannot signal nginx pid ${pid}: ${(cause as Error).message}`, { cause });
  }
  return pid;
}

export interface NginxDoorOptions {
  /** The live receivers' URLs now; asked on every change notice and every poll. */
  receivers: () => readonly string[];
  /** Subscribes to change notices (census events); returns the unsubscribe. The door also polls. */
  onChange?: (notify: () => void) => () => void;
  /** Everything the config needs but the receivers (listen, server name, TLS, public URL). */
  render?: Omit<NginxConfigOptions, 'receivers'>;
  /** nginx's prefix (created 0700): pid, error log, temp dirs. `<state-dir>/nginx` for the CLI. */
  prefix: string;
  /** Where the config goes. @default <prefix>/nginx.conf */
  configPath?: string;
  /** Start nginx (foreground, own pid) and stop it on close. */
  run?: boolean;
  /** Reload the nginx master whose pid is in this file (one not started here). */
  nginxPidFile?: string;
  /** @default findNginx() when needed (run, a pid file, or to check each config with nginx -t) */
  nginxBin?: string;
  /** A change must hold this long before it is written. @default 500 */
  debounceMs?: number;
  /** How often the receivers are compared with what was written, between notices. @default 500 */
  pollMs?: number;
  /** How long nginx may take to come up. @default 10000 */
  startTimeoutMs?: number;
  signal?: AbortSignal;
  say?: (line: string) => void;
}

/** A watcher of the live receivers that keeps an nginx config (and nginx) current. */
export class NginxDoor {
  readonly prefix: string;
  readonly configPath: string;
  readonly #o: NginxDoorOptions;
  readonly #say: (line: string) => void;
  #bin: string | undefined;
  #written: string[] | undefined;
  #child: ChildProcess | undefined;
  #childExited: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #pendingSince = 0;
  #off: (() => void) | undefined;
  #closing = false;
  #started = false;
  #busy: Promise<void> = Promise.resolve();
  #endedResolve!: (e: Error | undefined) => void;
  /** Times the config was (re)written, and nginx reloaded. */
  writes = 0;
  reloads = 0;
  /** Resolves when the door ends: closed (undefined), or nginx it ran exited by itself (an error). */
  readonly ended: Promise<Error | undefined>;

  constructor(o: NginxDoorOptions) {
    this.#o = o;
    this.#say = o.say ?? (() => undefined);
    this.prefix = resolve(o.prefix);
    this.configPath = resolve(o.configPath ?? join(this.prefix, 'nginx.conf'));
    if (o.run && o.nginxPidFile) throw new CellularError('CLI_ERR_USAGE', 'run nginx here or reload one by its pid file, not both');
    // Fail now, not at the first change: a listen address or TLS path outside the grammar.
    renderNginxConfig({ ...o.render, receivers: [] });
    this.ended = new Promise((r) => (this.#endedResolve = r));
  }

  /** The receivers in the config now. */
  get receivers(): readonly string[] {
    return this.#written ?? [];
  }

  /** The nginx master pid this door started, if it runs. */
  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
  }

  /** nginx is needed to check configs and reload; without run or a pid file, only if present. */
  #nginx(required: boolean): string | undefined {
    if (this.#bin !== undefined) return this.#bin;
    if (this.#o.nginxBin !== undefined) return (this.#bin = this.#o.nginxBin);
    try {
      return (this.#bin = findNginx());
    } catch (e) {
      if (required) throw e;
      return undefined;
    }
  }

  /** Writes the first config, starts nginx (run), then follows the receivers. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    throwIfAborted(this.#o.signal);
    const needNginx = this.#o.run === true || this.#o.nginxPidFile !== undefined;
    this.#nginx(needNginx);
    mkdirSync(this.prefix, { recursive: true, mode: 0o700 });
    mkdirSync(dirname(this.configPath), { recursive: true });
    this.#write(this.#current());
    if (this.#o.run) await this.#run();
    else if (this.#o.nginxPidFile) this.#reload();
    this.#off = this.#o.onChange?.(() => this.#check());
    this.#poll = setInterval(() => this.#check(), this.#o.pollMs ?? 500);
    this.#poll.unref();
    this.#o.signal?.addEventListener('abort', () => void this.close(), { once: true });
    if (this.#o.signal?.aborted) void this.close();
  }

  #current(): string[] {
    return [...new Set(this.#o.receivers())].sort();
  }

  /** A change notice or a poll: (re)start the debounce when the set differs from what is written. */
  #check(): void {
    if (this.#closing) return;
    const now = this.#current();
    if (same(now, this.#written)) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#pendingSince = 0;
      return;
    }
    const debounce = this.#o.debounceMs ?? 500;
    if (this.#pendingSince === 0) this.#pendingSince = Date.now();
    // Trailing debounce, but a set that never settles is still written within 4 debounces.
    const wait = Math.max(0, Math.min(debounce, this.#pendingSince + debounce * 4 - Date.now()));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pendingSince = 0;
      this.#busy = this.#busy.then(() => this.#apply());
    }, wait);
  }

  async #apply(): Promise<void> {
    if (this.#closing) return;
    const now = this.#current();
    if (same(now, this.#written)) return;
    try {
      this.#write(now);
      if (this.#o.run || this.#o.nginxPidFile) this.#reload();
    } catch (e) {
      // The old config (and nginx) stay as they were; the next change tries again.
      this.#say(`nginx: not updated: ${(e as Error).message}`);
    }
  }

  /** Renders, checks (nginx -t, when nginx is here) and renames into place. */
  #write(receivers: string[]): void {
    const text = renderNginxConfig({ ...this.#o.render, receivers });
    const tmp = `${this.configPath}.tmp-${process.pid}`;
    writeFileSync(tmp, text, { mode: 0o644 });
    try {
      const bin = this.#nginx(false);
      if (bin) testNginxConfig(bin, this.prefix, tmp);
      renameSync(tmp, this.configPath);
    } finally {
      rmSync(tmp, { force: true });
    }
    const before = this.#written;
    this.#written = receivers;
    this.writes++;
    const gone = (before ?? []).filter((u) => !receivers.includes(u));
    const born = receivers.filter((u) => !(before ?? []).includes(u));
    this.#say(`nginx: ${this.configPath} ${before ? 'rewritten' : 'written'}: ${receivers.length} receiver${receivers.length === 1 ? '' : 's'}${receivers.length ? ` (${receivers.join(', ')})` : ', / answers 503'}${before ? ` [+${born.length} -${gone.length}]` : ''}`);
  }

  #reload(): void {
    if (this.#o.run) {
      const pid = this.pid;
      if (pid === undefined || !isNginxMaster(pid, this.prefix)) throw new CellularError('NGINX_ERR_RELOAD', `the nginx started here (pid ${this.#child?.pid}) is not running`);
      process.kill(pid, 'SIGHUP');
      this.reloads++;
      this.#say(`nginx: reloaded (SIGHUP to pid ${pid})`);
    } else if (this.#o.nginxPidFile) {
      const pid = reloadNginxByPidFile(this.#o.nginxPidFile);
      this.reloads++;
      this.#say(`nginx: reloaded (SIGHUP to pid ${pid} from ${this.#o.nginxPidFile})`);
    }
  }

  /** nginx in the foreground under this prefix; up when its pid file names it (after it has bound its port). */
  async #run(): Promise<void> {
    const bin = this.#nginx(true)!;
    const pidFile = join(this.prefix, 'nginx.pid');
    // One left by a door that died without closing (kill -9): ours by its prefix, so stop it.
    const stale = readPid(pidFile);
    if (stale !== undefined && stale !== process.pid && isNginxMaster(stale, this.prefix)) {
      this.#say(`nginx: stopping pid ${stale}, left running under ${this.prefix} by an earlier run`);
      process.kill(stale, 'SIGTERM');
      if (!(await waitGone(stale, 5_000))) throw new CellularError('NGINX_ERR_START', `an earlier nginx (pid ${stale}) under ${this.prefix} did not stop`);
    }
    rmSync(pidFile, { force: true });
    const logPath = join(this.prefix, 'nginx.stderr.log');
    const out = openSync(logPath, 'a', 0o600);
    let child: ChildProcess;
    try {
      // Its own process group (detached), so a Ctrl-C reaches this process first and nginx is
      // stopped in order; stdout/stderr to a file, so nothing here blocks on a pipe.
      child = spawn(bin, ['-p', `${this.prefix}`, '-c', this.configPath, '-e', 'error.log', '-g', 'daemon off;'], { detached: true, stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    this.#child = child;
    this.#childExited = new Promise((r) => child.once('exit', () => r()));
    child.once('error', () => undefined);
    child.once('exit', (code, sig) => {
      if (this.#closing) return;
      const e = new CellularError('NGINX_ERR_START', `nginx (pid ${child.pid}) exited by itself (${sig ?? `exit ${code}`}): ${this.#logTail()}`);
      this.#say(`nginx: ${e.message}`);
      this.#endedResolve(e);
    });
    const end = Date.now() + (this.#o.startTimeoutMs ?? 10_000);
    for (;;) {
      if (readPid(pidFile) === child.pid && isAlive(child.pid!)) break;
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
        throw new CellularError('NGINX_ERR_START', `nginx exited at start (${child.signalCode ?? `exit ${child.exitCode}`}): ${this.#logTail()}`);
      }
      if (Date.now() > end || this.#o.signal?.aborted) {
        await this.#stopChild();
        throwIfAborted(this.#o.signal);
        throw new CellularError('NGINX_ERR_START', `nginx did not come up within ${this.#o.startTimeoutMs ?? 10_000} ms: ${this.#logTail()}`);
      }
      await sleep(25);
    }
    const listen = this.#o.render?.listen;
    this.#say(`nginx: running, pid ${child.pid}, prefix ${this.prefix}${listen ? `, listening on ${listen}` : ''}`);
  }

  #logTail(): string {
    const tail = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').slice(-5).join(' | ') : '');
    return [tail(join(this.prefix, 'nginx.stderr.log')), tail(join(this.prefix, 'error.log'))].filter(Boolean).join(' | ').slice(-1200) || 'no log';
  }

  /** Stops the nginx started here: SIGTERM (fast shutdown) by pid, SIGKILL after 5 s. */
  async #stopChild(): Promise<void> {
    const child = this.#child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const pid = child.pid;
    if (isNginxMaster(pid, this.prefix)) process.kill(pid, 'SIGTERM');
    const gone = await within(this.#childExited!.then(() => true), 5_000, false);
    if (!gone && isNginxMaster(pid, this.prefix)) {
      this.#say(`nginx: pid ${pid} ignored SIGTERM for 5 s; killing its process group`);
      // The master's workers are in its process group (it was started detached): all of them,
      // and nothing else, are ours.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await within(this.#childExited!, 2_000, undefined);
    }
  }

  /** Synchronous last resort for process exit: SIGTERM to the nginx started here. */
  emergencyStop(): void {
    const pid = this.pid;
    if (pid !== undefined && isNginxMaster(pid, this.prefix)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
  }

  /** Stops watching and stops the nginx started here (a pid-file nginx is left running). */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
    this.#off?.();
    await this.#busy;
    await this.#stopChild();
    if (this.#child) this.#say(`nginx: stopped (pid ${this.#child.pid})`);
    this.#endedResolve(undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function same(a: readonly string[], b: readonly string[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

export interface NginxCommandFlags {
  listen?: string | undefined;
  out?: string | undefined;
  watch?: boolean;
  run?: boolean;
  serverName?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  nginxPid?: string | undefined;
  publicUrl?: string | undefined;
}

export interface NginxCommandDeps {
  flags: NginxCommandFlags;
  stateDir: string;
  /** The organism's census (an observer's), and the tissues whose module is `receiver`. */
  census: { list(): CensusEntry[]; on(listener: () => void): () => void };
  receiverTissues: ReadonlySet<string>;
  /** The census as one process sees it after listening a while (cellular census's view). */
  gather: () => Promise<CensusEntry[]>;
  say: (line: string) => void;
  /** Where a one-shot config goes without --out. @default process.stdout */
  stdout?: (text: string) => void;
}

/**
 * `cellular nginx`: without --watch/--run, the config once (to --out, or stdout) and exit;
 * with them, a door that follows the census until SIGINT/SIGTERM/SIGHUP.
 */
/**
 * Checks `cellular nginx`'s flags (usage, and every input of the config) before the
 * organism is reached; returns the render options.
 */
export function nginxRenderOptions(f: NginxCommandFlags): Omit<NginxConfigOptions, 'receivers'> {
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw new CellularError('CLI_ERR_USAGE', '--tls-cert and --tls-key go together');
  if (f.run && f.nginxPid) throw new CellularError('CLI_ERR_USAGE', '--run starts its own nginx; --nginx-pid names one started elsewhere: give one of them');
  const tls = f.tlsCert !== undefined && f.tlsKey !== undefined ? { cert: resolve(f.tlsCert), key: resolve(f.tlsKey) } : undefined;
  const render: Omit<NginxConfigOptions, 'receivers'> = {
    ...(f.listen !== undefined ? { listen: f.listen } : {}),
    ...(f.serverName !== undefined ? { serverName: f.serverName } : {}),
    ...(f.publicUrl !== undefined ? { publicUrl: f.publicUrl } : {}),
    ...(tls ? { tls } : {}),
  };
  renderNginxConfig({ ...render, receivers: [] });
  for (const file of tls ? [tls.cert, tls.key] : []) {
    try {
      accessSync(file, constants.R_OK);
    } catch (cause) {
      throw new CellularError('NGINX_ERR_INPUT', `cannot read ${file}: ${(cause as Error).message}`, { cause });
    }
  }
  return render;
}

/**
 * `cellular nginx`: without --watch/--run, the config once (to --out, or stdout) and exit;
 * with them, a door that follows the census until SIGINT/SIGTERM/SIGHUP.
 */
export async function nginxCommand(d: NginxCommandDeps): Promise<number> {
  const f = d.flags;
  const render = nginxRenderOptions(f);
  const bad = (e: CensusEntry) => d.say(`nginx: receiver ${e.id} announces a URL outside http://HOST:PORT, left out: ${JSON.stringify(e.url)}`);
  const prefix = join(resolve(d.stateDir), 'nginx');

  if (!f.watch && !f.run) {
    const urls = liveReceiverUrls(await d.gather(), d.receiverTissues, bad);
    const text = renderNginxConfig({ ...render, receivers: urls });
    if (f.out === undefined) (d.stdout ?? ((s) => process.stdout.write(s)))(text);
    else {
      const out = resolve(f.out);
      mkdirSync(dirname(out), { recursive: true });
      writeAtomic(out, text);
      d.say(`nginx: ${out} written: ${urls.length} receiver${urls.length === 1 ? '' : 's'}`);
    }
    if (f.nginxPid) d.say(`nginx: reloaded (SIGHUP to pid ${reloadNginxByPidFile(resolve(f.nginxPid))})`);
    return 0;
  }

  // Let the census fill from the pulses first, so the first config is not an empty one.
  await d.gather();
  const abort = new AbortController();
  const door = new NginxDoor({
    receivers: () => liveReceiverUrls(d.census.list(), d.receiverTissues),
    onChange: (notify) => d.census.on(notify),
    render, prefix, say: d.say, signal: abort.signal,
    ...(f.out !== undefined ? { configPath: resolve(f.out) } : {}),
    ...(f.run ? { run: true } : {}),
    ...(f.nginxPid !== undefined ? { nginxPidFile: resolve(f.nginxPid) } : {}),
  });
  const stop = (sig: string) => {
    d.say(`nginx: ${sig}: stopping`);
    abort.abort(new CellularError('CELL_ERR_ABORTED', `stopped by ${sig}`));
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => [sig, () => stop(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  const onExit = () => door.emergencyStop();
  process.on('exit', onExit);
  try {
    try {
      await door.start();
    } catch (e) {
      await door.close();
      if (abort.signal.aborted) return 0;
      throw e;
    }
    if (!f.run && !f.nginxPid) d.say('nginx: watching the census; reload your nginx yourself, or give --nginx-pid FILE or --run');
    const ended = await door.ended;
    await door.close();
    if (ended) throw ended;
    return 0;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    process.off('exit', onExit);
  }
}
