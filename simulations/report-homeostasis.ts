/**
 * Reports of the homeostasis benchmark: `<reports>/homeostasis-<timestamp>.json` and a
 * self-contained `.html` with capacity against offered load over time (ours and the HPA
 * model's), per-step reaction times, and a text summary with the issue's targets.
 */
import type { HomeostasisBenchResult } from './bench-homeostasis.ts';
import { textTable, type MachineInfo, type Row } from './report.ts';
import { pageHead, summaryTable, writeReport } from './report-page.ts';
import type { Distribution } from '../organism/chaos/stats.ts';
import { barChart, escapeXml, lineChart } from './svg.ts';

export const HOMEOSTASIS_TARGETS = { stemDispatchP95Ms: 50, coldSpawnP95Ms: 300, replacementP95Ms: 2_000 };

const d = (x: Distribution | null) => (x ? `p50 ${Math.round(x.p50)} / p95 ${Math.round(x.p95)} / max ${Math.round(x.max)} ms (n ${x.n})` : 'no samples');
const pass = (x: Distribution | null, limit: number): Row['status'] => (x ? (x.p95 <= limit ? 'PASS' : 'FAIL') : 'FAIL');

export function homeostasisRows(r: HomeostasisBenchResult): Row[] {
  const s = r.summary;
  return [
    { metric: 'stem dispatch: decision → serving', value: d(s.stemDispatch), target: `p95 ≤ ${HOMEOSTASIS_TARGETS.stemDispatchP95Ms} ms`, status: pass(s.stemDispatch, HOMEOSTASIS_TARGETS.stemDispatchP95Ms) },
    { metric: '  … → its first request', value: d(s.stemFirstRequest), target: '', status: '' },
    { metric: 'cold spawn: decision → serving', value: d(s.coldSpawn), target: `p95 ≤ ${HOMEOSTASIS_TARGETS.coldSpawnP95Ms} ms`, status: pass(s.coldSpawn, HOMEOSTASIS_TARGETS.coldSpawnP95Ms) },
    { metric: '  … → its first request', value: d(s.coldFirstRequest), target: '', status: '' },
    { metric: '  first divided cell of each step', value: d(s.coldFirstOfStep), target: '', status: '' },
    ...(s.zygotes.perHost > 0
      ? [{
          metric: `cold spawn with ${s.zygotes.perHost} zygotes: decision → serving`, value: `${d(s.zygoteSpawn)}; ${s.zygotes.zygote} births from a zygote, ${s.zygotes.started} zygotes started`,
          target: `p95 ≤ ${HOMEOSTASIS_TARGETS.coldSpawnP95Ms} ms`, status: pass(s.zygoteSpawn, HOMEOSTASIS_TARGETS.coldSpawnP95Ms),
        } satisfies Row]
      : []),
    { metric: 'load onset → new capacity serving', value: d(s.onsetToServing), target: '', status: '' },
    { metric: 'HPA model (15 s poll): onset → serving', value: d(s.hpaOnsetToServing), target: '', status: '' },
    { metric: 'HPA model ÷ ours (p50 reaction)', value: s.reactionRatio === null ? '-' : `${s.reactionRatio.toFixed(1)}×`, target: '', status: '' },
    { metric: 'kill -9 → replacement serving', value: d(s.replacement), target: `p95 ≤ ${HOMEOSTASIS_TARGETS.replacementP95Ms} ms`, status: pass(s.replacement, HOMEOSTASIS_TARGETS.replacementP95Ms) },
    {
      metric: 'divisions per step vs needed (stem and cold phases)', value: `${s.divisionsWithinOne}/${r.steps.filter((x) => x.phase !== 'zygote').length} steps within ±1; mean |error| ${s.divisionError.mean.toFixed(2)}, max ${s.divisionError.max}`,
      target: 'needed ± 1', status: s.divisionsWithinOne === r.steps.filter((x) => x.phase !== 'zygote').length && r.steps.length > 0 ? 'PASS' : 'FAIL',
    },
  ];
}

export function writeHomeostasisReport(r: HomeostasisBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { startedAt: startedAt.toISOString(), machine, result: r };
  const charts: string[] = [];
  for (const phase of ['stem', 'cold', 'zygote', 'kill']) {
    const samples = r.samples.filter((x) => x.phase === phase);
    if (samples.length === 0) continue;
    const t0 = samples[0]!.t;
    charts.push(
      lineChart({
        title: `${phase} phase: cells serving against the cells the offered load needs (ceil(demand / target)), and the HPA model on the same trace`,
        yLabel: 'cells', categories: samples.map((x) => `${((x.t - t0) / 1000).toFixed(1)}s`), width: 960, height: 320,
        series: [
          { name: 'needed by offered load', color: '#9ca3af', values: samples.map((x) => x.offeredCells), width: 3 },
          { name: 'cellular: echo cells alive', color: '#2563eb', values: samples.map((x) => x.capacity) },
          ...(phase === 'kill' ? [] : [{ name: 'HPA model (15 s poll)', color: '#dc2626', values: samples.map((x) => x.hpaCapacity) }]),
        ],
      }),
    );
  }
  const steps = r.steps;
  charts.push(
    barChart({
      title: 'per step: load onset → first new capacity serving (ms), ours and the HPA model',
      yLabel: 'ms', categories: steps.map((s) => `${s.phase} ${s.index + 1}`), width: 960, height: 320,
      series: [
        { segments: [{ name: 'cellular', color: '#2563eb', values: steps.map((s) => s.firstServingMs) }] },
        { segments: [{ name: 'HPA model', color: '#dc2626', values: steps.map((s) => s.hpa.firstServingMs) }] },
      ],
    }),
    barChart({
      title: 'per step: cells added against cells needed',
      yLabel: 'cells', categories: steps.map((s) => `${s.phase} ${s.index + 1}`), width: 960, height: 300,
      series: [
        { segments: [{ name: 'needed', color: '#9ca3af', values: steps.map((s) => s.needed) }] },
        { segments: [{ name: 'made', color: '#2563eb', values: steps.map((s) => s.made) }] },
      ],
    }),
  );
  const stepRows = steps
    .map((s) => `<tr><td>${s.phase} ${s.index + 1}</td><td>${s.peak}/s (${s.demand} cells)</td><td>${s.before}</td><td>${s.needed}</td><td>${s.made}</td><td>${s.decideMs ?? '—'}</td><td>${s.firstServingMs ?? '—'}</td><td>${s.allServingMs ?? '—'}</td><td>${s.hpa.firstServingMs} / ${s.hpa.allServingMs} (${s.hpa.polls} polls)</td></tr>`)
    .join('');
  const g = r.genome;
  const page = `${pageHead(`cellular homeostasis benchmark ${startedAt.toISOString()}`, 'body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}')}<h1>Homeostasis: capacity follows load</h1>
<p>${escapeXml(startedAt.toISOString())} · ${machine.cpus} × ${escapeXml(machine.cpuModel)} · Node ${escapeXml(machine.node)} · ${escapeXml(machine.natsServer)}</p>
<p>echo.wait requests (100 ms each, capacity 8 per cell); pulse ${g.pulseIntervalMs} ms, half-life ${g.halfLifeMs} ms, high ${g.high}, target ${g.target}, low ${g.low}, idle ${g.idleMs} ms, max ${g.max}.
The HPA model polls every 15 s, sizes with ceil(current × utilisation / target) (utilisation capped at 100% per pod) and serves after our measured cold-spawn time.</p>
${summaryTable(homeostasisRows(r))}
${charts.join('\n')}
<h2>Steps</h2>
<table><tr><th>step</th><th>peak</th><th>before</th><th>needed</th><th>made</th><th>onset → decision ms</th><th>onset → first serving ms</th><th>onset → all needed serving ms</th><th>HPA model first / all ms</th></tr>${stepRows}</table>
<h2>kill -9</h2>
<table><tr><th>victim</th><th>replacement serving after ms</th><th>how</th></tr>${r.kills.map((k) => `<tr><td>${escapeXml(k.victim)}</td><td>${k.replacementMs ?? '—'}</td><td>${escapeXml(k.how)}</td></tr>`).join('')}</table>
</body></html>
`;
  return writeReport(dir, 'homeostasis', startedAt, doc, page);
}

export { textTable };
