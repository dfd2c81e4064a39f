/**
 * Each test host its own CPU cgroup (simulations/host-cpu.ts): a command wrapped for a host
 * runs in that host's cgroup from its first instruction, and so does every process it
 * starts; the cgroups are gone after close(). Where this machine has no cpu controller (or
 * the test is not root) the hosts share the CPU, and the test checks that it says why and
 * leaves commands as they were.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { once } from 'node:events';
import { HostCpu } from '../../simulations/host-cpu.ts';
import { uniqueId } from '../helpers/nats.ts';

/** The cpu cgroup path of `pid`, from /proc (v1 "N:cpu[,…]:/path", v2 "0::/path"). */
function cpuGroupOf(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes('cpu'));
  return (v1 ?? lines.find((l) => l.startsWith('0::')) ?? '').split(':').slice(2).join(':');
}

test('host cpu - a host\'s command and its children run in the host\'s own cgroup; close() removes it', async (t) => {
  const tag = uniqueId();
  const cpu = new HostCpu(tag, ['h1', 'h2']);
  t.teardown(() => cpu.close(0));
  if (!cpu.separate) {
    t.log(`no separate CPU here: ${cpu.reason}`);
    t.truthy(cpu.reason, 'says why the hosts share the CPU');
    t.deepEqual(cpu.wrap('h1', ['/bin/true']), ['/bin/true'], 'commands unchanged');
    return;
  }
  // A shell on h1 that starts a child and prints both pids, then waits.
  const [command, ...args] = cpu.wrap('h1', ['/bin/sh', '-c', 'sleep 30 & echo $$ $!; wait']);
  const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const [shell, sleeper] = line.toString().trim().split(' ').map(Number) as [number, number];
  t.teardown(() => {
    for (const pid of [sleeper, shell]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  t.true(cpuGroupOf(shell).endsWith(`cellular-${tag}-h1`), `the command is in h1's cgroup (${cpuGroupOf(shell)})`);
  t.true(cpuGroupOf(sleeper).endsWith(`cellular-${tag}-h1`), 'so is what it started');
  t.false(cpuGroupOf(process.pid).includes(`cellular-${tag}`), 'this process is not');
  // Busy: its cgroup cannot go yet, and close() says so rather than hang.
  const left = await cpu.close(200);
  t.true(left.some((l) => l.startsWith('h1:')), `h1's cgroup, still holding processes, is reported (${left.join('; ')})`);
  process.kill(sleeper, 'SIGKILL');
  process.kill(shell, 'SIGKILL');
  await once(child, 'exit');
  // A second HostCpu of the same tag adopts and removes what is left.
  const again = new HostCpu(tag, ['h1', 'h2']);
  t.deepEqual(await again.close(2_000), [], 'both cgroups removed once empty');
  t.false(existsSync(`/sys/fs/cgroup/cpu/cellular-${tag}-h1`));
});
