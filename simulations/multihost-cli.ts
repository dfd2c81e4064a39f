#!/usr/bin/env node
/**
 * `npm run multihost -- [--loopback] [--phase S] [--partition S] [--partition-max S] [--rate R] [--clients N] [--seed N] [--runs K] [--state-dir DIR]`:
 * the organism on three test hosts (simulations/multihost.ts), host loss, rejoin and a
 * partition under chat, the faults placed by the seed; writes `<state-dir>/reports/multihost-<time>.json`
 * and `.html` (cells per host and deliveries over time, with every fault marked), and with
 * --runs a summary of every seed. Exit 0 when every check of every run passes, 2 when one
 * fails, 130 on Ctrl-C.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runMultiHost, type MultiHostResult } from './multihost.ts';
import { machineInfo, type MachineInfo } from './report.ts';
import { pageHead, writeReport } from './report-page.ts';
import { escapeXml, lineChart } from './svg.ts';

const HELP = `npm run multihost -- [options]

  --loopback       use 127.0.0.2-4 instead of network namespaces (no partition then)
  --phase S        seconds of chat around each fault (default 6)
  --partition S    how long one host is cut off at least (default 15)
  --partition-max S  how long the cut may last while the majority has not regrown what the
                   cut host held (default 45): the cut ends on that event, within this bound
  --rate R         messages per second among the clients (default 10)
  --clients N      chat clients (default 6)
  --seed N         places the faults and seeds the chat (default 0): N mod 3 picks the host
                   lost (most cells, the messages stream leader's, another), N/3 mod 3 the
                   host cut off (the worker's, the leader's, another), N/9 mod 2 a second
                   host loss after the partition; a failed run is run again as it was by its seed
  --runs K         K runs, seeds N … N+K-1, then a summary of them all (default 1)
  --state-dir DIR  where the hosts' state and the reports go (default .organism/multihost)
`;

const COLOURS = ['#2563eb', '#16a34a', '#f59e0b', '#7c3aed', '#db2777'];

export function writeMultiHostReport(r: MultiHostResult, dir: string, machine: MachineInfo): { json: string; html: string } {
  const cats = r.samples.map((s) => `${Math.round(s.t / 1000)}s`);
  const marks = r.marks.map((m) => ({ at: Math.max(0, r.samples.findIndex((s) => s.t >= m.t)), label: m.label }));
  const hostNames = [...new Set(r.samples.flatMap((s) => Object.keys(s.hosts)))].sort();
  const tissues = [...new Set(r.samples.flatMap((s) => Object.keys(s.tissues)))].sort();
  const charts = [
    lineChart({ title: 'Living cells per host', yLabel: 'cells', categories: cats, marks, series: hostNames.map((h, i) => ({ name: h, color: COLOURS[i % COLOURS.length]!, values: r.samples.map((s) => s.hosts[h] ?? 0) })) }),
    lineChart({ title: 'Living cells per tissue', yLabel: 'cells', categories: cats, marks, series: tissues.map((t, i) => ({ name: t, color: COLOURS[i % COLOURS.length]!, values: r.samples.map((s) => s.tissues[t] ?? 0) })) }),
    lineChart({ title: 'Messages opened by their recipients per second', yLabel: 'messages/s', categories: cats, marks, series: [{ name: 'delivered/s', color: '#2563eb', values: r.samples.map((s) => s.delivered) }] }),
  ];
  const c = r.counts;
  const page = `${pageHead(`multihost ${r.startedAt}`, 'body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}td.pass{background:#2ca02c;color:#fff}td.fail{background:#d62728;color:#fff}pre{font-size:12px;background:#f7f7f7;padding:8px;max-height:400px;overflow:auto}')}<h1>Three hosts, one organism — ${r.pass ? 'every check passes' : 'CHECKS FAILED'}</h1>
<p>${escapeXml(r.startedAt)} · hosts: ${r.mode === 'netns' ? 'network namespaces' : `loopback fallback (${escapeXml(r.fallbackReason ?? '')})`} · organism ${escapeXml(r.organism)} · R${r.replicas} · ${machine.cpus} × ${escapeXml(machine.cpuModel)}</p>
<table><tr><th>check</th><th>value</th><th></th></tr>${r.checks.map((x) => `<tr><td>${escapeXml(x.name)}</td><td>${escapeXml(x.value)}</td><td class="${x.pass ? 'pass' : 'fail'}">${x.pass ? 'PASS' : 'FAIL'}</td></tr>`).join('')}</table>
<p>${c.sent} sent, ${c.acked} acknowledged, ${c.delivered} opened, ${c.lost} lost, ${c.duplicates} stored twice, ${c.redelivered} redelivered after a failover, ${c.reconnects} client reconnections.</p>
${charts.map((svg) => `<figure>${svg}</figure>`).join('\n')}
<h2>What happened</h2><pre>${escapeXml(r.log.join('\n'))}</pre></body></html>
`;
  return writeReport(dir, 'multihost', new Date(r.startedAt), { report: 'multihost', v: 1, machine, result: r }, page);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      loopback: { type: 'boolean', default: false }, phase: { type: 'string' }, partition: { type: 'string' }, 'partition-max': { type: 'string' }, rate: { type: 'string' }, clients: { type: 'string' },
      seed: { type: 'string' }, runs: { type: 'string' },
      'state-dir': { type: 'string', default: '.organism/multihost' }, help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = (v: string | undefined, name: string, min: number, max: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} expects a number in [${min}, ${max}], received ${JSON.stringify(v)}`);
    return n;
  };
  const stateDir = resolve(values['state-dir']);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const tty = process.stderr.isTTY;
  const first = num(values.seed, 'seed', 0, 2 ** 31 - 2) ?? 0;
  const runs = num(values.runs, 'runs', 1, 10_000) ?? 1;
  const summary: { seed: number; pass: boolean; plan: string; acked: number; lost: number; neverStored: number; doubles: number; failed: string[]; report: string }[] = [];
  for (let k = 0; k < runs && !abort.signal.aborted; k++) {
    const seed = first + k;
    if (runs > 1) process.stderr.write(`\n== run ${k + 1} of ${runs}: seed ${seed}\n`);
    let r: MultiHostResult;
    try {
      r = await runMultiHost({
      stateDir, loopback: values.loopback, signal: abort.signal, seed,
      ...optional('phaseS', num(values.phase, 'phase', 1, 600)), ...optional('partitionS', num(values.partition, 'partition', 1, 600)),
      ...optional('partitionMaxS', num(values['partition-max'], 'partition-max', 1, 600)),
      ...optional('rate', num(values.rate, 'rate', 1, 1000)), ...optional('clients', num(values.clients, 'clients', 2, 200)),
      progress: (line) => process.stderr.write(tty && /^\d+ s · /.test(line) ? `\r\x1b[K${line}` : `${tty ? '\r\x1b[K' : ''}${line}\n`),
      });
    } catch (e) {
      // A run that could not even be judged (a host that never grew) fails, and the next seed runs.
      process.stderr.write(`\nseed ${seed}: the run failed: ${e instanceof Error ? e.message : String(e)}\n`);
      summary.push({ seed, pass: false, plan: 'did not run to the end', acked: 0, lost: 0, neverStored: -1, doubles: -1, failed: [`the run itself: ${e instanceof Error ? e.message : String(e)}`], report: '' });
      continue;
    }
    const paths = writeMultiHostReport(r, join(stateDir, 'reports'), machineInfo());
    process.stderr.write(`\n${r.checks.map((x) => `${x.pass ? 'PASS' : 'FAIL'}  ${x.name}: ${x.value}`).join('\n')}\nreport: ${paths.html}\n`);
    summary.push({
      seed, pass: r.pass, plan: r.faults.join(', ') || 'no fault placed', acked: r.counts.acked, lost: r.counts.lost,
      neverStored: r.durability?.byClass['never-stored'] ?? -1, doubles: r.durability?.doubles.length ?? -1, failed: r.checks.filter((x) => !x.pass).map((x) => x.name), report: paths.html,
    });
  }
  if (runs > 1) {
    const lines = summary.map((x) => `seed ${x.seed}: ${x.pass ? 'PASS' : 'FAIL'} (${x.plan}) · ${x.acked} acknowledged, ${x.lost} lost, ${x.neverStored} never stored, ${x.doubles} stored twice${x.failed.length ? ` · failed: ${x.failed.join('; ')}` : ''}`);
    const passed = summary.filter((x) => x.pass).length;
    const text = `${passed} of ${summary.length} runs passed; ${summary.reduce((n, x) => n + x.lost, 0)} acknowledged messages lost in all, of ${summary.reduce((n, x) => n + x.acked, 0)}\n${lines.join('\n')}\n`;
    mkdirSync(join(stateDir, 'reports'), { recursive: true });
    const file = join(stateDir, 'reports', `multihost-seeds-${new Date().toISOString().replace(/[:.]/g, '-')}.txt`);
    writeFileSync(file, text);
    process.stderr.write(`\n${text}summary: ${file}\n`);
  }
  return summary.every((x) => x.pass) && summary.length === runs ? 0 : abort.signal.aborted ? 130 : 2;
}

function optional<K extends string>(key: K, v: number | undefined): Partial<Record<K, number>> {
  return v === undefined ? {} : ({ [key]: v } as Record<K, number>);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`multihost: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
