#!/usr/bin/env node
/**
 * `npm run load -- [options]`: drive a running organism's tissue endpoint with a load shape,
 * showing progress every second, and write a report (JSON + HTML with plots) under
 * `<state-dir>/reports/`. Ctrl-C stops the source early; the report covers what ran.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { natsOptions } from '../organism/kernel/access.ts';
import { CellularError, isCellularError } from '../organism/wire/errors.ts';
import { Namespace } from '../organism/kernel/namespace.ts';
import { requireRecord } from '../organism/grow/record.ts';
import { recordAccess } from '../organism/grow/commands/target.ts';
import { runLoad, type LoadResult, type LoadSecond } from '../organism/chaos/load.ts';
import { SHAPES, validateShape, type ShapeName } from '../organism/chaos/load-shape.ts';
import { stamp } from './report.ts';
import { escapeXml, lineChart } from './svg.ts';

export const LOAD_USAGE = `Usage: npm run load -- [options]      (node dist/simulations/load-cli.js ...)

Drives a running organism (found through --state-dir) with requests to one tissue endpoint.

  --state-dir DIR     the organism's state dir (default .organism)
  --tissue NAME       tissue to load (default echo)
  --endpoint NAME     endpoint (default burn)
  --work-ms N         CPU ms per request, sent as {ms: N} (default 5; for echo.burn)
  --payload JSON      the request instead of {ms: work-ms}
  --shape SHAPE       ${SHAPES.join(' | ')} (default step)
  --rate R            base requests per second (default 20)
  --peak P            peak requests per second for step, ramp, spike (default 100)
  --duration S        seconds (default 30)
  --max-inflight N    requests in flight at most; beyond, requests are shed (default 256)
  --timeout MS        per-request timeout (default 5000)
`;

function flags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'state-dir': { type: 'string', default: '.organism' },
        tissue: { type: 'string', default: 'echo' },
        endpoint: { type: 'string', default: 'burn' },
        'work-ms': { type: 'string', default: '5' },
        payload: { type: 'string' },
        shape: { type: 'string', default: 'step' },
        rate: { type: 'string', default: '20' },
        peak: { type: 'string', default: '100' },
        duration: { type: 'string', default: '30' },
        'max-inflight': { type: 'string', default: '256' },
        timeout: { type: 'string', default: '5000' },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (cause) {
    throw new CellularError('CLI_ERR_USAGE', `${(cause as Error).message}\n\n${LOAD_USAGE}`, { cause });
  }
}

function num(name: string, raw: string, min: number, max: number): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) throw new CellularError('CLI_ERR_USAGE', `--${name} must be a number from ${min} to ${max}, received ${JSON.stringify(raw)}`);
  return v;
}

function line(s: LoadSecond): string {
  const ms = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)}ms`);
  return `t=${String(s.second).padStart(4)}s offered ${s.offered.toFixed(0).padStart(5)}/s sent ${String(s.sent).padStart(5)} ok ${String(s.ok).padStart(5)} err ${s.errors} shed ${s.shed} inflight ${s.inflight} p50 ${ms(s.p50)} p99 ${ms(s.p99)}`;
}

export function writeLoadReport(r: LoadResult, dir: string, startedAt: Date, target: string): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `load-${stamp(startedAt)}`);
  writeFileSync(`${base}.json`, `${JSON.stringify({ startedAt: startedAt.toISOString(), target, result: r }, null, 2)}\n`);
  const categories = r.seconds.map((s) => `${s.second}s`);
  const rates = lineChart({
    title: `requests per second: offered by the ${r.shape.name} shape, sent, answered`, yLabel: 'req/s', categories, width: 900, height: 300,
    series: [
      { name: 'offered', color: '#94a3b8', values: r.seconds.map((s) => s.offered) },
      { name: 'sent', color: '#2563eb', values: r.seconds.map((s) => s.sent) },
      { name: 'answered', color: '#16a34a', values: r.seconds.map((s) => s.ok) },
      { name: 'errors + shed', color: '#dc2626', values: r.seconds.map((s) => s.errors + s.shed) },
    ],
  });
  const latency = lineChart({
    title: 'latency of the requests answered each second', yLabel: 'ms', categories, width: 900, height: 280,
    series: [
      { name: 'p50', color: '#2563eb', values: r.seconds.map((s) => s.p50) },
      { name: 'p99', color: '#dc2626', values: r.seconds.map((s) => s.p99) },
    ],
  });
  writeFileSync(
    `${base}.html`,
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cellular load ${escapeXml(startedAt.toISOString())}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:960px}</style></head><body>
<h1>Load on ${escapeXml(target)}</h1>
<p>${escapeXml(startedAt.toISOString())} · shape ${r.shape.name}, rate ${r.shape.rate}/s, peak ${r.shape.peak}/s, ${r.shape.durationMs / 1000} s ·
sent ${r.sent}, answered ${r.ok}, errors ${r.errors} ${escapeXml(JSON.stringify(r.errorsByCode))}, shed ${r.shed}</p>
${rates}
${latency}
</body></html>
`,
  );
  return { json: `${base}.json`, html: `${base}.html` };
}

async function main(argv: string[]): Promise<number> {
  const f = flags(argv);
  if (f.help) {
    process.stdout.write(LOAD_USAGE);
    return 0;
  }
  const shape = validateShape({
    name: f.shape as ShapeName, rate: num('rate', f.rate, 0, 100_000), peak: num('peak', f.peak, 0, 100_000),
    durationMs: Math.round(num('duration', f.duration, 0.1, 3_600) * 1000),
  });
  let request: unknown = { ms: num('work-ms', f['work-ms'], 0, 30_000) };
  if (f.payload !== undefined) {
    try {
      request = JSON.parse(f.payload);
    } catch (cause) {
      throw new CellularError('CLI_ERR_USAGE', `--payload must be JSON, received ${JSON.stringify(f.payload)}`, { cause });
    }
  }
  const stateDir = resolve(f['state-dir']);
  const record = requireRecord(stateDir);
  const nc = await connect(natsOptions(await recordAccess(stateDir, record, 'grow', 'load'), 'cellular load'));
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const target = `${f.tissue}.${f.endpoint} of organism ${record.id}`;
  process.stderr.write(`load: ${shape.name} ${shape.rate}→${shape.peak}/s for ${shape.durationMs / 1000} s on ${target}\n`);
  const tty = process.stderr.isTTY === true;
  const startedAt = new Date();
  let result: LoadResult;
  try {
    result = await runLoad({
      nc, ns: new Namespace(record.id), tissue: f.tissue, endpoint: f.endpoint, request, shape,
      maxInflight: num('max-inflight', f['max-inflight'], 1, 100_000), timeoutMs: num('timeout', f.timeout, 10, 600_000),
      progress: (s) => process.stderr.write(tty ? `\r\x1b[2K${line(s)}` : `${line(s)}\n`), signal: ac.signal,
    });
  } finally {
    await nc.close().catch(() => {});
  }
  if (tty) process.stderr.write('\n');
  const paths = writeLoadReport(result, join(stateDir, 'reports'), startedAt, target);
  const lat = result.latency;
  process.stdout.write(
    `sent ${result.sent}, answered ${result.ok}, errors ${result.errors} ${JSON.stringify(result.errorsByCode)}, shed ${result.shed}; ` +
      `latency p50 ${lat ? lat.p50.toFixed(1) : '-'} ms, p95 ${lat ? lat.p95.toFixed(1) : '-'} ms\nreports:\n  ${paths.json}\n  ${paths.html}\n`,
  );
  return 0;
}

// Only as a program, not when a test imports the report writer.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(isCellularError(e) ? `error ${e.code}: ${e.message}\n` : `error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}

