/**
 * Chaos scenarios (`npm run chaos -- list`): each names the fault it brings while chat
 * clients keep talking, the genome it needs on top of the chaos base, and any invariants of
 * its own beyond those every run checks (simulations/chaos/runner.ts).
 */
import type { CensusEntry } from '../kernel/census.ts';
import type { FaultKind } from '../wire/control.ts';
import type { Shape } from './load-shape.ts';

export interface Invariant {
  name: string;
  pass: boolean;
  /** The number behind it, in words. */
  value: string;
}

export interface ChaosContext {
  random(): number;
  signal: AbortSignal;
  durationMs: number;
  /** Alive cells (of one tissue). */
  living(tissue?: string): CensusEntry[];
  /** Sends a signal to a cell on this host, after checking its pid is that cell. */
  signal_(cell: CensusEntry, signal: NodeJS.Signals): boolean;
  /** Makes a cell with an injected fault (cells/immune/faults.ts); returns its id. */
  inject(fault: FaultKind, tissue?: string): Promise<string>;
  /** Offers load to the echo tissue's `wait` endpoint (requests held 100 ms, no CPU). */
  load(shape: Shape): Promise<void>;
  crashBroker(): Promise<void>;
  restartBroker(): Promise<void>;
  /** Adds chat clients mid-run (the storm). */
  /** Connect n more chat clients (the chaos runner's; a live organism has none to add): how many joined. */
  addChatters(n: number, options?: { slow?: number }): Promise<readonly unknown[]>;
  /** Names the cell a scenario froze (SIGSTOP), so the run can judge what became of it. */
  stopped(id: string): void;
  /** A fault mark on the report's time axis. */
  mark(label: string): void;
  say(line: string): void;
  /** Sleeps, returning early when the run is stopped. */
  sleep(ms: number): Promise<void>;
}

/** What a scenario's own invariants are judged from, once the run is over. */
export interface RunFacts {
  /** Most alive cells of each tissue in any sample, and at the end. */
  peak: Record<string, number>;
  final: Record<string, number>;
  genome: { min: Record<string, number>; max: Record<string, number> };
  /** Ids of injected cells convicted guilty, and when (ms after the run started). */
  convicted: Map<string, number>;
  injected: Map<string, number>;
  /** Census views of several living cells, agreeing or not (ids of alive cells). */
  views: string[][];
  ours: string[];
  stopped: { id: string; rejoined: boolean; gone: boolean } | undefined;
}

export interface ChaosScenario {
  name: string;
  description: string;
  /** Genome overrides on top of the chaos base. */
  sets?: string[];
  defaults: { durationS: number; rate: number; clients: number };
  /**
   * Whether the dashboard's operator can run it on a live organism (it has no chat clients
   * of its own: a scenario that adds clients runs only under `npm run chaos`). @default true
   */
  live?: boolean;
  run(ctx: ChaosContext): Promise<void>;
  invariants?(facts: RunFacts): Invariant[];
}

/** Sleeps `ms`, or less when `signal` aborts first (a chaos step never outlives its run). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

const notDashboard = (c: CensusEntry) => c.tissue !== 'dashboard';

function grewAndShrank(f: RunFacts): Invariant[] {
  const min = f.genome.min.echo ?? 1;
  return [
    { name: 'echo grew under the load', pass: (f.peak.echo ?? 0) > min, value: `peak ${f.peak.echo ?? 0} cells (min ${min})` },
    { name: 'echo shrank back once idle', pass: (f.final.echo ?? 0) < (f.peak.echo ?? 0) && (f.final.echo ?? 0) >= min, value: `${f.final.echo ?? 0} cells at the end` },
  ];
}

/** Load on echo with a shape, under light chat: the tissue must grow, then shrink back. */
function loadScenario(name: string, description: string, shape: Shape): ChaosScenario {
  return {
    name, description,
    defaults: { durationS: 40, rate: 10, clients: 4 },
    async run(ctx) {
      await ctx.sleep(2_000);
      ctx.mark(name);
      await ctx.load(shape);
      ctx.mark('load off');
    },
    invariants: grewAndShrank,
  };
}

function misbehaving(fault: FaultKind, tissue = 'echo'): ChaosScenario {
  return {
    name: fault,
    description: fault === 'cancer'
      ? 'a cell that divides past its lineage budget (cancer): it and its lineage must be voted out and killed, the tissue regrown'
      : `a ${fault} cell (docs/immune.md) joins under chat load: it must be voted out by 2/3 of the census and killed, nobody else`,
    sets: ['limits.cellsPerHost=40', ...(fault === 'cancer' ? ['limits.lineageBudget=3', `tissues.${tissue}.max=16`] : [])],
    defaults: { durationS: 20, rate: 20, clients: 4 },
    async run(ctx) {
      await ctx.sleep(3_000);
      ctx.mark(`${fault} cell injected`);
      const id = await ctx.inject(fault, tissue);
      ctx.say(`injected ${id} (${fault})`);
    },
    invariants(f) {
      const [[id, at] = ['', 0]] = [...f.injected];
      const convicted = f.convicted.get(id);
      return [{ name: `the ${fault} cell was convicted within 10 s`, pass: convicted !== undefined && convicted - at <= 10_000, value: convicted === undefined ? 'never' : `${convicted - at} ms after it was made` }];
    },
  };
}

export const CHAOS_SCENARIOS: readonly ChaosScenario[] = [
  loadScenario('spike', 'a load spike on echo (wait requests: 20/s, 600/s for 6 s, 20/s, then nothing): it grows, then shrinks back', { name: 'step', rate: 20, peak: 600, durationMs: 18_000 }),
  loadScenario('ramp', 'a load ramp on echo from 20/s to 600/s over 15 s, then nothing: it grows step by step, then shrinks back', { name: 'ramp', rate: 20, peak: 600, durationMs: 15_000 }),
  {
    name: 'monkey',
    description: 'chaos monkey: kill -9 a random cell every 4 s under chat load',
    sets: ['limits.lineageBudget=64'],
    defaults: { durationS: 30, rate: 30, clients: 6 },
    async run(ctx) {
      await ctx.sleep(3_000);
      while (!ctx.signal.aborted) {
        const pool = ctx.living().filter(notDashboard);
        const victim = pool[Math.floor(ctx.random() * pool.length)];
        if (victim && ctx.signal_(victim, 'SIGKILL')) ctx.mark(`kill -9 ${victim.tissue}`);
        await ctx.sleep(4_000);
      }
    },
  },
  {
    name: 'massacre',
    description: 'kill -9 every receiver but one at once, under chat load',
    sets: ['tissues.receiver.min=3', 'tissues.receiver.max=4'],
    defaults: { durationS: 25, rate: 30, clients: 6 },
    async run(ctx) {
      await ctx.sleep(4_000);
      const receivers = ctx.living('receiver');
      const spared = receivers[Math.floor(ctx.random() * receivers.length)];
      ctx.mark(`kill -9 ${receivers.length - 1} of ${receivers.length} receivers`);
      for (const r of receivers) if (r !== spared) ctx.signal_(r, 'SIGKILL');
    },
  },
  {
    name: 'stop-the-world',
    description: 'SIGSTOP a receiver for longer than the death timeout, then SIGCONT: it rejoins or is replaced, and every census agrees',
    defaults: { durationS: 25, rate: 30, clients: 6 },
    async run(ctx) {
      await ctx.sleep(3_000);
      const victim = ctx.living('receiver')[0];
      if (!victim) return ctx.say('no receiver to stop');
      ctx.signal_(victim, 'SIGSTOP');
      ctx.mark(`SIGSTOP ${victim.id}`);
      ctx.stopped(victim.id);
      await ctx.sleep(4_000);
      ctx.signal_(victim, 'SIGCONT');
      ctx.mark('SIGCONT');
    },
    invariants(f) {
      const s = f.stopped;
      const agree = f.views.length > 0 && f.views.every((v) => v.join() === f.ours.join());
      return [
        { name: 'the stopped cell rejoined or is gone', pass: s !== undefined && (s.rejoined || s.gone), value: s ? (s.rejoined ? 'rejoined' : s.gone ? 'gone (replaced)' : 'neither') : 'no cell was stopped' },
        { name: 'every census agrees (no split brain)', pass: agree, value: `${f.views.length} cells asked; ${f.views.filter((v) => v.join() === f.ours.join()).length} agree with the observer` },
      ];
    },
  },
  misbehaving('flood'),
  misbehaving('liar'),
  misbehaving('forger'),
  misbehaving('tamper'),
  misbehaving('cancer'),
  {
    name: 'broker-loss',
    description: 'kill -9 the nats-server under chat load and start it again 3 s later (single server); the cluster case is the multi-host issue',
    defaults: { durationS: 30, rate: 20, clients: 4 },
    async run(ctx) {
      await ctx.sleep(4_000);
      ctx.mark('kill -9 nats-server');
      await ctx.crashBroker();
      await ctx.sleep(3_000);
      await ctx.restartBroker();
      ctx.mark('nats-server restarted');
    },
  },
  {
    name: 'storm',
    description: '40 more clients connect and chat at once, 5 of them slow readers that stop reading (cut off, then catch up): nothing lost',
    sets: ['messenger.slowClientMs=3000'],
    defaults: { durationS: 25, rate: 60, clients: 4 },
    live: false,
    async run(ctx) {
      await ctx.sleep(3_000);
      ctx.mark('storm: 40 clients');
      const added = await ctx.addChatters(40, { slow: 5 });
      ctx.say(`${added.length} clients joined`);
    },
  },
];

/** The scenarios the dashboard's operator may start on a live organism. */
export const LIVE_SCENARIOS: readonly ChaosScenario[] = CHAOS_SCENARIOS.filter((s) => s.live !== false);

export function chaosScenario(name: string): ChaosScenario | undefined {
  return CHAOS_SCENARIOS.find((s) => s.name === name);
}
