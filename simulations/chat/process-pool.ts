/**
 * The processes the chat benchmark starts for its peers (the ws relay, the Socket.IO
 * servers, redis-server): each tracked by its handle and stopped by pid (SIGTERM, then
 * SIGKILL), at the end, on error and on Ctrl-C; `leftovers()` names any that survived,
 * which fails the run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { throwIfAborted } from '../../organism/wire/errors.ts';

/** simulations/peers/ (their built .js), where the peer servers are. */
const PEERS = join(dirname(fileURLToPath(import.meta.url)), '..', 'peers');


/** Every child the bench starts (peer servers, redis-server), stopped by pid through its handle. */
export class ProcessPool {
  readonly #live = new Set<ChildProcess>();
  readonly all: ChildProcess[] = [];

  track(child: ChildProcess): ChildProcess {
    this.#live.add(child);
    this.all.push(child);
    child.once('exit', () => this.#live.delete(child));
    return child;
  }

  /** Forks a peer script (dist .js next to this file) and waits for its `{ ready, port }`. */
  async fork(script: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<{ child: ChildProcess; port: number }> {
    throwIfAborted(signal);
    const child = this.track(fork(join(PEERS, script), [], { execPath: process.execPath, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, ...env } }));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2_000)));
    return new Promise((resolve, reject) => {
      const done = (err?: Error, port?: number) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          child.kill('SIGKILL');
          reject(err);
        } else resolve({ child, port: port! });
      };
      const onMessage = (m: unknown) => {
        const msg = m as { ready?: boolean; port?: number };
        if (msg?.ready && typeof msg.port === 'number') done(undefined, msg.port);
      };
      const onExit = (code: number | null) => done(new Error(`peer ${script} exited (code ${code}) before it was ready: ${stderr.trim()}`));
      const onAbort = () => done(signal!.reason as Error);
      const timer = setTimeout(() => done(new Error(`peer ${script} not ready within 15 s: ${stderr.trim()}`)), 15_000);
      child.on('message', onMessage);
      child.once('exit', onExit);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** SIGTERM (and disconnect), SIGKILL after `ms`; resolves at its exit. */
  async stop(child: ChildProcess, ms = 3_000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (child.connected) child.disconnect();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    await exited;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#live].map((c) => this.stop(c)));
  }

  /** Synchronous last resort (process 'exit'). */
  killAll(): void {
    for (const c of this.#live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }

  leftovers(): number[] {
    return this.all.filter((c) => c.pid !== undefined && c.exitCode === null && c.signalCode === null).map((c) => c.pid!);
  }
}
