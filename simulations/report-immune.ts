/**
 * Reports of the immune benchmark: `<reports>/immune-<timestamp>.json` and a self-contained
 * `.html` with onset → quarantined and onset → dead per misbehaviour, and the honest run.
 */
import type { ImmuneBenchResult } from './bench-immune.ts';
import type { MachineInfo, Row } from './report.ts';
import { listSection, pageHead, summaryTable, writeReport } from './report-page.ts';
import { barChart, escapeXml } from './svg.ts';

export const IMMUNE_TARGETS = {
  /** Onset → quarantined by every honest cell, p95, ms. */
  quarantinedP95Ms: 2_000,
  /** Onset → the process gone, p95, ms. */
  deadP95Ms: 3_000,
  /** Guilty verdicts against honest cells in the honest run. */
  falseVerdicts: 0,
};

const ms = (v: number) => `${Math.round(v)}`;

export function immuneRows(r: ImmuneBenchResult): Row[] {
  const rows: Row[] = [];
  for (const [fault, f] of Object.entries(r.byFault)) {
    if (!f.quarantined || !f.dead) {
      rows.push({ metric: `${fault}: caught`, value: `0 of ${r.options.runs}`, target: 'all', status: 'FAIL' });
      continue;
    }
    const caught = `${f.quarantined.n} of ${f.quarantined.n + f.failed} caught`;
    rows.push({ metric: `${fault}: onset → quarantined (${caught})`, value: `p50 ${ms(f.quarantined.p50)} / p95 ${ms(f.quarantined.p95)} / max ${ms(f.quarantined.max)} ms`, target: `p95 ≤ ${IMMUNE_TARGETS.quarantinedP95Ms} ms`, status: f.failed === 0 && f.quarantined.p95 <= IMMUNE_TARGETS.quarantinedP95Ms ? 'PASS' : 'FAIL' });
    rows.push({ metric: `${fault}: onset → dead`, value: `p50 ${ms(f.dead.p50)} / p95 ${ms(f.dead.p95)} / max ${ms(f.dead.max)} ms`, target: `p95 ≤ ${IMMUNE_TARGETS.deadP95Ms} ms`, status: f.failed === 0 && f.dead.p95 <= IMMUNE_TARGETS.deadP95Ms ? 'PASS' : 'FAIL' });
  }
  const h = r.honest;
  rows.push({ metric: `honest run under load (${h.seconds} s, ${h.requests} requests, 2 busy loops): accusations`, value: `${h.accusations}`, target: '', status: '' });
  rows.push({ metric: 'honest run under load: guilty verdicts', value: `${h.guiltyVerdicts}`, target: `${IMMUNE_TARGETS.falseVerdicts}`, status: h.guiltyVerdicts <= IMMUNE_TARGETS.falseVerdicts ? 'PASS' : 'FAIL' });
  return rows;
}

export function writeImmuneReport(r: ImmuneBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { benchmark: 'immune', v: 1, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, targets: IMMUNE_TARGETS, result: r };
  const faults = Object.keys(r.byFault);
  const pick = (k: 'quarantined' | 'dead', p: 'p50' | 'p95') => faults.map((f) => r.byFault[f]![k]?.[p] ?? null);
  const charts = [
    barChart({
      title: 'Onset → quarantined and → dead, per misbehaviour (p50 and p95)', yLabel: 'ms', categories: faults, width: 960, height: 340,
      series: [
        { segments: [{ name: 'quarantined p50', color: '#93c5fd', values: pick('quarantined', 'p50') as number[] }] },
        { segments: [{ name: 'quarantined p95', color: '#2563eb', values: pick('quarantined', 'p95') as number[] }] },
        { segments: [{ name: 'dead p50', color: '#fdba74', values: pick('dead', 'p50') as number[] }] },
        { segments: [{ name: 'dead p95', color: '#f97316', values: pick('dead', 'p95') as number[] }] },
      ],
      refLines: [
        { value: IMMUNE_TARGETS.quarantinedP95Ms, label: `quarantined p95 ≤ ${IMMUNE_TARGETS.quarantinedP95Ms} ms`, color: '#2563eb', dash: true },
        { value: IMMUNE_TARGETS.deadP95Ms, label: `dead p95 ≤ ${IMMUNE_TARGETS.deadP95Ms} ms`, color: '#d62728', dash: true },
      ],
    }),
    barChart({
      title: 'Every run: onset → dead', yLabel: 'ms', categories: r.runs.map((x) => `${x.fault} ${x.run}`), width: 960, height: 320,
      series: [{ segments: [{ name: 'onset → quarantined', color: '#2563eb', values: r.runs.map((x) => x.quarantinedMs) }, { name: '→ dead', color: '#f97316', values: r.runs.map((x) => Math.max(0, x.deadMs - x.quarantinedMs)) }] }],
    }),
  ];
  const m = machine;
  const page = `${pageHead(`cellular immune benchmark ${startedAt.toISOString()}`)}<h1>Immune system: misbehaving cells voted out and killed</h1>
<p class="meta">${escapeXml(startedAt.toISOString())} · ${m.cpus} × ${escapeXml(m.cpuModel)} · Node ${escapeXml(m.node)} · ${escapeXml(m.natsServer)}</p>
<p>Four honest echo cells (pulse every 500 ms, the default genome's immune thresholds, lineage budget 3). Each run makes one cell with an injected fault; onset is its first hormone heard by this process, "quarantined" when this process's witness counted the guilty verdict (every honest cell acts on its own count at about the same moment), "dead" when its process is gone. ${r.options.runs} runs per misbehaviour. Then ${r.honest.seconds} s of an honest organism kept busy by requests with two busy loops on the cores.</p>
${summaryTable(immuneRows(r))}
${charts.map((svg) => `<figure>${svg}</figure>`).join('\n')}
${listSection('Accusations in the honest run', r.honest.details)}
${listSection('Notes', r.notes)}
</body></html>
`;
  return writeReport(dir, 'immune', startedAt, doc, page);
}
