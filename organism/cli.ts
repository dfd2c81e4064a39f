#!/usr/bin/env node
/**
 * `cellular` — grow an organism, read its census, stop it. Every flag is documented in
 * README.md ("Commands"); `cellular help` prints the same summary.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { stopBrokerByPid } from './broker.ts';
import { censusSummary, censusTable, decisionLine } from './census-table.ts';
import type { DecisionBody } from './vocabulary.ts';
import { isCensusEntry, type CensusEntry } from './census.ts';
import { CellularError, isCellularError } from './errors.ts';
import { defaultGenome, loadGenome, validateGenome, type Genome } from './genome.ts';
import { fromHex } from './keys.ts';
import { Observer } from './observer.ts';
import { Organism } from './organism.ts';
import { sweepCells } from './sweep.ts';
import { waitGone } from './processes.ts';
import { claimStateDir, ownerAlive, readRecord, removeRecord, requireRecord } from './record.ts';
import { loadRootKey, ROOT_PUB_FILE } from './root-key.ts';
import { openReply } from './wire.ts';

export const HELP = `cellular — a messenger server that is a swarm of processes

Usage:
  cellular grow   [--state-dir DIR] [--genome FILE] [--set PATH=VALUE]... [--nats URL[,URL...]]
                  [--id ID] [--no-install] [--plain]
  cellular census [--state-dir DIR] [--json] [--nats URL[,URL...]] [--id ID]
  cellular stop   [--state-dir DIR] [--nats URL[,URL...]] [--id ID]
  cellular help | --help | --version

Options:
  --state-dir DIR   organism state (root key, broker store, logs); default .organism
  --genome FILE     JSON genome merged over the defaults
  --set PATH=VALUE  override one genome field, e.g. --set limits.pulseIntervalMs=250 (repeatable)
  --nats URLS       join these NATS servers instead of starting a private nats-server
  --id ID           organism id (namespace org.<id>.); default: kept in the state dir
  --no-install      never install nats-server with apt-get, even as root on Debian
  --plain           log census changes and homeostasis decisions as lines instead of redrawing a table
  --json            census as a JSON array (like pm2 jlist)

Environment:
  NATS_SERVER_BIN     path of the nats-server binary to use
  CELLULAR_CELL_FLAGS V8 flags for cell processes (default --max-semi-space-size=1)

The genome's fields, homeostasis and the protocol: README.md and docs/.
`;

/** Which of our receivers answers on the front door (its /healthz names the cell), if any within `ms`. */
async function frontDoorHolder(url: string, census: { get(id: string): { tissue: string } | undefined }, ms: number): Promise<string | undefined> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(500) });
      const cell = ((await r.json()) as { cell?: unknown }).cell;
      if (typeof cell === 'string' && census.get(cell)?.tissue === 'receiver') return cell;
    } catch {
      // not listening yet, or not ours
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/** Polls `read` until it gives a value or `ms` pass. */
async function until<T>(read: () => T | undefined, ms: number): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = read();
    if (v !== undefined || Date.now() > end) return v;
    await sleep(50);
  }
}

const OPTIONS = {
  'state-dir': { type: 'string', default: '.organism' },
  genome: { type: 'string' },
  set: { type: 'string', multiple: true },
  nats: { type: 'string' },
  id: { type: 'string' },
  'no-install': { type: 'boolean', default: false },
  plain: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', default: false },
} as const satisfies ParseArgsConfig['options'];

type Flags = { [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K] extends { multiple: true } ? string[] | undefined : (typeof OPTIONS)[K] extends { type: 'boolean' } ? boolean : string | undefined };

function parse(argv: string[]): { command: string; flags: Flags } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new CellularError('CLI_ERR_USAGE', `${(cause as Error).message}\n\n${HELP}`, { cause });
  }
  const [command = 'help', ...rest] = parsed.positionals;
  if (rest.length > 0) throw new CellularError('CLI_ERR_USAGE', `unexpected argument ${JSON.stringify(rest[0])}\n\n${HELP}`);
  return { command, flags: parsed.values as unknown as Flags };
}

function servers(flags: Flags): string[] | undefined {
  if (flags.nats === undefined) return undefined;
  const list = flags.nats.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new CellularError('CLI_ERR_USAGE', '--nats expects URL[,URL...], received nothing');
  return list;
}

const say = (line: string) => process.stderr.write(`${line}\n`);

async function grow(flags: Flags): Promise<number> {
  const genome = loadGenome({ ...(flags.genome ? { file: flags.genome } : {}), sets: flags.set ?? [] });
  const stateDir = resolve(flags['state-dir'] ?? '.organism');
  const joined = servers(flags);
  const abort = new AbortController();
  const organism = new Organism({
    stateDir, genome, say, autoInstall: !flags['no-install'], signal: abort.signal,
    ...(flags.genome ? { genomeDir: dirname(resolve(flags.genome)) } : {}),
    ...(joined ? { servers: joined } : {}),
    ...(flags.id ? { id: flags.id } : {}),
  });
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return say(`${sig} again: still stopping (bounded by limits.shutdownTimeoutMs)…`);
    stopping = true;
    abort.abort(new CellularError('CELL_ERR_ABORTED', `stopped by ${sig}`));
    void organism.stop(sig);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => onSignal('SIGHUP'));
  // Whatever kills grow itself must not leave the organism behind (invariant 5): a pipe
  // closed under us (`npm run grow | tee`, Ctrl-C kills tee too) is ignored; anything else
  // uncaught ends grow, and the exit handler signals every cell and the broker by pid.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  process.on('exit', () => organism.emergencyStop());
  process.on('uncaughtException', (e) => {
    say(`error: ${e.stack ?? e.message}; stopping the organism`);
    void organism.stop(`grow failed: ${e.message}`).finally(() => process.exit(1));
  });

  say(`growing an organism (state ${stateDir})`);
  let living;
  try {
    await organism.start();
    living = await organism.waitForPopulation(Math.max(15_000, genome.limits.pulseIntervalMs * 10));
  } catch (e) {
    // A half-grown organism is still stopped cleanly: nothing may outlive a failed grow.
    await organism.stop(`grow failed: ${(e as Error).message}`);
    // Stopped on request (a signal, or `cellular stop` mid-growth) is a clean exit.
    if (stopping || isCellularError(e, 'CELL_ERR_CLOSED') || isCellularError(e, 'CELL_ERR_ABORTED')) return 0;
    throw e;
  }
  say(`organism ${organism.id} alive: ${living.length} cells on ${organism.servers.join(', ')}`);
  say(`census: npx cellular census --state-dir ${stateDir}    stop: Ctrl-C or npx cellular stop --state-dir ${stateDir}`);
  const receivers = Object.values(genome.tissues).some((t) => t.module === 'receiver');
  if (receivers) {
    const m = genome.messenger;
    const own = living.filter((c) => c.tissue === 'receiver' && c.url).map((c) => c.url).join(', ');
    if (m.frontPort === 0) say(`messenger: ${own || 'receivers starting'}`);
    else {
      const front = `http://${m.host}:${m.frontPort}/`;
      const holder = await frontDoorHolder(front, organism.observer.census, 3_000);
      say(holder
        ? `messenger: ${front} (front door, held by ${holder}; receivers also at ${own})`
        : `messenger: ${own} (the front door ${front} is not ours: another program holds port ${m.frontPort}; set messenger.frontPort)`);
    }
  }

  if (Object.values(genome.tissues).some((t) => t.module === 'dashboard')) {
    const url = await until(() => organism.observer.census.living().find((c) => c.tissue === 'dashboard' && c.url)?.url ?? undefined, 5_000);
    say(url
      ? `dashboard: ${url}#token=${organism.dashboardToken}    (controls need the token; ${url} alone is read-only)`
      : `dashboard: starting (its URL will be in the census); controls token in ${join(stateDir, 'dashboard.token')}`);
  }

  const census = organism.observer.census;
  const tty = process.stdout.isTTY === true && !flags.plain;
  const ac = new AbortController();
  // Homeostasis decisions, with the readings behind them: why a cell divided or died.
  const decisions: string[] = [];
  const offDecisions = organism.observer.bus.on((h) => {
    if (h.kind !== 'decision') return;
    const line = `${new Date(h.ts).toISOString()} ${decisionLine(h.from, h.body as DecisionBody)}`;
    if (tty) decisions.splice(0, Math.max(0, decisions.push(line) - 8));
    else process.stdout.write(`${line}\n`);
  });
  ac.signal.addEventListener('abort', offDecisions);
  if (tty) {
    const draw = () => {
      if (organism.state.state !== 'alive') return;
      const recent = decisions.length > 0 ? `\n\n decisions:\n ${decisions.join('\n ')}` : '';
      process.stdout.write(`\x1b[H\x1b[2J organism ${organism.id} · ${organism.servers.join(', ')} · ${censusSummary(census.living())}\n\n${censusTable(census.list())}${recent}\n\n Ctrl-C to stop\n`);
    };
    const timer = setInterval(draw, Math.max(250, genome.limits.pulseIntervalMs));
    draw();
    ac.signal.addEventListener('abort', () => clearInterval(timer));
  } else {
    process.stdout.write(`${censusTable(census.list())}\n`);
    void (async () => {
      for await (const e of census.events(ac.signal)) {
        const what = e.type === 'state' ? `${e.from} -> ${e.entry.state}${e.entry.cause ? ` (${e.entry.cause})` : ''}` : e.type;
        process.stdout.write(`${new Date().toISOString()} ${e.entry.id} ${e.entry.tissue} pid ${e.entry.pid}: ${what}\n`);
      }
    })();
  }
  // Either a signal, `cellular stop` (a shutdown hormone) or a failure ends the organism.
  while (organism.state.state === 'alive') await sleep(100);
  const final = await organism.stop('ended');
  ac.abort();
  say(`organism ${organism.id} stopped${final.state === 'stopped' && final.stragglers > 0 ? ` (${final.stragglers} stragglers killed)` : ''}`);
  return 0;
}

interface Target {
  stateDir: string;
  id: string;
  servers: string[];
  token: string | null;
  genome: Readonly<Genome>;
  rootPub: Uint8Array;
}

function target(flags: Flags): Target {
  const stateDir = resolve(flags['state-dir'] ?? '.organism');
  const joined = servers(flags);
  const record = joined && flags.id ? undefined : requireRecord(stateDir);
  let genome: Readonly<Genome>;
  try {
    genome = validateGenome(record?.genome ?? readRecord(stateDir)?.genome);
  } catch {
    // Joined by --nats --id without a record here: the defaults' timings are the best guess.
    genome = validateGenome(defaultGenome());
  }
  let rootPub: Uint8Array;
  try {
    rootPub = fromHex(readFileSync(join(stateDir, ROOT_PUB_FILE), 'utf8').trim());
  } catch (cause) {
    throw new CellularError('TRUST_ERR_ROOT_KEY', `cannot read ${join(stateDir, ROOT_PUB_FILE)}: the census verifies every pulse against the organism's root key`, { cause });
  }
  return { stateDir, id: flags.id ?? record!.id, servers: joined ?? record!.servers, token: joined ? null : (record?.token ?? null), genome, rootPub };
}

/** The census as one process sees it: a living cell's view, refreshed by pulses heard here. */
export async function gatherCensus(observer: Observer, limits: Genome['limits']): Promise<CensusEntry[]> {
  const listen = sleep(limits.pulseIntervalMs * 2 + 100);
  let remote: CensusEntry[] = [];
  try {
    remote = openReply<CensusEntry[]>((await observer.nc.request(observer.ns.census, new Uint8Array(0), { timeout: 1_000 })).data);
  } catch {
    // No cell answered: what we hear ourselves is all there is.
  }
  await listen;
  // The cell's reply is data from the network: keep only well-formed rows.
  const merged = new Map((Array.isArray(remote) ? remote : []).filter(isCensusEntry).map((e) => [e.id, e]));
  for (const e of observer.census.list()) {
    const theirs = merged.get(e.id);
    // A death the cell heard announced stands; otherwise the fresher view wins.
    const announcedDead = theirs?.state === 'dead' && theirs.cause !== 'missed-pulses';
    if (!theirs || (!announcedDead && e.lastSeen >= theirs.lastSeen)) merged.set(e.id, e);
  }
  return [...merged.values()].sort((a, b) => a.tissue.localeCompare(b.tissue) || a.born - b.born || a.id.localeCompare(b.id));
}

async function census(flags: Flags): Promise<number> {
  const t = target(flags);
  const observer = await Observer.open({ servers: t.servers, token: t.token, organism: t.id, rootPub: t.rootPub, limits: t.genome.limits, voteDeadlineMs: t.genome.immune?.voteDeadlineMs ?? 3_000, name: 'cellular census', halfLifeOf: (x) => t.genome.tissues[x]?.halfLifeMs ?? 2_000 });
  try {
    const entries = await gatherCensus(observer, t.genome.limits);
    process.stdout.write(flags.json ? `${JSON.stringify(entries, null, 2)}\n` : `${censusTable(entries)}\n${censusSummary(entries)}\n`);
  } finally {
    await observer.close();
  }
  return 0;
}

async function stop(flags: Flags): Promise<number> {
  const t = target(flags);
  const record = readRecord(t.stateDir);
  const rootKey = loadRootKey(t.stateDir);
  const observer = await Observer.open({ servers: t.servers, token: t.token, organism: t.id, rootPub: t.rootPub, rootKey, limits: t.genome.limits, name: 'cellular stop' });
  const timeout = t.genome.limits.shutdownTimeoutMs;
  try {
    observer.bus.publish('shutdown', { reason: 'cellular stop' });
    await observer.nc.flush();
    say(`shutdown sent to organism ${t.id}`);
    if (record && ownerAlive(record)) {
      // grow drains the cells and stops its broker; we only wait for it.
      say(`waiting for grow (pid ${record.grow.pid}) to finish…`);
      if (await waitGone(record.grow.pid, timeout + 10_000)) return 0;
      say(`grow (pid ${record.grow.pid}) did not exit; sweeping cells here`);
    }
    // No live owner: this command finishes the shutdown itself, by the process table.
    const swept = await sweepCells({ organism: t.id, observer, timeoutMs: timeout, intervalMs: t.genome.limits.pulseIntervalMs, reason: 'cellular stop', say });
    if (swept.killed > 0) say(`${swept.killed} stragglers killed`);
  } finally {
    await observer.close();
  }
  if (record?.broker && (await stopBrokerByPid(record.broker.pid, record.broker.config))) say('nats-server stopped');
  if (record) {
    removeRecord(t.stateDir);
    // The dead owner's lock: take it over and let go, so the next grow starts clean.
    try {
      claimStateDir(t.stateDir).release();
    } catch {
      // a new owner took the state dir meanwhile: it is theirs
    }
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const { command, flags } = parse(argv);
  if (flags.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  if (flags.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  switch (command) {
    case 'grow':
      return grow(flags);
    case 'census':
      return census(flags);
    case 'stop':
      return stop(flags);
    default:
      throw new CellularError('CLI_ERR_USAGE', `unknown command ${JSON.stringify(command)}\n\n${HELP}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    say(isCellularError(e) ? `error ${e.code}: ${e.message}` : `error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
