import test from 'ava';
import { spawn } from 'node:child_process';
import { OwnUsage, usageOf } from '../../../organism/kernel/process-usage.ts';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

test('process usage - /proc agrees with the process\'s own counters, within a tick', (t) => {
  busy(120);
  const own = process.cpuUsage();
  const read = usageOf(process.pid)!;
  t.truthy(read, 'this process is readable');
  const ownMs = (own.user + own.system) / 1000;
  // /proc counts whole 10 ms ticks, and the own reading came first (CPU time only grows).
  t.true(read.cpuMs >= ownMs - 20 && read.cpuMs <= ownMs + 50, `/proc ${read.cpuMs} ms, getrusage ${ownMs} ms`);
  const rss = process.memoryUsage.rss();
  t.true(Math.abs(read.rss - rss) < 16 * 2 ** 20, `/proc ${read.rss} B, memoryUsage ${rss} B`);
});

test('process usage - a process that is gone, or no pid at all, reads as undefined', async (t) => {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  const pid = child.pid!;
  await new Promise((r) => child.once('exit', r));
  await new Promise((r) => setImmediate(r)); // reaped by libuv by now
  t.is(usageOf(pid), undefined);
  for (const bad of [0, -1, 1.5, Number.NaN]) t.is(usageOf(bad), undefined, String(bad));
});

test('process usage - the CPU percent is the CPU time used over the wall time between reads', async (t) => {
  const u = new OwnUsage();
  const cpuNow = () => {
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  // Around each read, the same two counters taken independently: the percent must lie between
  // what they allow (a loaded host gives this process less of a core; the ratio still holds).
  const c0 = cpuNow();
  const w0 = performance.now();
  u.read();
  const c1 = cpuNow();
  const w1 = performance.now();
  while (cpuNow() - c0 < 100); // 100 ms of CPU, however long that takes
  const c2 = cpuNow();
  const w2 = performance.now();
  const hot = u.read();
  const c3 = cpuNow();
  const w3 = performance.now();
  const low = ((c2 - c1) / (w3 - w0)) * 100;
  const high = ((c3 - c0) / (w2 - w1)) * 100;
  t.true(hot.cpu >= low - 1 && hot.cpu <= high + 1, `busy: ${hot.cpu} % within [${low}, ${high}]`);
  await new Promise((r) => setTimeout(r, 300));
  const cold = u.read();
  t.true(cold.cpu < hot.cpu, `idle ${cold.cpu} % below busy ${hot.cpu} %`);
  t.true(cold.cpuMs >= hot.cpuMs, 'CPU time only grows');
  t.true(cold.rss > 0);
});

test('process usage - a zombie (killed, not yet reaped) reads as gone, not as a process with no memory', async (t) => {
  // The shell starts `sleep 0` in the background, says its pid, and becomes `sleep 5`, which
  // never reaps it: a zombie until the shell's process ends.
  const sh = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => void sh.kill('SIGKILL'));
  const pid = await new Promise<number>((resolve) => sh.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  const state = async () => (await import('node:fs')).readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0];
  const end = Date.now() + 3_000;
  while ((await state()) !== 'Z' && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  t.is(await state(), 'Z', 'the background sleep is a zombie');
  t.is(usageOf(pid), undefined);
  t.truthy(usageOf(sh.pid!), 'its living parent reads as usual');
});
