/**
 * What the chat benchmark measures, and how. Latency is an HdrHistogram (µs) of send →
 * arrival, one process and one clock: every body carries its send time and its run's tag
 * at the front. A `Meter` counts one run's sends, acks and deliveries inside the measured
 * window and in 500 ms buckets (the timeline). CPU is read from /proc (utime + stime, all
 * threads) of the serving processes at the window's edges, beside the bench's own CPU and
 * the whole machine's, so that CPU per completed message can be told from other work on a
 * shared machine.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { clockTicks, readCpuMicros } from '../procfs.ts';
import { BODY_BYTES, type CpuUse, type Latency, type LoadRun } from './result.ts';

/** Width of a timeline bucket, ms. */
export const BUCKET_MS = 500;

export const now = () => performance.now();

function histogram(digits: 2 | 3 = 3): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: digits, autoResize: true });
}

export function latencyOf(h: Histogram): Latency | null {
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
export function makeBody(tag: number, sentAt: number): Buffer {
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
export class Meter {
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

  /** Per bucket from the start of the run (warm-up included): rates per second, and the p99 latency (ms) of what arrived in it. */
  timeline(): LoadRun['timeline'] {
    return this.buckets.map((b, i) => ({
      t: ((i + 1) * BUCKET_MS) / 1_000, sent: (b.sent * 1_000) / BUCKET_MS, acked: (b.acked * 1_000) / BUCKET_MS, delivered: (b.delivered * 1_000) / BUCKET_MS,
      p99: b.latency && b.latency.totalCount > 0 ? Math.round(b.latency.getValueAtPercentile(99)) / 1_000 : null,
    }));
  }

  /** Delivered per second after the window, while the backlog drained; null when under 2 buckets' worth came after. */
  drainDeliveredPerSecond(): number | null {
    return this.lastDelivery - this.to >= 2 * BUCKET_MS ? (this.deliveredAfter * 1_000) / (this.lastDelivery - this.to) : null;
  }
}

/** A serving process whose CPU is counted. */
export interface Proc {
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

/** CPU used so far at one edge of the window: each serving process, this process, the machine (µs). */
export interface CpuMark {
  procs: Map<number, number>;
  self: number;
  machine: number;
}

export function cpuMark(procs: Proc[]): CpuMark {
  return { procs: cpuOf(procs), self: selfCpu(), machine: machineCpu() };
}

/** CPU over the window between two marks of `procs`, in all and per completed message (`done`). */
export function cpuUse(procs: Proc[], cpu0: CpuMark, cpu1: CpuMark, done: number): CpuUse {
  const processes = procs.map((p) => ({ ...p, micros: (cpu1.procs.get(p.pid) ?? Number.NaN) - (cpu0.procs.get(p.pid) ?? Number.NaN) })).filter((p) => Number.isFinite(p.micros));
  const micros = processes.reduce((a, p) => a + p.micros, 0);
  const loadGenMicros = cpu1.self - cpu0.self;
  const machine = cpu1.machine - cpu0.machine;
  return {
    micros, perMessageMicros: done > 0 ? micros / done : null, processes,
    loadGenMicros, loadGenPerMessageMicros: done > 0 ? loadGenMicros / done : null,
    machineMicros: Number.isFinite(machine) ? machine : null,
    otherMicros: Number.isFinite(machine) ? Math.max(0, machine - micros - loadGenMicros) : null,
  };
}
