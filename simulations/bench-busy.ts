/**
 * The busy benchmark: is a cell whose main loop is stuck still known to be alive? One
 * `echo` cell is made to burn its main thread in a CPU loop (`echo.burn`) for longer than
 * the death timeout, while an observer records when each of its pulses arrives and what the
 * census (its host's digests) says of it every 50 ms.
 *
 * A cell pulses from its main thread, so it is silent while stuck; its host's grow sees the
 * process run and reports it busy (lag = the silence, full load), never suspect or dead.
 * The peer, in the same run: a process that pulses from its main thread, burning for the
 * same time, judged by its silence alone (what a census without a host's view would do):
 * dead after `deadAfterPulses` intervals. Reported: verdicts, the longest silence as a
 * ratio to the pulse interval, and the longest lag the census showed, which travel between
 * machines.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CELL_NODE_FLAGS } from '../cells/spawn.ts';
import { throwIfAborted } from '../organism/wire/errors.ts';
import { loadGenome } from '../organism/kernel/genome/index.ts';
import type { Hormone } from '../organism/kernel/hormone.ts';
import { Organism } from '../organism/grow/organism.ts';
import type { PulseBody } from '../organism/kernel/vocabulary.ts';
import { openReply, pack } from '../organism/kernel/reply.ts';
import { natsClientUrl } from './peer.ts';
import { accessEnv } from '../organism/kernel/access.ts';
import { distribution, type Distribution } from '../organism/chaos/stats.ts';
import type { BenchRunOptions } from './bench-options.ts';

export interface BusyBenchOptions extends BenchRunOptions {
  /** How long the main loop is kept busy, ms. @default 5000 */
  burnMs: number;
  /** Pulse interval for the run, ms. @default 500 */
  pulseIntervalMs: number;
}

export interface Arrival {
  /** ms since the burn request was sent (negative: before). */
  at: number;
  lag: number;
  load: number;
  inflight: number;
}

export interface CensusSample {
  /** ms since the burn request was sent. */
  at: number;
  lag: number;
  load: number;
  state: string;
}

export interface BusyBenchResult {
  options: Omit<BusyBenchOptions, 'progress' | 'signal'>;
  deadAfterMs: number;
  cell: { arrivals: Arrival[]; gapsDuringBurn: Distribution; longestGapMs: number; pulsesDuringBurn: number; expectedPulses: number; judged: string[]; census: CensusSample[]; longestCensusLagMs: number };
  peer: { arrivals: number[]; longestGapMs: number; pulsesDuringBurn: number };
  /** Longest silence ÷ pulse interval: both ≈ burn ÷ interval (main-thread pulses). */
  cellGapRatio: number;
  peerGapRatio: number;
}

const PEER = `// cellular bench peer: pulses from its main thread every interval, then burns it.
const [moduleUrl, servers, subject, interval, burn] = process.argv.slice(2);
const { connect, jwtAuthenticator } = await import(moduleUrl);
// By environment, never argv.
const a = process.env.CELLULAR_NATS_ACCESS ? JSON.parse(process.env.CELLULAR_NATS_ACCESS) : {};
const auth = a.user ? { authenticator: jwtAuthenticator(a.user.jwt, new TextEncoder().encode(a.user.seed)), inboxPrefix: '_INBOX.' + a.user.inbox } : a.token ? { token: a.token } : {};
const nc = await connect({ servers: servers.split(','), name: 'bench-busy-peer', ...auth });
let n = 0;
const timer = setInterval(() => nc.publish(subject, new TextEncoder().encode(String(++n))), Number(interval));
process.on('message', async (m) => {
  if (m === 'burn') {
    const end = performance.now() + Number(burn);
    while (performance.now() < end);
    process.send('burnt');
  } else {
    clearInterval(timer);
    await nc.close();
    process.exit(0);
  }
});
process.send('ready');
`;

function longestGap(times: readonly number[], from: number, to: number): number {
  const inside = [from, ...times.filter((t) => t > from && t < to), to];
  let worst = 0;
  for (let i = 1; i < inside.length; i++) worst = Math.max(worst, inside[i]! - inside[i - 1]!);
  return worst;
}

export async function runBusyBench(o: BusyBenchOptions): Promise<BusyBenchResult> {
  const { progress, signal } = o;
  mkdirSync(o.stateDir, { recursive: true });
  const genome = loadGenome({ sets: ['tissues.stem.min=0', 'tissues.echo.min=1', 'tissues.receiver=null', 'tissues.worker=null', 'tissues.dashboard=null', `limits.pulseIntervalMs=${o.pulseIntervalMs}`] });
  const organism = new Organism({ stateDir: o.stateDir, genome, autoInstall: false });
  const peerScript = join(o.stateDir, 'peer-busy.mjs');
  writeFileSync(peerScript, PEER);
  let child: ChildProcess | undefined;
  try {
    await organism.start();
    const [cell] = await organism.waitForPopulation();
    const observer = organism.observer;
    progress(`cell ${cell!.id} (pid ${cell!.pid}) alive; pulse every ${o.pulseIntervalMs} ms, dead after ${genome.limits.deadAfterPulses} missed`);
    const t0 = { value: performance.now() };
    const arrivals: Arrival[] = [];
    const judged: string[] = [];
    observer.bus.on((h: Hormone) => {
      if (h.kind !== 'pulse' || h.from !== cell!.id) return;
      const b = h.body as PulseBody;
      arrivals.push({ at: performance.now() - t0.value, lag: b.lag, load: b.load, inflight: b.work.inflight });
    });
    observer.census.on((e) => {
      if (e.entry.id === cell!.id && e.type === 'state') judged.push(`${e.from}->${e.entry.state}`);
    });
    const census: CensusSample[] = [];
    const sampler = setInterval(() => {
      const e = observer.census.get(cell!.id);
      if (e) census.push({ at: performance.now() - t0.value, lag: e.lag, load: e.load, state: e.state });
    }, 50);
    // Idle first, so the report shows the ordinary rhythm next to the busy one.
    await sleep(o.pulseIntervalMs * 4, undefined, signal ? { signal } : {});
    t0.value = performance.now();
    for (const a of arrivals) a.at -= o.pulseIntervalMs * 4;
    for (const c of census) c.at -= o.pulseIntervalMs * 4;
    progress(`cell: burning its main thread for ${o.burnMs} ms…`);
    const reply = await observer.nc.request(observer.ns.tissue('echo', 'burn'), pack({ ms: o.burnMs }), { timeout: o.burnMs + 10_000 });
    openReply(reply.data);
    const burnEnd = performance.now() - t0.value;
    await sleep(o.pulseIntervalMs * 3, undefined, signal ? { signal } : {});
    clearInterval(sampler);
    throwIfAborted(signal);
    const longestCensusLag = Math.max(0, ...census.filter((c) => c.at >= 0 && c.at <= burnEnd + o.pulseIntervalMs).map((c) => c.lag));
    const during = arrivals.filter((a) => a.at > 0 && a.at < burnEnd).map((a) => a.at);
    const gaps = during.slice(1).map((t, i) => t - during[i]!);
    const cellLongest = longestGap(during, 0, burnEnd);
    progress(`cell: ${during.length} pulses during the burn, longest silence ${Math.round(cellLongest)} ms; the census showed a lag of up to ${longestCensusLag} ms, verdicts: ${judged.join(', ') || 'none'}`);

    // The peer: same broker, same burn, pulses from its main thread.
    const subject = `${observer.ns.prefix}.bench.busy.${process.pid}`; // under the organism: its credentials reach nothing else
    const peerTimes: number[] = [];
    const sub = observer.nc.subscribe(subject, { callback: () => void peerTimes.push(performance.now()) });
    child = fork(peerScript, [natsClientUrl(), organism.servers.join(','), subject, String(o.pulseIntervalMs), String(o.burnMs)], {
      execArgv: [...CELL_NODE_FLAGS],
      stdio: 'ignore',
      env: { ...process.env, ...accessEnv(organism.access) },
    });
    const peer = child;
    await new Promise<void>((resolve, reject) => {
      peer.once('message', () => resolve());
      peer.once('exit', (code) => reject(new Error(`busy peer exited with ${code}`)));
    });
    await sleep(o.pulseIntervalMs * 4, undefined, signal ? { signal } : {});
    progress(`peer: burning its main thread for ${o.burnMs} ms…`);
    const p0 = performance.now();
    peer.send('burn');
    await new Promise<void>((resolve) => peer.once('message', () => resolve()));
    const p1 = performance.now();
    await sleep(o.pulseIntervalMs * 2, undefined, signal ? { signal } : {});
    peer.send('stop');
    await new Promise<void>((resolve) => peer.once('exit', () => resolve()));
    sub.unsubscribe();
    const peerRel = peerTimes.map((t) => t - p0);
    const peerDuring = peerRel.filter((t) => t > 0 && t < p1 - p0);
    const peerLongest = longestGap(peerDuring, 0, p1 - p0);
    progress(`peer: ${peerDuring.length} pulses during the burn, longest silence ${Math.round(peerLongest)} ms`);
    return {
      options: { burnMs: o.burnMs, pulseIntervalMs: o.pulseIntervalMs, stateDir: o.stateDir },
      deadAfterMs: genome.limits.deadAfterPulses * o.pulseIntervalMs,
      // Copies: the listeners keep running until the organism stops (its shutdown is not a verdict).
      cell: {
        arrivals: [...arrivals], gapsDuringBurn: distribution(gaps.length > 0 ? gaps : [cellLongest]), longestGapMs: cellLongest,
        pulsesDuringBurn: during.length, expectedPulses: Math.floor(burnEnd / o.pulseIntervalMs), judged: [...judged],
        census: [...census], longestCensusLagMs: longestCensusLag,
      },
      peer: { arrivals: peerRel, longestGapMs: peerLongest, pulsesDuringBurn: peerDuring.length },
      cellGapRatio: cellLongest / o.pulseIntervalMs,
      peerGapRatio: peerLongest / o.pulseIntervalMs,
    };
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await organism.stop('busy benchmark done');
  }
}
