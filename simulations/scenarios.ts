/**
 * Chaos scenarios that run inside a live organism, started from the dashboard's controls
 * (the operator runs them: it may kill cells and apply load). Each is bounded in time and
 * in what it touches, is reproducible from its seed, and reports what it did line by line.
 */
import type { CensusEntry } from '../organism/census.ts';
import { CellularError } from '../organism/errors.ts';

export interface ScenarioContext {
  /** Living cells now. */
  living(): CensusEntry[];
  /** kill -9 one cell (on this host, after checking its pid is that cell). */
  kill(cell: CensusEntry): boolean;
  /** Applies `rate` requests/s to `tissue` for `seconds` (resolves when done). */
  load(tissue: string, rate: number, seconds: number, signal: AbortSignal): Promise<void>;
  /** One line of what happened (it reaches the dashboard's event log). */
  say(line: string): void;
  random: () => number;
  signal: AbortSignal;
}

export interface Scenario {
  name: string;
  description: string;
  /** Longest the scenario runs, seconds. */
  seconds: number;
  run(ctx: ScenarioContext): Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/** Cells a scenario may kill: never the dashboard (the operator's eyes) nor a cell already leaving. */
const victims = (ctx: ScenarioContext, tissue?: string) => ctx.living().filter((c) => c.state === 'alive' && c.tissue !== 'dashboard' && (tissue === undefined || c.tissue === tissue));

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'monkey',
    description: 'kill -9 a random cell (not the dashboard) every 3 s for 30 s',
    seconds: 30,
    async run(ctx) {
      for (let i = 0; i < 10 && !ctx.signal.aborted; i++) {
        const pool = victims(ctx);
        const cell = pool[Math.floor(ctx.random() * pool.length)];
        if (cell) ctx.say(`${ctx.kill(cell) ? 'killed' : 'could not kill'} ${cell.id} (${cell.tissue}, pid ${cell.pid})`);
        else ctx.say('no cell to kill');
        await sleep(3_000, ctx.signal);
      }
    },
  },
  {
    name: 'massacre',
    description: 'kill -9 every receiver but one at once',
    seconds: 1,
    async run(ctx) {
      const receivers = victims(ctx, 'receiver');
      if (receivers.length < 2) return ctx.say(`${receivers.length} receiver(s) alive: nothing to massacre`);
      const spared = receivers[Math.floor(ctx.random() * receivers.length)]!;
      for (const c of receivers) if (c !== spared) ctx.say(`${ctx.kill(c) ? 'killed' : 'could not kill'} ${c.id}`);
      ctx.say(`spared ${spared.id}`);
    },
  },
  {
    name: 'spike',
    description: 'a 20 s load spike on the echo tissue: 50/s, then 800/s for 10 s, then 50/s',
    seconds: 20,
    async run(ctx) {
      for (const [rate, seconds] of [[50, 5], [800, 10], [50, 5]] as const) {
        if (ctx.signal.aborted) return;
        ctx.say(`echo at ${rate}/s for ${seconds} s`);
        await ctx.load('echo', rate, seconds, ctx.signal);
      }
    },
  },
];

export function scenario(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new CellularError('DASHBOARD_ERR_CONTROL', `no chaos scenario ${JSON.stringify(name)}; scenarios: ${SCENARIOS.map((x) => x.name).join(', ')}`);
  return s;
}

/** A small seeded generator (mulberry32): the same seed picks the same victims. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
