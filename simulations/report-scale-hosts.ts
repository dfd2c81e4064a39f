/**
 * Reports of the scale run across hosts: `<reports>/scale-hosts-<timestamp>.json` and a
 * self-contained `.html` with the census over the run (faults marked) and the summary table
 * against the issue's targets: kill -9 → dead ≤ 3 s p95, every census within ±1 of the
 * truth, an offender quarantined ≤ 2 s and dead ≤ 3 s after its onset (a cancer's: its first
 * child past its budget).
 */
import type { ScaleHostsResult } from './scale-hosts.ts';
import type { MachineInfo, Row } from './report.ts';
import { listSection, pageHead, summaryTable, writeReport } from './report-page.ts';
import { escapeXml, lineChart } from './svg.ts';

const ms = (v: number | null) => (v === null ? 'never' : `${v} ms`);
const pass = (ok: boolean): Row['status'] => (ok ? 'PASS' : 'FAIL');

export function scaleHostsRows(r: ScaleHostsResult): Row[] {
  const rows: Row[] = [];
  rows.push({ metric: 'hosts', value: `${r.mode}${r.fallbackReason ? ` (${r.fallbackReason})` : ''}: ${Object.entries(r.grew.perHost).map(([h, n]) => `${h} ${n}`).join(', ')} real cells, grown by homeostasis in ${r.grew.seconds} s`, target: '', status: '' });
  rows.push({ metric: 'cells in the census', value: `${r.census.total} (${r.census.real} real processes, ${r.census.synthetic} synthetic on ${r.census.simHosts} made-up hosts)`, target: `≥ ${r.options.cells}, ≥ 100 real`, status: pass(r.census.total >= r.options.cells && r.census.real >= Math.min(100, r.options.real)) });
  rows.push({ metric: 'idle CPU', value: `real cells ${(r.idle.cells / 10).toFixed(1)} % of a core (${r.idle.perRealCell} ms/s each), brokers ${(r.idle.brokers / 10).toFixed(1)} %, grows ${(r.idle.grows / 10).toFixed(1)} %, this process (synthetic cells, the run's census) ${(r.idle.synthetic / 10).toFixed(1)} %`, target: '', status: '' });
  if (r.perCellRates) rows.push({ metric: 'a real cell, per second (idle)', value: `${r.perCellRates.hormones} hormones, ${r.perCellRates.digests} digest parts, ${r.perCellRates.rows} rows, ${r.perCellRates.censusChanges} census changes, ${r.perCellRates.plans} plans, ${r.perCellRates.views} views derived, ${r.perCellRates.gapsAsked ?? '-'} whole digests asked`, target: '', status: '' });
  rows.push({ metric: 'the run\'s census over the idle window', value: Object.entries(r.idleChurn).map(([k, n]) => `${n} ${k}`).join(', ') || 'no change', target: '', status: '' });
  rows.push({ metric: 'every real cell\'s census against the truth', value: `${r.agreement.answered} of ${r.agreement.asked} answered; off by ${r.agreement.offs.join(', ') || '-'} (truth ${r.agreement.truth})`, target: '±1', status: pass(r.agreement.answered === r.agreement.asked && r.agreement.maxOff <= 1) });
  const d = r.killDist;
  rows.push({ metric: `kill -9 → dead, the run's census (${r.kills.length} kills)`, value: d.observer ? `p50 ${d.observer.p50} ms, p95 ${d.observer.p95} ms, max ${d.observer.max} ms` : 'none seen', target: '≤ 3000 ms p95', status: pass(d.observer !== null && d.observer.n === r.kills.length && d.observer.p95 <= 3_000) });
  rows.push({ metric: 'kill -9 → dead, the synthetic cells\' census', value: d.cellView ? `p50 ${d.cellView.p50} ms, p95 ${d.cellView.p95} ms, max ${d.cellView.max} ms` : 'none seen', target: '≤ 3000 ms p95', status: pass(d.cellView !== null && d.cellView.n === r.kills.length && d.cellView.p95 <= 3_000) });
  for (const x of r.offences) {
    if (x.fault === 'cancer') {
      // A cancer is a cell like any other until its first child past its budget: the targets count from there.
      const since = (v: number | null) => (v === null || x.offenceMs === null ? null : v - x.offenceMs);
      rows.push({ metric: 'cancer: onset → its first child past its budget', value: `${ms(x.offenceMs)}; accused ${ms(since(x.accusedMs))} after`, target: '', status: '' });
      rows.push({ metric: 'cancer: past its budget → quarantined', value: `${ms(since(x.quarantinedMs))} (${x.verdict})`, target: '≤ 2000 ms', status: pass(since(x.quarantinedMs) !== null && since(x.quarantinedMs)! <= 2_000) });
      rows.push({ metric: `cancer: past its budget → dead (all ${x.lineage} of its lineage)`, value: ms(since(x.deadMs)), target: '≤ 3000 ms', status: pass(since(x.deadMs) !== null && since(x.deadMs)! <= 3_000) });
    } else {
      rows.push({ metric: `${x.fault}: onset → quarantined`, value: `${ms(x.quarantinedMs)} (${x.verdict}; accused after ${ms(x.accusedMs)})`, target: '≤ 2000 ms', status: pass(x.quarantinedMs !== null && x.quarantinedMs <= 2_000) });
      rows.push({ metric: `${x.fault}: onset → dead`, value: ms(x.deadMs), target: '≤ 3000 ms', status: pass(x.deadMs !== null && x.deadMs <= 3_000) });
    }
    rows.push({ metric: `${x.fault}: its panel and guilty votes`, value: `panel ${x.jury.size}: ${x.jury.synthetic} synthetic, ${x.jury.real} real; guilty votes ${x.guiltyVotes.synthetic} synthetic, ${x.guiltyVotes.real} real`, target: 'synthetic cells vote', status: pass(x.guiltyVotes.synthetic > 0) });
  }
  if (r.synthetic) rows.push({ metric: 'synthetic cells\' immune systems', value: `${r.synthetic.cells} cells: ${r.synthetic.accusations} accusations, ${r.synthetic.votes.guilty} guilty and ${r.synthetic.votes.innocent} innocent votes, ${r.synthetic.verdicts.guilty} guilty tallies, ${r.synthetic.forgeries} forgeries seen, ${r.synthetic.withheld} withheld`, target: '', status: '' });
  rows.push({ metric: 'false verdicts (an honest cell condemned)', value: r.falseVerdicts.join(', ') || 'none', target: 'none', status: pass(r.falseVerdicts.length === 0) });
  const byKind = new Map<string, number>();
  for (const a of r.accusations) byKind.set(`${a.bySynthetic ? 'synthetic' : 'real'} → ${a.kind}`, (byKind.get(`${a.bySynthetic ? 'synthetic' : 'real'} → ${a.kind}`) ?? 0) + 1);
  rows.push({ metric: 'accusations heard', value: [...byKind].map(([k, n]) => `${n} ${k}`).join(', ') || 'none', target: '', status: '' });
  rows.push({ metric: 'processes left behind', value: r.shutdown.leftovers.length === 0 ? 'none' : r.shutdown.leftovers.map((l) => l.what).join(', '), target: 'none', status: pass(r.shutdown.leftovers.length === 0) });
  return rows;
}

export function writeScaleHostsReport(r: ScaleHostsResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const categories = r.samples.map((s) => `${Math.round(s.t / 1000)} s`);
  const markAt = (t: number) => {
    let i = r.samples.findIndex((s) => s.t >= t);
    if (i < 0) i = r.samples.length - 1;
    return Math.max(0, i);
  };
  const chart = lineChart({
    title: 'cells living in the run\'s census (from the host digests, as a cell\'s)',
    yLabel: 'cells', categories, width: 900, height: 320,
    series: [
      { name: 'all cells', color: '#2563eb', values: r.samples.map((s) => s.living), width: 2.5 },
      { name: 'real cell processes', color: '#16a34a', values: r.samples.map((s) => s.real) },
    ],
    marks: r.marks.filter((m) => !m.label.startsWith('grow on')).map((m) => ({ at: markAt(m.t), label: m.label.slice(0, 28) })),
  });
  const doc = { startedAt: startedAt.toISOString(), machine, result: r };
  const page = `${pageHead(`cellular scale across hosts ${startedAt.toISOString()}`)}<h1>A thousand cells across three hosts</h1>
<p class="meta">${escapeXml(startedAt.toISOString())} · ${machine.cpus} × ${escapeXml(machine.cpuModel)} · Node ${escapeXml(machine.node)} · ${escapeXml(machine.natsServer)} · pulse ${r.options.pulseIntervalMs} ms · immune.jury ${r.options.jury}</p>
${summaryTable(scaleHostsRows(r))}
${chart}
${listSection('kills', r.kills.map((k) => `${k.cell}@${k.host}: the run's census ${ms(k.observerMs)}, the synthetic cells' ${ms(k.cellViewMs)}`))}
${listSection('accusations', r.accusations.map((a) => `${(a.at / 1000).toFixed(1)} s ${a.by}${a.bySynthetic ? ' (synthetic)' : ''} accused ${a.accused} of ${a.kind}: ${a.detail}`))}
${listSection('run', r.marks.map((m) => `${(m.t / 1000).toFixed(1)} s ${m.label}`))}
${listSection('notes', r.notes)}
</body></html>
`;
  return writeReport(dir, 'scale-hosts', startedAt, doc, page);
}
