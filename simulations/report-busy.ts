/**
 * Reports of the busy benchmark: `<reports>/busy-<timestamp>.json` and a self-contained
 * `.html` with two plots (what the census said of the cell over time, with its pulses'
 * gaps; the longest silence of the cell and its peer against the death threshold), and a
 * text summary.
 */
import type { BusyBenchResult } from './bench-busy.ts';
import { textTable, type MachineInfo, type Row } from './report.ts';
import { pageHead, summaryTable, writeReport } from './report-page.ts';
import { barChart, escapeXml, lineChart } from './svg.ts';

export function busyRows(r: BusyBenchResult): Row[] {
  const alive = r.cell.census.filter((c) => c.at >= 0).every((c) => c.state === 'alive');
  const ok = r.cell.judged.length === 0 && alive;
  const peerDead = r.peer.longestGapMs > r.deadAfterMs;
  return [
    { metric: 'burn (main thread busy)', value: `${r.options.burnMs} ms; pulse every ${r.options.pulseIntervalMs} ms; dead after ${r.deadAfterMs} ms of silence`, target: '', status: '' },
    { metric: 'cell pulses during the burn', value: `${r.cell.pulsesDuringBurn} (it pulses from its main thread)`, target: '', status: '' },
    { metric: 'cell longest silence / interval', value: `${Math.round(r.cell.longestGapMs)} ms = ${r.cellGapRatio.toFixed(2)}×`, target: '', status: '' },
    { metric: 'census: longest lag shown for the cell', value: `${Math.round(r.cell.longestCensusLagMs)} ms (its host saw the process run: busy)`, target: '', status: '' },
    { metric: 'census verdicts on the cell', value: r.cell.judged.join(', ') || 'none (never suspect, never dead)', target: 'none', status: ok ? 'PASS' : 'FAIL' },
    { metric: 'peer (main-thread pulses, judged by silence)', value: `${Math.round(r.peer.longestGapMs)} ms = ${r.peerGapRatio.toFixed(2)}×; ${r.peer.pulsesDuringBurn} pulses during the burn; ${peerDead ? 'would be dead' : 'would live'}`, target: '', status: '' },
  ];
}

export function writeBusyReport(r: BusyBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { startedAt: startedAt.toISOString(), machine, result: r };
  const samples = r.cell.census;
  const categories = samples.map((c) => `${(c.at / 1000).toFixed(1)}s`);
  // Each pulse's gap since the previous one, placed at the first census sample after it.
  const gaps: (number | null)[] = samples.map(() => null);
  const arrivals = r.cell.arrivals;
  for (let i = 1; i < arrivals.length; i++) {
    const k = samples.findIndex((c) => c.at >= arrivals[i]!.at);
    if (k >= 0) gaps[k] = arrivals[i]!.at - arrivals[i - 1]!.at;
  }
  const lag = lineChart({
    title: 'the census on the busy cell: the lag it showed, and the gap before each pulse (burn starts at 0 s)',
    yLabel: 'ms', categories, width: 900, height: 320,
    series: [
      { name: 'census lag (grow: busy)', color: '#dc2626', values: samples.map((c) => c.lag) },
      { name: 'gap since previous pulse', color: '#2563eb', values: gaps },
    ],
    refLines: [
      { value: r.options.pulseIntervalMs, label: 'pulse interval', color: '#16a34a', dash: true },
      { value: r.deadAfterMs, label: 'declared dead after', color: '#7c3aed', dash: true },
    ],
  });
  const silence = barChart({
    title: 'longest silence while the main thread is busy', yLabel: 'ms', categories: ['cell (alive: its host saw it run)', 'peer (judged by silence: dead)'], width: 600, height: 300,
    series: [{ segments: [{ name: 'longest silence', color: '#2563eb', values: [r.cell.longestGapMs, r.peer.longestGapMs] }] }],
    refLines: [{ value: r.deadAfterMs, label: 'declared dead after', color: '#7c3aed', dash: true }],
  });
  const page = `${pageHead(`cellular busy benchmark ${startedAt.toISOString()}`, 'body{font:14px system-ui,sans-serif;margin:24px;max-width:960px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}')}<h1>A busy cell is not a dead cell</h1>
<p>${escapeXml(startedAt.toISOString())} · ${machine.cpus} × ${escapeXml(machine.cpuModel)} · Node ${escapeXml(machine.node)} · ${escapeXml(machine.natsServer)}</p>
${summaryTable(busyRows(r))}
${lag}
${silence}
</body></html>
`;
  return writeReport(dir, 'busy', startedAt, doc, page);
}

export { textTable };
