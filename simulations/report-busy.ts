/**
 * Reports of the busy benchmark: `<reports>/busy-<timestamp>.json` and a self-contained
 * `.html` with two plots (every pulse's arrival and the lag it reported; the longest
 * silence of the cell against its peer and the death threshold), and a text summary.
 */
import type { BusyBenchResult } from './bench-busy.ts';
import { textTable, type MachineInfo, type Row } from './report.ts';
import { pageHead, summaryTable, writeReport } from './report-page.ts';
import { barChart, escapeXml, lineChart } from './svg.ts';

export function busyRows(r: BusyBenchResult): Row[] {
  const ok = r.cell.longestGapMs < r.deadAfterMs && r.cell.judged.length === 0;
  return [
    { metric: 'burn (main thread busy)', value: `${r.options.burnMs} ms; pulse every ${r.options.pulseIntervalMs} ms; dead after ${r.deadAfterMs} ms of silence`, target: '', status: '' },
    { metric: 'cell pulses during the burn', value: `${r.cell.pulsesDuringBurn} (one per interval would be ${r.cell.expectedPulses})`, target: '', status: '' },
    { metric: 'cell gaps during the burn', value: `p50 ${Math.round(r.cell.gapsDuringBurn.p50)} / max ${Math.round(r.cell.gapsDuringBurn.max)} ms`, target: '', status: '' },
    { metric: 'cell longest silence / interval', value: `${Math.round(r.cell.longestGapMs)} ms = ${r.cellGapRatio.toFixed(2)}×`, target: `< dead (${r.deadAfterMs} ms)`, status: ok ? 'PASS' : 'FAIL' },
    { metric: 'census verdicts on the cell', value: r.cell.judged.join(', ') || 'none (never suspect, never dead)', target: 'none', status: r.cell.judged.length === 0 ? 'PASS' : 'FAIL' },
    { metric: 'peer (main-thread pulses) silence', value: `${Math.round(r.peer.longestGapMs)} ms = ${r.peerGapRatio.toFixed(2)}×; ${r.peer.pulsesDuringBurn} pulses during the burn`, target: '', status: '' },
    { metric: 'peer silence / cell silence', value: `${(r.peer.longestGapMs / Math.max(1, r.cell.longestGapMs)).toFixed(1)}×`, target: '', status: '' },
  ];
}

export function writeBusyReport(r: BusyBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { startedAt: startedAt.toISOString(), machine, result: r };
  const arrivals = r.cell.arrivals;
  const categories = arrivals.map((a) => `${(a.at / 1000).toFixed(1)}s`);
  const gapsOf = (times: number[]) => times.map((t, i) => (i === 0 ? null : t - times[i - 1]!));
  const lag = lineChart({
    title: 'cell pulses: gap since the previous pulse, and the event-loop lag each reported (burn starts at 0 s)',
    yLabel: 'ms', categories, width: 900, height: 320,
    series: [
      { name: 'gap since previous pulse', color: '#2563eb', values: gapsOf(arrivals.map((a) => a.at)) },
      { name: 'reported lag', color: '#dc2626', values: arrivals.map((a) => a.lag) },
    ],
    refLines: [
      { value: r.options.pulseIntervalMs, label: 'pulse interval', color: '#16a34a', dash: true },
      { value: r.deadAfterMs, label: 'declared dead after', color: '#7c3aed', dash: true },
    ],
  });
  const silence = barChart({
    title: 'longest silence while the main thread is busy', yLabel: 'ms', categories: ['cell (pacemaker thread)', 'peer (main-thread pulses)'], width: 600, height: 300,
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
