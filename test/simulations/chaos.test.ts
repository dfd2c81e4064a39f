/**
 * The short chaos run of `npm test` (the full set is `npm run chaos -- all`): a chaos monkey
 * and a flooding cell under encrypted chat load, each on a fresh organism, with every
 * invariant of the body plan checked; the CLI's list, its refusal of an unknown scenario,
 * and Ctrl-C in the middle of a run, which must leave nothing running.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { localCells } from '../../organism/kernel/processes.ts';
import { runChaos } from '../../simulations/chaos/runner.ts';
import { CHAOS_SCENARIOS, chaosScenario } from '../../organism/chaos/scenarios.ts';
import { seeded } from '../../organism/chaos/seeded.ts';
import { until } from '../helpers/grow.ts';
import { tempDir } from '../helpers/nats.ts';

const CHAOS = fileURLToPath(new URL('../../simulations/chaos/cli.js', import.meta.url));

test('chaos - the same seed makes the same choices', (t) => {
  fc.assert(fc.property(fc.nat({ max: 2 ** 32 - 1 }), (seed) => {
    const a = seeded(seed);
    const b = seeded(seed);
    const xs = Array.from({ length: 20 }, () => a());
    t.deepEqual(Array.from({ length: 20 }, () => b()), xs);
    return xs.every((x) => x >= 0 && x < 1);
  }), { numRuns: 100 });
});

for (const [name, durationS] of [['monkey', 12], ['flood', 10]] as const) {
  test.serial(`chaos - ${name}: every invariant holds`, async (t) => {
    const lines: string[] = [];
    const r = await runChaos({
      scenario: chaosScenario(name)!, seed: 42, durationS, rate: 20, clients: 4, stateDir: tempDir(t),
      progress: () => undefined, say: (l) => lines.push(l),
    });
    for (const i of r.invariants) t.log(`${i.pass ? 'pass' : 'FAIL'} ${i.name}: ${i.value}`);
    if (!r.pass) t.log(lines.slice(-40).join('\n'));
    t.true(r.counts.acked > durationS * 10, `the chat ran (${r.counts.acked} acknowledged)`);
    t.true(r.marks.length >= 1, 'the fault happened');
    t.deepEqual(r.invariants.filter((i) => !i.pass).map((i) => `${i.name}: ${i.value}`), []);
    t.deepEqual(localCells(r.organism), [], 'nothing of the organism left');
  });
}

test.serial('chaos - the CLI lists its scenarios and refuses an unknown one', async (t) => {
  const list = await runCli(['list']);
  t.is(list.status, 0);
  for (const s of CHAOS_SCENARIOS) t.regex(list.stdout, new RegExp(`^${s.name} `, 'm'));
  const bad = await runCli(['meteor']);
  t.is(bad.status, 1);
  t.regex(bad.stderr, /CLI_ERR_USAGE: unknown scenario "meteor"; scenarios: spike, ramp, monkey/);
  const badSeed = await runCli(['monkey', '--seed', 'x']);
  t.regex(badSeed.stderr, /--seed must be a whole number/);
});

test.serial('chaos - Ctrl-C stops a run cleanly: exit 130, no report, nothing left running', async (t) => {
  const dir = tempDir(t);
  const child = spawn(process.execPath, [CHAOS, 'monkey', '--seed', '5', '--duration', '60', '--state-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('close', r));
  t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
  await until(() => /monkey \d+\/60 s/.test(err), 60_000, 'the run to start');
  const run = readdirSync(dir).find((d) => d.startsWith('monkey-'))!;
  const id = readFileSync(join(dir, run, 'id'), 'utf8').trim();
  t.true(localCells(id).length >= 4, 'the organism runs');
  child.kill('SIGINT');
  t.is(await exited, 130, err.slice(-2000));
  t.regex(err, /stopped cleanly; no report written/);
  t.deepEqual(localCells(id), [], 'no cell left');
  t.false(existsSync(join(dir, 'reports')), 'no report for an interrupted run');
});

function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CHAOS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })));
}
