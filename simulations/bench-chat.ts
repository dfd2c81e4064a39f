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
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, headers as natsHeaders } from '@nats-io/transport-node';
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { io as ioClient, type Socket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { messagesStreamConfig } from '../cells/messenger/stores.ts';
import { H } from '../cells/receiver/delivery.ts';
import { natsOptions } from '../organism/kernel/access.ts';
import { freePort } from '../organism/grow/broker.ts';
import type { CensusEntry } from '../organism/kernel/census.ts';
import { CellularError, throwIfAborted } from '../organism/wire/errors.ts';
import { loadGenome } from '../organism/kernel/genome/index.ts';
import { Namespace } from '../organism/kernel/namespace.ts';
import { Organism } from '../organism/grow/organism.ts';
import { LeanClient, ReplyError, wsUrl } from './chat-client.ts';
import { clockTicks, readCpuMicros, readMemory } from './procfs.ts';

export interface ChatBenchOptions {
  /** Length of each measured window, s. @default 10 */
  seconds: number;
  /** Chat clients (users) of every system. @default 50 */
  clients: number;
  /** Fixed offered rate, messages/s in total. @default 5000 */
  rate: number;
  /** Sends each client keeps awaiting their ack at saturation. @default 32 */
  window: number;
  /** Idle sockets held open to one receiver for the memory figure (0 skips it). @default 10000 */
  idle: number;
  stateDir: string;
  progress: (line: string) => void;
  /** Lines of the organism (broker start, shutdown). */
  say?: (line: string) => void;
  signal?: AbortSignal;
}

export type SystemName = 'cellular' | 'jetstream' | 'ws-relay' | 'socketio';

export const SYSTEM_LABELS: Record<SystemName, string> = {
  cellular: 'cellular (2 receivers, 1 worker, JetStream)',
  jetstream: 'raw JetStream acked publish',
  'ws-relay': 'ws relay, 1 process, in memory',
  socketio: 'Socket.IO + Redis adapter, 2 processes',
};

/** Body size of every message, bytes (the send time and a run tag at the front, random after). */
export const BODY_BYTES = 256;
/** Publishes in flight for raw JetStream at saturation. */
export const RAW_IN_FLIGHT = 256;
/** Clients ack what they hold this often, ms. */
export const ACK_EVERY_MS = 20;
/** Every run starts with this long unmeasured (fresh processes compile their hot paths; consumers start). */
export const WARMUP_MS = 3_000;
const BUCKET_MS = 500;
const DRAIN_MS = 20_000;

export interface Latency {
  n: number;
  /** ms */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  /** The HdrHistogram (µs), compressed base64, for re-analysis. */
  hdr: string;
}

export interface CpuUse {
  /** CPU of the serving processes over the window, µs (utime + stime, all threads). */
  micros: number;
  /** … per completed message (delivered, or acked for raw JetStream). */
  perMessageMicros: number | null;
  processes: { name: string; pid: number; micros: number }[];
  /** The bench process itself (the clients: load generator), µs and per message. */
  loadGenMicros: number;
  loadGenPerMessageMicros: number | null;
  /** Every CPU of the machine busy over the window (/proc/stat), µs; null off Linux. */
  machineMicros: number | null;
  /** … of which neither the serving processes nor the bench: other work on the machine (a shared machine), µs. */
  otherMicros: number | null;
}

export interface LoadRun {
  system: SystemName;
  mode: 'rate' | 'saturation';
  /** What completes a message: a `deliver` at the recipient, or (raw JetStream) the publish ack. */
  completes: 'delivered' | 'acked';
  offeredPerSecond: number | null;
  window: number | null;
  senders: number;
  seconds: number;
  /** Counts within the measured window (sends by send time, acks and deliveries by arrival). */
  sent: number;
  acked: number;
  delivered: number;
  sentPerSecond: number;
  ackedPerSecond: number;
  deliveredPerSecond: number;
  /** Completed messages per second: delivered (messaging) or acked (raw JetStream). */
  throughput: number;
  /** Send → deliver (or → ack for raw JetStream), messages arriving in the window. */
  latency: Latency | null;
  /** Send → the sender's ack, acks arriving in the window. */
  ackLatency: Latency | null;
  errors: Record<string, number>;
  /** Pacer ticks skipped because too much was in flight (rate mode). */
  skipped: number;
  /** Acked over the whole run but never delivered by the end of the drain. */
  undelivered: number;
  /** Deliveries of another run (late copies), ignored. */
  stray: number;
  /** Per 500 ms from the start of the run (warm-up included): rates per second, and the p99 latency (ms) of what arrived in it. */
  timeline: { t: number; sent: number; acked: number; delivered: number; p99: number | null }[];
  /**
   * Delivered per second after the window, while the backlog drained (sends stopped):
   * what delivery does without sends competing. Null when under 2 buckets' worth came after.
   */
  drainDeliveredPerSecond: number | null;
  cpu: CpuUse | null;
}

export interface IdleResult {
  sockets: number;
  receiver: { id: string; pid: number };
  rssBefore: number;
  rssAfter: number;
  privateBefore: number;
  privateAfter: number;
  /** (rssAfter − rssBefore) / sockets, bytes. */
  rssPerSocket: number;
  privatePerSocket: number;
  openMs: number;
  /** RSS as batches of sockets were opened. */
  samples: { sockets: number; rss: number }[];
}

export interface ChatBenchResult {
  options: Omit<ChatBenchOptions, 'progress' | 'say' | 'signal'>;
  bodyBytes: number;
  rawInFlight: number;
  genomeSets: string[];
  runs: LoadRun[];
  skipped: { system: SystemName; reason: string }[];
  idle: IdleResult | null;
  redis: { how: 'started' | 'existing' | 'none'; url: string | null; version: string | null };
  notes: string[];
  summary: {
    ratios: {
      cellularOverJetstream: number | null;
      cellularOverSocketio: number | null;
      cellularOverWsRelay: number | null;
    };
    idleKbPerSocket: number | null;
  };
  shutdown: { leftovers: number[] };
}

// ---- measuring ----------------------------------------------------------------------------

const now = () => performance.now();

function histogram(digits: 2 | 3 = 3): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: digits, autoResize: true });
}

function latencyOf(h: Histogram): Latency | null {
  if (h.totalCount === 0) return null;
  const ms = (us: number) => Math.round(us) / 1_000;
  return {
    n: h.totalCount, p50: ms(h.getValueAtPercentile(50)), p90: ms(h.getValueAtPercentile(90)), p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)), max: ms(h.maxValue), mean: ms(h.mean), hdr: encodeIntoCompressedBase64(h),
  };
}

/** A random pool the bodies are cut from (random bytes per message would cost the load generator). */
const POOL = randomBytes(1 << 16);

/** A body: send time (float64 LE, performance.now() ms) and the run tag (uint32 LE), then random bytes. */
function makeBody(tag: number, sentAt: number): Buffer {
  const b = Buffer.allocUnsafe(BODY_BYTES);
  const off = Math.floor(Math.random() * (POOL.length - BODY_BYTES));
  POOL.copy(b, 12, off, off + BODY_BYTES - 12);
  b.writeDoubleLE(sentAt, 0);
  b.writeUInt32LE(tag, 8);
  return b;
}

function readStamp(body: Uint8Array | ArrayBuffer): { sentAt: number; tag: number } | null {
  const u = body instanceof ArrayBuffer ? new Uint8Array(body) : body;
  if (!(u instanceof Uint8Array) || u.byteLength < 12) return null;
  const dv = new DataView(u.buffer, u.byteOffset, u.byteLength);
  return { sentAt: dv.getFloat64(0, true), tag: dv.getUint32(8, true) };
}

let tagCounter = Math.floor(Math.random() * 1e6);

/** Counts of one run: sends, acks and deliveries, in the window and in 500 ms buckets. */
class Meter {
  readonly tag = ++tagCounter;
  readonly start = now();
  readonly from: number;
  readonly to: number;
  readonly latency = histogram();
  readonly ackLatency = histogram();
  sent = 0;
  acked = 0;
  delivered = 0;
  ackedTotal = 0;
  deliveredTotal = 0;
  stray = 0;
  readonly buckets: { sent: number; acked: number; delivered: number; latency: Histogram | null }[] = [];
  /** Deliveries after the window (the drain), and when the last one came. */
  deliveredAfter = 0;
  lastDelivery = 0;

  constructor(warmupMs: number, measureMs: number) {
    this.from = this.start + warmupMs;
    this.to = this.from + measureMs;
  }

  #bucket(t: number) {
    const i = Math.max(0, Math.floor((t - this.start) / BUCKET_MS));
    while (this.buckets.length <= i) this.buckets.push({ sent: 0, acked: 0, delivered: 0, latency: null });
    return this.buckets[i]!;
  }

  inWindow(t: number): boolean {
    return t >= this.from && t < this.to;
  }

  onSent(t: number): void {
    this.#bucket(t).sent++;
    if (this.inWindow(t)) this.sent++;
  }

  onAcked(sentAt: number, completes: boolean): void {
    const t = now();
    this.ackedTotal++;
    this.#bucket(t).acked++;
    if (!this.inWindow(t)) return;
    this.acked++;
    const us = Math.max(1, Math.round((t - sentAt) * 1_000));
    this.ackLatency.recordValue(us);
    if (completes) {
      this.latency.recordValue(us);
      (this.#bucket(t).latency ??= histogram(2)).recordValue(us);
    }
  }

  onDeliver(body: Uint8Array | ArrayBuffer): void {
    const t = now();
    const s = readStamp(body);
    if (!s || s.tag !== this.tag) {
      this.stray++;
      return;
    }
    this.deliveredTotal++;
    this.lastDelivery = t;
    const us = Math.max(1, Math.round((t - s.sentAt) * 1_000));
    const b = this.#bucket(t);
    b.delivered++;
    (b.latency ??= histogram(2)).recordValue(us);
    if (t >= this.to) this.deliveredAfter++;
    if (!this.inWindow(t)) return;
    this.delivered++;
    this.latency.recordValue(us);
  }
}

/** Where a system's clients hand their deliveries: the meter of the run in progress. */
interface Sink {
  meter: Meter | undefined;
}

interface Proc {
  name: string;
  pid: number;
}

function cpuOf(procs: Proc[]): Map<number, number> {
  return new Map(procs.map((p) => [p.pid, readCpuMicros(p.pid) ?? Number.NaN]));
}

/** Busy CPU time of the whole machine so far (all CPUs, /proc/stat), µs; NaN when unreadable. */
function machineCpu(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 1e6) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

const selfCpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

interface DriveSpec {
  system: SystemName;
  label: string;
  mode: 'rate' | 'saturation';
  completes: 'delivered' | 'acked';
  /** Senders; a sender `i` sends to a random recipient ≠ i of `recipients` (default: senders). */
  senders: number;
  recipients?: number;
  rate?: number;
  window?: number;
  send(from: number, to: number, body: Buffer): Promise<unknown>;
  sink?: Sink;
  procs(): Proc[];
}

interface DriveContext {
  seconds: number;
  progress: (line: string) => void;
  signal?: AbortSignal;
}

const codeOf = (e: unknown) => (e instanceof ReplyError || e instanceof CellularError ? e.code : (e as { code?: unknown })?.code ? String((e as { code: unknown }).code) : (e as Error)?.message?.slice(0, 60) ?? 'error');
const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
const fmtMs = (v: number | undefined | null) => (v === undefined || v === null ? '—' : v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(2)} ms`);

/** One run of a system: warm-up, a measured window, then a bounded drain. */
async function drive(spec: DriveSpec, ctx: DriveContext): Promise<LoadRun> {
  throwIfAborted(ctx.signal);
  const measureMs = ctx.seconds * 1_000;
  const meter = new Meter(WARMUP_MS, measureMs);
  if (spec.sink) spec.sink.meter = meter;
  const recipients = spec.recipients ?? spec.senders;
  const errors: Record<string, number> = {};
  let inflight = 0;
  let skipped = 0;
  let stopped = false;
  const completesOnAck = spec.completes === 'acked';

  const fire = (from: number): Promise<void> => {
    let to = Math.floor(Math.random() * recipients);
    if (recipients === spec.senders && recipients > 1) while (to === from) to = Math.floor(Math.random() * recipients);
    const sentAt = now();
    const body = makeBody(meter.tag, sentAt);
    meter.onSent(sentAt);
    inflight++;
    return spec.send(from, to, body).then(
      () => {
        inflight--;
        meter.onAcked(sentAt, completesOnAck);
      },
      (e: unknown) => {
        inflight--;
        const code = codeOf(e);
        errors[code] = (errors[code] ?? 0) + 1;
        throw e;
      },
    );
  };

  // CPU at the window's edges.
  let cpu0: { procs: Map<number, number>; self: number; machine: number; procList: Proc[] } | undefined;
  let cpu1: { procs: Map<number, number>; self: number; machine: number } | undefined;
  const t0 = setTimeout(() => {
    const procList = spec.procs();
    cpu0 = { procs: cpuOf(procList), self: selfCpu(), machine: machineCpu(), procList };
  }, Math.max(0, meter.from - now()));
  const t1 = setTimeout(() => {
    cpu1 = { procs: cpuOf(cpu0?.procList ?? spec.procs()), self: selfCpu(), machine: machineCpu() };
    stopped = true;
  }, Math.max(0, meter.to - now()));
  // Running numbers every 5 s of the window.
  const ticker = setInterval(() => {
    const t = now();
    if (t < meter.from + 1_000 || t >= meter.to) return;
    const s = (t - meter.from) / 1_000;
    const done = completesOnAck ? meter.acked : meter.delivered;
    ctx.progress(`  … ${spec.label}: ${s.toFixed(0)} s, ${fmt(done / s)}/s ${spec.completes}, p99 ${fmtMs(meter.latency.totalCount ? meter.latency.getValueAtPercentile(99) / 1_000 : null)}, ${fmt(inflight)} in flight`);
  }, 5_000);

  const onAbort = () => (stopped = true);
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (spec.mode === 'rate') {
      const rate = spec.rate!;
      const cap = Math.max(10_000, rate * 5);
      let k = 0;
      while (!stopped) {
        const due = Math.floor(((now() - meter.start) * rate) / 1_000);
        while (k < due) {
          if (inflight >= cap) skipped++;
          else fire(k % spec.senders).catch(() => undefined);
          k++;
        }
        await sleep(1);
      }
    } else {
      const lane = async (from: number) => {
        while (!stopped) {
          try {
            await fire(from);
          } catch (e) {
            if (codeOf(e) === 'CLOSED') return;
            await sleep(5);
          }
        }
      };
      const lanes: Promise<void>[] = [];
      for (let i = 0; i < spec.senders; i++) for (let w = 0; w < spec.window!; w++) lanes.push(lane(i));
      while (!stopped) await sleep(50);
      // Lanes end once their send in flight settles; the drain below bounds the wait.
      void Promise.all(lanes);
    }
    // Drain: what was sent is acked, what was acked is delivered (bounded).
    const end = now() + DRAIN_MS;
    while (now() < end && !ctx.signal?.aborted) {
      if (inflight === 0 && (completesOnAck || meter.deliveredTotal >= meter.ackedTotal)) break;
      await sleep(20);
    }
  } finally {
    clearTimeout(t0);
    clearTimeout(t1);
    clearInterval(ticker);
    ctx.signal?.removeEventListener('abort', onAbort);
    if (spec.sink) spec.sink.meter = undefined;
  }
  throwIfAborted(ctx.signal);

  const secs = measureMs / 1_000;
  const done = completesOnAck ? meter.acked : meter.delivered;
  let cpu: CpuUse | null = null;
  if (cpu0 && cpu1) {
    const processes = cpu0.procList.map((p) => ({ ...p, micros: (cpu1!.procs.get(p.pid) ?? Number.NaN) - (cpu0!.procs.get(p.pid) ?? Number.NaN) })).filter((p) => Number.isFinite(p.micros));
    const micros = processes.reduce((a, p) => a + p.micros, 0);
    const loadGenMicros = cpu1.self - cpu0.self;
    const machine = cpu1.machine - cpu0.machine;
    cpu = {
      micros, perMessageMicros: done > 0 ? micros / done : null, processes,
      loadGenMicros, loadGenPerMessageMicros: done > 0 ? loadGenMicros / done : null,
      machineMicros: Number.isFinite(machine) ? machine : null,
      otherMicros: Number.isFinite(machine) ? Math.max(0, machine - micros - loadGenMicros) : null,
    };
  }
  const run: LoadRun = {
    system: spec.system, mode: spec.mode, completes: spec.completes,
    offeredPerSecond: spec.mode === 'rate' ? spec.rate! : null, window: spec.mode === 'saturation' ? spec.window! : null,
    senders: spec.senders, seconds: secs,
    sent: meter.sent, acked: meter.acked, delivered: completesOnAck ? meter.acked : meter.delivered,
    sentPerSecond: meter.sent / secs, ackedPerSecond: meter.acked / secs, deliveredPerSecond: (completesOnAck ? meter.acked : meter.delivered) / secs,
    throughput: done / secs,
    latency: latencyOf(meter.latency), ackLatency: latencyOf(meter.ackLatency),
    errors, skipped, undelivered: completesOnAck ? 0 : Math.max(0, meter.ackedTotal - meter.deliveredTotal), stray: meter.stray,
    timeline: meter.buckets.map((b, i) => ({
      t: ((i + 1) * BUCKET_MS) / 1_000, sent: (b.sent * 1_000) / BUCKET_MS, acked: (b.acked * 1_000) / BUCKET_MS, delivered: (b.delivered * 1_000) / BUCKET_MS,
      p99: b.latency && b.latency.totalCount > 0 ? Math.round(b.latency.getValueAtPercentile(99)) / 1_000 : null,
    })),
    drainDeliveredPerSecond: !completesOnAck && meter.lastDelivery - meter.to >= 2 * BUCKET_MS ? (meter.deliveredAfter * 1_000) / (meter.lastDelivery - meter.to) : null,
    cpu,
  };
  const errs = Object.entries(errors).map(([c, n]) => `${c}×${n}`).join(', ');
  ctx.progress(
    `${spec.label}: ${fmt(run.throughput)}/s ${spec.completes}${spec.mode === 'rate' ? ` (offered ${fmt(spec.rate!)}/s, sent ${fmt(run.sentPerSecond)}/s)` : ` (window ${spec.window})`}, ` +
      `p50 ${fmtMs(run.latency?.p50)}, p99 ${fmtMs(run.latency?.p99)}, p99.9 ${fmtMs(run.latency?.p999)}` +
      `${cpu?.perMessageMicros != null ? `, ${fmt(cpu.perMessageMicros)} µs CPU/msg` : ''}${cpu?.otherMicros != null && cpu.otherMicros > 0.1 * measureMs * 1_000 ? ` (other work on the machine: ${Math.round(cpu.otherMicros / measureMs / 10)} % of a core)` : ''}${run.undelivered ? `, ${fmt(run.undelivered)} undelivered after drain` : ''}${errs ? `; errors ${errs}` : ''}${skipped ? `; ${fmt(skipped)} pacer ticks skipped` : ''}`,
  );
  return run;
}

// ---- child processes ----------------------------------------------------------------------

const here = dirname(fileURLToPath(import.meta.url));

/** Every child the bench starts (peer servers, redis-server), stopped by pid through its handle. */
class Children {
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
    const child = this.track(fork(join(here, 'peers', script), [], { execPath: process.execPath, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, ...env } }));
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

// ---- the phases ---------------------------------------------------------------------------

const MAX_IDLE = 100_000;

function genomeSets(o: ChatBenchOptions, portMin: number): string[] {
  return [
    'tissues.echo=null', 'tissues.dashboard=null', 'tissues.stem.min=0',
    'tissues.receiver.min=2', 'tissues.receiver.max=2', 'tissues.worker.min=1', 'tissues.worker.max=1',
    'limits.drainTimeoutMs=3000', 'limits.shutdownTimeoutMs=8000',
    'messenger.frontPort=0', `messenger.portMin=${portMin}`, `messenger.portMax=${portMin + 40}`,
    'messenger.scryptLogN=10', 'messenger.framesPerSecond=1000000', `messenger.connectionsPerIp=${Math.max(1024, o.idle + o.clients + 100)}`,
    'messenger.loginAttemptsPerIp=1000000', 'messenger.loginAttemptsPerUser=1000000',
  ];
}

/** Polls `cond` until it holds; CELL_ERR_SPAWN after `ms`, CELL_ERR_ABORTED on `signal`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string, signal?: AbortSignal): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    throwIfAborted(signal);
    if (Date.now() > end) throw new CellularError('CELL_ERR_SPAWN', `timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function sampleMemory(pid: number, n = 5, everyMs = 250): Promise<{ rss: number; private: number }> {
  const rss: number[] = [];
  const priv: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = readMemory(pid);
    if (m) {
      rss.push(m.rss);
      priv.push(m.private);
    }
    if (i < n - 1) await sleep(everyMs);
  }
  if (rss.length === 0) throw new CellularError('CELL_ERR_REMOTE', `cannot read /proc/${pid} (the receiver is gone)`);
  return { rss: median(rss), private: median(priv) };
}

function openIdle(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      reject(new ReplyError(`HTTP_${res.statusCode}`, 'upgrade refused'));
    });
    ws.once('error', reject);
  });
}

async function idlePhase(o: ChatBenchOptions, receiver: CensusEntry): Promise<IdleResult> {
  o.progress(`idle memory: ${fmt(o.idle)} idle sockets to ${receiver.id} (pid ${receiver.pid}) …`);
  await sleep(1_000);
  const before = await sampleMemory(receiver.pid);
  const url = wsUrl(receiver.url!);
  const open: WebSocket[] = [];
  const samples: { sockets: number; rss: number }[] = [{ sockets: 0, rss: before.rss }];
  const t0 = now();
  try {
    for (let i = 0; i < o.idle; i += 500) {
      throwIfAborted(o.signal);
      const batch = await Promise.allSettled(Array.from({ length: Math.min(500, o.idle - i) }, () => openIdle(url)));
      for (const r of batch) if (r.status === 'fulfilled') open.push(r.value);
      const failed = batch.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        const e = failed.reason as NodeJS.ErrnoException;
        if (e?.code === 'EMFILE' || /EMFILE/.test(String(e?.message))) {
          throw new CellularError('CELL_ERR_REMOTE', `too many open files (EMFILE) after ${open.length} idle sockets: raise the open-file limit (ulimit -n, now too low for ${o.idle} sockets on each side) or lower --idle`);
        }
        throw new CellularError('CELL_ERR_REMOTE', `idle socket ${open.length + 1} of ${o.idle} failed: ${codeOf(e)} ${e?.message ?? ''}`.trim());
      }
      samples.push({ sockets: open.length, rss: readMemory(receiver.pid)?.rss ?? Number.NaN });
    }
    const openMs = now() - t0;
    await sleep(2_000);
    const after = await sampleMemory(receiver.pid);
    samples.push({ sockets: open.length, rss: after.rss });
    const result: IdleResult = {
      sockets: open.length, receiver: { id: receiver.id, pid: receiver.pid },
      rssBefore: before.rss, rssAfter: after.rss, privateBefore: before.private, privateAfter: after.private,
      rssPerSocket: (after.rss - before.rss) / open.length, privatePerSocket: (after.private - before.private) / open.length,
      openMs, samples,
    };
    o.progress(
      `idle memory: ${fmt(open.length)} sockets opened in ${(openMs / 1_000).toFixed(1)} s; receiver RSS ${(before.rss / 1e6).toFixed(1)} → ${(after.rss / 1e6).toFixed(1)} MB = ${(result.rssPerSocket / 1024).toFixed(1)} KB per socket`,
    );
    return result;
  } finally {
    await closeAll(open);
  }
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  const closing = sockets.map((ws) => new Promise<void>((r) => {
    if (ws.readyState === WebSocket.CLOSED) return r();
    ws.once('close', () => r());
    ws.close();
  }));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(closing), new Promise<void>((r) => (timer = setTimeout(r, 5_000)))]);
  clearTimeout(timer);
  for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

/** Logs in `n` users (alternating between `urls`), each acking what it holds every 20 ms. */
async function loginAll(urls: string[], names: string[], sink: Sink, register: boolean, signal?: AbortSignal): Promise<LeanClient[]> {
  const clients: LeanClient[] = new Array(names.length);
  try {
    for (let i = 0; i < names.length; i += 10) {
      throwIfAborted(signal);
      await Promise.all(names.slice(i, i + 10).map(async (user, k) => {
        const c = await LeanClient.connect(urls[(i + k) % urls.length]!, { onDeliver: (body) => sink.meter?.onDeliver(body) });
        clients[i + k] = c;
        const password = `pw-${user}-bench`;
        if (register) {
          try {
            await c.request({ t: 'register', user, password });
          } catch (e) {
            if (!(e instanceof ReplyError && e.code === 'ACCOUNT_ERR_EXISTS')) throw e;
          }
        }
        await c.request({ t: 'login', user, password });
        c.autoAck(ACK_EVERY_MS);
      }));
    }
  } catch (e) {
    await Promise.all(clients.filter(Boolean).map((c) => c.shut()));
    throw e;
  }
  return clients;
}

function msgIds(prefix: string) {
  let n = 0;
  return () => `${prefix}${(n++).toString(36).padStart(6, '0')}`;
}

async function cellularPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext): Promise<void> {
  const portMin = 20_000 + Math.floor(Math.random() * 40_000);
  const sets = genomeSets(o, portMin);
  r.genomeSets = sets;
  const genome = loadGenome({ sets });
  const organism = new Organism({ stateDir: o.stateDir, genome, autoInstall: false, say: o.say ?? (() => {}), ...(o.signal ? { signal: o.signal } : {}) });
  const onExit = () => organism.emergencyStop();
  process.once('exit', onExit);
  let clients: LeanClient[] = [];
  let stoppedCleanly = false;
  try {
    await organism.start();
    await organism.waitForPopulation();
    const census = organism.observer.census;
    const receivers = () => census.living().filter((c) => c.tissue === 'receiver' && c.state === 'alive' && c.url !== null).sort((a, b) => a.id.localeCompare(b.id));
    await waitFor(() => receivers().length >= 2, 15_000, 'two receivers with a URL', o.signal);
    const rx = receivers().slice(0, 2);
    o.progress(`cellular: organism ${organism.id} alive: ${census.living().map((c) => `${c.id} (pid ${c.pid})`).join(', ')}; nats-server pid ${organism.broker?.pid}`);

    if (o.idle > 0) r.idle = await idlePhase(o, rx[0]!);

    const procs = (): Proc[] => [
      ...census.living().filter((c) => c.tissue === 'receiver' || c.tissue === 'worker').map((c) => ({ name: c.id, pid: c.pid })),
      ...(organism.broker?.pid ? [{ name: 'nats-server', pid: organism.broker.pid }] : []),
    ];
    // Fresh users every run (the store may hold an earlier run's).
    const run = randomBytes(3).toString('hex');
    const names = Array.from({ length: o.clients }, (_, i) => `b${run}-${String(i).padStart(4, '0')}`);
    const sink: Sink = { meter: undefined };
    const t0 = now();
    clients = await loginAll(rx.map((c) => c.url!), names, sink, true, o.signal);
    o.progress(`cellular: ${o.clients} users registered and logged in (alternating ${rx.map((c) => c.id).join(', ')}) in ${((now() - t0) / 1_000).toFixed(1)} s`);
    for (const c of clients) void c.closed.then(({ code }) => { if (!stoppedCleanly) r.notes.push(`cellular: a client socket closed with ${code} during the run`); });
    const nextId = msgIds(`${run}${randomBytes(3).toString('base64url')}`);
    const send = (from: number, to: number, body: Buffer) => clients[from]!.request({ t: 'send', msg: nextId(), to: names[to]!, body });
    const base = { system: 'cellular' as const, completes: 'delivered' as const, senders: o.clients, send, sink, procs };
    r.runs.push(await drive({ ...base, label: `cellular at ${fmt(o.rate)}/s`, mode: 'rate', rate: o.rate }, ctx));
    r.runs.push(await drive({ ...base, label: `cellular at saturation`, mode: 'saturation', window: o.window }, ctx));
    stoppedCleanly = true;
    await Promise.all(clients.map((c) => c.shut()));
    clients = [];

    await rawJetstreamPhase(o, r, ctx, organism);
  } finally {
    stoppedCleanly = true;
    await Promise.all(clients.map((c) => c.shut()));
    const ours = organism.broker !== undefined; // we claimed the state dir and started its broker
    await organism.stop('benchmark done');
    process.off('exit', onExit);
    // The messages of this run are of no further use: keep the state dir small.
    if (ours && organism.state.state === 'stopped') rmSync(join(o.stateDir, 'broker', 'jetstream'), { recursive: true, force: true });
  }
}

async function rawJetstreamPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext, organism: Organism): Promise<void> {
  const ns = new Namespace(organism.id);
  const nc = await natsConnect(natsOptions(organism.access, 'bench-chat/raw'));
  const jsm = await jetstreamManager(nc);
  const stream = { ...messagesStreamConfig(ns, organism.genome.messenger, 1), name: ns.stream('benchraw'), subjects: [`${ns.prefix}.benchraw.>`] };
  try {
    await jsm.streams.delete(stream.name).catch(() => false);
    await jsm.streams.add(stream);
    const js = jetstream(nc);
    const run = randomBytes(4).toString('base64url');
    let n = 0;
    const send = (_from: number, to: number, body: Buffer) => {
      const h = natsHeaders();
      const msg = `${run}${(n++).toString(36).padStart(8, '0')}`;
      const user = `u${to}`;
      h.set(H.FROM, 'bench');
      h.set(H.MSG, msg);
      h.set(H.AT, String(Date.now()));
      return js.publish(`${ns.prefix}.benchraw.${user}`, body, { msgID: `${user}.${msg}`, headers: h });
    };
    const procs = (): Proc[] => (organism.broker?.pid ? [{ name: 'nats-server', pid: organism.broker.pid }] : []);
    const base = { system: 'jetstream' as const, completes: 'acked' as const, senders: 1, recipients: o.clients, send, procs };
    r.runs.push(await drive({ ...base, label: `raw JetStream at ${fmt(o.rate)}/s`, mode: 'rate', rate: o.rate }, ctx));
    r.runs.push(await drive({ ...base, label: `raw JetStream, ${RAW_IN_FLIGHT} in flight`, mode: 'saturation', window: RAW_IN_FLIGHT }, ctx));
  } finally {
    await jsm.streams.delete(stream.name).catch(() => false);
    await nc.close().catch(() => undefined);
  }
}

async function wsRelayPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext, children: Children): Promise<void> {
  const { child, port } = await children.fork('ws-relay.js', {}, o.signal);
  let clients: LeanClient[] = [];
  try {
    o.progress(`ws relay: pid ${child.pid} on port ${port}`);
    const names = Array.from({ length: o.clients }, (_, i) => `relay-${String(i).padStart(4, '0')}`);
    const sink: Sink = { meter: undefined };
    clients = await loginAll([`ws://127.0.0.1:${port}/ws`], names, sink, false, o.signal);
    const nextId = msgIds(randomBytes(4).toString('base64url'));
    const send = (from: number, to: number, body: Buffer) => clients[from]!.request({ t: 'send', msg: nextId(), to: names[to]!, body });
    const procs = () => [{ name: 'ws-relay', pid: child.pid! }];
    const base = { system: 'ws-relay' as const, completes: 'delivered' as const, senders: o.clients, send, sink, procs };
    r.runs.push(await drive({ ...base, label: `ws relay at ${fmt(o.rate)}/s`, mode: 'rate', rate: o.rate }, ctx));
    r.runs.push(await drive({ ...base, label: 'ws relay at saturation', mode: 'saturation', window: o.window }, ctx));
  } finally {
    await Promise.all(clients.map((c) => c.shut()));
    await children.stop(child);
  }
}

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
async function startRedis(children: Children, r: ChatBenchResult, o: ChatBenchOptions): Promise<{ url: string; child: ChildProcess | null; dir: string | null } | null> {
  const bin = redisBinary();
  if (bin) {
    const port = await freePort('127.0.0.1');
    const dir = mkdtempSync(join(tmpdir(), 'bench-chat-redis-'));
    const child = children.track(spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'], { stdio: ['ignore', 'pipe', 'pipe'] }));
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
    await children.stop(child);
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

async function socketioPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext, children: Children): Promise<void> {
  const redis = await startRedis(children, r, o);
  if (!redis) {
    r.skipped.push({ system: 'socketio', reason: 'skipped: no Redis' });
    o.progress('socket.io: skipped: no Redis (no redis-server binary, nothing on 127.0.0.1:6379)');
    return;
  }
  const servers: { child: ChildProcess; port: number }[] = [];
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await children.fork('socketio-server.js', { BENCH_REDIS_URL: redis.url }, o.signal));
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
    const base = { system: 'socketio' as const, completes: 'delivered' as const, senders: o.clients, send, sink, procs };
    r.runs.push(await drive({ ...base, label: `socket.io + redis at ${fmt(o.rate)}/s`, mode: 'rate', rate: o.rate }, ctx));
    r.runs.push(await drive({ ...base, label: 'socket.io + redis at saturation', mode: 'saturation', window: o.window }, ctx));
  } finally {
    for (const s of sockets) s.disconnect();
    for (const s of servers) await children.stop(s.child);
    if (redis.child) await children.stop(redis.child);
    if (redis.dir) rmSync(redis.dir, { recursive: true, force: true });
  }
}

export function validateChatOptions(o: Pick<ChatBenchOptions, 'seconds' | 'clients' | 'rate' | 'window' | 'idle'>): void {
  const check = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new CellularError('CLI_ERR_USAGE', `--${name} must be from ${min} to ${max}, received ${v}`);
  };
  check('seconds', o.seconds, 1, 600);
  check('clients', o.clients, 2, 1_000);
  check('rate', o.rate, 1, 1_000_000);
  check('window', o.window, 1, 10_000);
  check('idle', o.idle, 0, MAX_IDLE);
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
  const children = new Children();
  const onExit = () => children.killAll();
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
    await peer('ws-relay', () => wsRelayPhase(o, r, ctx, children));
    await peer('socketio', () => socketioPhase(o, r, ctx, children));
  } finally {
    await children.stopAll();
    process.off('exit', onExit);
    r.shutdown.leftovers = children.leftovers();
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
