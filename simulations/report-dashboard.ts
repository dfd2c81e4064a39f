/**
 * Reports of the dashboard benchmark: `<reports>/dashboard-<timestamp>.json` and a
 * self-contained `.html` with the dashboard cell's CPU against its peer and the page's
 * frame rate, baseline and with the synthetic swarm.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { DashboardBenchResult } from './bench-dashboard.ts';
import type { MachineInfo, Row } from './report.ts';
import { listSection, pageHead, summaryTable, writeReport } from './report-page.ts';
import { barChart, escapeXml } from './svg.ts';

export const DASHBOARD_TARGETS = {
  /** The page shows every cell of the census. */
  shownAll: true,
  /** The page's graph keeps at least this frame rate. */
  fps: 30,
  /** The dashboard cell's CPU, % of one core, with 200 cells. */
  cpuPercent: 50,
};

/** The screenshot inlined, so the report is one file. */
const pngData = (path: string) => (existsSync(path) ? `data:image/png;base64,${readFileSync(path).toString('base64')}` : '');

export function dashboardRows(r: DashboardBenchResult): Row[] {
  const rows: Row[] = [];
  for (const w of r.windows) {
    const loaded = w.cells > r.realCells;
    rows.push({ metric: `${w.label}: cells shown on the page`, value: `${w.shown} of ${w.cells}`, target: 'all', status: w.shown >= w.cells ? 'PASS' : 'FAIL' });
    rows.push({ metric: `${w.label}: dashboard cell CPU`, value: `${w.dashboard.cpuPercent} % of a core (${w.dashboard.usPerPulse} µs per pulse of the organism, ${w.pulsesPerSecond} pulses/s)`, target: loaded ? `≤ ${DASHBOARD_TARGETS.cpuPercent} %` : '', status: loaded ? (w.dashboard.cpuPercent <= DASHBOARD_TARGETS.cpuPercent ? 'PASS' : 'FAIL') : '' });
    rows.push({ metric: `${w.label}: peer (${w.peer.tissue}) CPU`, value: `${w.peer.cpuPercent} % (${w.peer.usPerPulse} µs per pulse)`, target: '', status: '' });
    rows.push({ metric: `${w.label}: dashboard / peer CPU`, value: `${w.ratio}×`, target: '', status: '' });
    rows.push({ metric: `${w.label}: page frame rate`, value: `${w.page.fps} fps (${w.page.ticksPerSecond} feed ticks/s, ${w.page.longTasks} long tasks, ${w.page.longTaskMs} ms)`, target: `≥ ${DASHBOARD_TARGETS.fps} fps`, status: w.page.fps >= DASHBOARD_TARGETS.fps ? 'PASS' : 'FAIL' });
    rows.push({ metric: `${w.label}: feed and memory`, value: `${w.dashboard.feedKBps} KiB/s to the page; dashboard RSS ${w.dashboard.rssMb} MiB${w.page.heapMb === null ? '' : `; page JS heap ${w.page.heapMb} MiB`}`, target: '', status: '' });
  }
  return rows;
}

export function writeDashboardReport(r: DashboardBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { benchmark: 'dashboard', v: 1, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, targets: DASHBOARD_TARGETS, result: r };
  const cats = r.windows.map((w) => `${w.cells} cells`);
  const charts = [
    barChart({
      title: 'CPU, % of one core: the dashboard cell and a plain cell hearing the same pulses', yLabel: '%', categories: cats, width: 760, height: 300,
      series: [
        { segments: [{ name: 'dashboard cell', color: '#7c3aed', values: r.windows.map((w) => w.dashboard.cpuPercent) }] },
        { segments: [{ name: 'peer (echo) cell', color: '#f59e0b', values: r.windows.map((w) => w.peer.cpuPercent) }] },
      ],
      refLines: [{ value: DASHBOARD_TARGETS.cpuPercent, label: `≤ ${DASHBOARD_TARGETS.cpuPercent} %`, color: '#d62728', dash: true }],
    }),
    barChart({
      title: "The page: graph frames per second and feed ticks per second", yLabel: 'per second', categories: cats, width: 760, height: 300,
      series: [
        { segments: [{ name: 'frames/s', color: '#2563eb', values: r.windows.map((w) => w.page.fps) }] },
        { segments: [{ name: 'feed ticks/s', color: '#10b981', values: r.windows.map((w) => w.page.ticksPerSecond) }] },
      ],
      refLines: [{ value: DASHBOARD_TARGETS.fps, label: `≥ ${DASHBOARD_TARGETS.fps} fps`, color: '#d62728', dash: true }],
    }),
  ];
  const m = machine;
  const page = `${pageHead(`cellular dashboard benchmark ${startedAt.toISOString()}`)}<h1>Dashboard: ${r.options.cells} extra cells pulsing every ${r.options.pulseIntervalMs} ms</h1>
<p class="meta">${escapeXml(startedAt.toISOString())} · ${m.cpus} × ${escapeXml(m.cpuModel)} · Node ${escapeXml(m.node)} · ${escapeXml(m.natsServer)}</p>
<p>An organism of ${r.realCells} real cells (a stem, an echo, the dashboard), its dashboard page open in Chromium (headless, software rendering), measured for ${r.options.seconds} s with the real cells only, then with ${r.options.cells} synthetic cells (root-certified, signed pulses) on four made-up hosts. CPU from /proc (user + system) over the window.</p>
${summaryTable(dashboardRows(r))}
${charts.map((svg) => `<figure>${svg}</figure>`).join('\n')}
<h2>The page</h2>${r.windows.map((w) => `<figure><img src="${pngData(w.screenshot)}" width="960" alt="the dashboard with ${w.cells} cells"><figcaption>${escapeXml(w.label)}</figcaption></figure>`).join('\n')}
${listSection('Notes', r.notes)}
</body></html>
`;
  return writeReport(dir, 'dashboard', startedAt, doc, page);
}
