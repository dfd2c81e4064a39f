/**
 * Reports of the scale benchmark: `<reports>/scale-<timestamp>.json` and a self-contained
 * `.html` with two plots (the whole organism's idle CPU against N, beside the peer and the
 * all-to-all model the organism had before host digests; the CPU per cell against N), and a
 * text summary with the issue's targets.
 */
import type { ScaleBenchResult, ScaleStep } from './bench-scale.ts';
import { textTable, type MachineInfo, type Row } from './report.ts';
import { pageHead, summaryTable, writeReport } from './report-page.ts';
import { escapeXml, lineChart } from './svg.ts';

/**
 * The all-to-all model (before host digests): every cell handled every other cell's pulse,
 * two a second, at ≈ 0.8 ms each (docs/benchmarks.md), on top of what a bare process costs.
 */
export function allToAllModel(n: number, perProcessMs: number, pulsesPerSecond: number): number {
  return n * perProcessMs + n * (n - 1) * pulsesPerSecond * 0.8;
}

const pct = (msPerS: number) => `${(msPerS / 10).toFixed(1)} %`;

export function scaleRows(r: ScaleBenchResult): Row[] {
  const rows: Row[] = [];
  const at = (n: number) => r.steps.find((s) => s.cells >= n * 0.95 && s.cells <= n * 1.05);
  for (const s of r.steps) {
    const target = Math.abs(s.cells - 100) <= 5 ? '≤ 40 %' : Math.abs(s.cells - 300) <= 15 ? '≤ 60 %' : '';
    const ok = target === '' ? '' : s.held && s.cpu.total <= (target === '≤ 40 %' ? 400 : 600) ? 'PASS' : 'FAIL';
    rows.push({
      metric: `N=${s.cells}: idle CPU (cells + broker + grow)`,
      value: `${pct(s.cpu.total)} of a core (cells ${pct(s.cpu.cells)}, broker ${s.cpu.broker === null ? '-' : pct(s.cpu.broker)}, grow ${pct(s.cpu.grow)}); ${s.held ? 'census held' : `census LOST ${s.lost.length}`}`,
      target, status: s.held ? ok : 'FAIL',
    });
    rows.push({
      metric: `N=${s.cells}: per cell`,
      value: `${s.cpuPerCell.toFixed(2)} ms/s CPU (peer ${s.peer.cpuPerProcess.toFixed(2)}, ${(s.cpuPerCell / Math.max(1e-9, s.peer.cpuPerProcess)).toFixed(1)}×); PSS ${s.pssMb.median.toFixed(1)} MB (peer ${s.peer.pssMb.toFixed(1)})`,
      target: '', status: '',
    });
  }
  const small = r.steps[0];
  const large = at(300) ?? r.steps.at(-1);
  if (small && large && large !== small) {
    const ratio = large.cpuPerCell / small.cpuPerCell;
    rows.push({ metric: `per-cell cost, N=${large.cells} / N=${small.cells}`, value: `${ratio.toFixed(2)}×`, target: at(300) && Math.abs(small.cells - 10) <= 1 ? '≤ 1.5×' : '', status: at(300) && Math.abs(small.cells - 10) <= 1 ? (ratio <= 1.5 ? 'PASS' : 'FAIL') : '' });
  }
  if (r.unreached) rows.push({ metric: `N=${r.unreached.cells}: not reached`, value: `${r.unreached.reached} cells alive, then: ${r.unreached.reason.slice(0, 160)}`, target: r.unreached.cells >= 300 ? '300 held' : '', status: 'FAIL' });
  if (r.skipped.length > 0) rows.push({ metric: 'sizes skipped', value: `${r.skipped.join(', ')} (a smaller size already saturated the machine or lost cells)`, target: '', status: 'FAIL' });
  rows.push({ metric: 'processes left behind', value: r.shutdown.leftovers.length === 0 ? 'none' : r.shutdown.leftovers.map((l) => `${l.what} ${l.pid}`).join(', '), target: 'none', status: r.shutdown.leftovers.length === 0 ? 'PASS' : 'FAIL' });
  return rows;
}

export function writeScaleReport(r: ScaleBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const steps: ScaleStep[] = r.steps;
  const categories = steps.map((s) => `N=${s.cells}`);
  const pulses = 1_000 / r.pulseIntervalMs;
  const total = lineChart({
    title: 'idle CPU of the whole organism (cells, nats-server, grow) against N, % of one core',
    yLabel: '% of one core', categories, width: 900, height: 340,
    series: [
      { name: 'organism (measured)', color: '#2563eb', values: steps.map((s) => s.cpu.total / 10), width: 2.5 },
      { name: 'peer: N processes with a NATS connection and a 500 ms timer', color: '#16a34a', values: steps.map((s) => s.peer.cpu / 10) },
      { name: 'all-to-all model (every cell handles every pulse, 0.8 ms each)', color: '#dc2626', values: steps.map((s) => Math.min(allToAllModel(s.cells, s.peer.cpuPerProcess, pulses) / 10, 2_000)) },
    ],
    refLines: [{ value: 200, label: 'this machine (2 cores)', color: '#7c3aed', dash: true }],
  });
  const perCell = lineChart({
    title: 'CPU per cell against N, ms per second',
    yLabel: 'ms/s', categories, width: 900, height: 300,
    series: [
      { name: 'organism per cell', color: '#2563eb', values: steps.map((s) => s.cpuPerCell), width: 2.5 },
      { name: 'peer per process', color: '#16a34a', values: steps.map((s) => s.peer.cpuPerProcess) },
    ],
    ...(steps[0] ? { refLines: [{ value: steps[0].cpuPerCell * 1.5, label: '1.5 × the smallest size', color: '#f59e0b', dash: true }] } : {}),
  });
  const doc = { startedAt: startedAt.toISOString(), machine, result: r, model: 'cpu(N) = N × peer + N(N−1) × pulses/s × 0.8 ms' };
  const page = `${pageHead(`cellular scale benchmark ${startedAt.toISOString()}`)}<h1>Idle cost against the population</h1>
<p>${escapeXml(startedAt.toISOString())} · ${machine.cpus} × ${escapeXml(machine.cpuModel)} · Node ${escapeXml(machine.node)} · ${escapeXml(machine.natsServer)} · window ${r.options.seconds} s per size</p>
${summaryTable(scaleRows(r))}
${total}
${perCell}
</body></html>
`;
  return writeReport(dir, 'scale', startedAt, doc, page);
}

export { textTable };
