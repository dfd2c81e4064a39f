/**
 * The chat benchmark: 50 clients sending to each other through the swarm, against the
 * systems a messenger is compared with, all in one run on one machine.
 *
 * - cellular: a private nats-server, 2 receivers and 1 worker (real cells). 50 users log in,
 *   alternating between the receivers; each `send`s to a random other user a 256-byte body
 *   whose first bytes are the send time (bodies are opaque to the server), and acks what it
 *   holds every 20 ms. Latency is the `deliver` frame's arrival minus the send time (one
 *   process, one clock). Two runs: a fixed offered rate (open loop, paced), and saturation
 *   (each client keeps `window` sends awaiting their `ack`).
 * - raw JetStream acked publish on the same broker, one connection, 256 in flight, msg-id
 *   and headers as the receiver writes them, into a stream configured like the messages
 *   stream: the limit of durable delivery here.
 * - a single-process in-memory ws relay (simulations/peers/ws-relay.ts), same clients.
 * - Socket.IO 4 with @socket.io/redis-adapter across two server processes
 *   (simulations/peers/socketio-server.ts) on a Redis the bench starts (or finds).
 * - idle memory: `idle` WebSocket connections held open to one receiver; its RSS before
 *   and after, from /proc.
 *
 * CPU per delivered message (from /proc utime+stime of the serving processes over the
 * measured window) is the figure that travels between machines. Everything started here is
 * stopped by pid at the end, on error and on Ctrl-C too.
 *
 * This file coordinates; the parts are in simulations/chat/: result.ts (options and
 * figures), meter.ts (what is measured and how), driver.ts (the clients at a rate or at
 * saturation), process-pool.ts (the peer processes), and one file per system (cellular.ts,
 * jetstream.ts, ws-relay.ts, socketio.ts with redis.ts; idle-memory.ts).
 */
import { checkRange } from './bench-options.ts';
import { cellularPhase } from './chat/cellular.ts';
import type { DriveContext } from './chat/driver.ts';
import { ProcessPool } from './chat/process-pool.ts';
import { BODY_BYTES, RAW_IN_FLIGHT, SYSTEM_LABELS, type ChatBenchOptions, type ChatBenchResult, type SystemName } from './chat/result.ts';
import { socketioPhase } from './chat/socketio.ts';
import { wsRelayPhase } from './chat/ws-relay.ts';

export type { ChatBenchOptions, ChatBenchResult } from './chat/result.ts';

/** Idle sockets at the most (each one a file descriptor on both sides). */
const MAX_IDLE = 100_000;

export function validateChatOptions(o: Pick<ChatBenchOptions, 'seconds' | 'clients' | 'rate' | 'window' | 'idle'>): void {
  checkRange('seconds', o.seconds, { min: 1, max: 600 });
  checkRange('clients', o.clients, { min: 2, max: 1_000 });
  checkRange('rate', o.rate, { min: 1, max: 1_000_000 });
  checkRange('window', o.window, { min: 1, max: 10_000 });
  checkRange('idle', o.idle, { min: 0, max: MAX_IDLE });
}

export async function runChatBench(o: ChatBenchOptions): Promise<ChatBenchResult> {
  validateChatOptions(o);
  const r: ChatBenchResult = {
    options: { seconds: o.seconds, clients: o.clients, rate: o.rate, window: o.window, idle: o.idle, stateDir: o.stateDir },
    bodyBytes: BODY_BYTES, rawInFlight: RAW_IN_FLIGHT, genomeSets: [], runs: [], skipped: [], idle: null,
    redis: { how: 'none', url: null, version: null }, notes: [],
    summary: { ratios: { cellularOverJetstream: null, cellularOverSocketio: null, cellularOverWsRelay: null }, idleKbPerSocket: null },
    shutdown: { leftovers: [] },
  };
  const ctx: DriveContext = { seconds: o.seconds, progress: o.progress, ...(o.signal ? { signal: o.signal } : {}) };
  const pool = new ProcessPool();
  const onExit = () => pool.killAll();
  process.once('exit', onExit);
  try {
    await cellularPhase(o, r, ctx);
    // A peer that fails is reported as such; the run goes on.
    const peer = async (system: SystemName, phase: () => Promise<void>) => {
      try {
        await phase();
      } catch (e) {
        if (o.signal?.aborted) throw e;
        const reason = `failed: ${(e as Error).message ?? String(e)}`.slice(0, 300);
        r.skipped.push({ system, reason });
        r.runs = r.runs.filter((x) => x.system !== system);
        o.progress(`${SYSTEM_LABELS[system]}: ${reason}`);
      }
    };
    await peer('ws-relay', () => wsRelayPhase(o, r, ctx, pool));
    await peer('socketio', () => socketioPhase(o, r, ctx, pool));
  } finally {
    await pool.stopAll();
    process.off('exit', onExit);
    r.shutdown.leftovers = pool.leftovers();
  }
  const sat = (s: SystemName) => r.runs.find((x) => x.system === s && x.mode === 'saturation')?.throughput ?? null;
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);
  r.summary.ratios = {
    cellularOverJetstream: ratio(sat('cellular'), sat('jetstream')),
    cellularOverSocketio: ratio(sat('cellular'), sat('socketio')),
    cellularOverWsRelay: ratio(sat('cellular'), sat('ws-relay')),
  };
  r.summary.idleKbPerSocket = r.idle ? r.idle.rssPerSocket / 1024 : null;
  return r;
}
