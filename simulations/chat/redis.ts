/**
 * Redis for the chat benchmark's Socket.IO system: a redis-server of our own (no
 * persistence, a free port, a temporary dir, stopped through the process pool), else the
 * one at 127.0.0.1:6379 (its CPU is then not counted, and the report says so), else none.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../organism/grow/broker.ts';
import type { ProcessPool } from './process-pool.ts';
import type { ChatBenchOptions, ChatBenchResult } from './result.ts';

function redisBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/local/bin', '/usr/sbin'])) {
    if (dir && existsSync(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  }
  return undefined;
}

function tcpOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

function redisVersion(bin: string): string | null {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5_000 });
  return /v=([\d.]+)/.exec(r.stdout ?? '')?.[1] ?? null;
}

/** Redis for Socket.IO: our own redis-server (no persistence), else 127.0.0.1:6379, else none. */
export async function startRedis(pool: ProcessPool, r: ChatBenchResult, o: ChatBenchOptions): Promise<{ url: string; child: ChildProcess | null; dir: string | null } | null> {
  const bin = redisBinary();
  if (bin) {
    const port = await freePort('127.0.0.1');
    const dir = mkdtempSync(join(tmpdir(), 'bench-chat-redis-'));
    const child = pool.track(spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4_000)));
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4_000)));
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const end = Date.now() + 5_000;
    while (Date.now() < end && child.exitCode === null) {
      if (await tcpOpen(port)) {
        r.redis = { how: 'started', url: `redis://127.0.0.1:${port}`, version: redisVersion(bin) };
        return { url: `redis://127.0.0.1:${port}`, child, dir };
      }
      const failed = await Promise.race([spawnError, sleep(100).then(() => null)]);
      if (failed) break;
    }
    await pool.stop(child);
    rmSync(dir, { recursive: true, force: true });
    r.notes.push(`redis-server (${bin}) did not start: ${out.trim().split('\n').slice(-2).join(' | ')}`);
    o.progress(`socket.io: ${bin} did not start; trying 127.0.0.1:6379`);
  }
  if (await tcpOpen(6379)) {
    r.redis = { how: 'existing', url: 'redis://127.0.0.1:6379', version: null };
    r.notes.push('Socket.IO used the Redis already running at 127.0.0.1:6379 (not started by the bench): its CPU is not counted.');
    return { url: 'redis://127.0.0.1:6379', child: null, dir: null };
  }
  return null;
}

