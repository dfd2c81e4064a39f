/**
 * The private broker: find (or, as root on Debian, install) `nats-server`, start it on
 * loopback with JetStream and monitoring on free ports, wait until it answers, stop it.
 * With `--nats` the organism joins an existing server and this module is not used.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CellularError, throwIfAborted } from '../wire/errors.ts';
import type { ClusterConfig } from '../kernel/cluster.ts';
import type { BrokerGene } from '../kernel/genome/index.ts';
import { isExecutableFile, signalIfOurs, waitGone } from '../kernel/processes.ts';
import type { HostTls } from './organism-ca.ts';
import { within } from '../kernel/within.ts';

export const NATS_DEFAULT_PORT = 4222;
/** Where the broker's monitoring port listens: never beyond this host (it answers anyone). */
export const MONITOR_HOST = '127.0.0.1';

export const INSTALL_HINT = [
  'Install it:',
  '  Debian/Ubuntu:  sudo apt-get install -y nats-server',
  '  macOS:          brew install nats-server',
  'or set NATS_SERVER_BIN to a nats-server binary, or join an existing server with --nats nats://host:port.',
].join('\n');

const SEARCH_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin', '/opt/homebrew/bin'];

/** Finds nats-server: NATS_SERVER_BIN, then PATH, then the usual sbin dirs. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env, searchDirs: readonly string[] = SEARCH_DIRS): string | undefined {
  if (env.NATS_SERVER_BIN) return isExecutableFile(env.NATS_SERVER_BIN) ? env.NATS_SERVER_BIN : undefined;
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...searchDirs];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

export interface EnsureOptions {
  env?: NodeJS.ProcessEnv;
  /** Install with apt-get when missing, root and Debian-like. @default true */
  autoInstall?: boolean;
  log?: (line: string) => void;
  /** Directories searched after PATH. @default /usr/sbin, /usr/local/sbin, /usr/local/bin, /usr/bin, /opt/homebrew/bin */
  searchDirs?: readonly string[];
}

/** Returns a nats-server path, installing the Debian package when allowed, else throws BROKER_ERR_NOT_FOUND. */
export function ensureNatsServer(options: EnsureOptions = {}): string {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const searchDirs = options.searchDirs ?? SEARCH_DIRS;
  const found = findNatsServer(env, searchDirs);
  if (found) return found;
  if (env.NATS_SERVER_BIN) {
    throw new CellularError('BROKER_ERR_NOT_FOUND', `NATS_SERVER_BIN=${env.NATS_SERVER_BIN} is not an executable file.\n${INSTALL_HINT}`);
  }
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const debian = existsSync('/etc/debian_version') && existsSync('/usr/bin/apt-get');
  if (options.autoInstall !== false && root && debian) {
    log('nats-server not found: installing the Debian package nats-server with apt-get (running as root)…');
    const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nats-server'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    let r = install();
    if (r.status !== 0) {
      // A fresh machine often has no package lists yet.
      spawnSync('apt-get', ['update'], { stdio: 'ignore' });
      r = install();
    }
    const after = findNatsServer(env, searchDirs);
    if (r.status !== 0 || !after) {
      throw new CellularError('BROKER_ERR_INSTALL', `apt-get install nats-server failed (exit ${r.status}): ${String(r.stderr ?? '').trim().slice(-400)}\n${INSTALL_HINT}`);
    }
    log(`installed ${after}`);
    return after;
  }
  const why = options.autoInstall === false ? 'automatic install is off (--no-install)' : !root ? 'not running as root' : 'not a Debian-like system';
  throw new CellularError('BROKER_ERR_NOT_FOUND', `nats-server was not found on PATH or in ${searchDirs.join(', ')} (and it was not installed automatically: ${why}).\n${INSTALL_HINT}`);
}

/** A free TCP port on `host`, never 4222 (left to system NATS servers). */
export async function freePort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ host, port: 0, exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr !== null ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port !== NATS_DEFAULT_PORT && port !== 0) return port;
  }
  throw new CellularError('BROKER_ERR_NO_PORT', `no free port on ${host}`);
}

export interface BrokerOptions {
  gene: BrokerGene;
  /** Directory for the config, JetStream store, log and pid file. */
  dir: string;
  /** Server name, shown in /varz. */
  name: string;
  binary: string;
  log?: (line: string) => void;
  /** How long to wait for the server to answer. @default 10000 */
  startTimeoutMs?: number;
  /** Demand the token from every client. @default true (false makes a plain server, as tests use for "an existing NATS") */
  auth?: boolean;
  /** A fixed token (cluster members share one: organism/kernel/cluster.ts); default a random one per start. */
  token?: string;
  /** Start as a member of a NATS cluster (`grow --cluster`); absent: a lone server. */
  cluster?: ClusterConfig;
  /**
   * Operator mode: clients authenticate with user JWTs of the organism's account, each with
   * its own permissions (organism/grow/mint.ts); the token then guards only the cluster's
   * routes. Absent: every client presents the token.
   */
  operator?: { serverConfig(resolverDir: string): Promise<string[]> };
  /**
   * TLS under the organism's CA (organism/grow/organism-ca.ts): client connections get the
   * server's certificate, and a cluster's routes demand one of this CA from both sides.
   */
  tls?: HostTls;
  signal?: AbortSignal;
}

export type BrokerState = { state: 'idle' } | { state: 'running'; pid: number } | { state: 'closed'; error?: Error };

export class Broker {
  #opts: BrokerOptions;
  #child: ChildProcess | undefined;
  #state: BrokerState = { state: 'idle' };
  #exit: Promise<number | null> | undefined;
  url = '';
  monitorUrl = '';
  /** Clients must present it: any local user could otherwise publish into the organism. Null without auth. */
  readonly token: string | null;
  port = 0;
  monitorPort = 0;

  constructor(options: BrokerOptions) {
    this.#opts = options;
    this.token = options.auth === false ? null : (options.token ?? randomBytes(24).toString('base64url'));
  }

  get state(): BrokerState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get configPath(): string {
    return join(this.#opts.dir, 'nats.conf');
  }

  /** Starts nats-server and resolves once its monitor answers /healthz. Retries a port race. */
  async start(): Promise<void> {
    if (this.#state.state !== 'idle') return;
    const { gene, dir } = this.#opts;
    mkdirSync(join(dir, 'jetstream'), { recursive: true });
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      throwIfAborted(this.#opts.signal);
      this.port = gene.port || (await freePort(gene.host));
      this.monitorPort = gene.monitorPort || (await freePort(MONITOR_HOST));
      try {
        await this.#launch();
        return;
      } catch (e) {
        lastError = e as Error;
        // A fixed port that is busy will stay busy: do not retry it.
        if (gene.port && gene.monitorPort) break;
      }
    }
    this.#state = { state: 'closed', error: lastError };
    throw lastError ?? new CellularError('BROKER_ERR_START', 'nats-server did not start');
  }

  async #launch(): Promise<void> {
    const { gene, dir, name, binary } = this.#opts;
    const host = gene.host;
    const logPath = join(dir, 'nats.log');
    const operator = this.#opts.operator;
    const clientAuth = operator
      ? await operator.serverConfig(join(dir, 'resolver'))
      : this.token
        ? [`authorization {`, `  token: ${JSON.stringify(this.token)}`, `}`]
        : [];
    if (operator) mkdirSync(join(dir, 'resolver'), { recursive: true, mode: 0o700 });
    writeFileSync(
      this.configPath,
      [
        `# written by cellular grow; rewritten at every start`,
        `server_name: ${JSON.stringify(name)}`,
        `listen: "${hostPort(host, this.port)}"`,
        // Monitoring has no authentication: loopback only, whatever broker.host says.
        `http: "${hostPort(MONITOR_HOST, this.monitorPort)}"`,
        `max_payload: ${gene.maxPayload}`,
        // A CONNECT carries the client's JWT, and a receiver's permissions make it ~5 KB.
        ...(operator ? [`max_control_line: 32768`] : []),
        ...clientAuth,
        ...(this.#opts.tls ? tlsBlock(this.#opts.tls, false) : []),
        `jetstream {`,
        `  store_dir: ${JSON.stringify(join(dir, 'jetstream'))}`,
        `}`,
        ...clusterBlock(host, this.#opts.cluster, this.token, this.#opts.tls),
        '',
      ].join('\n'),
      { mode: 0o600 }, // it holds the token
    );
    chmodSync(this.configPath, 0o600);
    const logFd = openSync(logPath, 'a');
    // detached: Ctrl-C in the terminal must not reach the broker before the cells drain.
    const child = spawn(binary, ['-c', this.configPath], { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    this.#child = child;
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(-1));
    });
    const exited = this.#exit.then((code) => ({ exited: code }));
    const timeout = this.#opts.startTimeoutMs ?? (this.#opts.cluster ? 120_000 : 10_000);
    const deadline = Date.now() + timeout;
    let nextWord = Date.now() + 5_000;
    this.monitorUrl = `http://${hostPort(MONITOR_HOST, this.monitorPort)}`;
    this.url = `nats://${hostPort(host, this.port)}`;
    while (Date.now() < deadline) {
      const r = await Promise.race([this.#healthy(), exited, sleep(100).then(() => false)]);
      if (r === true) {
        this.#state = { state: 'running', pid: child.pid! };
        this.#opts.log?.(`nats-server ${this.url} (monitor ${this.monitorUrl}, pid ${child.pid}, store ${join(dir, 'jetstream')})`);
        return;
      }
      if (typeof r === 'object') {
        throw new CellularError('BROKER_ERR_START', `nats-server exited with code ${r.exited} before answering; last log lines:\n${tail(logPath)}`);
      }
      if (this.#opts.cluster && Date.now() > nextWord) {
        // A clustered JetStream answers only once a majority of its members elected a leader.
        nextWord = Date.now() + 10_000;
        this.#opts.log?.(`waiting for the cluster ${this.#opts.cluster.name}: JetStream needs a majority of ${this.#opts.cluster.routes.join(', ')} up (${await this.#why()})`);
      }
      if (this.#opts.signal?.aborted) {
        await this.close();
        throwIfAborted(this.#opts.signal);
      }
      await sleep(50);
    }
    const why = await this.#why();
    await this.close();
    throw new CellularError(this.#opts.cluster ? 'BROKER_ERR_CLUSTER' : 'BROKER_ERR_START', `nats-server did not answer on ${this.monitorUrl}/healthz within ${timeout} ms${why ? `: ${why}` : ''}`);
  }

  /** What /healthz says while it is not ok (e.g. no JetStream meta leader yet). */
  async #why(): Promise<string> {
    try {
      const res = await fetch(`${this.monitorUrl}/healthz`, { signal: AbortSignal.timeout(500) });
      const body = (await res.json()) as { error?: unknown };
      return typeof body.error === 'string' ? body.error : `status ${res.status}`;
    } catch (e) {
      return (e as Error).message;
    }
  }

  async #healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.monitorUrl}/healthz`, { signal: AbortSignal.timeout(500) });
      return res.ok;
    } catch {
      return false;
    }
  }

  /**
   * Chaos only: kill -9 the server, as a crash would (simulations/chaos). The store and the
   * ports stay; `restart()` starts it again on them.
   */
  async crash(): Promise<void> {
    const child = this.#child;
    if (this.#state.state !== 'running' || child === undefined) return;
    child.kill('SIGKILL');
    await this.#exit;
  }

  /** Starts the server again after a crash, on the same ports, config and store. */
  async restart(): Promise<void> {
    if (this.#state.state === 'closed') throw new CellularError('BROKER_ERR_START', 'the broker was closed: it is not restarted');
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) return;
    await this.#launch();
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s). Safe to call twice. */
  async close(): Promise<void> {
    const child = this.#child;
    if (this.#state.state === 'closed' || child === undefined) {
      this.#state = this.#state.state === 'closed' ? this.#state : { state: 'closed' };
      return;
    }
    this.#state = { state: 'closed' };
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await within(this.#exit!, 5_000, 'timeout' as const);
      if (done === 'timeout') {
        child.kill('SIGKILL');
        await this.#exit;
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Stops a broker started by another process (from the organism record), after checking its pid. */
export async function stopBrokerByPid(pid: number, configPath: string): Promise<boolean> {
  // The config path is ours and unique; the binary may have any name (NATS_SERVER_BIN).
  if (!signalIfOurs(pid, [`-c ${configPath}`], 'SIGTERM')) return false;
  if (await waitGone(pid, 5_000)) return true;
  signalIfOurs(pid, [`-c ${configPath}`], 'SIGKILL');
  return waitGone(pid, 2_000);
}

/**
 * The `cluster {}` block: routes authenticate with the organism's broker token, so a server
 * that does not hold it cannot join the cluster (and so cannot read the organism's streams).
 */
function clusterBlock(host: string, cluster: ClusterConfig | undefined, token: string | null, tls?: HostTls): string[] {
  if (!cluster) return [];
  const auth = token ? `cellular:${encodeURIComponent(token)}@` : '';
  return [
    // A cut link sends no FIN: without pings a route (or client) to a host across a partition
    // looks alive for minutes, and after healing TCP's backed-off retransmits take seconds more.
    // Pinging every 2 s drops a dead route within ~6 s and redials it every second instead.
    `ping_interval: "2s"`,
    `ping_max: 3`,
    `cluster {`,
    `  name: ${JSON.stringify(cluster.name)}`,
    `  listen: "${hostPort(host, cluster.port)}"`,
    ...(token ? [`  authorization {`, `    user: "cellular"`, `    password: ${JSON.stringify(token)}`, `  }`] : []),
    ...(tls ? tlsBlock(tls, true).map((l) => `  ${l}`) : []),
    `  routes: [`,
    ...cluster.routes.map((r) => `    ${JSON.stringify(`nats-route://${auth}${r}`)}`),
    `  ]`,
    `}`,
  ];
}

/** A `tls {}` block; `verify` demands the peer's certificate too (routes: both sides are servers of the organism). */
function tlsBlock(tls: HostTls, verify: boolean): string[] {
  return [
    `tls {`,
    `  cert_file: ${JSON.stringify(tls.certFile)}`,
    `  key_file: ${JSON.stringify(tls.keyFile)}`,
    `  ca_file: ${JSON.stringify(tls.caFile)}`,
    ...(verify ? [`  verify: true`] : []),
    `  timeout: 5`,
    `}`,
  ];
}

/** `host:port`, with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

function tail(path: string, lines = 8): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
