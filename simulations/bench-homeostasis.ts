/**
 * The homeostasis benchmark: how fast does a tissue follow its load, and does it add what
 * the load needs and no more? Real cells, real requests (echo.wait: each request holds a
 * slot for `workMs` without burning CPU, so capacity is concurrency and eight cells fit on
 * two cores), on a private nats-server.
 *
 * Three phases, each its own organism:
 * - stem: a pool of stem cells; each load step is met by differentiation (and division
 *   when the pool runs dry);
 * - cold: no stem pool; every new cell is a division (a new process);
 * - kill: a tissue at min 2 under steady load; kill -9 of one cell, ten times.
 *
 * Each step goes from a base rate to a peak for `holdMs`, then back to base until the
 * tissue has shrunk to min again. New capacity "serves" from the moment a new cell took its
 * first request: its first reply (the reply names the cell) minus the work it held.
 *
 * The peer, in the same run: the same load trace replayed through a model of a central
 * controller that polls every 15 s (the Kubernetes HPA default) and sizes with HPA's rule
 * desired = ceil(current × utilisation / target), utilisation capped at 100% per pod, its
 * new pods serving after our own measured cold-spawn time (generous to it: real pods take
 * seconds). Reported as the ratio of reaction times, which travels between machines.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { throwIfAborted } from '../organism/wire/errors.ts';
import { loadGenome, type Genome } from '../organism/kernel/genome/index.ts';
import type { Hormone } from '../organism/kernel/hormone.ts';
import { Organism } from '../organism/grow/organism.ts';
import type { DecisionBody } from '../organism/kernel/vocabulary.ts';
import { runLoad } from '../organism/chaos/load.ts';
import { distribution, median, type Distribution } from '../organism/chaos/stats.ts';
import type { BenchRunOptions } from './bench-options.ts';

export interface HomeostasisBenchOptions extends BenchRunOptions {
  /** Load steps per growth phase (stem and cold each run this many). @default 10 */
  steps: number;
  /** How long each peak lasts, ms. @default 6000 */
  holdMs: number;
  /** kill -9 rounds in the kill phase. @default 10 */
  kills: number;
  /** Zygotes per host in the zygote phase (the cold phase again, births from a zygote pool). 0 skips it. @default 4 */
  zygotes?: number;
}

/** Echo's capacity (work at which a cell is full) and the request each load sends. */
const CAPACITY = 8;
const WORK_MS = 100;
const BASE_RATE = 10;
/** Peak rates cycled through by the steps: 1.9 to 4.4 cells of work. */
const PEAKS = [150, 250, 350, 200, 300];
const POLL_MS = 15_000;

export interface StepResult {
  phase: 'stem' | 'cold' | 'zygote';
  index: number;
  peak: number;
  /** Cells of work the peak offers (rate × workMs / capacity). */
  demand: number;
  before: number;
  /** Cells the step needs: min(max, ceil(demand / target)) − before. */
  needed: number;
  /** Cells added during the step (recruited or divided). */
  made: number;
  /** Onset → the first growth decision, ms. */
  decideMs: number | null;
  /** Onset → the first new cell's first reply, ms. */
  firstServingMs: number | null;
  /** Onset → every needed new cell serving, ms. */
  allServingMs: number | null;
  /**
   * Per new cell, from the decision: `ms` until it was ready to serve (its endpoints
   * subscribed: the `differentiate` or `birth` hormone), `firstMs` until it began its first
   * request (when the queue group first picked it), and how it was made.
   */
  dispatch: { cell: string; how: 'differentiate' | 'divide'; ms: number; firstMs: number | null }[];
  /** The HPA model on the same step. */
  hpa: { firstServingMs: number; allServingMs: number; polls: number };
}

export interface KillResult {
  victim: string;
  /** kill -9 → a replacement's first reply, ms. */
  replacementMs: number | null;
  how: string;
}

export interface Sample {
  /** ms since the run started. */
  t: number;
  phase: string;
  offeredCells: number;
  capacity: number;
  hpaCapacity: number;
}

export interface HomeostasisBenchResult {
  options: Omit<HomeostasisBenchOptions, 'progress' | 'signal'>;
  genome: { target: number; high: number; low: number; halfLifeMs: number; idleMs: number; pulseIntervalMs: number; max: number };
  steps: StepResult[];
  kills: KillResult[];
  samples: Sample[];
  summary: {
    stemDispatch: Distribution | null;
    coldSpawn: Distribution | null;
    /** Decision → the new cell's first request, by how it was made. */
    stemFirstRequest: Distribution | null;
    coldFirstRequest: Distribution | null;
    /** Cold births again, with a zygote pool (decision → serving, every division of the zygote phase). */
    zygoteSpawn: Distribution | null;
    /** The zygote phase's pool: its size, zygotes started and claimed. */
    zygotes: { perHost: number; zygote: number; started: number };
    /** Per step, the first divided cell: decision → ready (one spawn, not the queue behind it). */
    coldFirstOfStep: Distribution | null;
    onsetToServing: Distribution | null;
    hpaOnsetToServing: Distribution | null;
    /** HPA model ÷ ours, onset → first new capacity serving (p50). */
    reactionRatio: number | null;
    replacement: Distribution | null;
    /** Steps whose divisions were within needed ± 1, of all steps. */
    divisionsWithinOne: number;
    divisionError: { mean: number; max: number };
  };
}

function genomeFor(phase: 'stem' | 'cold' | 'zygote' | 'kill', pulseIntervalMs: number, zygotes = 0): Readonly<Genome> {
  const sets = [
    'tissues.receiver=null', 'tissues.worker=null', 'tissues.dashboard=null', `limits.pulseIntervalMs=${pulseIntervalMs}`, 'limits.suspectAfterPulses=3', 'limits.deadAfterPulses=6', 'limits.lineageBudget=100000', 'limits.mitosisPerMinute=600',
    'limits.drainTimeoutMs=3000', 'limits.shutdownTimeoutMs=8000',
    'tissues.echo.max=8', 'tissues.echo.halfLifeMs=500', 'tissues.echo.idleMs=1500', 'tissues.stem.halfLifeMs=500',
    phase === 'kill' ? 'tissues.echo.min=2' : 'tissues.echo.min=1',
    phase === 'cold' || phase === 'zygote' ? 'tissues.stem.min=0' : 'tissues.stem.min=3',
    `limits.zygotes=${phase === 'zygote' ? zygotes : 0}`,
  ];
  return loadGenome({ sets });
}

/** The HPA model's response to one step: polls on a 15 s grid from the run start. */
export function hpaStep(onsetMs: number, before: number, demand: number, target: number, max: number, spawnMs: number): StepResult['hpa'] & { timeline: { at: number; capacity: number }[] } {
  let current = before;
  let poll = Math.ceil(onsetMs / POLL_MS) * POLL_MS;
  if (poll === onsetMs) poll += POLL_MS; // a poll at the very instant saw the old load
  const wanted = Math.min(max, Math.ceil(demand / target));
  const timeline: { at: number; capacity: number }[] = [];
  let first: number | undefined;
  let polls = 0;
  while (current < wanted && polls < 20) {
    polls++;
    // Utilisation as a pod reports it: at most 100%.
    const utilisation = Math.min(1, demand / current);
    const desired = Math.min(max, Math.max(current + (utilisation > target ? 1 : 0), Math.ceil(current * (utilisation / target))));
    current = desired;
    const serving = poll + spawnMs;
    first ??= serving;
    timeline.push({ at: serving, capacity: current });
    poll += POLL_MS;
  }
  const last = timeline.at(-1)?.at ?? onsetMs;
  return { firstServingMs: Math.round((first ?? onsetMs) - onsetMs), allServingMs: Math.round(last - onsetMs), polls, timeline };
}

export async function runHomeostasisBench(o: HomeostasisBenchOptions): Promise<HomeostasisBenchResult> {
  const pulseIntervalMs = 250;
  const runStart = performance.now();
  const now = () => performance.now() - runStart;
  const steps: StepResult[] = [];
  const kills: KillResult[] = [];
  const samples: Sample[] = [];
  const probe = genomeFor('stem', pulseIntervalMs).tissues.echo!;
  const hpaTimeline: { at: number; capacity: number }[] = [];
  let hpaCapacity = 1;

  const zygotes = o.zygotes ?? 4;
  const claimed = { zygote: 0, started: 0 };
  for (const phase of (zygotes > 0 ? ['stem', 'cold', 'zygote', 'kill'] : ['stem', 'cold', 'kill']) as ('stem' | 'cold' | 'zygote' | 'kill')[]) {
    throwIfAborted(o.signal);
    const genome = genomeFor(phase, pulseIntervalMs, zygotes);
    const organism = new Organism({ stateDir: join(o.stateDir, phase), genome, autoInstall: false, ...(o.signal ? { signal: o.signal } : {}) });
    try {
      await organism.start();
      await organism.waitForPopulation();
      o.progress(`${phase}: organism ${organism.id} alive (${organism.observer.census.living().length} cells)`);
      const census = organism.observer.census;
      const echoAlive = () => census.living().filter((c) => c.tissue === 'echo' && c.state === 'alive');
      const decisions: (DecisionBody & { at: number })[] = [];
      const ready = new Map<string, number>();
      organism.observer.bus.on((h: Hormone) => {
        if (h.kind === 'decision' && (h.body as DecisionBody).tissue === 'echo') decisions.push({ ...(h.body as DecisionBody), at: now() });
        // Endpoints are subscribed before either is published: the cell can take work.
        // A recruited stem was born long before: its readiness is its differentiation.
        if (h.kind === 'differentiate' || (h.kind === 'birth' && !ready.has(h.from))) ready.set(h.from, now());
      });
      const firstReply = new Map<string, number>();
      const onReply = (v: unknown) => {
        const cell = (v as { cell?: unknown }).cell;
        // The request began WORK_MS before its reply: that is when the cell started serving.
        if (typeof cell === 'string' && !firstReply.has(cell)) firstReply.set(cell, now() - WORK_MS);
      };
      let offered = BASE_RATE;
      const sampler = setInterval(() => {
        while (hpaTimeline.length > 0 && hpaTimeline[0]!.at <= now()) hpaCapacity = hpaTimeline.shift()!.capacity;
        samples.push({ t: Math.round(now()), phase, offeredCells: Math.ceil((offered * WORK_MS) / 1000 / CAPACITY / probe.target), capacity: echoAlive().length, hpaCapacity });
      }, 250);
      const load = (rate: number, durationMs: number, signal?: AbortSignal) =>
        runLoad({ nc: organism.observer.nc, ns: organism.observer.ns, tissue: 'echo', endpoint: 'wait', request: { ms: WORK_MS }, shape: { name: 'constant', rate, peak: rate, durationMs }, maxInflight: 4_000, onReply, ...(signal ? { signal } : {}) });
      /** Base load until the tissue is back at its min (bounded). */
      const settle = async (min: number) => {
        offered = BASE_RATE;
        const ac = new AbortController();
        const base = load(BASE_RATE, 60_000, ac.signal);
        const end = Date.now() + 45_000;
        while ((echoAlive().length > min || census.living().some((c) => c.tissue === 'echo' && c.state === 'draining')) && Date.now() < end) await sleep(100);
        await sleep(1_000); // a quiet second at base before the next onset
        ac.abort();
        await base;
      };
      try {
        if (phase === 'kill') {
          offered = 60;
          const ac = new AbortController();
          const steady = load(60, 10 * 60_000, ac.signal);
          for (let k = 0; k < o.kills; k++) {
            throwIfAborted(o.signal);
            await sleep(1_500);
            const victims = echoAlive().filter((c) => Date.now() - c.born > 1_500);
            const victim = victims[Math.floor(Math.random() * victims.length)];
            if (!victim) continue;
            const known = new Set(echoAlive().map((c) => c.id));
            const at = now();
            process.kill(victim.pid, 'SIGKILL');
            const end = Date.now() + 10_000;
            let replacement: string | undefined;
            while (!replacement && Date.now() < end) {
              replacement = [...firstReply].find(([cell, t]) => t > at && !known.has(cell))?.[0];
              if (!replacement) await sleep(10);
            }
            const how = decisions.find((d) => d.at > at && replacement && d.cells.includes(replacement))?.action ?? 'unknown';
            kills.push({ victim: victim.id, replacementMs: replacement ? Math.round(firstReply.get(replacement)! - at) : null, how });
            o.progress(`kill ${k + 1}/${o.kills}: ${victim.id} → ${replacement ?? 'no replacement'} serving after ${kills.at(-1)!.replacementMs ?? '—'} ms (${how})`);
            // Let the replacement settle before the next kill.
            while (echoAlive().length < 2 && Date.now() < end + 5_000) await sleep(50);
          }
          ac.abort();
          await steady;
          continue;
        }
        await settle(1);
        let coldSpawnMs = 150;
        for (let i = 0; i < o.steps; i++) {
          throwIfAborted(o.signal);
          const peak = PEAKS[i % PEAKS.length]!;
          const demand = (peak * WORK_MS) / 1000 / CAPACITY;
          const before = echoAlive();
          const beforeIds = new Set(census.list().filter((c) => c.tissue === 'echo').map((c) => c.id));
          const needed = Math.max(0, Math.min(probe.max, Math.ceil(demand / probe.target)) - before.length);
          const onset = now();
          offered = peak;
          const hpa = hpaStep(onset, before.length, demand, probe.target, probe.max, coldSpawnMs);
          hpaCapacity = before.length;
          hpaTimeline.length = 0;
          hpaTimeline.push(...hpa.timeline);
          await load(peak, o.holdMs);
          const grown = decisions.filter((d) => d.at >= onset && (d.action === 'divide' || d.action === 'differentiate'));
          const newCells = grown.flatMap((d) => d.cells.map((cell) => ({ cell, how: d.action as 'divide' | 'differentiate', decided: d.at }))).filter((c) => !beforeIds.has(c.cell));
          const dispatch = newCells.filter((c) => ready.has(c.cell)).map((c) => ({
            cell: c.cell, how: c.how, ms: Math.round(ready.get(c.cell)! - c.decided),
            firstMs: firstReply.has(c.cell) ? Math.round(firstReply.get(c.cell)! - c.decided) : null,
          }));
          const serving = newCells.map((c) => firstReply.get(c.cell)).filter((x): x is number => x !== undefined && x >= onset).sort((a, b) => a - b);
          const colds = dispatch.filter((d) => d.how === 'divide').map((d) => d.ms);
          if (colds.length > 0) coldSpawnMs = median(colds);
          const step: StepResult = {
            phase, index: i, peak, demand: Math.round(demand * 100) / 100, before: before.length, needed, made: newCells.length,
            decideMs: grown[0] ? Math.round(grown[0].at - onset) : null,
            firstServingMs: serving[0] !== undefined ? Math.round(serving[0] - onset) : null,
            allServingMs: serving.length >= needed && needed > 0 ? Math.round(serving[needed - 1]! - onset) : null,
            dispatch, hpa: { firstServingMs: hpa.firstServingMs, allServingMs: hpa.allServingMs, polls: hpa.polls },
          };
          steps.push(step);
          o.progress(
            `${phase} step ${i + 1}/${o.steps}: ${peak}/s = ${step.demand} cells of work; ${step.before} → +${step.made} (needed ${needed}); decided ${step.decideMs ?? '—'} ms, first serving ${step.firstServingMs ?? '—'} ms; HPA model ${Math.round(step.hpa.firstServingMs)} ms`,
          );
          await settle(1);
        }
      } finally {
        clearInterval(sampler);
      }
      if (phase === 'zygote') Object.assign(claimed, { zygote: organism.zygotes?.claimed ?? 0, started: organism.zygotes?.started ?? 0 });
    } finally {
      await organism.stop('benchmark done');
    }
  }

  // The zygote phase is reported on its own: the other figures stay what they were.
  const zygoteSteps = steps.filter((s) => s.phase === 'zygote');
  const zygoteDivides = zygoteSteps.flatMap((s) => s.dispatch.filter((d) => d.how === 'divide').map((d) => d.ms));
  const nonZygote = steps.filter((s) => s.phase !== 'zygote');
  const all = (how: 'differentiate' | 'divide') => nonZygote.flatMap((s) => s.dispatch.filter((d) => d.how === how).map((d) => d.ms));
  const firsts = (how: 'differentiate' | 'divide') => nonZygote.flatMap((s) => s.dispatch.filter((d) => d.how === how && d.firstMs !== null).map((d) => d.firstMs!));
  const dist = (xs: number[]) => (xs.length > 0 ? distribution(xs) : null);
  const ours = nonZygote.map((s) => s.firstServingMs).filter((x): x is number => x !== null);
  const theirs = nonZygote.filter((s) => s.firstServingMs !== null).map((s) => s.hpa.firstServingMs);
  const errors = nonZygote.map((s) => Math.abs(s.made - s.needed));
  return {
    options: { steps: o.steps, holdMs: o.holdMs, kills: o.kills, stateDir: o.stateDir },
    genome: { target: probe.target, high: probe.high, low: probe.low, halfLifeMs: probe.halfLifeMs, idleMs: probe.idleMs, pulseIntervalMs, max: probe.max },
    steps, kills, samples,
    summary: {
      stemDispatch: dist(all('differentiate')),
      coldSpawn: dist(all('divide')),
      stemFirstRequest: dist(firsts('differentiate')),
      coldFirstRequest: dist(firsts('divide')),
      zygoteSpawn: dist(zygoteDivides),
      zygotes: { perHost: zygotes, ...claimed },
      coldFirstOfStep: dist(nonZygote.flatMap((s) => {
        const ms = s.dispatch.filter((d) => d.how === 'divide').map((d) => d.ms);
        return ms.length > 0 ? [Math.min(...ms)] : [];
      })),
      onsetToServing: dist(ours),
      hpaOnsetToServing: dist(theirs),
      reactionRatio: ours.length > 0 && theirs.length > 0 ? median(theirs) / Math.max(1, median(ours)) : null,
      replacement: dist(kills.map((k) => k.replacementMs).filter((x): x is number => x !== null)),
      divisionsWithinOne: errors.filter((e) => e <= 1).length,
      divisionError: { mean: errors.length ? errors.reduce((a, b) => a + b, 0) / errors.length : 0, max: Math.max(0, ...errors) },
    },
  };
}
