/**
 * What the spawn benchmark measures and how it is summed up: the raw samples of one run,
 * the summary (distributions, ratios to the peers, CPU per pulse) and the targets with
 * their verdicts. Plain data, written to the JSON report as is.
 */
import type { Genome } from '../organism/kernel/genome/index.ts';
import type { MemorySample } from './procfs.ts';
import { distribution, median, type Distribution } from '../organism/chaos/stats.ts';

export interface SpawnSample {
  /** 1-based spawn number. */
  i: number;
  id: string;
  pid: number;
  /** Whether this spawn is one of the `spawns` timed samples (the rest fill up to `cells`). */
  timed: boolean;
  /** `Organism.spawn()` resolved: certificate signed and stored, process exec'd. ms after t0. */
  spawnCallMs: number;
  /** The first pulse's own timestamp (the cell's clock, same host), ms after t0. */
  pulseSentMs: number;
  /** The observer's bus admitted the first pulse (certificate fetched, signature checked). */
  firstPulseMs: number;
  /** The observer's bus admitted the birth hormone. */
  birthMs: number;
  /** Peers run just before this spawn; null for untimed spawns. */
  forkReadyMs: number | null;
  forkNatsReadyMs: number | null;
  spawnExitMs: number | null;
}

export interface MemoryRow extends MemorySample {
  id: string;
  pid: number;
  /** What the cell itself last reported in its pulse, bytes. */
  reportedRss: number | null;
}

export interface TrafficSecond {
  /** Seconds since the window opened, at the end of this bucket. */
  t: number;
  /** Bucket length, s (about 1; the last one may be shorter). */
  dt: number;
  wire: number;
  admitted: number;
  bytes: number;
}

export interface CellCpu {
  id: string;
  pid: number;
  /** Every thread of the process, µs in the window. */
  micros: number;
  /** The main thread alone (the rest: GC and libuv threads). */
  mainMicros: number;
}

export interface TrafficResult {
  /** Actual window length, s. */
  seconds: number;
  cells: number;
  pulseIntervalMs: number;
  /** Pulses on the wire (raw subscription to org.<id>.hormone.pulse). */
  wirePulses: number;
  wireBytes: number;
  /** Pulses from the measured cells the observer's bus admitted. */
  admittedPulses: number;
  perSecond: TrafficSecond[];
  cellCpu: CellCpu[];
  brokerCpuMicros: number | null;
  observerCpuMicros: number;
}

export interface ShutdownResult {
  ms: number;
  stragglers: number;
  /** Pids started by this run that were still alive after stop (should be empty). */
  leftovers: { pid: number; what: string }[];
}

export interface SpawnBenchRaw {
  organism: string;
  brokerPid: number | null;
  genome: Readonly<Genome>;
  cellNodeFlags: readonly string[];
  samples: SpawnSample[];
  memory: MemoryRow[];
  peerMemory: { bare: MemorySample | null; nats: MemorySample | null };
  brokerMemory: MemorySample | null;
  traffic: TrafficResult;
  /** Cells whose first pulse was admitted before their birth hormone. */
  pulseBeforeBirth: number;
}

export interface Target {
  name: string;
  value: number;
  limit: number;
  unit: string;
  pass: boolean;
}

export interface SpawnBenchSummary {
  firstPulse: Distribution;
  birth: Distribution;
  spawnCall: Distribution;
  pulseSent: Distribution;
  fork: Distribution;
  forkNats: Distribution;
  spawnExit: Distribution;
  ratios: { firstPulseP50OverForkP50: number; firstPulseP95OverForkP95: number; firstPulseP50OverForkNatsP50: number; rssMedianOverBareRss: number; rssMedianOverNatsRss: number };
  memory: { rssMedian: number; rssMax: number; pssMedian: number; privateMedian: number; bareRss: number; natsRss: number; brokerRss: number };
  traffic: {
    pulsesPerSecond: number;
    expectedPerSecond: number;
    admittedPerSecond: number;
    bytesPerSecond: number;
    bytesPerPulse: number;
    cellCpuPercent: number;
    /** Share of the cells' CPU spent on their main threads, %. */
    cellMainThreadShare: number;
    cellCpuMicrosPerPulse: number;
    /** Every cell receives and verifies every pulse: CPU per pulse delivered to a cell. */
    cellCpuMicrosPerDelivery: number;
    brokerCpuPercent: number;
    brokerCpuMicrosPerPulse: number;
    observerCpuPercent: number;
    observerCpuMicrosPerPulse: number;
  };
  targets: Target[];
}

export interface SpawnBenchResult {
  raw: SpawnBenchRaw;
  summary: SpawnBenchSummary;
  shutdown: ShutdownResult;
}

export const TARGETS = {
  /** A tissue must be able to grow within a third of a second. */
  firstPulseP95Ms: 300,
  /** An idle cell must stay small enough for dozens per host. */
  idleRssBytes: 60e6,
} as const;

export function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : '-';
}

export function summarize(raw: SpawnBenchRaw): SpawnBenchSummary {
  const timed = raw.samples.filter((s) => s.timed);
  const nums = (f: (s: SpawnSample) => number | null) => timed.map(f).filter((v): v is number => v !== null);
  const firstPulse = distribution(nums((s) => s.firstPulseMs));
  const fork = distribution(nums((s) => s.forkReadyMs));
  const forkNats = distribution(nums((s) => s.forkNatsReadyMs));
  const rss = raw.memory.map((m) => m.rss);
  const memory = {
    rssMedian: median(rss),
    rssMax: Math.max(...rss),
    pssMedian: median(raw.memory.map((m) => m.pss)),
    privateMedian: median(raw.memory.map((m) => m.private)),
    bareRss: raw.peerMemory.bare?.rss ?? Number.NaN,
    natsRss: raw.peerMemory.nats?.rss ?? Number.NaN,
    brokerRss: raw.brokerMemory?.rss ?? Number.NaN,
  };
  const t = raw.traffic;
  const cellMicros = t.cellCpu.reduce((a, c) => a + c.micros, 0);
  const wallMicros = t.seconds * 1e6;
  const broker = t.brokerCpuMicros ?? Number.NaN;
  const traffic = {
    pulsesPerSecond: t.wirePulses / t.seconds,
    expectedPerSecond: (t.cells * 1_000) / t.pulseIntervalMs,
    admittedPerSecond: t.admittedPulses / t.seconds,
    bytesPerSecond: t.wireBytes / t.seconds,
    bytesPerPulse: t.wireBytes / t.wirePulses,
    cellCpuPercent: (100 * cellMicros) / wallMicros,
    cellMainThreadShare: (100 * t.cellCpu.reduce((a, c) => a + c.mainMicros, 0)) / cellMicros,
    cellCpuMicrosPerPulse: cellMicros / t.wirePulses,
    cellCpuMicrosPerDelivery: cellMicros / (t.wirePulses * t.cells),
    brokerCpuPercent: (100 * broker) / wallMicros,
    brokerCpuMicrosPerPulse: broker / t.wirePulses,
    observerCpuPercent: (100 * t.observerCpuMicros) / wallMicros,
    observerCpuMicrosPerPulse: t.observerCpuMicros / t.wirePulses,
  };
  const targets: Target[] = [
    { name: 'spawn → first pulse, p95', value: firstPulse.p95, limit: TARGETS.firstPulseP95Ms, unit: 'ms', pass: firstPulse.p95 <= TARGETS.firstPulseP95Ms },
    { name: 'idle RSS, largest cell', value: memory.rssMax / 1e6, limit: TARGETS.idleRssBytes / 1e6, unit: 'MB', pass: memory.rssMax <= TARGETS.idleRssBytes },
  ];
  return {
    firstPulse,
    birth: distribution(nums((s) => s.birthMs)),
    spawnCall: distribution(nums((s) => s.spawnCallMs)),
    pulseSent: distribution(nums((s) => s.pulseSentMs)),
    fork,
    forkNats,
    spawnExit: distribution(nums((s) => s.spawnExitMs)),
    ratios: {
      firstPulseP50OverForkP50: firstPulse.p50 / fork.p50,
      firstPulseP95OverForkP95: firstPulse.p95 / fork.p95,
      firstPulseP50OverForkNatsP50: firstPulse.p50 / forkNats.p50,
      rssMedianOverBareRss: memory.rssMedian / memory.bareRss,
      rssMedianOverNatsRss: memory.rssMedian / memory.natsRss,
    },
    memory,
    traffic,
    targets,
  };
}
