/**
 * What the chat benchmark takes and gives back: its options, the systems it compares, the
 * figures of one run (throughput, latency, CPU per message) and of the idle-socket memory
 * run, and the whole result the report is written from. The constants here are part of
 * the method (docs/benchmarks.md) and are written into the report.
 */
import type { BenchRunOptions } from '../bench-options.ts';

export interface ChatBenchOptions extends BenchRunOptions {
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

