/**
 * The chat benchmark's cellular system: a private nats-server, 2 receivers and 1 worker
 * (real cells, a genome made for the bench). First the idle-memory figure on one receiver
 * (chat/idle-memory.ts), then fresh users log in alternating between the receivers and are
 * driven at the fixed rate and at saturation; the serving processes are the receivers, the
 * worker and nats-server. Raw JetStream (chat/jetstream.ts) runs on the same broker before
 * the organism stops.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import { Organism } from '../../organism/grow/organism.ts';
import type { LeanClient } from '../chat-client.ts';
import { waitFor } from '../wait-for.ts';
import { driveRateAndSaturation, loginAll, msgIds, type DriveContext, type Sink } from './driver.ts';
import { idlePhase } from './idle-memory.ts';
import { rawJetstreamPhase } from './jetstream.ts';
import { now, type Proc } from './meter.ts';
import type { ChatBenchOptions, ChatBenchResult } from './result.ts';

/** The bench's genome: exactly 2 receivers and 1 worker, limits high enough not to throttle the load. */
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

export async function cellularPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext): Promise<void> {
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
    r.runs.push(...await driveRateAndSaturation({ system: 'cellular', completes: 'delivered', senders: o.clients, send, sink, procs }, 'cellular', o.rate, o.window, ctx));
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
