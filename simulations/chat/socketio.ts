/**
 * The chat benchmark's Socket.IO system: Socket.IO 4 with @socket.io/redis-adapter across
 * two server processes (simulations/peers/socketio-server.ts) on a Redis (chat/redis.ts);
 * the clients alternate between the servers. The serving processes are both servers and
 * redis-server when the bench started it. Without a Redis the system is skipped, and said so.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { io as ioClient, type Socket } from 'socket.io-client';
import { throwIfAborted } from '../../organism/wire/errors.ts';
import { driveRateAndSaturation, type DriveContext, type Sink } from './driver.ts';
import type { Proc } from './meter.ts';
import type { ProcessPool } from './process-pool.ts';
import { startRedis } from './redis.ts';
import type { ChatBenchOptions, ChatBenchResult } from './result.ts';

export async function socketioPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext, pool: ProcessPool): Promise<void> {
  const redis = await startRedis(pool, r, o);
  if (!redis) {
    r.skipped.push({ system: 'socketio', reason: 'skipped: no Redis' });
    o.progress('socket.io: skipped: no Redis (no redis-server binary, nothing on 127.0.0.1:6379)');
    return;
  }
  const servers: { child: ChildProcess; port: number }[] = [];
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await pool.fork('socketio-server.js', { BENCH_REDIS_URL: redis.url }, o.signal));
    o.progress(`socket.io: servers pid ${servers.map((s) => `${s.child.pid} :${s.port}`).join(', ')}; redis ${redis.url}${redis.child ? ` (pid ${redis.child.pid}, started here)` : ' (existing)'}`);
    const names = Array.from({ length: o.clients }, (_, i) => `sio-${String(i).padStart(4, '0')}`);
    const sink: Sink = { meter: undefined };
    for (let i = 0; i < o.clients; i++) {
      throwIfAborted(o.signal);
      const s = ioClient(`http://127.0.0.1:${servers[i % 2]!.port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(s);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('socket.io client did not connect within 10 s')), 10_000);
        s.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
        s.once('connect_error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      s.on('deliver', (_from: string, body: Uint8Array | ArrayBuffer) => sink.meter?.onDeliver(body));
      await s.emitWithAck('login', names[i]!);
    }
    // Joins propagate to the other server through Redis only when a message needs them; give subscriptions a moment.
    await sleep(200);
    const send = (from: number, to: number, body: Buffer) => sockets[from]!.emitWithAck('send', names[to]!, body);
    const procs = (): Proc[] => [
      ...servers.map((s, i) => ({ name: `socket.io ${i + 1}`, pid: s.child.pid! })),
      ...(redis.child?.pid ? [{ name: 'redis-server', pid: redis.child.pid }] : []),
    ];
    r.runs.push(...await driveRateAndSaturation({ system: 'socketio', completes: 'delivered', senders: o.clients, send, sink, procs }, 'socket.io + redis', o.rate, o.window, ctx));
  } finally {
    for (const s of sockets) s.disconnect();
    for (const s of servers) await pool.stop(s.child);
    if (redis.child) await pool.stop(redis.child);
    if (redis.dir) rmSync(redis.dir, { recursive: true, force: true });
  }
}
