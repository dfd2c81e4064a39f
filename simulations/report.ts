/**
 * Benchmark reports: `<reports>/spawn-<timestamp>.json` (every raw sample, the summary,
 * the machine) and a self-contained `spawn-<timestamp>.html` (inline CSS and SVG, no
 * scripts, no network), plus the same summary as a text table for the terminal.
 */
import { spawnSync } from 'node:child_process';
import { arch, cpus, hostname, loadavg, platform, release, totalmem, type as osType } from 'node:os';
import { findNatsServer } from '../organism/grow/broker.ts';
import { mb, TARGETS, type SpawnBenchResult } from './spawn-result.ts';
import { round, type Distribution } from '../organism/chaos/stats.ts';
import { barChart, escapeXml, lineChart } from './svg.ts';
import { writeReport, type Row } from './report-page.ts';

export interface MachineInfo {
  host: string;
  cpus: number;
  cpuModel: string;
  cpuMHz: number;
  memoryBytes: number;
  os: string;
  platform: string;
  arch: string;
  node: string;
  v8: string;
  natsServer: string;
  loadavg: number[];
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  const bin = findNatsServer();
  const nats = bin ? spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim() : 'not found';
  return {
    host: hostname(), cpus: list.length, cpuModel: list[0]?.model ?? 'unknown', cpuMHz: list[0]?.speed ?? 0, memoryBytes: totalmem(),
    os: `${osType()} ${release()}`, platform: platform(), arch: arch(), node: process.version, v8: process.versions.v8,
    natsServer: nats, loadavg: loadavg().map((v) => round(v, 2) ?? 0),
  };
}

export { stamp, type Row } from './report-page.ts';

const d = (x: Distribution, unit = 'ms') => `p50 ${Math.round(x.p50)} / p95 ${Math.round(x.p95)} / max ${Math.round(x.max)} ${unit}`;
const times = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '-');
const num = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

export function summaryRows(r: SpawnBenchResult): Row[] {
  const s = r.summary;
  const t = s.traffic;
  const target = (name: string) => s.targets.find((x) => x.name === name);
  const pulseTarget = target('spawn → first pulse, p95');
  const rssTarget = target('idle RSS, largest cell');
  const n = s.firstPulse.n;
  return [
    { metric: `spawn → first pulse (${n} spawns)`, value: d(s.firstPulse), target: `p95 ≤ ${TARGETS.firstPulseP95Ms} ms`, status: pulseTarget?.pass ? 'PASS' : 'FAIL' },
    { metric: 'spawn → birth', value: d(s.birth), target: '', status: '' },
    { metric: 'spawn() call (cert + exec)', value: d(s.spawnCall), target: '', status: '' },
    { metric: 'fork → ready (bare peer)', value: d(s.fork), target: '', status: '' },
    { metric: 'fork+NATS connect → ready', value: d(s.forkNats), target: '', status: '' },
    { metric: 'spawn → exit (bare, no IPC)', value: d(s.spawnExit), target: '', status: '' },
    { metric: 'cell p50 / fork p50', value: times(s.ratios.firstPulseP50OverForkP50), target: '', status: '' },
    { metric: 'cell p95 / fork p95', value: times(s.ratios.firstPulseP95OverForkP95), target: '', status: '' },
    { metric: 'cell p50 / fork+NATS p50', value: times(s.ratios.firstPulseP50OverForkNatsP50), target: '', status: '' },
    { metric: `idle RSS (${r.raw.memory.length} cells)`, value: `median ${mb(s.memory.rssMedian)} / max ${mb(s.memory.rssMax)}`, target: `max ≤ ${TARGETS.idleRssBytes / 1e6} MB`, status: rssTarget?.pass ? 'PASS' : 'FAIL' },
    { metric: 'idle PSS / private, median', value: `${mb(s.memory.pssMedian)} / ${mb(s.memory.privateMedian)}`, target: '', status: '' },
    { metric: 'peer RSS: bare / NATS-connected', value: `${mb(s.memory.bareRss)} / ${mb(s.memory.natsRss)}`, target: '', status: '' },
    { metric: 'cell RSS / bare, / NATS peer', value: `${times(s.ratios.rssMedianOverBareRss)} / ${times(s.ratios.rssMedianOverNatsRss)}`, target: '', status: '' },
    { metric: 'pulses/s: wire / admitted / expected', value: `${num(t.pulsesPerSecond)} / ${num(t.admittedPerSecond)} / ${num(t.expectedPerSecond)}`, target: '', status: '' },
    { metric: 'pulse bytes/s, bytes per pulse', value: `${num(t.bytesPerSecond, 0)} B/s, ${num(t.bytesPerPulse, 0)} B`, target: '', status: '' },
    { metric: `cells CPU (${r.raw.traffic.cells} cells)`, value: `${num(t.cellCpuPercent, 2)} % of a core (${num(t.cellCpuPercent / r.raw.traffic.cells, 2)} % per cell, ${num(t.cellMainThreadShare, 0)} % on main threads); ${num(t.cellCpuMicrosPerPulse, 0)} µs/pulse sent, ${num(t.cellCpuMicrosPerDelivery, 0)} µs/delivery`, target: '', status: '' },
    { metric: 'nats-server CPU', value: `${num(t.brokerCpuPercent, 2)} % of a core; ${num(t.brokerCpuMicrosPerPulse, 0)} µs/pulse`, target: '', status: '' },
    { metric: 'observer (bench) CPU', value: `${num(t.observerCpuPercent, 2)} % of a core; ${num(t.observerCpuMicrosPerPulse, 0)} µs/pulse`, target: '', status: '' },
    { metric: 'nats-server idle RSS', value: mb(s.memory.brokerRss), target: '', status: '' },
    { metric: 'first pulse admitted before birth', value: `${r.raw.pulseBeforeBirth} of ${r.raw.samples.length} cells`, target: '', status: '' },
    { metric: 'stop', value: `${Math.round(r.shutdown.ms)} ms, ${r.shutdown.stragglers} stragglers killed, ${r.shutdown.leftovers.length} left behind`, target: 'nothing left', status: r.shutdown.leftovers.length === 0 ? 'PASS' : 'FAIL' },
  ];
}

export function textTable(rows: Row[]): string {
  const header: Row = { metric: 'metric', value: 'value', target: 'target', status: '' };
  const all = [header, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const line = (r: Row) => `${r.metric.padEnd(w('metric'))}  ${r.value.padEnd(w('value'))}  ${r.target.padEnd(w('target'))}  ${r.status}`.trimEnd();
  return [line(header), '-'.repeat(w('metric') + w('value') + w('target') + 10), ...rows.map(line)].join('\n');
}

const COLORS = { birth: '#e7298a', call: '#9ecae1', sent: '#3182bd', admitted: '#08519c', fork: '#fd8d3c', nats: '#a63603', rss: '#3182bd', pss: '#74c476', priv: '#fd8d3c', target: '#d62728', peer: '#777' };

function charts(r: SpawnBenchResult): string[] {
  const timed = r.raw.samples.filter((s) => s.timed);
  const cats = timed.map((s) => String(s.i));
  const call = timed.map((s) => s.spawnCallMs);
  const sent = timed.map((s) => Math.min(Math.max(0, s.pulseSentMs - s.spawnCallMs), s.firstPulseMs - s.spawnCallMs));
  const admitted = timed.map((s, i) => Math.max(0, s.firstPulseMs - call[i]! - sent[i]!));
  const spawnChart = barChart({
    title: 'Per spawn: cell spawn → first pulse (stacked by phase) vs the peers',
    yLabel: 'ms', categories: cats,
    series: [
      { segments: [
        { name: 'spawn() call', color: COLORS.call, values: call },
        { name: '→ first pulse sent', color: COLORS.sent, values: sent },
        { name: '→ admitted by observer', color: COLORS.admitted, values: admitted },
      ], markers: [{ name: 'birth admitted', color: COLORS.birth, values: timed.map((s) => s.birthMs) }] },
      { segments: [{ name: 'fork → ready', color: COLORS.fork, values: timed.map((s) => s.forkReadyMs) }] },
      { segments: [{ name: 'fork+NATS → ready', color: COLORS.nats, values: timed.map((s) => s.forkNatsReadyMs) }] },
    ],
    refLines: [{ value: TARGETS.firstPulseP95Ms, label: `target p95 ${TARGETS.firstPulseP95Ms} ms`, color: COLORS.target, dash: true }],
  });
  const mem = r.raw.memory;
  const toMb = (v: number) => v / 1e6;
  const peerLines = [
    ...(r.raw.peerMemory.bare ? [{ value: toMb(r.raw.peerMemory.bare.rss), label: `bare fork RSS ${mb(r.raw.peerMemory.bare.rss)}`, color: COLORS.peer, dash: true }] : []),
    ...(r.raw.peerMemory.nats ? [{ value: toMb(r.raw.peerMemory.nats.rss), label: `NATS peer RSS ${mb(r.raw.peerMemory.nats.rss)}`, color: '#333', dash: true }] : []),
  ];
  const memChart = barChart({
    title: 'Idle memory per cell (/proc)',
    yLabel: 'MB (10⁶ bytes)', categories: mem.map((_, i) => String(i + 1)),
    series: [
      { segments: [{ name: 'RSS', color: COLORS.rss, values: mem.map((m) => toMb(m.rss)) }] },
      { segments: [{ name: 'PSS', color: COLORS.pss, values: mem.map((m) => toMb(m.pss)) }] },
      { segments: [{ name: 'private', color: COLORS.priv, values: mem.map((m) => toMb(m.private)) }] },
    ],
    refLines: [{ value: TARGETS.idleRssBytes / 1e6, label: `target ${TARGETS.idleRssBytes / 1e6} MB`, color: COLORS.target, dash: true }, ...peerLines],
  });
  const ps = r.raw.traffic.perSecond;
  const trafficChart = lineChart({
    title: 'Pulses per second during the traffic window',
    yLabel: 'pulses / s', categories: ps.map((p) => `${p.t.toFixed(1)} s`),
    series: [
      { name: 'on the wire', color: COLORS.sent, values: ps.map((p) => p.wire / p.dt), width: 4 },
      { name: 'admitted by observer', color: COLORS.pss, values: ps.map((p) => p.admitted / p.dt) },
    ],
    refLines: [{ value: r.summary.traffic.expectedPerSecond, label: `expected ${num(r.summary.traffic.expectedPerSecond)}/s`, color: COLORS.peer, dash: true }],
    height: 260,
  });
  return [spawnChart, memChart, trafficChart];
}

function htmlTable(headers: string[], rows: (string | number | null)[][]): string {
  const cell = (v: string | number | null) => escapeXml(v === null ? '-' : typeof v === 'number' ? String(round(v, 1)) : v);
  return `<table><thead><tr>${headers.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((v) => `<td>${cell(v)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function renderHtml(r: SpawnBenchResult, machine: MachineInfo, startedAt: Date): string {
  const summary = summaryRows(r)
    .map((row) => `<tr><td>${escapeXml(row.metric)}</td><td>${escapeXml(row.value)}</td><td>${escapeXml(row.target)}</td><td class="${row.status.toLowerCase()}">${row.status}</td></tr>`)
    .join('');
  const samples = htmlTable(
    ['#', 'cell', 'pid', 'spawn() ms', 'pulse sent ms', 'first pulse ms', 'birth ms', 'fork→ready ms', 'fork+NATS ms', 'spawn→exit ms'],
    r.raw.samples.map((s) => [s.i, s.id, s.pid, s.spawnCallMs, s.pulseSentMs, s.firstPulseMs, s.birthMs, s.forkReadyMs, s.forkNatsReadyMs, s.spawnExitMs]),
  );
  const memory = htmlTable(
    ['#', 'cell', 'pid', 'RSS MB', 'PSS MB', 'private MB', 'anonymous MB', 'self-reported RSS MB'],
    r.raw.memory.map((m, i) => [i + 1, m.id, m.pid, m.rss / 1e6, m.pss / 1e6, m.private / 1e6, m.anonymous / 1e6, m.reportedRss === null ? null : m.reportedRss / 1e6]),
  );
  const m = machine;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cellular spawn benchmark ${escapeXml(startedAt.toISOString())}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;max-width:960px;color:#222}
table{border-collapse:collapse;margin:8px 0 24px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}
td.pass{color:#fff;background:#2ca02c;font-weight:600}
td.fail{color:#fff;background:#d62728;font-weight:600}
.meta{color:#555;font-size:13px}
figure{margin:16px 0}
</style></head><body>
<h1>Spawn benchmark</h1>
<p class="meta">Organism ${escapeXml(r.raw.organism)} · started ${escapeXml(startedAt.toISOString())} · ${m.cpus} × ${escapeXml(m.cpuModel)} · ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB · ${escapeXml(m.os)} ${escapeXml(m.arch)} · Node ${escapeXml(m.node)} · ${escapeXml(m.natsServer)} · load ${m.loadavg.join(' ')} · cell V8 flags: ${escapeXml(r.raw.cellNodeFlags.join(' ') || 'none')}</p>
<h2>Summary</h2>
<table><thead><tr><th>metric</th><th>value</th><th>target</th><th></th></tr></thead><tbody>${summary}</tbody></table>
<p class="meta">Percentiles are nearest-rank over the timed spawns. MB = 10⁶ bytes. Spawn times run from just before <code>Organism.spawn('stem')</code> to the hormone bus of the observer admitting the cell's first pulse (so they include the observer fetching the cell's certificate from the lineage bucket); "pulse sent" is the pulse's own timestamp (same host clock, ms resolution). The peers run just before each spawn with the cells' V8 flags. CPU is utime+stime from /proc over the window, all threads; a delivery is one pulse received and verified by one cell (every cell hears every pulse).</p>
<h2>Charts</h2>
${charts(r).map((svg) => `<figure>${svg}</figure>`).join('\n')}
<h2>Spawns</h2>
${samples}
<h2>Idle memory</h2>
${memory}
<p class="meta">Peers: bare ${r.raw.peerMemory.bare ? `RSS ${mb(r.raw.peerMemory.bare.rss)}, PSS ${mb(r.raw.peerMemory.bare.pss)}, private ${mb(r.raw.peerMemory.bare.private)}` : 'not measured'}; NATS-connected ${r.raw.peerMemory.nats ? `RSS ${mb(r.raw.peerMemory.nats.rss)}, PSS ${mb(r.raw.peerMemory.nats.pss)}, private ${mb(r.raw.peerMemory.nats.private)}` : 'not measured'}; nats-server ${r.raw.brokerMemory ? `RSS ${mb(r.raw.brokerMemory.rss)}` : 'not measured'}.</p>
<h2>Traffic window</h2>
${htmlTable(['cell', 'pid', 'CPU ms in window', 'main thread ms', 'other threads ms'], r.raw.traffic.cellCpu.map((c) => [c.id, c.pid, c.micros / 1e3, c.mainMicros / 1e3, (c.micros - c.mainMicros) / 1e3]))}
<p class="meta">${r.raw.traffic.seconds.toFixed(2)} s; ${r.raw.traffic.wirePulses} pulses on the wire (${r.raw.traffic.wireBytes} bytes), ${r.raw.traffic.admittedPulses} admitted; nats-server ${r.raw.traffic.brokerCpuMicros === null ? '-' : `${(r.raw.traffic.brokerCpuMicros / 1e3).toFixed(1)} ms`} CPU; observer ${(r.raw.traffic.observerCpuMicros / 1e3).toFixed(1)} ms CPU.</p>
</body></html>
`;
}

/** Writes the JSON and HTML reports into `dir`; returns their paths. */
export function writeSpawnReport(r: SpawnBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = {
    benchmark: 'spawn', v: 1, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine,
    summary: r.summary, shutdown: r.shutdown, raw: r.raw,
  };
  return writeReport(dir, 'spawn', startedAt, doc, renderHtml(r, machine, startedAt));
}
