/**
 * The dashboard's benchmark: `npm run bench -- dashboard`. An organism with a dashboard
 * cell, its page open in Chromium, measured twice over the same window: with the real cells
 * only (baseline), then with `cells` synthetic cells pulsing every 500 ms as well (properly
 * signed, certified by the root key, on made-up hosts that publish real host digests:
 * simulations/synthetic-cells.ts). Figures: the dashboard cell's CPU (and µs per pulse of
 * the organism) against a plain cell reading the same digests (the peer), the page's frame
 * rate, feed ticks and long tasks, and whether the page showed every cell.
 */
import { hostName } from '../organism/kernel/host.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CellularError, throwIfAborted } from '../organism/wire/errors.ts';
import { loadGenome } from '../organism/kernel/genome/index.ts';
import { Organism } from '../organism/grow/organism.ts';
import { loadRootKey } from '../organism/grow/root-key.ts';
import { openLineage } from '../organism/kernel/stores.ts';
import { launchChromium } from './chromium.ts';
import { openReply } from '../organism/kernel/reply.ts';
import { readCpuMicros, readMemory } from './procfs.ts';
import { SyntheticSwarm } from './synthetic-cells.ts';
import { waitFor } from './wait-for.ts';
import type { BenchRunOptions } from './bench-options.ts';

export interface DashboardBenchOptions extends BenchRunOptions {
  cells: number;
  seconds: number;
}

export interface DashboardWindow {
  label: string;
  /** A picture of the page at the end of the window. */
  screenshot: string;
  /** Cells in the census (real + synthetic) and what the page showed at the end. */
  cells: number;
  shown: number;
  seconds: number;
  pulsesPerSecond: number;
  dashboard: { cpuPercent: number; usPerPulse: number; rssMb: number; feedKBps: number };
  peer: { cell: string; tissue: string; cpuPercent: number; usPerPulse: number };
  /** Dashboard CPU over the peer's. */
  ratio: number;
  page: { fps: number; ticksPerSecond: number; longTasks: number; longTaskMs: number; heapMb: number | null };
}

export interface DashboardBenchResult {
  options: { cells: number; seconds: number; pulseIntervalMs: number };
  realCells: number;
  windows: DashboardWindow[];
  notes: string[];
}

const SETS = ['tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.receiver=null', 'tissues.worker=null', 'dashboard.port=0', 'limits.cellsPerHost=32'];

type PageStats = { frames: number; ticks: number; longTasks: number; longTaskMs: number; heap: number | null };

export async function runDashboardBench(o: DashboardBenchOptions): Promise<DashboardBenchResult> {
  if (o.cells < 0 || o.seconds < 1) throw new CellularError('CLI_ERR_USAGE', '--cells must be ≥ 0 and --seconds ≥ 1');
  const genome = loadGenome({ sets: SETS });
  const organism = new Organism({ stateDir: o.stateDir, genome, autoInstall: false, say: o.say ?? (() => {}), ...(o.signal ? { signal: o.signal } : {}) });
  const onExit = () => organism.emergencyStop();
  process.once('exit', onExit);
  const notes: string[] = [];
  const browser = await launchChromium();
  let swarm: SyntheticSwarm | undefined;
  try {
    o.progress('growing the organism…');
    await organism.start();
    await organism.waitForPopulation(30_000);
    const census = organism.observer.census;
    await waitFor(() => census.living().some((c) => c.tissue === 'dashboard' && c.url !== null), 15_000, 'the dashboard URL', o.signal);
    const dash = () => census.living().find((c) => c.tissue === 'dashboard' && c.state === 'alive')!;
    const realCells = census.living().length;
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    // Long tasks (> 50 ms on the page's main thread), counted from before the page's own scripts.
    await page.addInitScript(`window.__long = { n: 0, ms: 0 }; new PerformanceObserver((l) => { for (const e of l.getEntries()) { window.__long.n++; window.__long.ms += e.duration; } }).observe({ type: 'longtask', buffered: true });`);
    await page.goto(`${dash().url}#token=${organism.dashboardToken}`);
    await page.waitForSelector('#status[data-state="live"]', { timeout: 15_000 });
    const pageStats = async (): Promise<PageStats> => (await page.evaluate(`({ frames: window.cellularDashboard.frames(), ticks: window.cellularDashboard.ticks(), longTasks: window.__long.n, longTaskMs: window.__long.ms, heap: performance.memory ? performance.memory.usedJSHeapSize : null })`)) as PageStats;
    const shown = async () => Number(await page.locator('#cell-count').getAttribute('data-count'));

    const measure = async (label: string, expected: number): Promise<DashboardWindow> => {
      o.progress(`${label}: waiting for the page to show ${expected} cells…`);
      const t0 = Date.now();
      await waitFor(async () => (await shown()) >= expected, 60_000, `the page to show ${expected} cells`, o.signal);
      o.progress(`${label}: the page shows them after ${Date.now() - t0} ms; settling 5 s`);
      await new Promise((r) => setTimeout(r, 5_000));
      const d = dash();
      const peer = census.living().find((c) => c.tissue === 'echo' && c.state === 'alive' && c.host === hostName())!;
      const cpu0 = { dash: readCpuMicros(d.pid), peer: readCpuMicros(peer.pid), at: performance.now() };
      const p0 = await pageStats();
      const sent0 = await sentBytes(organism, d.id);
      for (let s = 1; s <= o.seconds; s++) {
        throwIfAborted(o.signal);
        await new Promise((r) => setTimeout(r, 1_000));
        if (s % 5 === 0 || s === o.seconds) o.progress(`${label}: ${s}/${o.seconds} s`);
      }
      const cpu1 = { dash: readCpuMicros(d.pid), peer: readCpuMicros(peer.pid), at: performance.now() };
      const p1 = await pageStats();
      const sent1 = await sentBytes(organism, d.id);
      if (cpu0.dash === undefined || cpu1.dash === undefined || cpu0.peer === undefined || cpu1.peer === undefined) throw new CellularError('CELL_ERR_SPAWN', `${label}: the dashboard or the peer cell died during the window`);
      const secs = (cpu1.at - cpu0.at) / 1000;
      const cells = census.living().length;
      const pulsesPerSecond = (cells * 1000) / genome.limits.pulseIntervalMs;
      const dashCpu = (cpu1.dash - cpu0.dash) / 1e6 / secs;
      const peerCpu = (cpu1.peer - cpu0.peer) / 1e6 / secs;
      const mem = readMemory(d.pid);
      mkdirSync(join(o.stateDir, 'reports'), { recursive: true });
      const screenshot = join(o.stateDir, 'reports', `dashboard-${cells}-cells.png`);
      await page.screenshot({ path: screenshot }).catch(() => undefined);
      return {
        label, cells, shown: await shown(), screenshot, seconds: Math.round(secs * 10) / 10, pulsesPerSecond,
        dashboard: { cpuPercent: r1(dashCpu * 100), usPerPulse: r1((dashCpu * 1e6) / pulsesPerSecond), rssMb: mem ? r1(mem.rss / 1_048_576) : 0, feedKBps: r1((sent1 - sent0) / 1024 / secs) },
        peer: { cell: peer.id, tissue: peer.tissue, cpuPercent: r1(peerCpu * 100), usPerPulse: r1((peerCpu * 1e6) / pulsesPerSecond) },
        ratio: r1(dashCpu / Math.max(peerCpu, 1e-6)),
        page: { fps: r1((p1.frames - p0.frames) / secs), ticksPerSecond: r1((p1.ticks - p0.ticks) / secs), longTasks: p1.longTasks - p0.longTasks, longTaskMs: Math.round(p1.longTaskMs - p0.longTaskMs), heapMb: p1.heap === null ? null : r1(p1.heap / 1_048_576) },
      };
    };

    const windows: DashboardWindow[] = [];
    windows.push(await measure('baseline (real cells only)', realCells));
    if (o.cells > 0) {
      o.progress(`starting ${o.cells} synthetic cells…`);
      const rootKey = loadRootKey(o.stateDir);
      swarm = new SyntheticSwarm({ nc: organism.observer.nc, ns: organism.observer.ns, lineage: await openLineage(organism.observer.nc, organism.observer.ns), genome, rootKey: rootKey.privateKey, count: o.cells });
      await swarm.start();
      windows.push(await measure(`${o.cells} synthetic + ${realCells} real cells`, realCells + o.cells));
    }
    notes.push(`Synthetic cells live on made-up hosts (sim-0…sim-3) and never vote: with ${o.cells} of them in the census no jury could reach 2/3, so the immune system is idle during the loaded window.`);
    notes.push('The peer is the echo cell: it learns the population from the same host digests (census, immune panels, homeostasis), so the ratio is what the dashboard costs over any cell. Cells hear digests, not pulses: "µs per pulse" divides CPU by the pulses sent in the organism.');
    return { options: { cells: o.cells, seconds: o.seconds, pulseIntervalMs: genome.limits.pulseIntervalMs }, realCells, windows, notes };
  } finally {
    await swarm?.close().catch(() => undefined);
    await browser.close().catch(() => undefined);
    await organism.stop('benchmark done');
    process.off('exit', onExit);
  }
}

const r1 = (v: number) => Math.round(v * 10) / 10;

async function sentBytes(organism: Organism, cell: string): Promise<number> {
  const s = openReply<{ tissueStats?: { sentBytes?: number } | null }>((await organism.observer.nc.request(organism.observer.ns.cell(cell, 'stats'), new Uint8Array(0), { timeout: 2_000 })).data);
  return s.tissueStats?.sentBytes ?? 0;
}
