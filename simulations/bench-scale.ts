/**
 * The scale benchmark: what an idle organism costs as it grows. For each size N, in one run:
 *
 * 1. an organism with the default tissues is started on a private broker and grown to N
 *    living cells with `echo` cells (spawned through the real `Organism.spawn()`, a few at
 *    a time, each awaited until the census has it alive);
 * 2. after a quiet spell, the CPU of every cell, of nats-server and of this process (grow:
 *    its census, host digest and host agent) over a window, from /proc, and every cell's PSS;
 *    the census is checked at the end: every cell must still be alive in it (a size the
 *    machine cannot hold is reported as such, and the larger ones are skipped);
 * 3. the peer, in the same run: N bare Node processes, each with a NATS connection and a
 *    500 ms timer that publishes 128 bytes — what the cells would cost with no membership
 *    at all — measured the same way.
 *
 * The figures that travel between machines are the CPU per cell in ms per second (and
 * their ratio between sizes) and the ratio to the peer.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CELL_NODE_FLAGS, type SpawnedCell } from '../cells/spawn.ts';
import { CellularError } from '../organism/wire/errors.ts';
import { loadGenome, type Genome } from '../organism/kernel/genome/index.ts';
import { Organism } from '../organism/grow/organism.ts';
import { isProcessOf } from '../organism/kernel/processes.ts';
import { natsClientUrl, Peers, type ForkedPeer } from './peer.ts';
import { readCpuMicros, readMemory } from './procfs.ts';
import { median } from '../organism/chaos/stats.ts';
import type { BenchRunOptions } from './bench-options.ts';

export interface ScaleBenchOptions extends BenchRunOptions {
  /** Living cells at each step, ascending. @default [10, 30, 100, 300] */
  sizes: number[];
  /** Length of each measured window, s. @default 10 */
  seconds: number;
  /**
   * Quiet spell after the last birth, before the window, ms. A newborn cell costs about twice
   * its steady state for its first half minute (docs/benchmarks.md, "scale"). @default 30000
   */
  settleMs?: number;
}

/** One size's figures. `cpu*` are in ms of CPU per second of wall time (1000 = one core). */
export interface ScaleStep {
  cells: number;
  /** Whether every cell was still alive in the census at the end of the window. */
  held: boolean;
  /** Cells the census did not have alive at the end (ids), when it did not hold. */
  lost: string[];
  windowSeconds: number;
  cpu: { cells: number; broker: number | null; grow: number; total: number };
  cpuPerCell: number;
  /** The peer's N processes, same window length. */
  peer: { cpu: number; cpuPerProcess: number; pssMb: number };
  pssMb: { median: number; total: number };
  /** Cells per second the organism grew at while this size was reached. */
  growSeconds: number;
}

export interface ScaleBenchResult {
  options: { sizes: number[]; seconds: number; settleMs: number };
  pulseIntervalMs: number;
  /** Sizes measured; a size the organism could not hold ends the run. */
  steps: ScaleStep[];
  /** Sizes left out because a smaller one already saturated the machine. */
  skipped: number[];
  /** A size the organism could not grow to on this machine, and why (the run stops there). */
  unreached: { cells: number; reached: number; reason: string } | null;
  shutdown: { leftovers: { pid: number; what: string }[] };
}

const PEER_TIMER = `// cellular scale-bench peer: a NATS connection and a 500 ms timer that publishes 128 B.
const [moduleUrl, servers] = process.argv.slice(2);
const { connect, jwtAuthenticator } = await import(moduleUrl);
const a = process.env.CELLULAR_NATS_ACCESS ? JSON.parse(process.env.CELLULAR_NATS_ACCESS) : {};
const auth = a.user ? { authenticator: jwtAuthenticator(a.user.jwt, new TextEncoder().encode(a.user.seed)), inboxPrefix: '_INBOX.' + a.user.inbox } : a.token ? { token: a.token } : {};
const nc = await connect({ servers: servers.split(','), name: 'bench-peer', timeout: 60000, ...auth });
const payload = new Uint8Array(128);
const subject = process.env.PEER_SUBJECT;
const timer = setInterval(() => nc.publish(subject, payload), 500);
process.on('message', () => {});
process.on('disconnect', () => { clearInterval(timer); void nc.close().finally(() => process.exit(0)); });
process.send('ready');
`;

/** The genome of a run to `max` cells: the defaults, echo free to hold every extra cell and never idle out. */
export function scaleGenome(max: number): Readonly<Genome> {
  return loadGenome({
    sets: [
      `tissues.echo.max=${max}`, 'tissues.echo.idleMs=86400000', `limits.cellsPerHost=${max + 16}`,
      `limits.rssPerHostMb=${Math.max(4096, (max + 16) * 256)}`,
    ],
  });
}

export function validateScaleOptions(o: Pick<ScaleBenchOptions, 'sizes' | 'seconds' | 'settleMs'>): void {
  if (o.sizes.length === 0) throw new CellularError('CLI_ERR_USAGE', '--sizes needs at least one size');
  for (const [i, n] of o.sizes.entries()) {
    if (!Number.isInteger(n) || n < 6 || n > 2_000) throw new CellularError('CLI_ERR_USAGE', `--sizes: every size must be a whole number from 6 to 2000 (the default tissues are 5 cells), received ${n}`);
    if (i > 0 && n <= o.sizes[i - 1]!) throw new CellularError('CLI_ERR_USAGE', `--sizes must ascend, received ${o.sizes.join(',')}`);
  }
  if (!Number.isInteger(o.seconds) || o.seconds < 1 || o.seconds > 3_600) throw new CellularError('CLI_ERR_USAGE', `--seconds must be from 1 to 3600, received ${o.seconds}`);
  if (o.settleMs !== undefined && (!Number.isInteger(o.settleMs) || o.settleMs < 0 || o.settleMs > 600_000)) throw new CellularError('CLI_ERR_USAGE', `--settle must be from 0 to 600 s, received ${o.settleMs / 1000}`);
}

export async function runScaleBench(o: ScaleBenchOptions): Promise<ScaleBenchResult> {
  validateScaleOptions(o);
  mkdirSync(o.stateDir, { recursive: true });
  const peerDir = join(o.stateDir, 'peers');
  mkdirSync(peerDir, { recursive: true });
  const timerScript = join(peerDir, 'peer-timer.mjs');
  writeFileSync(timerScript, PEER_TIMER);
  const max = o.sizes.at(-1)!;
  const genome = scaleGenome(max);
  const organism = new Organism({ stateDir: o.stateDir, genome, autoInstall: true, say: o.say ?? (() => {}), ...(o.signal ? { signal: o.signal } : {}) });
  const peers = new Peers({ execArgv: CELL_NODE_FLAGS, access: () => organism.access, timeoutMs: 60_000, ...(o.signal ? { signal: o.signal } : {}) });
  const steps: ScaleStep[] = [];
  const skipped: number[] = [];
  let unreached: ScaleBenchResult['unreached'] = null;
  let failure: unknown;
  try {
    o.progress(`starting organism in ${o.stateDir}`);
    await organism.start();
    const cells: SpawnedCell[] = [];
    for (const [i, n] of o.sizes.entries()) {
      let step: ScaleStep;
      try {
        step = await measureSize(o, organism, peers, timerScript, cells, n);
      } catch (e) {
        // Cells that cannot even be born in time: the machine holds fewer. Reported, not thrown.
        // So are peers that cannot start beside the organism as it is.
        if (o.signal?.aborted || !(e instanceof CellularError) || (e.code !== 'CELL_ERR_SPAWN' && e.code !== 'BENCH_ERR_PEER')) throw e;
        const reached = organism.observer.census.living().filter((c) => c.state === 'alive').length;
        unreached = { cells: n, reached, reason: e.message };
        skipped.push(...o.sizes.slice(i + 1));
        o.progress(`N=${n} not reached: ${reached} cells alive; ${e.message}`);
        break;
      }
      steps.push(step);
      const total = step.cpu.total;
      o.progress(`N=${n}: ${step.held ? 'held' : `DID NOT HOLD (${step.lost.length} cells not alive in the census)`}; total ${(total / 10).toFixed(1)} % of a core, ${step.cpuPerCell.toFixed(2)} ms/s per cell; peer ${step.peer.cpuPerProcess.toFixed(2)} ms/s per process`);
      // A machine already saturated (or a census that lost cells) says all there is to say about larger sizes.
      if (!step.held || total > 1_600) {
        skipped.push(...o.sizes.slice(i + 1));
        if (skipped.length > 0) o.progress(`skipping ${skipped.join(', ')}: N=${n} already ${step.held ? 'saturates the machine' : 'lost cells'}`);
        break;
      }
    }
  } catch (e) {
    failure = e;
  }
  await peers.close();
  const spawned = [...organism.spawned.values()];
  o.progress(`stopping organism (${spawned.length} cells)`);
  await organism.stop(failure ? 'bench failed' : 'bench finished').catch(() => undefined);
  const leftovers = spawned.filter((c) => isProcessOf(c.pid, c.markers)).map((c) => ({ pid: c.pid, what: `cell ${c.id}` }));
  for (const pid of peers.alive()) leftovers.push({ pid, what: 'peer' });
  if (failure !== undefined) throw failure;
  return { options: { sizes: o.sizes, seconds: o.seconds, settleMs: o.settleMs ?? 30_000 }, pulseIntervalMs: genome.limits.pulseIntervalMs, steps, skipped, unreached, shutdown: { leftovers } };
}

async function measureSize(o: ScaleBenchOptions, organism: Organism, peers: Peers, timerScript: string, cells: SpawnedCell[], n: number): Promise<ScaleStep> {
  const census = organism.observer.census;
  // The peer first, while the organism is still at the size before: a saturated machine
  // (the organism that does not scale) would otherwise starve the peer's own start.
  const peer = await measurePeers(o, peers, timerScript, organism, n, o.seconds);
  const living = () => census.living().filter((e) => e.state === 'alive');
  const t0 = performance.now();
  // Grow a few at a time: each spawn is awaited until the census has the cell alive.
  for (;;) {
    o.signal?.throwIfAborted();
    const have = living().length;
    if (have >= n) break;
    const batch = Math.min(4, n - have);
    const made = await Promise.all(Array.from({ length: batch }, () => organism.spawn('echo')));
    cells.push(...made);
    const until = Date.now() + 30_000;
    while (made.some((c) => census.get(c.id)?.state !== 'alive')) {
      if (Date.now() > until) throw new CellularError('CELL_ERR_SPAWN', `cells ${made.filter((c) => census.get(c.id)?.state !== 'alive').map((c) => c.id).join(', ')} not alive within 30 s`);
      await sleep(50, undefined, { signal: o.signal });
    }
    if (living().length % 20 < batch) o.progress(`growing to ${n}: ${living().length} alive`);
  }
  const growSeconds = (performance.now() - t0) / 1_000;
  const settle = o.settleMs ?? 30_000;
  o.progress(`N=${n}: ${living().length} cells alive; settling ${settle / 1000} s, then measuring ${o.seconds} s`);
  await sleep(settle, undefined, { signal: o.signal });
  const members = living();
  const pids = members.map((e) => e.pid);
  const brokerPid = organism.broker?.pid;
  const before = pids.map((pid) => readCpuMicros(pid));
  const broker0 = brokerPid ? readCpuMicros(brokerPid) : undefined;
  const self0 = process.cpuUsage();
  const w0 = performance.now();
  await sleep(o.seconds * 1_000, undefined, { signal: o.signal });
  const seconds = (performance.now() - w0) / 1_000;
  const self = process.cpuUsage(self0);
  const broker1 = brokerPid ? readCpuMicros(brokerPid) : undefined;
  let cellMicros = 0;
  pids.forEach((pid, i) => {
    const a = before[i];
    const b = readCpuMicros(pid);
    if (a !== undefined && b !== undefined) cellMicros += b - a;
  });
  const lost = members.filter((e) => census.get(e.id)?.state !== 'alive').map((e) => e.id);
  const pss = pids.map((pid) => readMemory(pid)?.pss ?? Number.NaN).filter((v) => Number.isFinite(v));
  const perS = (micros: number) => micros / 1_000 / seconds;
  const cpu = {
    cells: perS(cellMicros),
    broker: broker0 !== undefined && broker1 !== undefined ? perS(broker1 - broker0) : null,
    grow: perS(self.user + self.system),
    total: 0,
  };
  cpu.total = cpu.cells + (cpu.broker ?? 0) + cpu.grow;
  return {
    cells: members.length, held: lost.length === 0, lost, windowSeconds: seconds, cpu, cpuPerCell: cpu.total / members.length,
    peer, pssMb: { median: median(pss) / 2 ** 20, total: pss.reduce((a, b) => a + b, 0) / 2 ** 20 }, growSeconds,
  };
}

/** N timer peers, measured over a window as long as the cells' one. */
async function measurePeers(o: ScaleBenchOptions, peers: Peers, script: string, organism: Organism, n: number, seconds: number): Promise<ScaleStep['peer']> {
  o.progress(`N=${n}: starting ${n} peers (NATS connection + 500 ms timer)`);
  process.env.PEER_SUBJECT = `org.${organism.id}.bench.peer`;
  const list: ForkedPeer[] = [];
  try {
    for (let i = 0; i < n; i += 4) {
      const k = Math.min(4, n - i);
      try {
        list.push(...(await Promise.all(Array.from({ length: k }, () => peers.fork(script, [natsClientUrl(), organism.servers.join(',')])))));
      } catch (e) {
        // A machine too loaded to start the peer is as far as this machine goes: reported, not thrown.
        if (o.signal?.aborted) throw e;
        throw new CellularError('BENCH_ERR_PEER', `peer ${list.length + 1} of ${n} did not start: ${(e as Error).message}`);
      }
    }
    await sleep(2_000, undefined, { signal: o.signal });
    const before = list.map((p) => readCpuMicros(p.pid));
    const w0 = performance.now();
    await sleep(seconds * 1_000, undefined, { signal: o.signal });
    const dt = (performance.now() - w0) / 1_000;
    let micros = 0;
    list.forEach((p, i) => {
      const a = before[i];
      const b = readCpuMicros(p.pid);
      if (a !== undefined && b !== undefined) micros += b - a;
    });
    const pss = list.map((p) => readMemory(p.pid)?.pss ?? Number.NaN).filter((v) => Number.isFinite(v));
    const cpu = micros / 1_000 / dt;
    return { cpu, cpuPerProcess: cpu / n, pssMb: median(pss) / 2 ** 20 };
  } finally {
    await Promise.all(list.map((p) => peers.release(p)));
  }
}
