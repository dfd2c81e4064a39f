/**
 * Test helper: runs the real `cellular` CLI as a child process (grow, census, stop) and
 * cleans up by pid in t.teardown: grow first (SIGINT, as a user would), then anything it
 * left, each pid checked against its command line before it is signalled.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { fromHex } from '../../organism/kernel/keys.ts';
import { Observer } from '../../organism/grow/observer.ts';
import { localCells, signalCell, signalIfOurs, waitGone } from '../../organism/kernel/processes.ts';
import { readRecord, type OrganismRecord } from '../../organism/grow/record.ts';
import { recordAccess } from '../../organism/grow/commands/target.ts';
import { loadGenome, type Genome } from '../../organism/kernel/genome/index.ts';
import { tempDir } from './nats.ts';
import { reapOnExit } from './reaper.ts';
import { within } from '../../organism/kernel/within.ts';

export const CLI = fileURLToPath(new URL('../../organism/grow/cli.js', import.meta.url));

/** Fast pulses keep tests short: suspect after 0.75 s, dead after 1.5 s (slack for a loaded 2-core machine). */
/** The organism's own tissues only (stem, echo): tests of the swarm itself leave the messenger out. */
export const ORGANISM_ONLY = ['tissues.receiver=null', 'tissues.worker=null', 'tissues.dashboard=null'];
export const FAST = ['limits.pulseIntervalMs=250', 'limits.suspectAfterPulses=3', 'limits.deadAfterPulses=6', 'limits.drainTimeoutMs=3000', 'limits.shutdownTimeoutMs=8000', ...ORGANISM_ONLY];

export interface Grown {
  child: ChildProcess;
  stateDir: string;
  record: OrganismRecord;
  genome: Readonly<Genome>;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with grow's exit code. */
  exited: Promise<number | null>;
}

export interface GrowOptions {
  sets?: string[];
  args?: string[];
  env?: NodeJS.ProcessEnv;
  stateDir?: string;
}

/** Starts `cellular grow --plain` and resolves once it reports the organism alive. */
export async function grow(t: ExecutionContext, options: GrowOptions = {}): Promise<Grown> {
  const stateDir = options.stateDir ?? join(tempDir(t), 'state');
  const sets = [...FAST, ...(options.sets ?? [])];
  const args = [CLI, 'grow', '--plain', '--state-dir', stateDir, ...sets.flatMap((s) => ['--set', s]), ...(options.args ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // 'close', not 'exit': by then every byte grow wrote has been read.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const reapAll = () => {
    // Every cell process carrying this organism's id, checked by its exact markers.
    const id = existsSync(join(stateDir, 'id')) ? readFileSync(join(stateDir, 'id'), 'utf8').trim() : undefined;
    if (id) for (const c of localCells(id)) signalCell(c.pid, c.cell, id, 'SIGKILL');
    const record = readRecord(stateDir);
    if (record?.broker) signalIfOurs(record.broker.pid, [`-c ${record.broker.config}`], 'SIGKILL');
  };
  const unreap = reapOnExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    reapAll();
  });
  t.teardown(async () => {
    // A failed test shows what grow printed: census changes and every homeostasis decision.
    if (!t.passed) console.error(`--- grow output (${stateDir}):\n${out.split('\n').slice(-60).join('\n')}\n${err.split('\n').slice(-20).join('\n')}`);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const done = await within(exited.then(() => true), 15_000, false);
      if (!done) child.kill('SIGKILL');
    }
    // Whatever grow did not clean up is a leak the test will have reported; still end it.
    reapAll();
    unreap();
  });
  const deadline = Date.now() + 30_000;
  while (!/alive: \d+ cells/.test(err)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`grow did not come alive (exit ${child.exitCode}):\n${err}\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const record = readRecord(stateDir)!;
  const genome = loadGenome({ sets });
  return { child, stateDir, record, genome, stdout: () => out, stderr: () => err, exited };
}

/** Runs `cellular <args>` to completion. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `cellular <args>` without blocking this process (observers in it keep hearing pulses). */
export async function cliAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { status, stdout, stderr };
}

/** `cellular census --json`, parsed. */
export async function censusJson(g: Grown): Promise<CensusEntry[]> {
  const r = await cliAsync(['census', '--json', '--state-dir', g.stateDir]);
  if (r.status !== 0) throw new Error(`census failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as CensusEntry[];
}

/** An in-test observer of a grown organism (real NATS connection, real verification). */
export async function observe(t: ExecutionContext, g: Grown): Promise<Observer> {
  const rootPub = fromHex(readFileSync(join(g.stateDir, 'root.pub'), 'utf8').trim());
  const access = await recordAccess(g.stateDir, g.record, 'grow', 'test');
  const observer = await Observer.open({ servers: g.record.servers, token: g.record.token, ...(access.user ? { user: access.user } : {}), ...(access.tls ? { tls: access.tls } : {}), organism: g.record.id, rootPub, limits: g.genome.limits, name: 'test observer' });
  t.teardown(() => observer.close());
  return observer;
}

/** Pids of the cell processes of `organism` on this host. */
export function cellsOf(organism: string): number[] {
  return localCells(organism).map((c) => c.pid);
}

/** Waits until `predicate` holds, polling; fails the wait after `timeoutMs`. */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export { waitGone };
