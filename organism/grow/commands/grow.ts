/**
 * `cellular grow`: the organism from the flags, grown and kept alive until a signal,
 * `cellular stop` (a shutdown hormone) or a failure ends it; whatever ends grow itself
 * ends the organism too (invariant 5). On the way it says where the messenger and the
 * dashboard answer, and shows the census live (organism/grow/live-view.ts).
 */
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCluster } from '../../kernel/cluster.ts';
import type { CensusEntry } from '../../kernel/census.ts';
import { loadGenome, type Genome } from '../../kernel/genome/index.ts';
import { checkHostName, HOST_ENV } from '../../kernel/host.ts';
import { CellularError, isCellularError } from '../../wire/errors.ts';
import { showLiveView } from '../live-view.ts';
import { Organism } from '../organism.ts';
import { say, servers, type Flags } from './usage.ts';

export async function grow(flags: Flags): Promise<number> {
  const { organism, abort } = organismFrom(flags);
  const stopping = stopOnSignals(organism, abort);
  const stateDir = organism.stateDir;
  say(`growing an organism (state ${stateDir})`);
  let living: CensusEntry[];
  try {
    await organism.start();
    living = await organism.waitForPopulation(Math.max(15_000, organism.genome.limits.pulseIntervalMs * 10));
  } catch (e) {
    // A half-grown organism is still stopped cleanly: nothing may outlive a failed grow.
    await organism.stop(`grow failed: ${(e as Error).message}`);
    // Stopped on request (a signal, or `cellular stop` mid-growth) is a clean exit.
    if (stopping() || isCellularError(e, 'CELL_ERR_CLOSED') || isCellularError(e, 'CELL_ERR_ABORTED')) return 0;
    throw e;
  }
  say(`organism ${organism.id} alive: ${living.length} cells on ${organism.servers.join(', ')}`);
  say(`census: npx cellular census --state-dir ${stateDir}    stop: Ctrl-C or npx cellular stop --state-dir ${stateDir}`);
  await announceAddresses(organism, living);

  const view = new AbortController();
  showLiveView(organism, { tty: process.stdout.isTTY === true && !flags.plain, signal: view.signal });
  // Either a signal, `cellular stop` (a shutdown hormone) or a failure ends the organism.
  while (organism.state.state === 'alive') await sleep(100);
  const final = await organism.stop('ended');
  view.abort();
  say(`organism ${organism.id} stopped${final.state === 'stopped' && final.stragglers > 0 ? ` (${final.stragglers} stragglers killed)` : ''}`);
  return 0;
}

/** The organism the flags describe (not started), and the controller a signal aborts its start with. */
function organismFrom(flags: Flags): { organism: Organism; abort: AbortController } {
  const genome: Readonly<Genome> = loadGenome({ ...(flags.genome ? { file: flags.genome } : {}), sets: flags.set ?? [] });
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
  return { organism, abort };
}

/**
 * SIGINT, SIGTERM and SIGHUP stop the organism (a second one only says it is stopping).
 * Whatever kills grow itself must not leave the organism behind (invariant 5): a pipe
 * closed under us (`npm run grow | tee`, Ctrl-C kills tee too) is ignored; anything else
 * uncaught ends grow, and the exit handler signals every cell and the broker by pid.
 * Returns whether a signal asked for the stop.
 */
function stopOnSignals(organism: Organism, abort: AbortController): () => boolean {
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
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  process.on('exit', () => organism.emergencyStop());
  process.on('uncaughtException', (e) => {
    say(`error: ${e.stack ?? e.message}; stopping the organism`);
    void organism.stop(`grow failed: ${e.message}`).finally(() => process.exit(1));
  });
  return () => stopping;
}

/** Where the messenger (its front door, if ours) and the dashboard (with its controls token) answer. */
async function announceAddresses(organism: Organism, living: CensusEntry[]): Promise<void> {
  const genome = organism.genome;
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
      : `dashboard: starting (its URL will be in the census); controls token in ${join(organism.stateDir, 'dashboard.token')}`);
  }
}

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
