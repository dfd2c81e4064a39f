/**
 * The chat benchmark's ws relay system: a single-process, in-memory WebSocket relay
 * (simulations/peers/ws-relay.ts) speaking the same frames, driven by the same clients: the
 * floor of any relay that runs in Node on this machine. The serving process is the relay.
 */
import { randomBytes } from 'node:crypto';
import type { LeanClient } from '../chat-client.ts';
import { driveRateAndSaturation, loginAll, msgIds, type DriveContext, type Sink } from './driver.ts';
import type { ProcessPool } from './process-pool.ts';
import type { ChatBenchOptions, ChatBenchResult } from './result.ts';

export async function wsRelayPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext, pool: ProcessPool): Promise<void> {
  const { child, port } = await pool.fork('ws-relay.js', {}, o.signal);
  let clients: LeanClient[] = [];
  try {
    o.progress(`ws relay: pid ${child.pid} on port ${port}`);
    const names = Array.from({ length: o.clients }, (_, i) => `relay-${String(i).padStart(4, '0')}`);
    const sink: Sink = { meter: undefined };
    clients = await loginAll([`ws://127.0.0.1:${port}/ws`], names, sink, false, o.signal);
    const nextId = msgIds(randomBytes(4).toString('base64url'));
    const send = (from: number, to: number, body: Buffer) => clients[from]!.request({ t: 'send', msg: nextId(), to: names[to]!, body });
    const procs = () => [{ name: 'ws-relay', pid: child.pid! }];
    r.runs.push(...await driveRateAndSaturation({ system: 'ws-relay', completes: 'delivered', senders: o.clients, send, sink, procs }, 'ws relay', o.rate, o.window, ctx));
  } finally {
    await Promise.all(clients.map((c) => c.shut()));
    await pool.stop(child);
  }
}
