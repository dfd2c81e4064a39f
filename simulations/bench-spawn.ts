/**
 * The spawn benchmark: what one more cell costs. In one run, against a private broker:
 *
 * 1. spawn → first pulse: cells of the `stem` tissue are spawned one at a time through
 *    the real `Organism.spawn()`, each timed from just before the call to the first
 *    `pulse` (and the `birth`) the observer's hormone bus admits from that cell;
 * 2. the peers, interleaved with the spawns so both see the same machine: a bare
 *    `fork()` → `ready`, the same after importing the NATS client and connecting, and a
 *    bare `spawn()` → exit (simulations/peer.ts);
 * 3. idle memory of every cell after a quiet spell, read from /proc (RSS, PSS, private),
 *    beside a bare and a NATS-connected peer kept alive for the comparison;
 * 4. pulse traffic over a window: pulses and bytes per second on the wire (a raw NATS
 *    subscription), what the observer admits, and the CPU the cells, nats-server and the
 *    observer spend, per second and per pulse.
 *
 * Then the organism is stopped and the run checks that no process it started survives.
 * The figures meant to travel between machines are ratios to the peers and CPU per pulse.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Subscription } from '@nats-io/transport-node';
import { CELL_NODE_FLAGS, type SpawnedCell } from '../cells/spawn.ts';
import { CellularError } from '../organism/wire/errors.ts';
import { loadGenome, type Genome } from '../organism/kernel/genome/index.ts';
import { Organism } from '../organism/grow/organism.ts';
import { commandLineOf, isProcessOf } from '../organism/kernel/processes.ts';
import { FirstSeen } from './first-seen.ts';
import { natsClientUrl, Peers, writePeerScripts, type ForkedPeer } from './peer.ts';
import { readCpuMicros, readMemory } from './procfs.ts';
import { mb, summarize, type CellCpu, type MemoryRow, type ShutdownResult, type SpawnBenchRaw, type SpawnBenchResult, type SpawnSample, type TrafficResult, type TrafficSecond } from './spawn-result.ts';
import { median } from '../organism/chaos/stats.ts';
import type { BenchRunOptions } from './bench-options.ts';

export type { SpawnBenchResult } from './spawn-result.ts';

export interface SpawnBenchOptions extends BenchRunOptions {
  /** Timed spawns (and peer runs). @default 20 */
  spawns: number;
  /** Cells alive for the memory and traffic phases; at least `spawns`. @default 20 */
  cells: number;
  /** Length of the traffic window, s. @default 10 */
  seconds: number;
  /** Quiet spell between the last first pulse and the memory reading, ms. @default 3000 */
  idleMs?: number;
  /** How long one cell may take to pulse and announce its birth, ms. @default 10000 */
  cellTimeoutMs?: number;
}

export function benchGenome(cells: number): Readonly<Genome> {
  const max = Math.max(64, cells);
  return loadGenome({ sets: ['tissues.echo.min=0', 'tissues.stem.min=0', 'tissues.receiver=null', 'tissues.worker=null', 'tissues.dashboard=null', `tissues.stem.max=${max}`, `limits.cellsPerHost=${max}`] });
}

export function validateOptions(o: Pick<SpawnBenchOptions, 'spawns' | 'cells' | 'seconds'>): void {
  const int = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new CellularError('CLI_ERR_USAGE', `--${name} must be an integer from ${min} to ${max}, received ${String(v)}`);
  };
  int('spawns', o.spawns, 1, 1_000);
  int('cells', o.cells, 1, 1_000);
  int('seconds', o.seconds, 1, 3_600);
  if (o.cells < o.spawns) throw new CellularError('CLI_ERR_USAGE', `--cells (${o.cells}) must be at least --spawns (${o.spawns}): every timed spawn leaves a living cell`);
}

const ms = (v: number | null) => (v === null ? '-' : `${Math.round(v)} ms`);

export async function runSpawnBench(o: SpawnBenchOptions): Promise<SpawnBenchResult> {
  validateOptions(o);
  const { signal, progress } = o;
  const genome = benchGenome(o.cells);
  mkdirSync(o.stateDir, { recursive: true });
  const peerDir = join(o.stateDir, 'peers');
  mkdirSync(peerDir, { recursive: true });
  const scripts = writePeerScripts(peerDir);
  const organism = new Organism({ stateDir: o.stateDir, genome, autoInstall: true, say: o.say ?? (() => {}), ...(signal ? { signal } : {}) });
  const peers = new Peers({ execArgv: CELL_NODE_FLAGS, access: () => organism.access, ...(signal ? { signal } : {}) });
  let raw: SpawnBenchRaw | undefined;
  let failure: unknown;
  const born = new Set<string>();
  try {
    raw = await measure(o, organism, peers, scripts, genome, born);
  } catch (e) {
    failure = e;
  }
  const shutdown = await teardown(organism, peers, born, signal?.aborted ? 'bench interrupted' : failure ? 'bench failed' : 'bench finished', progress);
  if (failure !== undefined || raw === undefined) {
    if (shutdown.leftovers.length > 0) progress(`LEAK: still alive after stop: ${shutdown.leftovers.map((l) => `${l.what} ${l.pid}`).join(', ')}`);
    throw failure;
  }
  return { raw, summary: summarize(raw), shutdown };
}

async function measure(o: SpawnBenchOptions, organism: Organism, peers: Peers, scripts: { bare: string; nats: string }, genome: Readonly<Genome>, born: Set<string>): Promise<SpawnBenchRaw> {
  const { signal, progress } = o;
  const timeout = o.cellTimeoutMs ?? 10_000;
  progress(`starting organism in ${o.stateDir} (cells get ${CELL_NODE_FLAGS.join(' ') || 'no V8 flags'})`);
  await organism.start();
  const observer = organism.observer;
  const brokerPid = organism.broker?.pid ?? null;
  const natsUrl = natsClientUrl();
  const servers = organism.servers.join(',');

  // Kept until the organism stops (its bus then drops every listener): teardown reads it.
  observer.bus.on((h) => void (h.kind === 'birth' && born.add(h.from)));
  const first = new FirstSeen();
  const measured = new Set<string>();
  let admitted = 0;
  const offBus = observer.bus.on((h) => {
    if (h.kind !== 'pulse' && h.kind !== 'birth') return;
    first.observe(h);
    if (h.kind === 'pulse' && measured.has(h.from)) admitted++;
  });
  // The wire itself, below the bus: every pulse message and its size, admitted or not.
  let wire = 0;
  let wireBytes = 0;
  const rawSub: Subscription = observer.nc.subscribe(observer.ns.hormone('pulse', '*'), {
    callback: (_err, msg) => {
      wire++;
      wireBytes += msg.data.length;
    },
  });

  try {
    // 1 + 2: spawns, each preceded by its peers.
    const samples: SpawnSample[] = [];
    const cells: SpawnedCell[] = [];
    for (let i = 1; i <= o.cells; i++) {
      signal?.throwIfAborted();
      const timed = i <= o.spawns;
      let forkReadyMs: number | null = null;
      let forkNatsReadyMs: number | null = null;
      let spawnExitMs: number | null = null;
      if (timed) {
        const bare = await peers.fork(scripts.bare);
        forkReadyMs = bare.ms;
        await peers.release(bare);
        const withNats = await peers.fork(scripts.nats, [natsUrl, servers]);
        forkNatsReadyMs = withNats.ms;
        await peers.release(withNats);
        spawnExitMs = await peers.spawnToExit(scripts.bare);
      }
      const epoch0 = Date.now();
      const t0 = performance.now();
      const cell = await organism.spawn('stem');
      const spawnCallMs = performance.now() - t0;
      measured.add(cell.id);
      cells.push(cell);
      let pulse, birth;
      try {
        pulse = await first.wait('pulse', cell.id, timeout, signal);
        birth = await first.wait('birth', cell.id, timeout, signal);
      } catch (e) {
        if (signal?.aborted) throw e;
        throw new CellularError('CELL_ERR_SPAWN', `cell ${cell.id} (pid ${cell.pid}): ${(e as Error).message}; see ${join(o.stateDir, 'logs', `${cell.id}.stderr.log`)} and ${cell.id}.log`, { cause: e });
      }
      const sample: SpawnSample = {
        i, id: cell.id, pid: cell.pid, timed, spawnCallMs,
        pulseSentMs: pulse.h.ts - epoch0,
        firstPulseMs: pulse.at - t0,
        birthMs: birth.at - t0,
        forkReadyMs, forkNatsReadyMs, spawnExitMs,
      };
      samples.push(sample);
      progress(
        `${timed ? 'spawn' : 'cell'} ${i}/${timed ? o.spawns : o.cells}: ${ms(sample.firstPulseMs)} to first pulse (birth ${ms(sample.birthMs)}, spawn() ${ms(spawnCallMs)})` +
          (timed ? `; fork→ready ${ms(forkReadyMs)}, fork+NATS→ready ${ms(forkNatsReadyMs)}, spawn→exit ${ms(spawnExitMs)}` : ''),
      );
    }

    // 3: idle memory, beside one bare and one NATS peer kept alive through the same quiet spell.
    const idleMs = o.idleMs ?? 3_000;
    const keepBare = await peers.fork(scripts.bare);
    const keepNats = await peers.fork(scripts.nats, [natsUrl, servers]);
    progress(`all ${cells.length} cells pulsing; idle ${idleMs / 1000} s before reading memory`);
    await sleep(idleMs, undefined, { signal });
    const notAlive = cells.filter((c) => observer.census.get(c.id)?.state !== 'alive' || !isProcessOf(c.pid, c.markers));
    if (notAlive.length > 0) throw new CellularError('CELL_ERR_SPAWN', `cells not alive after the idle spell: ${notAlive.map((c) => `${c.id} (pid ${c.pid}, census ${observer.census.get(c.id)?.state ?? 'unknown'})`).join(', ')}`);
    const memory: MemoryRow[] = [];
    for (const c of cells) {
      const m = readMemory(c.pid);
      if (!m) throw new CellularError('CELL_ERR_SPAWN', `cannot read /proc/${c.pid} of cell ${c.id}`);
      memory.push({ id: c.id, pid: c.pid, ...m, reportedRss: observer.census.get(c.id)?.rss ?? null });
    }
    const peerMemory = { bare: readMemory(keepBare.pid) ?? null, nats: readMemory(keepNats.pid) ?? null };
    const brokerMemory = brokerPid ? (readMemory(brokerPid) ?? null) : null;
    await releaseAll(peers, [keepBare, keepNats]);
    progress(`idle RSS median ${mb(median(memory.map((m) => m.rss)))}, max ${mb(Math.max(...memory.map((m) => m.rss)))}; bare peer ${mb(peerMemory.bare?.rss ?? Number.NaN)}, NATS peer ${mb(peerMemory.nats?.rss ?? Number.NaN)}`);

    // 4: pulse traffic.
    const traffic = await trafficWindow(o, { organism, cells, brokerPid, counters: () => ({ wire, wireBytes, admitted }) });
    const pulseBeforeBirth = samples.filter((s) => s.firstPulseMs < s.birthMs).length;
    return { organism: organism.id, brokerPid, genome, cellNodeFlags: CELL_NODE_FLAGS, samples, memory, peerMemory, brokerMemory, traffic, pulseBeforeBirth };
  } finally {
    offBus();
    rawSub.unsubscribe();
  }
}

async function releaseAll(peers: Peers, list: ForkedPeer[]): Promise<void> {
  await Promise.all(list.map((p) => peers.release(p)));
}

interface TrafficContext {
  organism: Organism;
  cells: SpawnedCell[];
  brokerPid: number | null;
  counters: () => { wire: number; wireBytes: number; admitted: number };
}

async function trafficWindow(o: SpawnBenchOptions, c: TrafficContext): Promise<TrafficResult> {
  const { signal, progress } = o;
  progress(`measuring pulse traffic of ${c.cells.length} cells for ${o.seconds} s`);
  const cpu0 = new Map(c.cells.map((cell) => [cell.id, { all: readCpuMicros(cell.pid), main: readCpuMicros(cell.pid, cell.pid) }]));
  const broker0 = c.brokerPid ? readCpuMicros(c.brokerPid) : undefined;
  const self0 = process.cpuUsage();
  const start = c.counters();
  const t0 = performance.now();
  const perSecond: TrafficSecond[] = [];
  let last = { ...start, at: t0 };
  const bucket = () => {
    const now = { ...c.counters(), at: performance.now() };
    const round = (v: number) => Math.round(v * 1_000) / 1_000;
    perSecond.push({ t: round((now.at - t0) / 1_000), dt: round((now.at - last.at) / 1_000), wire: now.wire - last.wire, admitted: now.admitted - last.admitted, bytes: now.wireBytes - last.wireBytes });
    last = now;
  };
  const timer = setInterval(bucket, 1_000);
  try {
    await sleep(o.seconds * 1_000, undefined, { signal });
  } finally {
    clearInterval(timer);
  }
  if (performance.now() - last.at > 50) bucket();
  const end = c.counters();
  const seconds = (performance.now() - t0) / 1_000;
  const self = process.cpuUsage(self0);
  const broker1 = c.brokerPid ? readCpuMicros(c.brokerPid) : undefined;
  const cellCpu: CellCpu[] = [];
  for (const cell of c.cells) {
    const a = cpu0.get(cell.id);
    const alive = isProcessOf(cell.pid, cell.markers);
    const all = alive ? readCpuMicros(cell.pid) : undefined;
    const main = alive ? readCpuMicros(cell.pid, cell.pid) : undefined;
    if (a?.all === undefined || a.main === undefined || all === undefined || main === undefined) {
      throw new CellularError('CELL_ERR_SPAWN', `cell ${cell.id} (pid ${cell.pid}) died during the traffic window`);
    }
    cellCpu.push({ id: cell.id, pid: cell.pid, micros: all - a.all, mainMicros: main - a.main });
  }
  return {
    seconds, cells: c.cells.length, pulseIntervalMs: c.organism.genome.limits.pulseIntervalMs,
    wirePulses: end.wire - start.wire, wireBytes: end.wireBytes - start.wireBytes, admittedPulses: end.admitted - start.admitted,
    perSecond, cellCpu,
    brokerCpuMicros: broker0 !== undefined && broker1 !== undefined ? broker1 - broker0 : null,
    observerCpuMicros: self.user + self.system,
  };
}

/** Stops the organism and the peers, then checks that nothing this run started survives. */
async function teardown(organism: Organism, peers: Peers, born: ReadonlySet<string>, reason: string, progress: (l: string) => void): Promise<ShutdownResult> {
  await peers.close();
  const brokerPid = organism.broker?.pid;
  const cells = [...organism.spawned.values()];
  await awaitBirths(cells, born, 5_000, progress);
  progress(`stopping organism (${reason}; ${cells.length} cells)`);
  const t0 = performance.now();
  const final = await organism.stop(reason);
  const ms = performance.now() - t0;
  const leftovers: ShutdownResult['leftovers'] = [];
  for (const c of cells) if (isProcessOf(c.pid, c.markers)) leftovers.push({ pid: c.pid, what: `cell ${c.id}` });
  if (brokerPid && commandLineOf(brokerPid)?.includes('nats-server')) leftovers.push({ pid: brokerPid, what: 'nats-server' });
  for (const pid of peers.alive()) leftovers.push({ pid, what: 'peer' });
  const stragglers = final.state === 'stopped' ? final.stragglers : 0;
  progress(`stopped in ${Math.round(ms)} ms; ${stragglers} stragglers killed; ${leftovers.length === 0 ? 'no process left behind' : `LEFT BEHIND: ${leftovers.map((l) => `${l.what} (pid ${l.pid})`).join(', ')}`}`);
  return { ms, stragglers, leftovers };
}

/**
 * A cell still starting when the shutdown hormone goes out subscribes too late to hear it
 * and is only SIGKILLed after limits.shutdownTimeoutMs (Organism.stop does not repeat the
 * announcement). So an interrupted run first lets such cells be born: once the observer
 * has its birth, the cell's subscription is in place (same connection, sent before).
 */
async function awaitBirths(cells: SpawnedCell[], born: ReadonlySet<string>, timeoutMs: number, progress: (l: string) => void): Promise<void> {
  const unborn = () => cells.filter((c) => !born.has(c.id) && isProcessOf(c.pid, c.markers));
  const waiting = unborn();
  if (waiting.length === 0) return;
  progress(`waiting for ${waiting.length} cell(s) still starting (${waiting.map((c) => c.id).join(', ')}) to be born, so they hear the shutdown`);
  const end = Date.now() + timeoutMs;
  while (unborn().length > 0 && Date.now() < end) await sleep(25);
}

