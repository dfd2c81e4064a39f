/**
 * The shared phase (organism/kernel/phase.ts), on real timers. An idle cell's cost is its
 * wakeups, so what is checked is where in the interval each run is due, and that while the
 * digest runs the beat, the fallback (on the pulse's instant) does not run it too.
 */
import test from 'ava';
import { beatNow, everyPhase, FALLBACK_STRIDES, nextPhase, onBeat, onStride, PHASE, strideMs, strideSlackMs } from '../../../organism/kernel/phase.ts';

/** Resolves once `ok()` holds, looking every 5 ms (each test bounds its own wait by ava's timeout). */
function until(ok: () => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (ok()) {
        clearInterval(check);
        resolve();
      }
    }, 5);
  });
}

test('phase - nextPhase is the next instant at that fraction of the interval, strictly after now', (t) => {
  t.is(nextPhase(1_000, 500, 0), 1_500);
  t.is(nextPhase(999, 500, 0), 1_000);
  t.is(nextPhase(1_000, 500, 0.25), 1_125);
  t.is(nextPhase(1_125, 500, 0.25), 1_625);
  t.is(nextPhase(1_124, 500, 0.5), 1_250);
});

test('phase - everyPhase runs on its phase of the wall clock, from the next one on, until stopped', async (t) => {
  const interval = 120;
  const dues: number[] = [];
  const timer = everyPhase(interval, PHASE.digest, (due) => dues.push(due));
  await until(() => dues.length >= 3);
  timer.stop();
  const seen = dues.length;
  for (const due of dues) t.is(due % interval, interval * PHASE.digest);
  for (let i = 1; i < dues.length; i++) t.true(dues[i]! - dues[i - 1]! >= interval, 'one run per interval at most');
  await new Promise((r) => setTimeout(r, interval * 2));
  t.is(dues.length, seen, 'nothing runs after stop()');
});

test('phase - without digests the beat runs on the pulse phase; a digest runs it at once, and the next pulse-phase fallback stays idle', async (t) => {
  // An interval no other test in this process uses: the beat is per process and interval.
  const interval = 400;
  const dues: number[] = [];
  const beat = onBeat({ pulseIntervalMs: interval }, (due) => dues.push(due));
  t.teardown(() => beat.stop());
  const waitFor = (n: number) => until(() => dues.length >= n);
  await waitFor(2);
  // The fallback shares the pulse's instant, when a cell is awake anyway.
  for (const due of dues) t.is(due % interval, interval * PHASE.pulse);
  // The digest comes a quarter interval after the pulse: the beat runs then, once …
  const pulse = everyPhase(interval, PHASE.digest, () => beatNow({ pulseIntervalMs: interval }));
  t.teardown(() => pulse.stop());
  const before = dues.length;
  await waitFor(before + 3);
  pulse.stop();
  const byDigest = dues.slice(before);
  // (A digest beat is due when it runs: around the digest's phase, far from the pulse's. A
  // Node timer may fire a millisecond before its time by Date.now(): seen at 99 ms of 100.)
  for (const due of byDigest) t.true(due % interval >= interval * PHASE.digest - 5 && due % interval < interval * PHASE.digest + 100, `a beat at ${due % interval} ms into the interval: with the digest, not at the fallback`);
  // … and at most once per half interval, however often asked.
  const n = dues.length;
  beatNow({ pulseIntervalMs: interval });
  t.is(dues.length, n);
});

test('phase - the calm stride: its intervals are those whose start is a multiple of the stride, and its slack is the stride less one interval', (t) => {
  const c = { pulseIntervalMs: 500, calmStride: 4 };
  t.is(strideMs(c), 2_000);
  t.is(strideSlackMs(c), 1_500);
  t.is(strideSlackMs({ pulseIntervalMs: 500 }), 0, 'no stride: no slack');
  t.true(onStride(4_000, c));
  t.true(onStride(4_499, c));
  t.false(onStride(4_500, c));
  t.false(onStride(5_999, c));
  t.true(onStride(6_000, c));
  t.true(onStride(123_456, { pulseIntervalMs: 500 }), 'stride 1: every interval');
});

test('phase - with a calm stride the fallback beat runs only on the stride, so a calm cell without digests wakes once a stride', async (t) => {
  // A cadence no other test in this process uses: the beat is per process and cadence.
  const c = { pulseIntervalMs: 90, calmStride: 3 };
  const dues: number[] = [];
  const beat = onBeat(c, (due) => dues.push(due));
  t.teardown(() => beat.stop());
  await until(() => dues.length >= 3);
  beat.stop();
  for (const due of dues) t.is(due % strideMs(c), 0, `a fallback beat at ${due % strideMs(c)} ms into the stride`);
  for (let i = 1; i < dues.length; i++) t.true(dues[i]! - dues[i - 1]! >= strideMs(c), 'once a stride at most');
});

test('phase - while digests come, only digests beat; when they stop, the fallback beats on every stride instant from its next look on', async (t) => {
  // A cadence no other test in this process uses: the beat is per process and cadence.
  const c = { pulseIntervalMs: 60, calmStride: 2 };
  const stride = strideMs(c);
  const beats: { due: number; at: number }[] = [];
  const beat = onBeat(c, (due) => beats.push({ due, at: Date.now() }));
  t.teardown(() => beat.stop());
  // Digests once a stride, a quarter interval in, for longer than the fallback's look.
  const digests = everyPhase(stride, PHASE.digest / c.calmStride, () => beatNow(c));
  const from = Date.now();
  await until(() => Date.now() - from > stride * (FALLBACK_STRIDES + 2));
  digests.stop();
  const stopped = Date.now();
  const whileDigests = beats.filter((b) => b.at > from + stride && b.at <= stopped);
  t.true(whileDigests.length >= FALLBACK_STRIDES, `${whileDigests.length} beats while digests came`);
  for (const b of whileDigests) t.not(b.due % stride, 0, `a beat at the stride's own instant while digests came (${b.due % stride} ms in)`);
  // Then the fallback: its first beat within a look's period, then every stride.
  const n = beats.length;
  await until(() => beats.length >= n + 3);
  beat.stop();
  const fallback = beats.slice(n);
  t.true(fallback[0]!.at - stopped <= stride * (FALLBACK_STRIDES + 1), `first fallback beat ${fallback[0]!.at - stopped} ms after the last digest`);
  for (const b of fallback) t.is(b.due % stride, 0);
  for (let i = 1; i < fallback.length; i++) t.is(fallback[i]!.due - fallback[i - 1]!.due, stride, 'every stride once it found none');
});
