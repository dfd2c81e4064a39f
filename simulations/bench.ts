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
import { machineInfo, summaryRows, textTable, writeSpawnReport } from './report.ts';
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
  homeostasis  load steps grow and shrink a tissue; kill -9 is replaced (against a 15 s-polling HPA model)
  chat    clients messaging each other through the swarm, against raw JetStream, a ws relay and Socket.IO + Redis
  browser the browser client in Chromium: failover time under kill -9 (10 kills), encryption cost per message against Node
  immune  each misbehaving cell kind voted out and killed (onset → quarantined, → dead), and false verdicts in an honest run under load
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
  --state-dir DIR  as above (default .organism/bench-browser)

Options of immune:
  --runs N         runs per misbehaviour: flood, forger, liar, tamper, cancer (default 10)
  --honest S       seconds of the honest run under load (default 600)
  --state-dir DIR  as above (default .organism/bench-immune)

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

const homeostasisBench: Benchmark = {
  summary: 'load steps grow and shrink a tissue; kill -9 is replaced (against a 15 s-polling HPA model)',
  async run(args, signal) {
    const values = flags(args, { steps: '10', hold: '6000', kills: '10', 'state-dir': join('.organism', 'bench-homeostasis') });
    const steps = intFlag('steps', values.steps);
    const holdMs = intFlag('hold', values.hold);
    const kills = intFlag('kills', values.kills);
    if (steps < 1 || steps > 100) throw new CellularError('CLI_ERR_USAGE', `--steps must be from 1 to 100, received ${steps}`);
    if (holdMs < 1_000 || holdMs > 120_000) throw new CellularError('CLI_ERR_USAGE', `--hold must be from 1000 to 120000 ms, received ${holdMs}`);
    if (kills > 100) throw new CellularError('CLI_ERR_USAGE', `--kills must be at most 100, received ${kills}`);
    const stateDir = resolve(values['state-dir']);
    const startedAt = new Date();
    const machine = machineInfo();
    say(`homeostasis benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
    const result = await runHomeostasisBench({ steps, holdMs, kills, stateDir, progress: say, signal });
    const paths = writeHomeostasisReport(result, join(stateDir, 'reports'), startedAt, machine);
    process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(homeostasisRows(result))}\n`);
    return 0;
  },
};

const chatBench: Benchmark = {
  summary: 'clients messaging each other through the swarm, against raw JetStream, a ws relay and Socket.IO + Redis',
  async run(args, signal) {
    const values = flags(args, { seconds: '10', clients: '50', rate: '5000', window: '32', idle: '10000', 'state-dir': join('.organism', 'bench-chat') });
    const options = {
      seconds: intFlag('seconds', values.seconds), clients: intFlag('clients', values.clients), rate: intFlag('rate', values.rate),
      window: intFlag('window', values.window), idle: intFlag('idle', values.idle),
    };
    validateChatOptions(options);
    const stateDir = resolve(values['state-dir']);
    const startedAt = new Date();
    const machine = machineInfo();
    say(`chat benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
    const result = await runChatBench({ ...options, stateDir, progress: say, say: (l) => say(`  organism: ${l}`), signal });
    const paths = writeChatReport(result, join(stateDir, 'reports'), startedAt, machine);
    process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(chatRows(result))}\n`);
    // Targets are reported, not enforced; leaving a process behind is a failure.
    return result.shutdown.leftovers.length === 0 ? 0 : 1;
  },
};

const browserBench: Benchmark = {
  summary: 'the browser client in Chromium: failover time under kill -9, and encryption cost per message (against Node)',
  async run(args, signal) {
    const values = flags(args, { kills: '10', messages: '500', 'state-dir': join('.organism', 'bench-browser') });
    const kills = intFlag('kills', values.kills);
    const messages = intFlag('messages', values.messages);
    if (kills < 1 || kills > 100) throw new CellularError('CLI_ERR_USAGE', `--kills must be from 1 to 100, received ${kills}`);
    if (messages < 10 || messages > 100_000) throw new CellularError('CLI_ERR_USAGE', `--messages must be from 10 to 100000, received ${messages}`);
    const stateDir = resolve(values['state-dir']);
    const startedAt = new Date();
    const machine = machineInfo();
    say(`browser benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
    const result = await runBrowserBench({ kills, messages, stateDir, progress: say, say: (l) => say(`  organism: ${l}`), signal });
    const paths = writeBrowserReport(result, join(stateDir, 'reports'), startedAt, machine);
    process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(browserRows(result))}\n`);
    return 0;
  },
};

const immuneBench: Benchmark = {
  summary: 'each misbehaving cell kind voted out and killed (onset → quarantined, → dead), and false verdicts in an honest run under load',
  async run(args, signal) {
    const values = flags(args, { runs: '10', honest: '600', 'state-dir': join('.organism', 'bench-immune') });
    const runs = intFlag('runs', values.runs);
    const honestSeconds = intFlag('honest', values.honest);
    if (runs < 1 || runs > 1000) throw new CellularError('CLI_ERR_USAGE', `--runs must be from 1 to 1000, received ${runs}`);
    if (honestSeconds < 1 || honestSeconds > 86_400) throw new CellularError('CLI_ERR_USAGE', `--honest must be from 1 to 86400 seconds, received ${honestSeconds}`);
    const stateDir = resolve(values['state-dir']);
    const startedAt = new Date();
    const machine = machineInfo();
    say(`immune benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
    const result = await runImmuneBench({ runs, honestSeconds, stateDir, progress: say, say: (l) => say(`  organism: ${l}`), signal });
    const paths = writeImmuneReport(result, join(stateDir, 'reports'), startedAt, machine);
    process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(immuneRows(result))}\n`);
    return 0;
  },
};

const dashboardBench: Benchmark = {
  summary: "the dashboard cell's CPU (against a plain cell) and its page's frame rate, with and without 200 synthetic cells pulsing",
  async run(args, signal) {
    const values = flags(args, { cells: '200', seconds: '30', 'state-dir': join('.organism', 'bench-dashboard') });
    const cells = intFlag('cells', values.cells);
    const seconds = intFlag('seconds', values.seconds);
    if (cells > 5_000) throw new CellularError('CLI_ERR_USAGE', `--cells must be at most 5000, received ${cells}`);
    if (seconds < 1 || seconds > 3_600) throw new CellularError('CLI_ERR_USAGE', `--seconds must be from 1 to 3600, received ${seconds}`);
    const stateDir = resolve(values['state-dir']);
    const startedAt = new Date();
    const machine = machineInfo();
    say(`dashboard benchmark: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.natsServer}`);
    const result = await runDashboardBench({ cells, seconds, stateDir, progress: say, say: (l) => say(`  organism: ${l}`), signal });
    const paths = writeDashboardReport(result, join(stateDir, 'reports'), startedAt, machine);
    process.stdout.write(`\nreports:\n  ${paths.json}\n  ${paths.html}\n\n${textTable(dashboardRows(result))}\n`);
    return 0;
  },
};

const BENCHMARKS: Record<string, Benchmark> = { spawn: spawnBench, busy: busyBench, homeostasis: homeostasisBench, chat: chatBench, browser: browserBench, immune: immuneBench, dashboard: dashboardBench };

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
