/**
 * `npm test`'s runner: ava, with two guarantees ava alone does not give.
 *
 * 1. It ends. After "Timed out while running tests" ava can hang for good (avajs/ava#3106,
 *    #3373): one CI run sat 90 minutes after its timeout. If ava says it timed out, or runs
 *    past the whole run's budget, its process group is killed.
 * 2. Nothing outlives it. Tests start detached processes (nats-server, cells, Chromium); a
 *    test killed by a timeout never runs its teardown. Every process this run starts
 *    inherits a run mark in its environment; at the end, any process still carrying the
 *    mark (found in /proc, so by pid, and only ones this run started) is killed and listed.
 *    A leak after a green run fails the run: tests must stop what they start.
 *
 * Usage: node dist/test/run.js [ava arguments…]; CELLULAR_TEST_BUDGET_S sets the budget.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';

const MARK = 'CELLULAR_TEST_RUN';
const budgetMs = Number(process.env.CELLULAR_TEST_BUDGET_S ?? 1_800) * 1_000;
/** How long ava gets to exit on its own after it says it timed out. */
const AFTER_TIMEOUT_MS = 20_000;
/** How long marked processes get to finish exiting (a cell mid-apoptosis) before they count as leaked. */
const GRACE_MS = 10_000;

const run = randomUUID();
// ava's package exports hide its CLI entry; it sits beside the main entry.
const avaCli = join(dirname(createRequire(import.meta.url).resolve('ava')), 'cli.mjs');

/** Pids of live processes whose environment carries this run's mark (zombies excluded). */
function marked(): Array<{ pid: number; cmd: string }> {
  const found: Array<{ pid: number; cmd: string }> = [];
  const needle = `${MARK}=${run}`;
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(needle)) continue;
      const state = /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.[1];
      if (state === 'Z') continue;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim();
      found.push({ pid, cmd });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

async function main(): Promise<number> {
  const started = Date.now();
  const ava = spawn(process.execPath, [avaCli, ...process.argv.slice(2)], {
    detached: true, // its own process group, so a hung ava is killed with its workers
    stdio: ['inherit', 'pipe', 'pipe'],
    env: { ...process.env, [MARK]: run },
  });
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const killAva = (why: string) => {
    if (ava.exitCode !== null || ava.signalCode !== null) return;
    process.stderr.write(`\ntest runner: ${why}: killing ava (process group ${ava.pid})\n`);
    try {
      process.kill(-ava.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const watch = (chunk: Buffer) => {
    if (!timedOut && chunk.toString('utf8').includes('Timed out while running tests')) {
      timedOut = true;
      killTimer = setTimeout(() => killAva(`ava timed out and had not exited ${AFTER_TIMEOUT_MS / 1000} s later`), AFTER_TIMEOUT_MS);
    }
  };
  ava.stdout!.on('data', (c: Buffer) => (process.stdout.write(c), watch(c)));
  ava.stderr!.on('data', (c: Buffer) => (process.stderr.write(c), watch(c)));
  const budget = setTimeout(() => killAva(`the run passed its budget of ${budgetMs / 1000} s`), budgetMs);
  // Ctrl-C reaches ava's group too, since it is detached from ours.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => killAva(`${sig}`));
  const code = await new Promise<number>((resolve) => ava.once('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  clearTimeout(budget);
  clearTimeout(killTimer);

  // What the tests left behind: wait out processes that are finishing, then kill the rest.
  let left = marked();
  for (const deadline = Date.now() + GRACE_MS; left.length > 0 && Date.now() < deadline; left = marked()) await sleep(250);
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  if (left.length > 0) {
    process.stderr.write(`\ntest runner: ${left.length} process(es) started by this run outlived it and were killed:\n`);
    for (const p of left) process.stderr.write(`  ${p.pid} ${p.cmd.slice(0, 160)}\n`);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  if (code === 0 && left.length > 0) {
    process.stderr.write(`test runner: the tests passed but leaked processes (${seconds} s): failing the run\n`);
    return 1;
  }
  process.stderr.write(`test runner: ava exited ${code} after ${seconds} s${timedOut ? ' (it had timed out)' : ''}\n`);
  return code === 0 && !timedOut ? 0 : code || 1;
}

process.exitCode = await main();
