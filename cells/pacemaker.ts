/**
 * The pacemaker: a worker thread with its own NATS connection that publishes the cell's
 * pulse every interval. It runs beside the main thread so a cell whose main loop is busy
 * (a long CPU task) keeps pulsing: busy is not dead. It reads the work counters and the
 * main thread's heartbeat from shared memory; a stale heartbeat shows up as event-loop lag.
 */
import { everyPhase, PHASE, type PhasedTimer } from '../organism/kernel/phase.ts';
import { codeHash } from './code-hash.ts';
import { tamperedHash } from './immune/faults.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { hostName } from '../organism/kernel/host.ts';
import { connect } from '@nats-io/transport-node';
import { OwnUsage } from '../organism/kernel/process-usage.ts';
import { sealHormone, SharedSequence } from '../organism/kernel/hormone.ts';
import { privateKeyObject, fromHex } from '../organism/kernel/keys.ts';
import type { CellState, PulseBody } from '../organism/kernel/vocabulary.ts';
import { fillPulse, inStartupGrace } from './metabolism.ts';
import { cellAccess, natsOptions, type NatsAccess } from '../organism/kernel/access.ts';
import { preciseNow, WorkMeter } from './work-meter.ts';

export interface PacemakerData {
  access: NatsAccess;
  /** Operator mode: the cell's JWT (the pacemaker speaks as the cell, with the cell's key). */
  jwt: string | null;
  subject: string;
  /** The organism id (bound into every pulse's signature). */
  organism: string;
  id: string;
  seedHex: string;
  seqBuffer: SharedArrayBuffer;
  workBuffer: SharedArrayBuffer;
  intervalMs: number;
  maxBytes: number;
  /** Main thread heartbeat period, ms (blocking beyond it is lag). */
  tickMs: number;
  capacity: number;
  pulse: Pick<PulseBody, 'tissue' | 'host' | 'pid' | 'parent' | 'born' | 'genome' | 'code' | 'url'>;
  /** Injected fault `tamper` (tests only): pulses carry another code hash. */
  tamper?: boolean;
  /** Injected fault `liar` (tests only): every pulse claims a full core and full load. */
  lie?: boolean;
}

/** Messages from the main thread. */
export type PacemakerCommand =
  | { type: 'state'; state: CellState }
  | { type: 'url'; url: string | null }
  | { type: 'capacity'; capacity: number }
  | { type: 'tissue'; tissue: string }
  | { type: 'stop' };

async function run(data: PacemakerData): Promise<void> {
  const seq = new SharedSequence(data.seqBuffer);
  const signer = { id: data.id, organism: data.organism, key: privateKeyObject(fromHex(data.seedHex)), nextSeq: () => seq.next() };
  const work = new WorkMeter(data.workBuffer);
  const body: PulseBody = {
    ...data.pulse,
    host: data.pulse.host || hostName(),
    state: 'alive', load: 0, demand: 0, cpu: 0, cpuMs: 0, rss: 0, lag: 0,
    work: { handled: 0, inflight: 0, queued: 0, errors: 0 },
    n: 0,
  };
  let stopped = false;
  let capacity = data.capacity;
  // Mean concurrency over each interval, from the slope of the busy integral.
  let busyAt = preciseNow();
  let busy = work.busyIntegral(busyAt);
  let timer: PhasedTimer | undefined;
  let stop: (() => void) | undefined;
  // Listen before connecting: a url or state set while this thread is still loading must
  // be in the very first beat, or the census shows the old value for an interval.
  parentPort!.on('message', (cmd: PacemakerCommand) => {
    if (cmd.type === 'state') body.state = cmd.state;
    else if (cmd.type === 'url') body.url = cmd.url;
    else if (cmd.type === 'capacity') capacity = cmd.capacity;
    else if (cmd.type === 'tissue') body.tissue = cmd.tissue;
    else if (cmd.type === 'stop') {
      stopped = true;
      timer?.stop();
      if (stop) stop();
      else stop = () => undefined; // not connected yet: run() stops once it is
    }
  });
  // The first interval starts here, not at the process's start (the connect below is in it).
  const usage = new OwnUsage();
  usage.read();
  // The code hash is read while the connection opens (a few ms of file reads).
  const [nc, code] = await Promise.all([connect(natsOptions(data.jwt ? cellAccess({ ...data.access, jwt: data.jwt, tlsCa: data.access.tls?.ca ?? null, cell: { id: data.id, seed: data.seedHex } }) : data.access, `${data.id}/pacemaker`)), codeHash()]);
  body.code = data.tamper ? tamperedHash(code) : code;

  // The `liar` fault keeps its story straight: its CPU time grows as if it used a full core.
  let told: { cpuMs: number; at: number } | undefined;
  const beat = async (): Promise<void> => {
    // Its own process, read in-process: the pacemaker never forks (organism/kernel/process-usage.ts).
    const { cpu, cpuMs, rss } = usage.read();
    if (stopped) return;
    // Late past the heartbeat the main thread promised (fast while it works, once an interval while idle).
    const blocked = Math.max(0, Date.now() - (work.due || work.lastTick + data.tickMs));
    const newborn = inStartupGrace(Date.now() - body.born, data.intervalMs);
    const now = preciseNow();
    const integral = work.busyIntegral(now);
    const concurrency = now > busyAt ? (integral - busy) / (now - busyAt) : work.inflight;
    busy = integral;
    busyAt = now;
    fillPulse(body, { cpu, cpuMs, rss, lag: Math.max(blocked, work.lag), work: work.counters(), concurrency, capacity, newborn });
    if (data.lie) {
      const at = Date.now();
      told = told ? { cpuMs: told.cpuMs + (at - told.at), at } : { cpuMs, at };
      Object.assign(body, { cpu: 100, cpuMs: Math.round(told.cpuMs), load: 1, demand: 1 });
    }
    body.n++;
    nc.publish(data.subject, sealHormone(signer, 'pulse', body, data.maxBytes));
    work.countPulse();
  };

  // Flush so no pulse is in flight after the main thread announces death.
  const stopNow = () => void nc.flush().finally(() => nc.close()).finally(() => parentPort!.postMessage({ type: 'stopped' }));
  if (stopped) return stopNow();
  stop = stopNow;

  // First pulse at once: spawn-to-first-pulse is how fast a tissue can grow.
  await beat();
  // A beat that fails once (a /proc race) is retried next interval; three in a row mean
  // this cell can no longer prove it lives, and the main thread is told so.
  let failures = 0;
  if (stopped) return;
  // On the organism's shared phase: every cell pulses at the same instant of the interval,
  // so the pulses a watcher reads arrive together (organism/kernel/phase.ts).
  timer = everyPhase(data.intervalMs, PHASE.pulse, () => {
    beat().then(
      () => (failures = 0),
      (e: unknown) => {
        if (++failures === 3) parentPort!.postMessage({ type: 'error', message: `3 beats failed in a row: ${e instanceof Error ? e.message : String(e)}` });
      },
    );
  });

  parentPort!.postMessage({ type: 'ready' });
}

run(workerData as PacemakerData).catch((e: unknown) => {
  parentPort!.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) });
});
