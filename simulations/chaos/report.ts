/**
 * Chaos reports: `<state-dir>/reports/chaos-<scenario>-<timestamp>.json` and a
 * self-contained `.html` with each invariant pass/fail and plots of population, stress,
 * delivery throughput and latency over time, with every fault marked; `chaos all` adds a
 * summary report across scenarios.
 */
import type { MachineInfo } from '../report.ts';
import { pageHead, writeReport } from '../report-page.ts';
import { escapeXml, lineChart } from '../svg.ts';
import type { ChaosResult } from './runner.ts';

const COLOURS = ['#2563eb', '#16a34a', '#f59e0b', '#7c3aed', '#db2777', '#0891b2', '#65a30d'];
const STYLE = `body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px;color:#222}table{border-collapse:collapse;margin:12px 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}td.pass{color:#fff;background:#2ca02c;font-weight:600}td.fail{color:#fff;background:#d62728;font-weight:600}.meta{color:#555;font-size:13px}pre{font-size:12px;background:#f7f7f7;padding:8px;max-height:360px;overflow:auto}`;

function charts(r: ChaosResult): string[] {
  const cats = r.samples.map((s) => `${Math.round(s.t / 1000)}s`);
  const marks = r.marks.map((m) => ({ at: r.samples.findIndex((s) => s.t >= m.t), label: m.label })).map((m) => ({ ...m, at: m.at < 0 ? r.samples.length - 1 : m.at }));
  const tissues = [...new Set(r.samples.flatMap((s) => Object.keys(s.population)))].sort();
  const stressed = [...new Set(r.samples.flatMap((s) => Object.keys(s.stress)))].sort();
  return [
    lineChart({ title: 'Population (alive cells per tissue)', yLabel: 'cells', categories: cats, marks, series: tissues.map((t, i) => ({ name: t, color: COLOURS[i % COLOURS.length]!, values: r.samples.map((s) => s.population[t] ?? 0) })) }),
    lineChart({ title: 'Stress per tissue', yLabel: 'stress (0–1)', categories: cats, marks, series: stressed.map((t, i) => ({ name: t, color: COLOURS[i % COLOURS.length]!, values: r.samples.map((s) => s.stress[t] ?? null) })) }),
    lineChart({ title: 'Messages opened by their recipients (per second)', yLabel: 'messages/s', categories: cats, marks, series: [{ name: 'delivered/s', color: '#2563eb', values: r.samples.map((s) => s.delivered * 2) }] }),
    lineChart({ title: 'Delivery latency, sent → opened', yLabel: 'ms', categories: cats, marks, series: [{ name: 'p50', color: '#16a34a', values: r.samples.map((s) => s.p50) }, { name: 'p99', color: '#f59e0b', values: r.samples.map((s) => s.p99) }] }),
  ];
}

function invariantTable(r: ChaosResult): string {
  return `<table><tr><th>invariant</th><th>value</th><th></th></tr>${r.invariants.map((i) => `<tr><td>${escapeXml(i.name)}</td><td>${escapeXml(i.value)}</td><td class="${i.pass ? 'pass' : 'fail'}">${i.pass ? 'PASS' : 'FAIL'}</td></tr>`).join('')}</table>`;
}

export function writeChaosReport(r: ChaosResult, dir: string, machine: MachineInfo): { json: string; html: string } {
  const c = r.counts;
  const page = `${pageHead(`chaos ${r.scenario} ${r.startedAt}`, STYLE)}<h1>Chaos: ${escapeXml(r.scenario)} — ${r.pass ? 'every invariant holds' : 'INVARIANTS BROKEN'}</h1>
<p>${escapeXml(r.description)}</p>
<p class="meta">${escapeXml(r.startedAt)} · seed ${r.seed} · ${r.durationS} s · ${r.rate} messages/s among ${r.clients} clients · organism ${escapeXml(r.organism)} · ${machine.cpus} × ${escapeXml(machine.cpuModel)} · Node ${escapeXml(machine.node)} · ${escapeXml(machine.natsServer)}</p>
${invariantTable(r)}
<p>${c.sent} sent, ${c.acked} acknowledged, ${c.delivered} opened by their recipients, ${c.lost} lost, ${c.duplicates} stored twice, ${c.redelivered} redelivered after a failover, ${c.reconnects} client reconnections${Object.keys(c.errors).length ? `; client-side errors: ${escapeXml(Object.entries(c.errors).map(([k, v]) => `${k} ${v}`).join(', '))}` : ''}.</p>
${charts(r).map((svg) => `<figure>${svg}</figure>`).join('\n')}
<h2>What happened</h2><pre>${escapeXml(r.log.join('\n'))}</pre>
</body></html>
`;
  return writeReport(dir, `chaos-${r.scenario}`, new Date(r.startedAt), { report: 'chaos', v: 1, machine, result: r }, page);
}

/** One report over a whole `chaos all` run: every scenario's invariants side by side. */
export function writeChaosSummary(results: ChaosResult[], paths: string[], dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { report: 'chaos-all', v: 1, machine, scenarios: results.map((r, i) => ({ scenario: r.scenario, seed: r.seed, pass: r.pass, recoveryMs: r.recoveryMs, counts: r.counts, invariants: r.invariants, report: paths[i] })) };
  const rows = results.map((r, i) => `<tr><td><a href="${escapeXml(paths[i]!.split('/').pop()!)}">${escapeXml(r.scenario)}</a></td><td>${r.seed}</td><td>${r.counts.acked} / ${r.counts.lost} / ${r.counts.duplicates}</td><td>${r.recoveryMs === null ? '—' : r.recoveryMs < 0 ? 'not recovered' : `${r.recoveryMs} ms`}</td><td>${r.invariants.filter((x) => !x.pass).map((x) => escapeXml(`${x.name}: ${x.value}`)).join('<br>') || 'none'}</td><td class="${r.pass ? 'pass' : 'fail'}">${r.pass ? 'PASS' : 'FAIL'}</td></tr>`).join('');
  const page = `${pageHead(`chaos all ${startedAt.toISOString()}`, STYLE)}<h1>Chaos: every scenario</h1><p class="meta">${escapeXml(startedAt.toISOString())} · ${machine.cpus} × ${escapeXml(machine.cpuModel)} · Node ${escapeXml(machine.node)}</p>
<table><tr><th>scenario</th><th>seed</th><th>acked / lost / stored twice</th><th>recovery</th><th>broken invariants</th><th></th></tr>${rows}</table>
</body></html>
`;
  return writeReport(dir, 'chaos-all', startedAt, doc, page);
}
