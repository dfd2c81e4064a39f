/**
 * Reports of the chat benchmark: `<reports>/chat-<timestamp>.json` (every run with its
 * latency histograms, timelines and CPU) and a self-contained `.html` with throughput bars
 * for every system, latency percentiles at the fixed rate and at saturation, delivered/s
 * over time, CPU per message and the idle-socket memory curve, plus the summary with the
 * issue's targets (reported, not enforced).
 */
import { ACK_EVERY_MS, SYSTEM_LABELS, WARMUP_MS, type ChatBenchResult, type LoadRun, type SystemName } from './chat/result.ts';
import { textTable, type MachineInfo, type Row } from './report.ts';
import { listSection, PAGE_STYLE, pageHead, summaryTable, writeReport } from './report-page.ts';
import { barChart, escapeXml, lineChart } from './svg.ts';

export const CHAT_TARGETS = {
  /** Cellular delivered/s at saturation ÷ raw JetStream acked publish/s. */
  overJetstream: 0.5,
  /** Cellular delivered/s at saturation ÷ Socket.IO + Redis delivered/s at saturation. */
  overSocketio: 1,
  /** p99 send → deliver at the fixed rate, ms. */
  p99AtRateMs: 10,
  /** Receiver RSS per idle socket, KB (1024 bytes). */
  idleKbPerSocket: 30,
};

const SYSTEMS: SystemName[] = ['cellular', 'jetstream', 'ws-relay', 'socketio'];
const SHORT: Record<SystemName, string> = { cellular: 'cellular', jetstream: 'raw JetStream', 'ws-relay': 'ws relay', socketio: 'Socket.IO + Redis' };
const COLORS: Record<SystemName, string> = { cellular: '#2563eb', jetstream: '#7c3aed', 'ws-relay': '#9ca3af', socketio: '#dc2626' };

const n0 = (v: number) => Math.round(v).toLocaleString('en-US');
const ms = (v: number | undefined | null) => (v === undefined || v === null ? '—' : v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const times = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}×`);

function runOf(r: ChatBenchResult, system: SystemName, mode: 'rate' | 'saturation'): LoadRun | undefined {
  return r.runs.find((x) => x.system === system && x.mode === mode);
}

function skippedOf(r: ChatBenchResult, system: SystemName): string | undefined {
  return r.skipped.find((s) => s.system === system)?.reason;
}

function lat(run: LoadRun): string {
  const l = run.latency;
  return l ? `p50 ${ms(l.p50)} / p99 ${ms(l.p99)} / p99.9 ${ms(l.p999)} ms` : 'no samples';
}

function runValue(r: ChatBenchResult, system: SystemName, mode: 'rate' | 'saturation'): string {
  const run = runOf(r, system, mode);
  if (!run) return skippedOf(r, system) ?? 'not run';
  const what = run.completes === 'acked' ? 'acked' : 'delivered';
  const drained = run.drainDeliveredPerSecond !== null && run.drainDeliveredPerSecond > 1.5 * run.throughput ? `, backlog delivered at ${n0(run.drainDeliveredPerSecond)}/s once sends stopped` : '';
  const extra = run.completes === 'delivered' && mode === 'saturation' ? ` (${n0(run.ackedPerSecond)}/s acked${drained})` : '';
  const lossy = run.undelivered > 0 ? `; ${n0(run.undelivered)} undelivered` : '';
  const errs = Object.values(run.errors).reduce((a, b) => a + b, 0);
  return `${n0(run.throughput)}/s ${what}${extra}; ${lat(run)}${lossy}${errs ? `; ${n0(errs)} errors` : ''}`;
}

function cpuValue(run: LoadRun | undefined): string {
  if (!run?.cpu || run.cpu.perMessageMicros === null) return '-';
  return `${n0(run.cpu.perMessageMicros)} µs (${run.cpu.processes.length} process${run.cpu.processes.length === 1 ? '' : 'es'}, ${(run.cpu.micros / 1e4 / run.seconds).toFixed(0)} % of a core); clients ${n0(run.cpu.loadGenPerMessageMicros ?? Number.NaN)} µs`;
}

export function chatRows(r: ChatBenchResult): Row[] {
  const o = r.options;
  const rate = `${n0(o.rate)}/s`;
  const cellRate = runOf(r, 'cellular', 'rate');
  const ratios = r.summary.ratios;
  const status = (v: number | null, ok: (v: number) => boolean): Row['status'] => (v === null ? '' : ok(v) ? 'PASS' : 'FAIL');
  const socketio = skippedOf(r, 'socketio');
  const rows: Row[] = [
    {
      metric: `cellular at ${rate} (send → deliver)`, value: runValue(r, 'cellular', 'rate'), target: `p99 ≤ ${CHAT_TARGETS.p99AtRateMs} ms`,
      status: status(cellRate?.latency?.p99 ?? null, (v) => v <= CHAT_TARGETS.p99AtRateMs),
    },
    { metric: `cellular at saturation (window ${o.window})`, value: runValue(r, 'cellular', 'saturation'), target: '', status: '' },
    { metric: `raw JetStream acked publish at ${rate}`, value: runValue(r, 'jetstream', 'rate'), target: '', status: '' },
    { metric: `raw JetStream acked publish, ${r.rawInFlight} in flight`, value: runValue(r, 'jetstream', 'saturation'), target: '', status: '' },
    { metric: `ws relay (1 process) at ${rate}`, value: runValue(r, 'ws-relay', 'rate'), target: '', status: '' },
    { metric: `ws relay at saturation (window ${o.window})`, value: runValue(r, 'ws-relay', 'saturation'), target: '', status: '' },
    { metric: `Socket.IO + Redis (2 processes) at ${rate}`, value: runValue(r, 'socketio', 'rate'), target: '', status: '' },
    { metric: `Socket.IO + Redis at saturation (window ${o.window})`, value: runValue(r, 'socketio', 'saturation'), target: '', status: '' },
    {
      metric: 'cellular ÷ raw JetStream (saturation)', value: times(ratios.cellularOverJetstream), target: `≥ ${CHAT_TARGETS.overJetstream}×`,
      status: status(ratios.cellularOverJetstream, (v) => v >= CHAT_TARGETS.overJetstream),
    },
    {
      metric: 'cellular ÷ Socket.IO + Redis (saturation)', value: socketio ?? times(ratios.cellularOverSocketio), target: `≥ ${CHAT_TARGETS.overSocketio}×`,
      status: status(ratios.cellularOverSocketio, (v) => v >= CHAT_TARGETS.overSocketio),
    },
    { metric: 'cellular ÷ ws relay (saturation)', value: times(ratios.cellularOverWsRelay), target: '', status: '' },
    {
      metric: r.idle ? `idle memory per socket (${n0(r.idle.sockets)} on one receiver)` : 'idle memory per socket',
      value: r.idle ? `${(r.idle.rssPerSocket / 1024).toFixed(1)} KB RSS (${(r.idle.rssBefore / 1e6).toFixed(1)} → ${(r.idle.rssAfter / 1e6).toFixed(1)} MB); private ${(r.idle.privatePerSocket / 1024).toFixed(1)} KB` : 'not measured (--idle 0)',
      target: `≤ ${CHAT_TARGETS.idleKbPerSocket} KB`, status: status(r.summary.idleKbPerSocket, (v) => v <= CHAT_TARGETS.idleKbPerSocket),
    },
    { metric: 'CPU/msg at saturation: cellular (rx+worker+nats)', value: cpuValue(runOf(r, 'cellular', 'saturation')), target: '', status: '' },
    { metric: '  raw JetStream (nats-server)', value: cpuValue(runOf(r, 'jetstream', 'saturation')), target: '', status: '' },
    { metric: '  ws relay', value: cpuValue(runOf(r, 'ws-relay', 'saturation')), target: '', status: '' },
    { metric: `  Socket.IO (2 servers${r.redis.how === 'started' ? ' + redis-server' : ''})`, value: socketio ?? cpuValue(runOf(r, 'socketio', 'saturation')), target: '', status: '' },
    { metric: `CPU/msg at ${rate}: cellular`, value: cpuValue(cellRate), target: '', status: '' },
    { metric: 'stop', value: r.shutdown.leftovers.length === 0 ? 'every process started was stopped' : `left behind: pids ${r.shutdown.leftovers.join(', ')}`, target: 'nothing left', status: r.shutdown.leftovers.length === 0 ? 'PASS' : 'FAIL' },
  ];
  return rows;
}

function charts(r: ChatBenchResult): string[] {
  const o = r.options;
  const cats = SYSTEMS.map((s) => SHORT[s]);
  const value = (mode: 'rate' | 'saturation', f: (run: LoadRun) => number | null | undefined) => SYSTEMS.map((s) => {
    const run = runOf(r, s, mode);
    return run ? (f(run) ?? null) : null;
  });
  const raw = runOf(r, 'jetstream', 'saturation');
  const out: string[] = [];
  out.push(barChart({
    title: 'Throughput: messages delivered per second (raw JetStream: publishes acked per second)',
    yLabel: 'messages / s', categories: cats, width: 960, height: 340,
    series: [
      { segments: [{ name: `at ${n0(o.rate)}/s offered`, color: '#93c5fd', values: value('rate', (x) => x.throughput) }] },
      { segments: [{ name: `saturation (window ${o.window}; raw JetStream ${r.rawInFlight} in flight)`, color: '#1d4ed8', values: value('saturation', (x) => x.throughput) }] },
    ],
    refLines: raw ? [{ value: raw.throughput * CHAT_TARGETS.overJetstream, label: `target: ${CHAT_TARGETS.overJetstream} × raw JetStream = ${n0(raw.throughput * CHAT_TARGETS.overJetstream)}/s`, color: '#d62728', dash: true }] : [],
  }));
  for (const mode of ['rate', 'saturation'] as const) {
    out.push(barChart({
      title: mode === 'rate' ? `Latency at ${n0(o.rate)}/s offered: send → deliver (raw JetStream: publish → ack)` : `Latency at saturation: send → deliver (raw JetStream: publish → ack, ${r.rawInFlight} in flight)`,
      yLabel: 'ms', categories: cats, width: 960, height: 340,
      series: [
        { segments: [{ name: 'p50', color: '#93c5fd', values: value(mode, (x) => x.latency?.p50) }] },
        { segments: [{ name: 'p99', color: '#2563eb', values: value(mode, (x) => x.latency?.p99) }] },
        { segments: [{ name: 'p99.9', color: '#1e3a8a', values: value(mode, (x) => x.latency?.p999) }] },
      ],
      refLines: mode === 'rate' ? [{ value: CHAT_TARGETS.p99AtRateMs, label: `target p99 ≤ ${CHAT_TARGETS.p99AtRateMs} ms`, color: '#d62728', dash: true }] : [],
    }));
  }
  const cs = runOf(r, 'cellular', 'saturation');
  if (cs) {
    out.push(lineChart({
      title: `Cellular at saturation over time (warm-up ${WARMUP_MS / 1000} s, then the ${o.seconds} s window, then the drain)`,
      yLabel: 'messages / s', categories: cs.timeline.map((b) => `${b.t.toFixed(1)}s`), width: 960, height: 320,
      series: [
        { name: 'sent', color: '#9ca3af', values: cs.timeline.map((b) => b.sent) },
        { name: 'acked (stored)', color: '#7c3aed', values: cs.timeline.map((b) => b.acked) },
        { name: 'delivered', color: '#2563eb', values: cs.timeline.map((b) => b.delivered), width: 3 },
      ],
      refLines: raw ? [{ value: raw.throughput, label: `raw JetStream ${n0(raw.throughput)}/s`, color: '#7c3aed', dash: true }] : [],
    }));
  }
  const rates = SYSTEMS.map((s) => runOf(r, s, 'rate')).filter((x): x is LoadRun => x !== undefined);
  if (rates.length > 0) {
    // The measured window only: the warm-up's compile-time spikes would flatten everything else.
    const skip = Math.round(WARMUP_MS / 500);
    const len = Math.min(Math.round((o.seconds * 1000) / 500), Math.max(...rates.map((x) => x.timeline.length)) - skip);
    out.push(lineChart({
      title: `p99 latency of each 500 ms of the window at ${n0(o.rate)}/s offered (send → deliver; raw JetStream → ack)`,
      yLabel: 'ms', categories: Array.from({ length: len }, (_, i) => `${(((i + 1) * 500) / 1000).toFixed(1)}s`), width: 960, height: 320,
      series: rates.map((x) => ({ name: SHORT[x.system], color: COLORS[x.system], values: Array.from({ length: len }, (_, i) => x.timeline[i + skip]?.p99 ?? null) })),
      refLines: [{ value: CHAT_TARGETS.p99AtRateMs, label: `target p99 ≤ ${CHAT_TARGETS.p99AtRateMs} ms`, color: '#d62728', dash: true }],
    }));
  }
  const sats = SYSTEMS.map((s) => runOf(r, s, 'saturation')).filter((x): x is LoadRun => x !== undefined);
  if (sats.length > 0) {
    const len = Math.max(...sats.map((x) => x.timeline.length));
    out.push(lineChart({
      title: 'Every system at saturation: delivered (raw JetStream: acked) per second over time',
      yLabel: 'messages / s', categories: Array.from({ length: len }, (_, i) => `${(((i + 1) * 500) / 1000).toFixed(1)}s`), width: 960, height: 320,
      series: sats.map((x) => ({ name: SHORT[x.system], color: COLORS[x.system], values: Array.from({ length: len }, (_, i) => (x.completes === 'acked' ? x.timeline[i]?.acked : x.timeline[i]?.delivered) ?? null) })),
    }));
  }
  // CPU per message, stacked by role.
  const role = (name: string) => (name.startsWith('receiver') ? 'receivers' : name.startsWith('worker') ? 'worker' : name === 'nats-server' ? 'nats-server' : name.startsWith('socket.io') ? 'Socket.IO servers' : name);
  const roles = ['receivers', 'worker', 'nats-server', 'ws-relay', 'Socket.IO servers', 'redis-server'];
  const roleColors: Record<string, string> = { receivers: '#2563eb', worker: '#60a5fa', 'nats-server': '#7c3aed', 'ws-relay': '#9ca3af', 'Socket.IO servers': '#dc2626', 'redis-server': '#f97316' };
  const perRole = (run: LoadRun | undefined, name: string) => {
    if (!run?.cpu) return null;
    const done = run.throughput * run.seconds;
    const micros = run.cpu.processes.filter((p) => role(p.name) === name).reduce((a, p) => a + p.micros, 0);
    return micros > 0 && done > 0 ? micros / done : null;
  };
  out.push(barChart({
    title: 'CPU per completed message at saturation (/proc utime+stime), by process; the bench clients beside',
    yLabel: 'µs / message', categories: cats, width: 960, height: 340,
    series: [
      { segments: roles.map((name) => ({ name, color: roleColors[name]!, values: SYSTEMS.map((s) => perRole(runOf(r, s, 'saturation'), name)) })) },
      { segments: [{ name: 'clients (load generator, the bench process)', color: '#d1d5db', values: SYSTEMS.map((s) => runOf(r, s, 'saturation')?.cpu?.loadGenPerMessageMicros ?? null) }] },
    ],
  }));
  if (r.idle) {
    const idle = r.idle;
    out.push(lineChart({
      title: `Receiver RSS while ${n0(idle.sockets)} idle sockets are opened (batches of 500; the last point after 2 s of quiet)`,
      yLabel: 'MB (10⁶ bytes)', categories: idle.samples.map((x, i) => (i === idle.samples.length - 1 ? '+2 s' : n0(x.sockets))), width: 960, height: 300,
      series: [{ name: `RSS of ${idle.receiver.id}`, color: '#2563eb', values: idle.samples.map((x) => x.rss / 1e6) }],
      refLines: [{ value: (idle.rssBefore + CHAT_TARGETS.idleKbPerSocket * 1024 * idle.sockets) / 1e6, label: `target: ${CHAT_TARGETS.idleKbPerSocket} KB per socket`, color: '#d62728', dash: true }],
    }));
  }
  return out;
}

function runTable(r: ChatBenchResult): string {
  const head = ['system', 'load', 'sent/s', 'acked/s', 'delivered/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'ack p50 / p99 ms', 'CPU µs/msg', 'clients µs/msg', 'other work on the machine', 'delivered/s in the drain', 'undelivered', 'errors'];
  const rows = r.runs.map((x) => [
    SYSTEM_LABELS[x.system], x.mode === 'rate' ? `${n0(x.offeredPerSecond ?? 0)}/s offered` : `window ${x.window}`,
    n0(x.sentPerSecond), n0(x.ackedPerSecond), x.completes === 'acked' ? '—' : n0(x.deliveredPerSecond),
    ms(x.latency?.p50), ms(x.latency?.p90), ms(x.latency?.p99), ms(x.latency?.p999), ms(x.latency?.max),
    x.ackLatency ? `${ms(x.ackLatency.p50)} / ${ms(x.ackLatency.p99)}` : '—',
    x.cpu?.perMessageMicros != null ? n0(x.cpu.perMessageMicros) : '-', x.cpu?.loadGenPerMessageMicros != null ? n0(x.cpu.loadGenPerMessageMicros) : '-',
    x.cpu?.otherMicros != null ? `${Math.round(x.cpu.otherMicros / x.seconds / 1e4)} % of a core` : '-', x.drainDeliveredPerSecond !== null ? n0(x.drainDeliveredPerSecond) : '-',
    n0(x.undelivered), Object.entries(x.errors).map(([c, k]) => `${c} ×${k}`).join(', ') || '0',
  ]);
  for (const s of r.skipped) rows.push([SYSTEM_LABELS[s.system], s.reason, ...Array.from({ length: head.length - 2 }, () => '')]);
  return `<table><thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((row) => `<tr>${row.map((v) => `<td>${escapeXml(v)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function cpuTable(r: ChatBenchResult): string {
  const rows = r.runs.filter((x) => x.cpu).flatMap((x) => x.cpu!.processes.map((p) => [SYSTEM_LABELS[x.system], x.mode === 'rate' ? 'rate' : 'saturation', p.name, String(p.pid), (p.micros / 1e3).toFixed(0), `${(p.micros / 1e4 / x.seconds).toFixed(0)} %`]));
  return `<table><thead><tr><th>system</th><th>load</th><th>process</th><th>pid</th><th>CPU ms in window</th><th>of one core</th></tr></thead><tbody>${rows.map((row) => `<tr>${row.map((v) => `<td>${escapeXml(v)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function writeChatReport(r: ChatBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { benchmark: 'chat', v: 1, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, targets: CHAT_TARGETS, result: r };
  const o = r.options;
  const m = machine;
  const page = `${pageHead(`cellular chat benchmark ${startedAt.toISOString()}`, `${PAGE_STYLE}figure{margin:16px 0}`)}<h1>Chat: ${o.clients} clients sending to each other</h1>
<p class="meta">${escapeXml(startedAt.toISOString())} · ${m.cpus} × ${escapeXml(m.cpuModel)} · ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB · ${escapeXml(m.os)} · Node ${escapeXml(m.node)} · ${escapeXml(m.natsServer)} · Redis ${escapeXml(r.redis.how === 'none' ? 'none' : `${r.redis.url} (${r.redis.how}${r.redis.version ? `, ${r.redis.version}` : ''})`)} · load ${m.loadavg.join(' ')}</p>
<p>Every system gets the same ${o.clients} clients in this one process: each message goes from a client to a random other client, with a ${r.bodyBytes}-byte body whose first bytes carry the send time
(performance.now(), the same clock at the recipient). Two loads per system: ${n0(o.rate)} messages/s offered in total (open loop, paced every millisecond, spread over the clients) and
saturation (each client keeps ${o.window} sends awaiting their ack). Each run: ${WARMUP_MS / 1000} s warm-up, a ${o.seconds} s window (what is counted), then a bounded drain.
"Other work on the machine" is the busy CPU of the whole machine (/proc/stat) over the window less the serving processes and the bench: on a shared machine, what competed with the run.
Latency percentiles come from an HdrHistogram of the messages delivered in the window (3 significant digits). Raw JetStream is one NATS connection publishing to a file stream configured like the messages stream,
with a msg-id and the receiver's headers, ${r.rawInFlight} in flight: it has no recipient, so its "latency" is publish → ack.
Cellular clients ack what they hold every ${ACK_EVERY_MS} ms (deliver.ack), as a client must. CPU is utime+stime from /proc of the serving processes over the window, divided by the messages completed in it.</p>
${summaryTable(chatRows(r))}
${charts(r).map((svg) => `<figure>${svg}</figure>`).join('\n')}
<h2>Runs</h2>
${runTable(r)}
<h2>CPU by process</h2>
${cpuTable(r)}
<h2>Setup</h2>
<p class="meta">Genome of the cellular run: ${escapeXml(r.genomeSets.join(' · '))}</p>
${listSection('Notes', r.notes)}
</body></html>
`;
  return writeReport(dir, 'chat', startedAt, doc, page);
}

export { textTable };
