#!/usr/bin/env node
/**
 * `cellular` — grow an organism, read its census, stop it, back it up and restore it. Every flag is documented in
 * README.md ("Commands"); `cellular help` prints the same summary.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { natsOptions } from '../kernel/access.ts';
import { backupOrganism, progressPrinter, readManifest, restoreOrganism } from './backup.ts';
import { Namespace } from '../kernel/namespace.ts';
import { stopBrokerByPid } from './broker.ts';
import { BROKER_TOKEN_FILE, loadOrCreateBrokerToken, parseCluster } from '../kernel/cluster.ts';
import { checkHostName, HOST_ENV } from '../kernel/host.ts';
import { censusSummary, censusTable, decisionLine } from './census-table.ts';
import type { DecisionBody } from '../kernel/vocabulary.ts';
import { isCensusEntry, type CensusEntry } from '../kernel/census.ts';
import { CellularError, isCellularError } from '../wire/errors.ts';
import { defaultGenome, loadGenome, validateGenome, type Genome } from '../kernel/genome/index.ts';
import { fromHex } from '../kernel/keys.ts';
import { Observer } from './observer.ts';
import { nginxCommand, nginxRenderOptions } from './nginx-door.ts';
import { Organism } from './organism.ts';
import { sweepCells } from './sweep.ts';
import { waitGone } from '../kernel/processes.ts';
import { claimStateDir, ownerAlive, readRecord, removeRecord, requireRecord, type OrganismRecord } from './record.ts';
import { loadRootKey, ROOT_PUB_FILE } from './root-key.ts';
import { openReply } from '../kernel/reply.ts';

export const HELP = `cellular — a messenger server that is a swarm of processes

Usage:
  cellular grow   [--state-dir DIR] [--genome FILE] [--set PATH=VALUE]... [--nats URL[,URL...]]
                  [--id ID] [--no-install] [--plain] [--host NAME]
                  [--cluster NAME --routes HOST:PORT[,HOST:PORT...] [--cluster-port PORT]]
  cellular census [--state-dir DIR] [--json] [--nats URL[,URL...]] [--id ID]
  cellular stop   [--state-dir DIR] [--nats URL[,URL...]] [--id ID]
  cellular backup --out DIR [--state-dir DIR] [--nats URL[,URL...]] [--id ID]
  cellular restore --from DIR [--force] [--state-dir DIR] [--nats URL[,URL...]] [--id ID]
  cellular nginx  [--state-dir DIR | --nats URL[,URL...] --id ID] [--listen HOST:PORT] [--out FILE]
                  [--watch] [--run | --nginx-pid FILE] [--server-name NAME] [--public-url URL]
                  [--tls-cert FILE --tls-key FILE]
  cellular help | --help | --version

Options:
  --state-dir DIR   organism state (root key, broker store, logs); default .organism
  --genome FILE     JSON genome merged over the defaults
  --set PATH=VALUE  override one genome field, e.g. --set limits.pulseIntervalMs=250 (repeatable)
  --nats URLS       join these NATS servers instead of starting a private nats-server
  --id ID           organism id (namespace org.<id>.); default: kept in the state dir
  --no-install      never install nats-server with apt-get, even as root on Debian
  --host NAME       this host's name in the census (default: the machine's hostname)
  --cluster NAME    start this host's nats-server as a member of NATS cluster NAME (with --routes);
                    every host shares root.key, root.pub, broker.token and the --id (docs/deployment.md)
  --routes LIST     the cluster members' route addresses host:port (this host's may be listed)
  --cluster-port P  the route port this member listens on (on broker.host); default 6222
  --plain           log census changes and homeostasis decisions as lines instead of redrawing a table
  --json            census as a JSON array (like pm2 jlist)
  --out DIR         backup: snapshot every stream and bucket into DIR (new or empty), with manifest.json
  --out FILE        nginx: write the config here (default: stdout; with --watch/--run <state-dir>/nginx/nginx.conf)
  --listen HOST:PORT  nginx: where the front door listens; default 127.0.0.1:8088 (loopback only)
  --watch           nginx: keep the config current as receivers come and go (debounced 500 ms)
  --run             nginx: also run Debian's nginx (prefix <state-dir>/nginx), reload it, stop it on exit
  --nginx-pid FILE  nginx: reload (SIGHUP) the nginx master whose pid is in FILE after each write
  --server-name NAME  nginx: server_name (comma-separated); other Host names get no answer
  --public-url URL  nginx: the URL browsers use, answered on /receivers; default from the listen/name
  --tls-cert FILE   nginx: TLS certificate chain (with --tls-key): listen ... ssl
  --tls-key FILE    nginx: TLS private key
  --from DIR        restore: the backup directory; the organism id defaults to the backup's with --nats
  --force           restore: even while the organism is alive, deleting the streams the backup holds

Environment:
  NATS_SERVER_BIN     path of the nats-server binary to use
  NGINX_BIN           path of the nginx binary for cellular nginx (default /usr/sbin/nginx)
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
  host: { type: 'string' },
  cluster: { type: 'string' },
  routes: { type: 'string' },
  'cluster-port': { type: 'string' },
  plain: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  out: { type: 'string' },
  from: { type: 'string' },
  listen: { type: 'string' },
  watch: { type: 'boolean', default: false },
  run: { type: 'boolean', default: false },
  'nginx-pid': { type: 'string' },
  'server-name': { type: 'string' },
  'public-url': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  force: { type: 'boolean', default: false },
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
  if (flags.host !== undefined) process.env[HOST_ENV] = checkHostName(flags.host); // inherited by every cell
  if ((flags.routes !== undefined || flags['cluster-port'] !== undefined) && flags.cluster === undefined) throw new CellularError('CLI_ERR_USAGE', '--routes and --cluster-port need --cluster NAME');
  if (flags.cluster !== undefined && joined) throw new CellularError('CLI_ERR_USAGE', '--cluster starts a broker of our own; --nats joins one: use one or the other');
  const cluster = flags.cluster === undefined ? undefined : parseCluster(flags.cluster, flags.routes, flags['cluster-port']);
  const abort = new AbortController();
  const organism = new Organism({
    ...(cluster ? { cluster } : {}),
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
  // Joining a cluster by --nats: its members' shared token, if this state dir holds it.
  const shared = joined && existsSync(join(stateDir, BROKER_TOKEN_FILE)) ? loadOrCreateBrokerToken(stateDir) : null;
  return { stateDir, id: flags.id ?? record!.id, servers: joined ?? record!.servers, token: joined ? shared : (record?.token ?? null), genome, rootPub };
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

/** Where backup and restore reach NATS: --nats (with --id, or the backup's id) or the state dir's record; no root key needed. */
function reach(flags: Flags, backupOf?: string): { id: string; servers: string[]; token: string | null; record: OrganismRecord | undefined } {
  const stateDir = resolve(flags['state-dir'] ?? '.organism');
  const joined = servers(flags);
  const record = readRecord(stateDir);
  const id = flags.id ?? (joined ? backupOf : undefined) ?? requireRecord(stateDir).id;
  // As target(): joining a cluster by --nats uses its members' shared token when this state dir holds it.
  const shared = joined && existsSync(join(stateDir, BROKER_TOKEN_FILE)) ? loadOrCreateBrokerToken(stateDir) : null;
  return { id, servers: joined ?? requireRecord(stateDir).servers, token: joined ? shared : (record?.token ?? null), record };
}

/** A short-lived connection for backup and restore: Ctrl-C aborts, every wait is bounded in organism/grow/backup.ts. */
async function withNats<T>(r: { servers: string[]; token: string | null }, name: string, run: (nc: NatsConnection, signal: AbortSignal) => Promise<T>): Promise<T> {
  let nc: NatsConnection;
  try {
    nc = await connect({ ...natsOptions(r, name), maxReconnectAttempts: 3 });
  } catch (cause) {
    throw new CellularError('BROKER_ERR_CONNECT', `cannot reach NATS at ${r.servers.join(', ')}: ${(cause as Error).message}`, { cause });
  }
  const abort = new AbortController();
  const onSignal = () => abort.abort(new CellularError('CELL_ERR_ABORTED', `${name} interrupted`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await run(nc, abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await nc.close().catch(() => {});
  }
}

async function backup(flags: Flags): Promise<number> {
  if (!flags.out) throw new CellularError('CLI_ERR_USAGE', `backup needs --out DIR\n\n${HELP}`);
  const r = reach(flags);
  const out = resolve(flags.out);
  const manifest = await withNats(r, 'cellular backup', (nc, signal) => backupOrganism(nc, r.id, out, { signal, progress: progressPrinter('backup', say) }));
  say(`backup of organism ${r.id}: ${manifest.streams.length} streams and buckets in ${out}`);
  return 0;
}

async function restore(flags: Flags): Promise<number> {
  if (!flags.from) throw new CellularError('CLI_ERR_USAGE', `restore needs --from DIR\n\n${HELP}`);
  const from = resolve(flags.from);
  // Checked before anything is reached: a bad backup fails fast and touches nothing.
  const manifest = readManifest(from);
  const r = reach(flags, manifest.organism);
  await withNats(r, 'cellular restore', async (nc, signal) => {
    // Restoring under living cells would rewrite what they are reading and writing. Only this
    // NATS counts: the same organism id may well live on another server (the one backed up).
    const alive: string[] = [];
    const sameServers = r.record?.id === r.id && r.servers.join() === r.record.servers.join();
    if (sameServers && ownerAlive(r.record!)) alive.push(`its grow runs (pid ${r.record!.grow.pid})`);
    const answered = await nc.request(new Namespace(r.id).census, new Uint8Array(0), { timeout: 750 }).then(() => true, () => false);
    if (answered) alive.push('a cell answered its census');
    if (alive.length > 0 && !flags.force) throw new CellularError('BACKUP_ERR_ALIVE', `organism ${r.id} is alive: ${alive.join('; ')}. Stop it first (cellular stop), or pass --force`);
    if (alive.length > 0) say(`warning: organism ${r.id} is alive (${alive.join('; ')}); restoring anyway (--force)`);
    await restoreOrganism(nc, r.id, from, { force: flags.force, signal, progress: progressPrinter('restore', say) });
  });
  say(`organism ${r.id} restored from ${from} (backup of ${manifest.created}): ${manifest.streams.length} streams and buckets`);
  return 0;
}

/** `cellular nginx`: the front door's config from the census (organism/grow/nginx-door.ts). */
async function nginx(flags: Flags): Promise<number> {
  const nf = { listen: flags.listen, out: flags.out, watch: flags.watch, run: flags.run, serverName: flags['server-name'], tlsCert: flags['tls-cert'], tlsKey: flags['tls-key'], nginxPid: flags['nginx-pid'], publicUrl: flags['public-url'] };
  nginxRenderOptions(nf); // bad flags fail before the organism is reached
  const t = target(flags);
  const observer = await Observer.open({ servers: t.servers, token: t.token, organism: t.id, rootPub: t.rootPub, limits: t.genome.limits, voteDeadlineMs: t.genome.immune?.voteDeadlineMs ?? 3_000, name: 'cellular nginx' });
  try {
    return await nginxCommand({
      flags: nf,
      stateDir: t.stateDir, census: observer.census, say, gather: () => gatherCensus(observer, t.genome.limits),
      receiverTissues: new Set(Object.entries(t.genome.tissues).filter(([, x]) => x.module === 'receiver').map(([name]) => name)),
    });
  } finally {
    await observer.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const { command, flags } = parse(argv);
  if (flags.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
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
    case 'backup':
      return backup(flags);
    case 'restore':
      return restore(flags);
    case 'nginx':
      return nginx(flags);
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
