/**
 * The immune system's benchmark: `npm run bench -- immune`.
 *  1. Per misbehaviour (flood, forger, liar, tamper, cancer), `runs` times: a cell with that
 *     injected fault is made; from its first hormone (onset) to the moment this process's
 *     witness counts the guilty verdict (quarantined) and to its process being gone (dead).
 *  2. An honest organism under load for `honestSeconds` (its cells kept busy by requests
 *     and two busy loops on the cores): accusations and guilty verdicts (none is the target).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CellularError, throwIfAborted } from '../organism/wire/errors.ts';
import { loadGenome } from '../organism/kernel/genome/index.ts';
import { Organism } from '../organism/grow/organism.ts';
import { isAlive, localCells } from '../organism/kernel/processes.ts';
import type { AccuseBody, VerdictBody } from '../organism/kernel/vocabulary.ts';
import { pack } from '../organism/kernel/reply.ts';
import type { FaultKind } from '../cells/immune/faults.ts';
import { waitFor } from './wait-for.ts';
import { distribution, type Distribution } from '../organism/chaos/stats.ts';
import type { BenchRunOptions } from './bench-options.ts';

export const IMMUNE_FAULTS: readonly FaultKind[] = ['flood', 'forger', 'liar', 'tamper', 'cancer'];

export interface ImmuneBenchOptions extends BenchRunOptions {
  runs: number;
  honestSeconds: number;
}

export interface ImmuneRun {
  fault: FaultKind;
  run: number;
  cell: string;
  kind: string;
  quarantinedMs: number;
  deadMs: number;
  jury: number;
  votes: number;
  /** Cells condemned with it (cancer: its lineage). */
  condemned: number;
}

export interface ImmuneBenchResult {
  options: { runs: number; honestSeconds: number };
  runs: ImmuneRun[];
  byFault: Record<string, { quarantined: Distribution | null; dead: Distribution | null; failed: number }>;
  honest: { seconds: number; requests: number; accusations: number; guiltyVerdicts: number; details: string[] };
  notes: string[];
}

const SETS = ['tissues.stem.min=0', 'tissues.echo.min=4', 'tissues.echo.max=16', 'tissues.receiver=null', 'tissues.worker=null', 'tissues.dashboard=null', 'limits.lineageBudget=3', 'limits.cellsPerHost=48'];

export async function runImmuneBench(o: ImmuneBenchOptions): Promise<ImmuneBenchResult> {
  if (o.runs < 1) throw new CellularError('CLI_ERR_USAGE', '--runs must be at least 1');
  const genome = loadGenome({ sets: SETS });
  const organism = new Organism({ stateDir: o.stateDir, genome, autoInstall: false, say: o.say ?? (() => {}), ...(o.signal ? { signal: o.signal } : {}) });
  const onExit = () => organism.emergencyStop();
  process.once('exit', onExit);
  const runs: ImmuneRun[] = [];
  const notes: string[] = [];
  const failed: Record<string, number> = {};
  const hogs: ChildProcess[] = [];
  try {
    await organism.start();
    await organism.waitForPopulation();
    const census = organism.observer.census;
    const firstSeen = new Map<string, number>();
    const verdicts: VerdictBody[] = [];
    const accusations: AccuseBody[] = [];
    organism.observer.bus.on((h) => {
      if (!firstSeen.has(h.from)) firstSeen.set(h.from, Date.now());
      if (h.kind === 'verdict') verdicts.push(h.body as VerdictBody);
      if (h.kind === 'accuse') accusations.push(h.body as AccuseBody);
    });
    const condemnedAt = new Map<string, number>();
    census.on((e) => e.type === 'state' && e.entry.state === 'dead' && e.entry.cause === 'toxin' && !condemnedAt.has(e.entry.id) && condemnedAt.set(e.entry.id, Date.now()));
    const alive = () => census.living().filter((c) => c.tissue === 'echo' && c.state === 'alive').length;
    const healthy = () => alive() >= genome.tissues.echo!.min;
    let toppedUp = 0;
    // Homeostasis regrows the tissue by division, which spends the lineage budget (3 here, so
    // a cancer is caught at its 4th child); after many runs every living cell may have spent
    // it. Then the bench, as the root, makes the missing cells itself, and says so.
    const topUp = async () => {
      await waitFor(healthy, 10_000, 'echo back to its min', o.signal).catch(() => undefined);
      for (let missing = genome.tissues.echo!.min - alive(); missing > 0; missing--) {
        await organism.spawn('echo');
        toppedUp++;
      }
      await waitFor(healthy, 20_000, 'echo back to its min', o.signal).catch((e: Error) => {
        throw new CellularError('CELL_ERR_SPAWN', `${e.message}; census: ${census.list().map((c) => `${c.id} ${c.state}${c.cause ? ` (${c.cause})` : ''}`).join(', ')}`);
      });
    };

    for (const fault of IMMUNE_FAULTS) {
      for (let run = 1; run <= o.runs; run++) {
        throwIfAborted(o.signal);
        await topUp();
        // The last run's lineage gone (no cell process the census does not list as living).
        await waitFor(() => localCells(organism.id).length <= census.living().filter((c) => c.state !== 'dead').length, 30_000, 'the last run\'s cells gone', o.signal);
        // Let the last run's trials settle: a fresh census for every run.
        await new Promise((r) => setTimeout(r, 1_500));
        let bad;
        try {
          bad = await organism.spawn('echo', undefined, { fault });
          const id = bad.id;
          const pid = bad.pid;
          await waitFor(() => condemnedAt.has(id), 20_000, `${fault} ${id} condemned`, o.signal);
          await waitFor(() => !isAlive(pid), 10_000, `${fault} ${id} dead`, o.signal);
        } catch (e) {
          if (o.signal?.aborted) throw e;
          failed[fault] = (failed[fault] ?? 0) + 1;
          notes.push(`${fault} run ${run}: ${(e as Error).message}`);
          o.progress(`${fault} ${run}/${o.runs}: NOT caught (${(e as Error).message})`);
          continue;
        }
        const gone = Date.now();
        const onset = firstSeen.get(bad.id) ?? gone;
        // The accuser's verdict may come a moment after the kill.
        await waitFor(() => verdicts.some((x) => x.accused === bad.id && x.guilty), 2_000, 'the verdict', o.signal).catch(() => undefined);
        const v = verdicts.find((x) => x.accused === bad.id && x.guilty);
        const r: ImmuneRun = {
          fault, run, cell: bad.id, kind: v?.kind ?? '?', quarantinedMs: condemnedAt.get(bad.id)! - onset, deadMs: gone - onset,
          jury: v?.jury ?? 0, votes: v?.votes ?? 0, condemned: v?.condemned.length ?? 1,
        };
        runs.push(r);
        o.progress(`${fault} ${run}/${o.runs}: ${r.kind}, quarantined ${r.quarantinedMs} ms, dead ${r.deadMs} ms after onset (${r.votes} of ${r.jury}${r.condemned > 1 ? `, ${r.condemned} cells of its lineage` : ''})`);
      }
    }

    // 2. Honest, under load: cells busy with requests, and two busy loops on the cores.
    await topUp();
    if (toppedUp > 0) notes.push(`the bench made ${toppedUp} echo cells itself (as the root) when homeostasis could not regrow the tissue within 10 s: every living cell had spent its lineage budget of 3`);
    await new Promise((r) => setTimeout(r, 2_000));
    const beforeAccusations = accusations.length;
    const beforeVerdicts = verdicts.filter((v) => v.guilty).length;
    for (let i = 0; i < 2; i++) hogs.push(spawn(process.execPath, ['-e', `const end = Date.now() + ${o.honestSeconds * 1000 + 5000}; while (Date.now() < end) {}`], { stdio: 'ignore' }));
    const end = Date.now() + o.honestSeconds * 1000;
    const subject = organism.observer.ns.tissue('echo', 'burn');
    let requests = 0;
    let lastTell = 0;
    while (Date.now() < end) {
      throwIfAborted(o.signal);
      await Promise.allSettled(Array.from({ length: 8 }, () => organism.observer.nc.request(subject, pack({ ms: 25 }), { timeout: 10_000 })));
      requests += 8;
      if (Date.now() - lastTell >= 10_000) {
        lastTell = Date.now();
        o.progress(`honest under load: ${Math.round((end - Date.now()) / 1000)} s left, ${requests} requests, ${accusations.length - beforeAccusations} accusations`);
      }
    }
    const honestAccusations = accusations.slice(beforeAccusations);
    const honest = {
      seconds: o.honestSeconds, requests, accusations: honestAccusations.length, guiltyVerdicts: verdicts.filter((v) => v.guilty).length - beforeVerdicts,
      details: honestAccusations.map((a) => `${a.accused}: ${a.kind} — ${a.detail}`).slice(0, 20),
    };
    const byFault = Object.fromEntries(IMMUNE_FAULTS.map((f) => {
      const mine = runs.filter((r) => r.fault === f);
      return [f, { quarantined: mine.length ? distribution(mine.map((r) => r.quarantinedMs)) : null, dead: mine.length ? distribution(mine.map((r) => r.deadMs)) : null, failed: failed[f] ?? 0 }];
    }));
    return { options: { runs: o.runs, honestSeconds: o.honestSeconds }, runs, byFault, honest, notes };
  } finally {
    for (const h of hogs) h.kill('SIGKILL');
    process.removeListener('exit', onExit);
    await organism.stop('benchmark done');
  }
}
