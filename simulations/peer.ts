/**
 * The peers a cell is measured against: the least a Node.js child process can be. A bare
 * `fork()` of a script that says `ready` at once is the floor of any process-per-cell
 * design on this machine; the same script after importing the NATS client and connecting
 * is the floor of any process that talks NATS. A cell's own figures are reported as
 * ratios to these, which travel between machines better than milliseconds do.
 *
 * Every child started here is tracked and killed by `close()`; none outlives the bench.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { accessEnv, type NatsAccess } from '../organism/kernel/access.ts';

const BARE = `// cellular bench peer: the least a Node.js child can do.
// With an IPC channel: say ready, stay until the parent disconnects. Without: exit at once.
if (process.send) {
  process.on('message', () => {});
  process.send('ready');
}
`;

const WITH_NATS = `// cellular bench peer: import the NATS client, connect, say ready, stay until disconnected.
const [moduleUrl, servers] = process.argv.slice(2);
const { connect, jwtAuthenticator } = await import(moduleUrl);
// The broker's token or a credential comes by environment (never argv, which ps shows to everyone).
const a = process.env.CELLULAR_NATS_ACCESS ? JSON.parse(process.env.CELLULAR_NATS_ACCESS) : {};
const auth = a.user ? { authenticator: jwtAuthenticator(a.user.jwt, new TextEncoder().encode(a.user.seed)), inboxPrefix: '_INBOX.' + a.user.inbox } : a.token ? { token: a.token } : {};
const nc = await connect({ servers: servers.split(','), name: 'bench-peer', ...auth });
process.on('message', () => {});
process.on('disconnect', () => void nc.close().finally(() => process.exit(0)));
process.send('ready');
`;

export interface PeerScripts {
  bare: string;
  nats: string;
}

/** Writes the peer scripts into `dir` (ESM, `.mjs`, so no package.json decides for them). */
export function writePeerScripts(dir: string): PeerScripts {
  const bare = join(dir, 'peer-bare.mjs');
  const nats = join(dir, 'peer-nats.mjs');
  writeFileSync(bare, BARE);
  writeFileSync(nats, WITH_NATS);
  return { bare, nats };
}

/** The NATS client's module URL, resolved from here so the peer finds it from any directory. */
export function natsClientUrl(): string {
  return import.meta.resolve('@nats-io/transport-node');
}

export interface ForkedPeer {
  /** fork() called → `ready` received, ms. */
  ms: number;
  pid: number;
  child: ChildProcess;
}

export interface PeerOptions {
  /** V8 flags, as cells get (cells/spawn.ts CELL_NODE_FLAGS), so memory compares like for like. */
  execArgv: readonly string[];
  /** How peers reach the broker (a token or a credential), handed over in their environment (known once the broker runs). */
  access?: () => NatsAccess;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class Peers {
  readonly #live = new Set<ChildProcess>();
  readonly #o: PeerOptions;

  constructor(options: PeerOptions) {
    this.#o = options;
  }

  #track(child: ChildProcess): void {
    this.#live.add(child);
    child.once('exit', () => this.#live.delete(child));
  }

  /** Forks `script` and resolves when it sends `ready`; the child stays alive until `release()`. */
  fork(script: string, args: readonly string[] = []): Promise<ForkedPeer> {
    this.#o.signal?.throwIfAborted();
    const t0 = performance.now();
    const access = this.#o.access?.();
    const env = { ...process.env, ...(access ? accessEnv(access) : {}) };
    const child = fork(script, [...args], { execArgv: [...this.#o.execArgv], stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env });
    this.#track(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2_000)));
    return new Promise<ForkedPeer>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.#o.signal?.removeEventListener('abort', onAbort);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (err) {
          child.kill('SIGKILL');
          reject(err);
        }
      };
      const onMessage = (m: unknown) => {
        if (m !== 'ready') return;
        const ms = performance.now() - t0;
        done();
        resolve({ ms, pid: child.pid!, child });
      };
      const onExit = (code: number | null) => done(new Error(`peer ${script} exited (code ${code}) before ready: ${stderr.trim()}`));
      const onAbort = () => done(this.#o.signal!.reason as Error);
      const timer = setTimeout(() => done(new Error(`peer ${script} not ready within ${this.#o.timeoutMs ?? 10_000} ms`)), this.#o.timeoutMs ?? 10_000);
      child.on('message', onMessage);
      child.once('exit', onExit);
      this.#o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Disconnects a forked peer (it then exits by itself) and waits for its exit. */
  async release(peer: ForkedPeer): Promise<void> {
    const { child } = peer;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  /** `spawn(node, [script])` with no IPC channel, resolved at its exit: ms. */
  spawnToExit(script: string): Promise<number> {
    this.#o.signal?.throwIfAborted();
    const t0 = performance.now();
    const child = spawn(process.execPath, [...this.#o.execArgv, script], { stdio: 'ignore' });
    this.#track(child);
    return new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`peer ${script} exited with code ${code}`))));
    });
  }

  /** Kills every peer still alive (by its pid, through its ChildProcess) and waits for them. */
  async close(): Promise<void> {
    const live = [...this.#live].filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.all(
      live.map(
        (c) =>
          new Promise<void>((r) => {
            c.once('exit', () => r());
            c.kill('SIGKILL');
          }),
      ),
    );
    this.#live.clear();
  }

  /** Pids of peers still running (for the final leak check). */
  alive(): number[] {
    return [...this.#live].filter((c) => c.exitCode === null && c.signalCode === null).map((c) => c.pid!);
  }
}
