/**
 * One chaos run: a fresh organism on its own private nats-server, chat clients talking
 * through it (real accounts, encrypted bodies), a scenario's fault in the middle, samples
 * every 500 ms, and the promises of the body plan checked at the end — no acknowledged
 * message lost, none stored twice, population within bounds, no false guilty verdict,
 * every injected cell dead, recovery time, nothing left running.
 */
import { hostName } from '../../organism/kernel/host.ts';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { isCensusEntry } from '../../organism/kernel/census.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import { Organism } from '../../organism/grow/organism.ts';
import { isAlive, localCells, signalCell } from '../../organism/kernel/processes.ts';
import { tissueStress } from '../../organism/kernel/stress.ts';
import type { VerdictBody } from '../../organism/kernel/vocabulary.ts';
import { openReply } from '../../organism/kernel/reply.ts';
import { runLoad } from '../../organism/chaos/load.ts';
import { seeded } from '../../organism/chaos/seeded.ts';
import { percentile } from '../../organism/chaos/stats.ts';
import { Chatter } from './chatter.ts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { checkDurability, describeDurability, type DurabilityReport } from '../durability.ts';
import { CURSORS_BUCKET, MESSAGES_STREAM } from '../../cells/messenger/stores.ts';
import { pause, type ChaosContext, type ChaosScenario, type Invariant, type RunFacts } from '../../organism/chaos/scenarios.ts';
import { within } from '../../organism/kernel/within.ts';

export interface ChaosOptions {
  scenario: ChaosScenario;
  seed: number;
  durationS: number;
  /** Chat messages per second, all clients together. */
  rate: number;
  clients: number;
  /** Idle cells added beside the scenario's (a tissue `crowd` of echo's DNA, min = max): the run at scale. @default 0 */
  crowd?: number;
  stateDir: string;
  progress(line: string): void;
  say?(line: string): void;
  signal?: AbortSignal;
}

export interface Sample {
  /** ms since the run started. */
  t: number;
  population: Record<string, number>;
  stress: Record<string, number>;
  /** Messages opened by their recipients in this interval, and their latency. */
  delivered: number;
  p50: number | null;
  p99: number | null;
}

export interface ChaosResult {
  scenario: string;
  description: string;
  seed: number;
  durationS: number;
  rate: number;
  clients: number;
  organism: string;
  startedAt: string;
  samples: Sample[];
  marks: { t: number; label: string }[];
  invariants: Invariant[];
  pass: boolean;
  counts: { sent: number; acked: number; delivered: number; lost: number; duplicates: number; redelivered: number; unreadable: number; reconnects: number; errors: Record<string, number> };
  recoveryMs: number | null;
  /** Every acknowledged message looked for in the stream itself (simulations/durability.ts); null without chat. */
  durability: DurabilityReport | null;
  log: string[];
}

const BASE = [
  'limits.pulseIntervalMs=250', 'limits.suspectAfterPulses=3', 'limits.deadAfterPulses=6', 'limits.drainTimeoutMs=3000', 'limits.shutdownTimeoutMs=8000',
  'limits.lineageBudget=64', 'tissues.dashboard=null', 'tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.echo.max=4', 'tissues.echo.idleMs=3000', 'tissues.echo.halfLifeMs=500',
  'tissues.receiver.min=2', 'tissues.receiver.max=4', 'tissues.worker.min=1', 'tissues.worker.max=2', 'messenger.frontPort=0', 'messenger.scryptLogN=12',
];
/** How long after the last send every acknowledged message may take to arrive. */
const DRAIN_MS = 20_000;
/** A fault must be recovered from within this. */
const RECOVERY_MAX_MS = 30_000;
const SAMPLE_MS = 500;

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const s = o.scenario;
  const random = seeded(o.seed);
  const portMin = 20_000 + Math.floor(Math.random() * 40_000);
  const crowd = o.crowd ?? 0;
  // After the scenario's own sets: its per-host limit is for its own cells, the crowd's come on top.
  const crowdSets = crowd > 0
    ? ['tissues.crowd.module=echo', `tissues.crowd.min=${crowd}`, `tissues.crowd.max=${crowd}`, 'tissues.crowd.idleMs=86400000', `limits.cellsPerHost=${crowd + 48}`, `limits.rssPerHostMb=${(crowd + 48) * 256}`]
    : [];
  const genome = loadGenome({ sets: [...BASE, `messenger.portMin=${portMin}`, `messenger.portMax=${portMin + 40}`, ...(s.sets ?? []), ...crowdSets] });
  const startedAt = new Date();
  const dir = join(o.stateDir, `${s.name}-${startedAt.toISOString().replace(/[:.]/g, '-')}`);
  const run = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, run.signal]) : run.signal;
  const organism = new Organism({ stateDir: dir, genome, autoInstall: false, say: o.say ?? (() => {}) });
  const onExit = () => organism.emergencyStop();
  process.once('exit', onExit);
  const log: string[] = [];
  const t0 = Date.now();
  const at = () => Date.now() - t0;
  const say = (line: string) => {
    log.push(`${(at() / 1000).toFixed(1)} s  ${line}`);
    o.say?.(line);
  };
  const marks: { t: number; label: string }[] = [];
  const samples: Sample[] = [];
  const chatters: Chatter[] = [];
  const injected = new Map<string, number>();
  const convicted = new Map<string, number>();
  const guilty: { condemned: string[]; kind: string }[] = [];
  const urls = new Set<string>();
  let stopped: string | undefined;
  let timers: NodeJS.Timeout[] = [];
  const sleep = (ms: number) => pause(ms, signal);
  try {
    o.progress(`${s.name}: growing an organism (seed ${o.seed})…`);
    await organism.start();
    await organism.waitForPopulation(30_000 + crowd * 500);
    const census = organism.observer.census;
    const alive = (tissue?: string) => census.living().filter((c) => c.state === 'alive' && (tissue === undefined || c.tissue === tissue));
    const receivers = () => alive('receiver').filter((c) => c.url !== null).map((c) => c.url!);
    const waitUntil = async (cond: () => boolean, ms: number, what: string) => {
      const end = Date.now() + ms;
      while (!cond()) {
        if (signal.aborted) throw new CellularError('CELL_ERR_ABORTED', 'chaos run stopped');
        if (Date.now() > end) throw new CellularError('CELL_ERR_SPAWN', `timed out after ${ms} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitUntil(() => receivers().length >= (genome.tissues.receiver?.min ?? 1), 20_000, 'the receivers');
    // Alive cells per tissue. On this host the process table is the truth: a cell killed a
    // moment ago is not counted while the census still waits for its missed pulses.
    const livePopulation = (): Record<string, number> => {
      const running = new Set(localCells(organism.id).map((c) => c.cell));
      const population: Record<string, number> = {};
      for (const c of alive()) if (c.host !== hostName() || running.has(c.id)) population[c.tissue] = (population[c.tissue] ?? 0) + 1;
      return population;
    };
    // Who made whom, kept for the whole run (the census and its certificate book forget
    // cells that left, and a cancer's children leave quickly).
    const parents = new Map<string, string>();
    organism.observer.bus.on((h) => {
      if (h.kind === 'birth') {
        const parent = (h.body as { cert?: { parent?: unknown } }).cert?.parent;
        if (typeof parent === 'string') parents.set(h.from, parent);
      }
      if (h.kind !== 'verdict') return;
      const v = h.body as VerdictBody;
      if (!v.guilty || guilty.some((g) => g.condemned.join() === v.condemned.join())) return;
      guilty.push({ condemned: v.condemned, kind: v.kind });
      if (!convicted.has(v.accused)) convicted.set(v.accused, at());
      say(`verdict: ${v.accused} guilty of ${v.kind} (${v.votes} of ${v.jury}, needed ${v.needed})`);
    });
    census.on((e) => {
      if (e.entry.url) urls.add(e.entry.url);
      if (e.type === 'state' && e.entry.state === 'dead') say(`${e.entry.id} dead (${e.entry.cause})`);
      if (e.type === 'joined') say(`${e.entry.id} joined (${e.entry.tissue})`);
    });

    const addChatters = async (n: number, options: { slow?: number } = {}): Promise<Chatter[]> => {
      const made = Array.from({ length: n }, (_v, i) => new Chatter({
        user: `c${chatters.length + i}-${(o.seed % 46_656).toString(36)}`, receivers, random, slow: i < (options.slow ?? 0), onEvent: (l) => say(l),
      }));
      // Accounts made a few at a time: a storm of logins is the rate limiter's business, not this test's.
      for (let i = 0; i < made.length; i += 8) await Promise.all(made.slice(i, i + 8).map((c) => c.start()));
      chatters.push(...made);
      const names = chatters.map((c) => c.user);
      await Promise.all(chatters.map((c) => c.learn(names)));
      return made;
    };
    o.progress(`${s.name}: ${o.clients} chat clients registering…`);
    await addChatters(o.clients);

    // Chat: `rate` messages a second between random pairs, for the whole run.
    let sending = true;
    const chat = setInterval(() => {
      if (!sending || chatters.length < 2) return;
      const from = chatters[Math.floor(random() * chatters.length)]!;
      let to = chatters[Math.floor(random() * chatters.length)]!;
      if (to === from) to = chatters[(chatters.indexOf(from) + 1) % chatters.length]!;
      from.say(to.user, `chaos ${s.name} message ${from.sent.size} from ${from.user}`);
    }, Math.max(1, Math.round(1000 / o.rate)));
    let counted = 0;
    const sample = setInterval(() => {
      const population = livePopulation();
      const fresh: number[] = [];
      let total = 0;
      for (const c of chatters) for (const r of c.received.values()) {
        total++;
        if (r.at > t0 + (samples.at(-1)?.t ?? -SAMPLE_MS)) fresh.push(r.latencyMs);
      }
      counted = total;
      samples.push({ t: at(), population, stress: tissueStress(census.living()), delivered: fresh.length, p50: fresh.length ? percentile(fresh, 50) : null, p99: fresh.length ? percentile(fresh, 99) : null });
    }, SAMPLE_MS);
    const progress = setInterval(() => {
      const sent = chatters.reduce((n, c) => n + c.sent.size, 0);
      const acked = chatters.reduce((n, c) => n + [...c.sent.values()].filter((x) => x.ackedAt !== null).length, 0);
      const pop = Object.entries(samples.at(-1)?.population ?? {}).map(([t, n]) => `${t} ${n}`).join(' · ');
      o.progress(`${s.name} ${Math.round(at() / 1000)}/${o.durationS} s · sent ${sent} acked ${acked} delivered ${counted} · ${pop}${marks.length ? ` · last fault: ${marks.at(-1)!.label}` : ''}`);
    }, 1_000);
    timers = [chat, sample, progress];

    // The fault's own time ends with the run's duration (a monkey stops killing then).
    const faultTime = new AbortController();
    const faultSignal = AbortSignal.any([signal, faultTime.signal]);
    const ctx: ChaosContext = {
      random, signal: faultSignal, durationMs: o.durationS * 1000,
      living: (tissue) => alive(tissue),
      // A fault step that fires as the run ends is not done (the run is being judged).
      signal_: (cell, sig) => (!faultSignal.aborted || sig === 'SIGCONT') && cell.host === hostName() && signalCell(cell.pid, cell.id, organism.id, sig),
      inject: async (fault, tissue = 'echo') => {
        if (faultSignal.aborted) throw new CellularError('CELL_ERR_ABORTED', 'the run is over');
        const cell = await organism.spawn(tissue, undefined, { fault });
        injected.set(cell.id, at());
        return cell.id;
      },
      load: async (shape) => {
        await runLoad({ nc: organism.observer.nc, ns: organism.observer.ns, tissue: 'echo', endpoint: 'wait', request: { ms: 100 }, shape, signal: faultSignal, maxInflight: 512 });
      },
      crashBroker: () => organism.crashBroker(),
      restartBroker: () => organism.restartBroker(),
      addChatters,
      stopped: (id) => void (stopped = id),
      mark: (label) => {
        marks.push({ t: at(), label });
        say(`FAULT: ${label}`);
      },
      say,
      sleep: (ms) => pause(ms, faultSignal),
    };
    const fault = s.run(ctx).catch((e: unknown) => say(`scenario failed: ${(e as Error).message}`));
    await sleep(o.durationS * 1000);
    faultTime.abort();
    // A fault step under way (a broker restarting) finishes; nothing new starts.
    await within(fault, 15_000, undefined);
    sending = false;
    const sendingUntil = at();
    if (o.signal?.aborted) throw new CellularError('CELL_ERR_ABORTED', 'chaos run interrupted');

    // Drain: slow readers read again, unacknowledged sends go again, every ack must arrive.
    o.progress(`${s.name}: draining (every acknowledged message must arrive)…`);
    for (const c of chatters) c.resume();
    const missing = () => chatters.flatMap((c) => [...c.sent.values()].filter((x) => x.ackedAt !== null && !chatters.find((r) => r.user === x.to)?.received.has(x.msg)));
    const unacked = () => chatters.flatMap((c) => [...c.sent.values()].filter((x) => x.ackedAt === null));
    const drainEnd = Date.now() + DRAIN_MS;
    while (Date.now() < drainEnd && (missing().length > 0 || unacked().length > 0) && !o.signal?.aborted) {
      for (const c of chatters) c.retryUnacked();
      await new Promise((r) => setTimeout(r, 500));
    }
    // Population settles within bounds (a replacement being born, a surplus cell dying).
    const inBounds = () => {
      const p = livePopulation();
      return Object.entries(genome.tissues).every(([t, g]) => (p[t] ?? 0) >= g.min && (p[t] ?? 0) <= g.max);
    };
    // Three samples in a row within bounds: a fault of the last moments is judged too.
    await waitUntil(() => samples.length >= 3 && samples.slice(-3).every((x) => x.t > sendingUntil) && inBounds(), 20_000, 'the population within its bounds').catch(() => undefined);
    for (const t of timers) clearInterval(t);
    timers = [];

    // Census views of a few living cells (any cell answers `census`; asked several times).
    const views: string[][] = [];
    for (let i = 0; i < 6; i++) {
      try {
        const r = openReply<unknown[]>((await organism.observer.nc.request(organism.observer.ns.census, new Uint8Array(0), { timeout: 1_000 })).data);
        views.push(r.filter(isCensusEntry).filter((e) => e.state === 'alive').map((e) => e.id).sort());
      } catch {
        // nobody answered this time
      }
    }
    const ours = alive().map((c) => c.id).sort();
    const final: Record<string, number> = {};
    const peak: Record<string, number> = {};
    for (const t of Object.keys(genome.tissues)) {
      final[t] = alive(t).length;
      peak[t] = Math.max(0, ...samples.map((x) => x.population[t] ?? 0));
    }
    const lineageOf = (id: string): string[] => {
      const chain: string[] = [id];
      for (let p = parents.get(id) ?? organism.observer.certs.certOf(id)?.parent ?? undefined; p && chain.length < 64; p = parents.get(p) ?? organism.observer.certs.certOf(p)?.parent ?? undefined) chain.push(p);
      return chain;
    };
    const isInjected = (id: string) => injected.has(id) || lineageOf(id).some((x) => injected.has(x));
    const stoppedEntry = stopped === undefined ? undefined : census.get(stopped);
    const facts: RunFacts = {
      peak, final, genome: { min: Object.fromEntries(Object.entries(genome.tissues).map(([t, g]) => [t, g.min])), max: Object.fromEntries(Object.entries(genome.tissues).map(([t, g]) => [t, g.max])) },
      convicted, injected, views, ours,
      stopped: stopped === undefined ? undefined : { id: stopped, rejoined: stoppedEntry?.state === 'alive', gone: stoppedEntry?.state !== 'alive' && !localCells(organism.id).some((c) => c.cell === stopped) },
    };

    // Counts and the invariants every run checks.
    const lost = missing();
    // Every acknowledged message, looked for in the stream itself (the broker may be a restarted one).
    const nc = organism.observer.nc;
    const durability = chatters.length === 0 ? null : await (async () => checkDurability({
      js: jetstream(nc), jsm: await jetstreamManager(nc), stream: organism.observer.ns.stream(MESSAGES_STREAM), participants: chatters,
      cursors: await new Kvm(nc).open(organism.observer.ns.bucket(CURSORS_BUCKET)),
    }))().catch((e: unknown) => (say(`durability check could not read the stream: ${(e as Error).message}`), null));
    if (durability) for (const line of describeDurability(durability)) say(line);
    const sum = (f: (c: Chatter) => number) => chatters.reduce((n, c) => n + f(c), 0);
    const errors: Record<string, number> = {};
    for (const c of chatters) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] ?? 0) + v;
    const counts = {
      sent: sum((c) => c.sent.size), acked: sum((c) => [...c.sent.values()].filter((x) => x.ackedAt !== null).length), delivered: sum((c) => c.received.size),
      lost: lost.length, duplicates: sum((c) => c.duplicates), redelivered: sum((c) => c.redelivered), unreadable: sum((c) => c.unreadable), reconnects: sum((c) => c.reconnects), errors,
    };
    const overMax = Object.entries(genome.tissues).filter(([t, g]) => (peak[t] ?? 0) > g.max).map(([t]) => `${t} peaked at ${peak[t]} (max ${genome.tissues[t]!.max})`);
    const outOfBounds = Object.entries(genome.tissues).filter(([t, g]) => final[t]! < g.min || final[t]! > g.max).map(([t, g]) => `${t} ${final[t]} (${g.min}–${g.max})`);
    const falseVerdicts = guilty.flatMap((g) => g.condemned.filter((id) => !isInjected(id)));
    const running = localCells(organism.id).map((c) => c.cell);
    const injectedAlive = [...new Set([...census.list().map((c) => c.id), ...running])].filter((id) => isInjected(id) && (census.get(id)?.state === 'alive' || running.includes(id)));
    // Recovery from a fault: from the fault until the first of three healthy samples in a row
    // (every tissue at its min, and messages opened in that half second) that follows an
    // unhealthy one; 0 when no sample after it was unhealthy.
    // (After the last send, only the population can say: nothing more is being delivered.)
    const healthy = (x: Sample) => (x.delivered > 0 || x.t > sendingUntil) && Object.entries(genome.tissues).every(([t, g]) => (x.population[t] ?? 0) >= g.min);
    const recoveries = marks.map((m) => {
      const after = samples.filter((x) => x.t > m.t);
      let hurt = false;
      for (let j = 0; j < after.length; j++) {
        if (!healthy(after[j]!)) hurt = true;
        else if (hurt && after.slice(j, j + 3).every(healthy)) return after[j]!.t - m.t;
      }
      return hurt ? null : 0;
    });
    const recoveryMs = marks.length === 0 ? null : recoveries.some((r) => r === null) ? Number.POSITIVE_INFINITY : Math.max(...(recoveries as number[]));
    const invariants: Invariant[] = [
      { name: 'no acknowledged message lost', pass: lost.length === 0, value: `${lost.length} of ${counts.acked} acknowledged missing after ${DRAIN_MS / 1000} s` },
      { name: 'every send acknowledged in the end', pass: unacked().length === 0, value: `${unacked().length} of ${counts.sent} never acknowledged` },
      { name: 'none delivered twice (stored once per message id)', pass: counts.duplicates === 0, value: `${counts.duplicates} duplicates (${counts.redelivered} redeliveries of the same copy after a failover, allowed)` },
      ...(chatters.length === 0 ? [] : [
        { name: 'every acknowledged message is in the stream (read back after the run)', pass: durability !== null && durability.byClass['never-stored'] === 0, value: durability === null ? 'the stream could not be read' : `${durability.byClass['never-stored']} of ${durability.acknowledged} never stored; ${durability.ackSeqMismatches} acknowledged with a sequence holding something else` },
        { name: 'every delivery is a copy the stream holds', pass: durability !== null && durability.phantoms === 0, value: `${durability?.phantoms ?? '?'} deliveries of no stored copy; ${durability?.doubles.length ?? '?'} stored twice` },
      ]),
      { name: 'every message opened by its recipient', pass: counts.unreadable === 0, value: `${counts.unreadable} unreadable` },
      { name: 'population never above max', pass: overMax.length === 0, value: overMax.join('; ') || Object.entries(peak).map(([t, n]) => `${t} ≤ ${n}`).join(', ') },
      { name: 'population within bounds at the end', pass: outOfBounds.length === 0, value: outOfBounds.join('; ') || Object.entries(final).map(([t, n]) => `${t} ${n}`).join(', ') },
      { name: 'no false guilty verdict', pass: falseVerdicts.length === 0, value: `${guilty.length} guilty verdicts${falseVerdicts.length ? `; honest cells condemned: ${falseVerdicts.join(', ')}` : ''}` },
      { name: 'every injected cell dead', pass: injectedAlive.length === 0, value: injected.size === 0 ? 'none injected' : `${injected.size} injected${injectedAlive.length ? `; alive: ${injectedAlive.join(', ')}` : ', all dead'}` },
      { name: `recovered within ${RECOVERY_MAX_MS / 1000} s of every fault`, pass: recoveryMs === null || recoveryMs <= RECOVERY_MAX_MS, value: recoveryMs === null ? 'no fault' : Number.isFinite(recoveryMs) ? `${recoveryMs} ms (worst of ${marks.length})` : 'not recovered' },
      ...(s.invariants?.(facts) ?? []),
    ];
    for (const c of chatters) c.close();
    o.progress(`${s.name}: stopping the organism…`);
    const brokerPid = organism.broker?.pid;
    await organism.stop('chaos run done');
    // Nothing may outlive the run: cells, the broker, any port a cell listened on.
    const orphans = localCells(organism.id).map((c) => `${c.cell} (pid ${c.pid})`);
    if (brokerPid !== undefined && isAlive(brokerPid)) orphans.push(`nats-server (pid ${brokerPid})`);
    for (const url of urls) if (await portOpen(url)) orphans.push(`a listener on ${url}`);
    invariants.push({ name: 'no orphan process or open port after the run', pass: orphans.length === 0, value: orphans.join(', ') || `0 processes, ${urls.size} ports closed` });
    return {
      durability, scenario: s.name, description: s.description, seed: o.seed, durationS: o.durationS, rate: o.rate, clients: chatters.length, organism: organism.id, startedAt: startedAt.toISOString(),
      samples, marks, invariants, pass: invariants.every((i) => i.pass), counts, recoveryMs: recoveryMs !== null && !Number.isFinite(recoveryMs) ? -1 : recoveryMs, log,
    };
  } finally {
    for (const t of timers) clearInterval(t);
    run.abort();
    for (const c of chatters) c.close();
    await organism.stop('chaos run ended');
    process.off('exit', onExit);
  }
}

function portOpen(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: u.hostname, port: Number(u.port) });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.setTimeout(1_000, () => (socket.destroy(), resolve(false)));
  });
}

export type { CensusEntry };
