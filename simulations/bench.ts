#!/usr/bin/env node
/**
 * The benchmark harness: `npm run bench -- <name> [options]`. Each benchmark starts what
 * it measures, shows one progress line per step on stderr, writes its reports under
 * `<state-dir>/reports/`, prints the report paths and a summary table on stdout, and stops
 * everything it started, on Ctrl-C too.
 */
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { CellularError, isCellularError } from '../organism/errors.ts';
import { runSpawnBench, validateOptions } from './bench-spawn.ts';
import { machineInfo, summaryRows, textTable, writeSpawnReport } from './report.ts';
import { runBusyBench } from './bench-busy.ts';
import { busyRows, writeBusyReport } from './report-busy.ts';

interface Benchmark {
  summary: string;
  run(args: string[], signal: AbortSignal): Promise<number>;
}

const USAGE = `Usage:
  npm run bench -- <benchmark> [options]      (node dist/simulations/bench.js <benchmark> ...)
  npm run bench -- list

Benchmarks:
  spawn   cell spawn → first pulse against a bare fork, idle cell memory, pulse traffic and its CPU
  busy    a cell whose main thread is stuck in a CPU loop keeps pulsing (against a main-thread pulser)

Options of spawn:
  --spawns N       timed spawns, each after its fork peers (default 20)
  --cells N        cells alive for the memory and traffic phases, at least --spawns (default 20)
  --seconds S      length of the pulse-traffic window (default 10)
  --state-dir DIR  organism state for the run (default .organism/bench); reports go to DIR/reports/

Options of busy:
  --burn MS        how long the cell's main thread is kept busy (default 5000)
  --interval MS    pulse interval for the run (default 500)
  --state-dir DIR  as above
`;

const say = (line: string) => process.stderr.write(`${line}\n`);

function intFlag(name: string, raw: string): number {
  if (!/^\d+$/.test(raw)) throw new CellularError('CLI_ERR_USAGE', `--${name} must be a whole number, received ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** String flags with defaults (every flag here has one); a bad flag is CLI_ERR_USAGE with the usage. */
function flags<K extends string>(args: string[], defaults: Record<K, string>): Record<K, string> {
  const options = Object.fromEntries(Object.entries(defaults).map(([k, v]) => [k, { type: 'string' as const, default: v as string }]));
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<K, string>;
  } catch (cause) {
    throw new CellularError('CLI_ERR_USAGE', `${(cause as Error).message}\n\n${USAGE}`, { cause });
  }
}

const spawnBench: Benchmark = {
  summary: 'cell spawn → first pulse against a bare fork, idle cell memory, pulse traffic and its CPU',
  async run(args, signal) {
    const values = flags(args, { spawns: '20', cells: '20', seconds: '10', 'state-dir': join('.organism', 'bench') });
    const options = { spawns: intFlag('spawns', values.spawns), cells: intFlag('cells', values.cells), seconds: intFlag('seconds', values.seconds) };
    validateOptions(options);
    const stateDir = resolve(values['state-dir']);
    const startedAt = new Date();
    const machine = machineInfo();
    say(`spawn benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
    const result = await runSpawnBench({
      ...options, stateDir,
      progress: say, say: (l) => say(`  organism: ${l}`), signal,
    });
    const paths = writeSpawnReport(result, join(stateDir, 'reports'), startedAt, machine);
    process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(summaryRows(result))}\n`);
    // Targets are reported, not enforced; leaving a process behind is a failure.
    return result.shutdown.leftovers.length === 0 ? 0 : 1;
  },
};

const busyBench: Benchmark = {
  summary: 'a cell whose main thread is stuck in a CPU loop keeps pulsing (against a main-thread pulser)',
  async run(args, signal) {
    const values = flags(args, { burn: '5000', interval: '500', 'state-dir': join('.organism', 'bench-busy') });
    const burnMs = intFlag('burn', values.burn);
    const pulseIntervalMs = intFlag('interval', values.interval);
    if (burnMs < 100 || burnMs > 30_000) throw new CellularError('CLI_ERR_USAGE', `--burn must be from 100 to 30000 ms, received ${burnMs}`);
    if (pulseIntervalMs < 50 || pulseIntervalMs > 5_000) throw new CellularError('CLI_ERR_USAGE', `--interval must be from 50 to 5000 ms, received ${pulseIntervalMs}`);
    const stateDir = resolve(values['state-dir']);
    const startedAt = new Date();
    const machine = machineInfo();
    say(`busy benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
    const result = await runBusyBench({ burnMs, pulseIntervalMs, stateDir, progress: say, signal });
    const paths = writeBusyReport(result, join(stateDir, 'reports'), startedAt, machine);
    process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(busyRows(result))}\n`);
    return 0;
  },
};

const BENCHMARKS: Record<string, Benchmark> = { spawn: spawnBench, busy: busyBench };

async function main(argv: string[], signal: AbortSignal): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (name === 'list') {
    for (const [n, b] of Object.entries(BENCHMARKS)) process.stdout.write(`${n.padEnd(8)}${b.summary}\n`);
    return 0;
  }
  const bench = name === undefined ? undefined : BENCHMARKS[name];
  if (!bench) {
    throw new CellularError('CLI_ERR_USAGE', `${name === undefined ? 'no benchmark named' : `unknown benchmark ${JSON.stringify(name)}`}; known: ${Object.keys(BENCHMARKS).join(', ')}\n\n${USAGE}`);
  }
  return bench.run(rest, signal);
}

const ac = new AbortController();
let interrupted: string | undefined;
const onSignal = (sig: NodeJS.Signals) => {
  if (interrupted) return say(`${sig} again: still stopping the organism (bounded by limits.shutdownTimeoutMs)…`);
  interrupted = sig;
  say(`${sig}: stopping the organism…`);
  ac.abort(new CellularError('CELL_ERR_ABORTED', `benchmark interrupted by ${sig}`));
};
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);

main(process.argv.slice(2), ac.signal).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (interrupted) {
      say(`benchmark interrupted by ${interrupted}; no report written`);
      process.exit(130);
    }
    say(isCellularError(e) ? `error ${e.code}: ${e.message}` : `error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
