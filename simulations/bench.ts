#!/usr/bin/env node
/**
 * The benchmark harness: `npm run bench -- <name> [options]`. Each benchmark starts what
 * it measures, shows one progress line per step on stderr, writes its reports under
 * `<state-dir>/reports/`, prints the report paths and a summary table on stdout, and stops
 * everything it started, on Ctrl-C too.
 */
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { CellularError, isCellularError } from '../organism/wire/errors.ts';
import { runSpawnBench, validateOptions } from './bench-spawn.ts';
import { machineInfo, summaryRows, textTable, writeSpawnReport, type MachineInfo, type Row } from './report.ts';
import { checkRange, type BenchRunOptions, type Range } from './bench-options.ts';
import { runBusyBench } from './bench-busy.ts';
import { busyRows, writeBusyReport } from './report-busy.ts';
import { runHomeostasisBench } from './bench-homeostasis.ts';
import { homeostasisRows, writeHomeostasisReport } from './report-homeostasis.ts';
import { runChatBench, validateChatOptions } from './bench-chat.ts';
import { chatRows, writeChatReport } from './report-chat.ts';
import { runBrowserBench } from './bench-browser.ts';
import { browserRows, writeBrowserReport } from './report-browser.ts';
import { runImmuneBench } from './bench-immune.ts';
import { immuneRows, writeImmuneReport } from './report-immune.ts';
import { runDashboardBench } from './bench-dashboard.ts';
import { dashboardRows, writeDashboardReport } from './report-dashboard.ts';
import { runScaleBench, validateScaleOptions } from './bench-scale.ts';
import { scaleRows, writeScaleReport } from './report-scale.ts';
import { runScaleHosts } from './scale-hosts.ts';
import { scaleHostsRows, writeScaleHostsReport } from './report-scale-hosts.ts';

interface Benchmark {
  summary: string;
  run(args: string[], signal: AbortSignal): Promise<number>;
}

const USAGE = `Usage:
  npm run bench -- <benchmark> [options]      (node dist/simulations/bench.js <benchmark> ...)
  npm run bench -- list

Benchmarks:
  spawn   cell spawn → first pulse against a bare fork, idle cell memory, pulse traffic and its CPU
  busy    a cell whose main thread is stuck in a CPU loop is busy, not dead (against a pulser judged by silence)
  homeostasis  load steps grow and shrink a tissue; kill -9 is replaced (against a 15 s-polling HPA model)
  chat    clients messaging each other through the swarm, against raw JetStream, a ws relay and Socket.IO + Redis
  browser the browser client in Chromium: failover time under kill -9 (10 kills), encryption cost per message against Node, register and login times
  immune  each misbehaving cell kind voted out and killed (onset → quarantined, → dead), and false verdicts in an honest run under load
  scale   idle CPU and PSS per cell at N = 10, 30, 100, 300 cells, against N bare NATS processes with a timer
  dashboard  the dashboard cell's CPU (against a plain cell) and its page's frame rate, with and without 200 synthetic cells pulsing

Options of spawn:
  --spawns N       timed spawns, each after its fork peers (default 20)
  --cells N        cells alive for the memory and traffic phases, at least --spawns (default 20)
  --seconds S      length of the pulse-traffic window (default 10)
  --state-dir DIR  organism state for the run (default .organism/bench); reports go to DIR/reports/

Options of busy:
  --burn MS        how long the cell's main thread is kept busy (default 5000)
  --interval MS    pulse interval for the run (default 500)
  --state-dir DIR  as above

Options of homeostasis:
  --steps N        load steps in each growth phase, stem dispatch and cold spawn (default 10)
  --hold MS        how long each step's peak lasts (default 6000)
  --kills N        kill -9 rounds (default 10)
  --zygotes N      zygotes per host in the zygote phase (the cold steps again, births from a
                   zygote pool); 0 skips that phase (default 4)
  --state-dir DIR  as above (default .organism/bench-homeostasis)

Options of chat:
  --seconds S      length of each measured window, after a 1 s warm-up (default 10)
  --clients N      chat clients (users) of every system (default 50)
  --rate R         fixed offered load, messages/s in total (default 5000)
  --window W       sends each client keeps awaiting their ack at saturation (default 32)
  --idle N         idle sockets held open to one receiver for the memory figure; 0 skips it (default 10000)
  --state-dir DIR  as above (default .organism/bench-chat)

Options of browser (needs Debian's chromium, or CHROMIUM_BIN):
  --kills N        kill -9 rounds of the page's receiver (default 10)
  --messages N     seals and opens timed in Chromium and in Node (default 500)
  --logins N       rounds of register / log in (same and new browser) / an old account's first login; 0 skips them (default 5)
  --state-dir DIR  as above (default .organism/bench-browser)

Options of immune:
  --runs N         runs per misbehaviour: flood, forger, liar, tamper, cancer (default 10)
  --honest S       seconds of the honest run under load (default 600)
  --state-dir DIR  as above (default .organism/bench-immune)

Options of scale:
  --sizes LIST     living cells at each step, ascending, comma-separated (default 10,30,100,300)
  --seconds S      length of each measured window (default 10)
  --settle S       quiet spell after the last birth, before each window (default 30: a newborn
                   cell costs about twice its steady state for its first half minute)
  --state-dir DIR  as above (default .organism/bench-scale)

Options of scale-hosts (root: three network namespaces; otherwise loopback addresses):
  --cells N        cells in the census in all, real and synthetic (default 1000)
  --real N         real cell processes grown by homeostasis over the three hosts (default 100)
  --kills N        kill -9 rounds of real cells (default 5)
  --jury N         immune.jury for the run; above the real cells per host, so panels are drawn
                   from the whole census and synthetic cells sit on them (default 41)
  --seconds S      length of the idle window (default 10)
  --settle S       quiet spell before it (default 20)
  --faults LIST    offenders injected through an operator, in order: flood, cancer, or none
                   (default flood,cancer)
  --loopback yes   loopback addresses even where namespaces could be made (default no)
  --separate-cpu no  let the test hosts share the CPU as plain processes do (default yes: each
                   host its own CPU cgroup with an equal weight, as separate machines; needs root)
  --state-dir DIR  as above (default .organism/bench-scale-hosts)
Options of dashboard (needs Debian's chromium, or CHROMIUM_BIN):
  --cells N        synthetic cells added for the loaded window (default 200)
  --seconds S      length of each measured window (default 30)
  --state-dir DIR  as above (default .organism/bench-dashboard)
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

/** What a benchmark adds to the run every benchmark shares: its flags, its options, its run and its report. */
interface Definition<K extends string, O, R> {
  summary: string;
  /** Every flag with its default, --state-dir's included. */
  flags: Record<K | 'state-dir', string>;
  /** The flags as the run's options, checked: CLI_ERR_USAGE names the flag, what it must be and what it got. */
  options(values: Record<K | 'state-dir', string>): O;
  run(options: NoInfer<O> & BenchRunOptions): Promise<R>;
  write(result: R, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string };
  rows(result: R): Row[];
  /** The exit code once the report is written. @default 0 */
  exitCode?(result: R): number;
}

/**
 * A benchmark: flags parsed and checked, the machine said, the run (progress and the
 * organism's lines on stderr), its reports under `<state-dir>/reports/`, their paths and
 * the summary table on stdout.
 */
function benchmark<K extends string, O, R>(name: string, d: Definition<K, O, R>): Benchmark {
  return {
    summary: d.summary,
    async run(args, signal) {
      const values = flags(args, d.flags);
      const options = d.options(values);
      const stateDir = resolve(values['state-dir']);
      const startedAt = new Date();
      const machine = machineInfo();
      say(`${name} benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
      const result = await d.run({ ...options, stateDir, progress: say, say: (l) => say(`  organism: ${l}`), signal });
      const paths = d.write(result, join(stateDir, 'reports'), startedAt, machine);
      process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(d.rows(result))}\n`);
      return d.exitCode?.(result) ?? 0;
    },
  };
}

/** `--name` as a whole number in `range`. */
function intIn(name: string, raw: string, range: Range): number {
  const v = intFlag(name, raw);
  checkRange(name, v, range);
  return v;
}

// Targets are reported, not enforced; leaving a process behind is a failure.
const leftoversFail = (r: { shutdown: { leftovers: readonly unknown[] } }) => (r.shutdown.leftovers.length === 0 ? 0 : 1);

const spawnBench = benchmark('spawn', {
  summary: 'cell spawn → first pulse against a bare fork, idle cell memory, pulse traffic and its CPU',
  flags: { spawns: '20', cells: '20', seconds: '10', 'state-dir': join('.organism', 'bench') },
  options(v) {
    const options = { spawns: intFlag('spawns', v.spawns), cells: intFlag('cells', v.cells), seconds: intFlag('seconds', v.seconds) };
    validateOptions(options);
    return options;
  },
  run: runSpawnBench, write: writeSpawnReport, rows: summaryRows, exitCode: leftoversFail,
});

const busyBench = benchmark('busy', {
  summary: 'a cell whose main thread is stuck in a CPU loop is busy, not dead (against a pulser judged by silence)',
  flags: { burn: '5000', interval: '500', 'state-dir': join('.organism', 'bench-busy') },
  options: (v) => ({ burnMs: intIn('burn', v.burn, { min: 100, max: 30_000, unit: 'ms' }), pulseIntervalMs: intIn('interval', v.interval, { min: 50, max: 5_000, unit: 'ms' }) }),
  run: runBusyBench, write: writeBusyReport, rows: busyRows,
});

const homeostasisBench = benchmark('homeostasis', {
  summary: 'load steps grow and shrink a tissue; kill -9 is replaced (against a 15 s-polling HPA model)',
  flags: { steps: '10', hold: '6000', kills: '10', zygotes: '4', 'state-dir': join('.organism', 'bench-homeostasis') },
  options: (v) => ({ steps: intIn('steps', v.steps, { min: 1, max: 100 }), holdMs: intIn('hold', v.hold, { min: 1_000, max: 120_000, unit: 'ms' }), kills: intIn('kills', v.kills, { max: 100 }), zygotes: intIn('zygotes', v.zygotes, { max: 64 }) }),
  run: runHomeostasisBench, write: writeHomeostasisReport, rows: homeostasisRows,
});

const chatBench = benchmark('chat', {
  summary: 'clients messaging each other through the swarm, against raw JetStream, a ws relay and Socket.IO + Redis',
  flags: { seconds: '10', clients: '50', rate: '5000', window: '32', idle: '10000', 'state-dir': join('.organism', 'bench-chat') },
  options(v) {
    const options = {
      seconds: intFlag('seconds', v.seconds), clients: intFlag('clients', v.clients), rate: intFlag('rate', v.rate),
      window: intFlag('window', v.window), idle: intFlag('idle', v.idle),
    };
    validateChatOptions(options);
    return options;
  },
  run: runChatBench, write: writeChatReport, rows: chatRows, exitCode: leftoversFail,
});

const browserBench = benchmark('browser', {
  summary: 'the browser client in Chromium: failover time under kill -9, encryption cost per message (against Node), register and login times (against an old account\'s login)',
  flags: { kills: '10', messages: '500', logins: '5', 'state-dir': join('.organism', 'bench-browser') },
  options: (v) => ({ kills: intIn('kills', v.kills, { min: 1, max: 100 }), messages: intIn('messages', v.messages, { min: 10, max: 100_000 }), logins: intIn('logins', v.logins, { min: 0, max: 100 }) }),
  run: runBrowserBench, write: writeBrowserReport, rows: browserRows,
});

const immuneBench = benchmark('immune', {
  summary: 'each misbehaving cell kind voted out and killed (onset → quarantined, → dead), and false verdicts in an honest run under load',
  flags: { runs: '10', honest: '600', 'state-dir': join('.organism', 'bench-immune') },
  options: (v) => ({ runs: intIn('runs', v.runs, { min: 1, max: 1_000 }), honestSeconds: intIn('honest', v.honest, { min: 1, max: 86_400, unit: 'seconds' }) }),
  run: runImmuneBench, write: writeImmuneReport, rows: immuneRows,
});

const dashboardBench = benchmark('dashboard', {
  summary: "the dashboard cell's CPU (against a plain cell) and its page's frame rate, with and without 200 synthetic cells pulsing",
  flags: { cells: '200', seconds: '30', 'state-dir': join('.organism', 'bench-dashboard') },
  options: (v) => ({ cells: intIn('cells', v.cells, { max: 5_000 }), seconds: intIn('seconds', v.seconds, { min: 1, max: 3_600 }) }),
  run: runDashboardBench, write: writeDashboardReport, rows: dashboardRows,
});

const scaleBench = benchmark('scale', {
  summary: 'idle CPU and PSS per cell at N = 10, 30, 100, 300 cells, against N bare NATS processes with a timer',
  flags: { sizes: '10,30,100,300', seconds: '10', settle: '30', 'state-dir': join('.organism', 'bench-scale') },
  options(v) {
    const options = { sizes: v.sizes.split(',').map((x) => Number(x.trim())), seconds: intFlag('seconds', v.seconds), settleMs: intFlag('settle', v.settle) * 1000 };
    validateScaleOptions(options);
    return options;
  },
  run: runScaleBench, write: writeScaleReport, rows: scaleRows, exitCode: leftoversFail,
});

/** --faults: offenders injected in order (flood, cancer), or none. */
function faultList(raw: string): ('flood' | 'cancer')[] {
  if (raw === 'none' || raw === '') return [];
  const list = raw.split(',').map((x) => x.trim());
  for (const f of list) if (f !== 'flood' && f !== 'cancer') throw new CellularError('CLI_ERR_USAGE', `--faults must list flood and/or cancer, or be none; received ${JSON.stringify(raw)}`);
  return list as ('flood' | 'cancer')[];
}

const scaleHostsBench = benchmark('scale-hosts', {
  summary: '1,000 cells across three test hosts (100 real, the rest synthetic cells that vote): kill -9 detection, census agreement, a flooder and a cancer convicted',
  flags: { cells: '1000', real: '100', kills: '5', jury: '41', seconds: '10', settle: '20', faults: 'flood,cancer', loopback: 'no', 'separate-cpu': 'yes', 'state-dir': join('.organism', 'bench-scale-hosts') },
  options: (v) => ({
    cells: intIn('cells', v.cells, { min: 6, max: 5_000 }), real: intIn('real', v.real, { min: 6, max: 300 }), kills: intIn('kills', v.kills, { max: 100 }),
    jury: intIn('jury', v.jury, { min: 1, max: 101 }), seconds: intIn('seconds', v.seconds, { min: 1, max: 600, unit: 'seconds' }), settleS: intIn('settle', v.settle, { max: 600, unit: 'seconds' }),
    loopback: v.loopback === 'yes', separateCpu: v['separate-cpu'] !== 'no', faults: faultList(v.faults),
  }),
  run: runScaleHosts, write: writeScaleHostsReport, rows: scaleHostsRows, exitCode: leftoversFail,
});

const BENCHMARKS: Record<string, Benchmark> = { spawn: spawnBench, scale: scaleBench, 'scale-hosts': scaleHostsBench, busy: busyBench, homeostasis: homeostasisBench, chat: chatBench, browser: browserBench, immune: immuneBench, dashboard: dashboardBench };

async function main(argv: string[], signal: AbortSignal): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (name === 'list') {
    for (const [n, b] of Object.entries(BENCHMARKS)) process.stdout.write(`${n.padEnd(13)}${b.summary}\n`);
    return 0;
  }
  const bench = name === undefined ? undefined : BENCHMARKS[name];
  if (!bench) {
    throw new CellularError('CLI_ERR_USAGE', `${name === undefined ? 'name a benchmark' : `unknown benchmark ${JSON.stringify(name)}`}; known: ${Object.keys(BENCHMARKS).join(', ')} (npm run bench -- list)\n\n${USAGE}`);
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
