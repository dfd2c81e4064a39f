/**
 * One organism's grows on the test hosts (simulations/test-hosts.ts): each host runs the
 * real `cellular grow --cluster … --routes …` with its own nats-server in its own state
 * directory, and all share one root key, broker token, dashboard token and CA, copied from
 * the first host's directory as docs/deployment.md tells an operator to. Used by the
 * multi-host simulation (simulations/multihost.ts) and the scale run across hosts
 * (simulations/scale-hosts.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOrCreateBrokerToken, BROKER_TOKEN_FILE } from '../organism/kernel/cluster.ts';
import { loadOrCreateDashboardToken, DASHBOARD_TOKEN_FILE } from '../organism/kernel/dashboard-token.ts';
import { CA_CERT_FILE, CA_KEY_FILE, loadOrCreateCa } from '../organism/grow/organism-ca.ts';
import { loadOrCreateRootKey, ROOT_KEY_FILE, ROOT_PUB_FILE } from '../organism/grow/root-key.ts';
import { readRecord } from '../organism/grow/record.ts';
import { localCells, signalCell, signalIfOurs } from '../organism/kernel/processes.ts';
import type { TestHost } from './test-hosts.ts';
import type { HostCpu } from './host-cpu.ts';
import type { Observer } from '../organism/grow/observer.ts';
import { within } from '../organism/kernel/within.ts';

const CLI = fileURLToPath(new URL('../organism/grow/cli.js', import.meta.url));

/** One host's grow as started, with what it printed (ms since the run began). */
export interface Grown {
  host: TestHost;
  child: ChildProcess;
  dir: string;
  lines: { t: number; line: string }[];
  /** True once grow says the organism is alive; false if it exits first. */
  alive: Promise<boolean>;
}

/**
 * Each host's state directory under `base`, the first one holding the organism's secrets
 * and the others a copy of them. Returns the directories by host name and the broker token.
 */
export function prepareHostDirs(hosts: readonly TestHost[], base: string, organism: string): { dirs: Map<string, string>; first: string; token: string } {
  const dirs = new Map(hosts.map((h) => [h.name, join(base, h.name)]));
  const first = dirs.get(hosts[0]!.name)!;
  loadOrCreateRootKey(first);
  const token = loadOrCreateBrokerToken(first);
  loadOrCreateDashboardToken(first);
  loadOrCreateCa(first, organism);
  for (const [, dir] of dirs) {
    if (dir === first) continue;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const f of [ROOT_KEY_FILE, ROOT_PUB_FILE, BROKER_TOKEN_FILE, DASHBOARD_TOKEN_FILE, CA_CERT_FILE, CA_KEY_FILE]) copyFileSync(join(first, f), join(dir, f));
  }
  return { dirs, first, token };
}

export interface GrowOnHostOptions {
  host: TestHost;
  dir: string;
  organism: string;
  /** Every member's route address (ip:port). */
  routes: string;
  routePort: number;
  /** Genome --set values (this host's broker.host and messenger.host are added). */
  sets: readonly string[];
  /** Ms since the run began, for the lines' timestamps. */
  at: () => number;
  /** Each line grow prints, as it comes. */
  onLine?: (line: string) => void;
  /** Extra environment for grow (and so its cells). */
  env?: NodeJS.ProcessEnv;
  /** Each host's own CPU cgroup (simulations/host-cpu.ts): grow and all it starts run in its host's. */
  cpu?: HostCpu;
}

/** Starts grow on one host; `alive` resolves once it says the organism is alive. */
export function growOnHost(o: GrowOnHostOptions): Grown {
  const { host: h } = o;
  const command = h.command([
    process.execPath, CLI, 'grow', '--plain', '--host', h.name, '--id', o.organism, '--state-dir', o.dir, '--cluster', 'cellular', '--routes', o.routes, '--cluster-port', String(o.routePort),
    ...[...o.sets, `broker.host=${h.ip}`, `messenger.host=${h.ip}`].flatMap((s) => ['--set', s]),
  ]);
  const argv = o.cpu ? o.cpu.wrap(h.name, command) : command;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...(o.env ? { env: { ...process.env, ...o.env } } : {}) });
  const g: Grown = { host: h, child, dir: o.dir, lines: [], alive: Promise.resolve(false) };
  // Kept beside the host's state, whole: a grow that fails says why in its last lines.
  const out = createWriteStream(join(o.dir, 'grow.out'), { flags: 'a' });
  out.on('error', () => {}); // the state dir gone (the run being cleaned up): the lines are in `lines` still
  child.once('close', () => out.end());
  let buf = '';
  let onAlive: (v: boolean) => void = () => {};
  g.alive = new Promise((r) => (onAlive = r));
  const read = (d: Buffer) => {
    buf += d.toString();
    for (let k = buf.indexOf('\n'); k >= 0; k = buf.indexOf('\n')) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 1);
      g.lines.push({ t: o.at(), line });
      out.write(`${line}\n`);
      o.onLine?.(line);
      if (/^organism \S+ alive:/.test(line)) onAlive(true);
    }
  };
  child.stdout!.on('data', read);
  child.stderr!.on('data', read);
  child.once('exit', () => onAlive(false));
  return g;
}

/**
 * Ends an organism on the test hosts: a root-signed shutdown through `observer` (its cells
 * drain), up to `waitMs` for every grow to exit, the observer closed, then kill -9 of
 * whatever of it is left on each host. Returns what had to be killed (an orphan each).
 */
export async function stopHosts(grown: Iterable<Grown>, organism: string, observer: Observer | undefined, reason: string, waitMs: number): Promise<string[]> {
  const all = [...grown];
  try {
    observer?.bus.publish('shutdown', { reason });
    await observer?.nc.flush();
  } catch {
    // a broker may be gone: the pids below still end everything
  }
  await within(Promise.all(all.map((g) => (g.child.exitCode === null && g.child.signalCode === null ? new Promise((r) => g.child.once('exit', r)) : undefined))), waitMs, []);
  await observer?.close().catch(() => {});
  return all.flatMap((g) => killHost(g, organism));
}

/** kill -9 of everything of one host: its grow, its nats-server (pid from its record) and its cells; says what it killed. */
export function killHost(g: Grown, organism: string): string[] {
  const killed: string[] = [];
  if (g.child.pid && g.child.exitCode === null && g.child.signalCode === null) {
    killed.push(`grow ${g.host.name} (pid ${g.child.pid})`);
    g.child.kill('SIGKILL');
  }
  const record = readRecord(g.dir);
  if (record?.broker && signalIfOurs(record.broker.pid, [`-c ${record.broker.config}`], 'SIGKILL')) killed.push(`nats-server ${g.host.name} (pid ${record.broker.pid})`);
  for (const c of localCells(organism, g.host.name)) if (signalCell(c.pid, c.cell, organism, 'SIGKILL')) killed.push(`${c.cell} (pid ${c.pid})`);
  return killed;
}
