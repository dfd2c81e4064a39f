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

test('process usage - a busy interval reads as most of a core, an idle one as little', async (t) => {
  const u = new OwnUsage();
  u.read();
  busy(200);
  const hot = u.read();
  t.true(hot.cpu > 30, `busy: ${hot.cpu} %`);
  await new Promise((r) => setTimeout(r, 300));
  const cold = u.read();
  t.true(cold.cpu < 25, `idle: ${cold.cpu} %`);
  t.true(cold.cpuMs >= hot.cpuMs, 'CPU time only grows');
  t.true(cold.rss > 0);
});
