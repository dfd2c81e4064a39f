#!/usr/bin/env node
/**
 * `npm run chaos -- <scenario>|all|list [--seed N] [--duration S] [--rate R] [--clients N] [--cells N] [--state-dir DIR]`:
 * runs chaos scenarios against a fresh organism each, shows what happens as it happens,
 * checks the body plan's promises after every run and writes reports. Ctrl-C stops the run
 * in progress and everything it started; no report is written for it.
 */
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { CellularError, isCellularError } from '../../organism/wire/errors.ts';
import { machineInfo } from '../report.ts';
import { writeChaosReport, writeChaosSummary } from './report.ts';
import { runChaos, type ChaosResult } from './runner.ts';
import { CHAOS_SCENARIOS, chaosScenario } from '../../organism/chaos/scenarios.ts';

const USAGE = `Usage:
  npm run chaos -- <scenario> [--seed N] [--duration S] [--rate R] [--clients N] [--cells N] [--state-dir DIR]
  npm run chaos -- all [same options]      every scenario, one after another, and a summary report
  npm run chaos -- list

Options:
  --seed N         seeds every random choice (victims, chat pairs); default: random, printed
  --duration S     length of the run in seconds (default: the scenario's)
  --rate R         chat messages per second, all clients together (default: the scenario's)
  --clients N      chat clients (default: the scenario's)
  --cells N        a crowd of N more idle cells (tissue "crowd", echo's DNA, min = max = N) beside
                   the scenario's, so it runs at scale (default 0)
  --state-dir DIR  where each run's organism and the reports go (default .organism/chaos)
`;

const say = (line: string) => process.stderr.write(`${line}\n`);

function int(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new CellularError('CLI_ERR_USAGE', `--${name} must be a whole number from ${min} to ${max}, received ${JSON.stringify(raw)}`);
  return Number(raw);
}

async function main(argv: string[], signal: AbortSignal): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { seed: { type: 'string' }, duration: { type: 'string' }, rate: { type: 'string' }, clients: { type: 'string' }, cells: { type: 'string' }, 'state-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (cause) {
    throw new CellularError('CLI_ERR_USAGE', `${(cause as Error).message}\n\n${USAGE}`, { cause });
  }
  const [name, ...rest] = parsed.positionals;
  const v = parsed.values;
  if (v.help || name === undefined || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined && !v.help ? 1 : 0;
  }
  if (rest.length > 0) throw new CellularError('CLI_ERR_USAGE', `unexpected argument ${JSON.stringify(rest[0])}\n\n${USAGE}`);
  if (name === 'list') {
    for (const s of CHAOS_SCENARIOS) process.stdout.write(`${s.name.padEnd(16)}${s.description} (${s.defaults.durationS} s)\n`);
    return 0;
  }
  const scenarios = name === 'all' ? [...CHAOS_SCENARIOS] : [chaosScenario(name)];
  if (scenarios.some((s) => s === undefined)) throw new CellularError('CLI_ERR_USAGE', `unknown scenario ${JSON.stringify(name)}; scenarios: ${CHAOS_SCENARIOS.map((s) => s.name).join(', ')}, or all`);
  const seed = int('seed', v.seed, 0, 2 ** 32 - 1) ?? Math.floor(Math.random() * 2 ** 32);
  const stateDir = resolve(v['state-dir'] ?? join('.organism', 'chaos'));
  const machine = machineInfo();
  const reports = join(stateDir, 'reports');
  const tty = process.stderr.isTTY === true;
  const results: ChaosResult[] = [];
  const paths: string[] = [];
  say(`chaos: ${scenarios.length} scenario(s), seed ${seed} (run again with --seed ${seed} to repeat the same choices)`);
  const startedAt = new Date();
  for (const s of scenarios) {
    const r = await runChaos({
      scenario: s!, seed, stateDir, signal,
      durationS: int('duration', v.duration, 5, 3_600) ?? s!.defaults.durationS,
      rate: int('rate', v.rate, 1, 5_000) ?? s!.defaults.rate,
      clients: int('clients', v.clients, 2, 500) ?? s!.defaults.clients,
      crowd: int('cells', v.cells, 0, 1_000) ?? 0,
      // A TTY gets one redrawn status line; a log gets a line a second.
      progress: (line) => process.stderr.write(tty ? `\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 120) - 1)}` : `${line}\n`),
      say: (line) => (tty ? process.stderr.write(`\r\x1b[2K  ${line}\n`) : say(`  ${line}`)),
    });
    if (tty) process.stderr.write('\r\x1b[2K');
    const p = writeChaosReport(r, reports, machine);
    results.push(r);
    paths.push(p.html);
    process.stdout.write(`\n${s!.name}: ${r.pass ? 'PASS' : 'FAIL'} (seed ${r.seed})\n${r.invariants.map((i) => `  ${i.pass ? 'pass' : 'FAIL'}  ${i.name}: ${i.value}`).join('\n')}\n  reports: ${p.json}\n           ${p.html}\n`);
  }
  if (results.length > 1) {
    const sum = writeChaosSummary(results, paths, reports, startedAt, machine);
    process.stdout.write(`\nsummary: ${results.filter((r) => r.pass).length} of ${results.length} scenarios pass\n  ${sum.json}\n  ${sum.html}\n`);
  }
  return results.every((r) => r.pass) ? 0 : 2;
}

const ac = new AbortController();
let interrupted: string | undefined;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) return say(`${sig} again: still stopping the organism (bounded by its shutdown timeout)…`);
    interrupted = sig;
    say(`\n${sig}: stopping the run and everything it started…`);
    ac.abort(new CellularError('CELL_ERR_ABORTED', `chaos interrupted by ${sig}`));
  });
}

main(process.argv.slice(2), ac.signal).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (interrupted) {
      say(`chaos interrupted by ${interrupted}: stopped cleanly; no report written`);
      process.exit(130);
    }
    say(isCellularError(e) ? `error ${e.code}: ${e.message}` : `error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
