import test from 'ava';
import fc from 'fast-check';
import { loadGenome } from '../../../organism/kernel/genome/index.ts';
import { openReply } from '../../../organism/kernel/reply.ts';
import { arrivals, rateAt, SHAPES, validateShape, type Shape } from '../../../organism/chaos/load-shape.ts';
import { runLoad } from '../../../organism/chaos/load.ts';
import { FAST } from '../../helpers/grow.ts';
import { startNats, tempDir, uniqueId } from '../../helpers/nats.ts';
import { runOrganism, startOrganism } from '../../helpers/organism.ts';

const shape = fc.record({
  name: fc.constantFrom(...SHAPES),
  rate: fc.integer({ min: 0, max: 500 }),
  peak: fc.integer({ min: 0, max: 500 }),
  durationMs: fc.integer({ min: 100, max: 5_000 }),
});

test('load shape - arrivals follow the integral of the rate, in order, inside the run', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(shape, (s: Shape) => {
        const times = [...arrivals(s)];
        let integral = 0;
        for (let ms = 0; ms < s.durationMs; ms++) integral += rateAt(s, ms) / 1000;
        if (Math.abs(times.length - integral) > 1) throw new Error(`${times.length} arrivals for an integral of ${integral}`);
        for (let i = 1; i < times.length; i++) if (times[i]! < times[i - 1]!) throw new Error('out of order');
        if (times.some((x) => x < 0 || x >= s.durationMs)) throw new Error('outside the run');
      }),
      { numRuns: 200 },
    ),
  );
});

test('load shape - step, ramp and spike put the peak where they say', (t) => {
  const base = { rate: 10, peak: 50, durationMs: 3_000 };
  t.is(rateAt({ ...base, name: 'step' }, 500), 10);
  t.is(rateAt({ ...base, name: 'step' }, 1_500), 50);
  t.is(rateAt({ ...base, name: 'step' }, 2_500), 10);
  t.is(rateAt({ ...base, name: 'ramp' }, 0), 10);
  t.is(rateAt({ ...base, name: 'ramp' }, 1_500), 30);
  t.is(rateAt({ ...base, name: 'spike' }, 1_500), 50);
  t.is(rateAt({ ...base, name: 'spike' }, 1_000), 10);
  t.is(rateAt({ ...base, name: 'constant' }, 3_000), 0, 'nothing after the end');
  t.throws(() => validateShape({ ...base, name: 'wave' as Shape['name'] }), { message: /--shape must be one of constant, step, ramp, spike, received "wave"/ });
  t.throws(() => validateShape({ ...base, name: 'step', rate: -1 }), { message: /--rate/ });
});

test('load - a step reaches a real echo cell on schedule, every request answered and counted by the cell', async (t) => {
  const { o } = await startOrganism(t, loadGenome({ sets: [...FAST, 'tissues.stem.min=0', 'tissues.echo.min=1'] }));
  const [cell] = await o.waitForPopulation();
  const s: Shape = { name: 'step', rate: 10, peak: 40, durationMs: 3_000 };
  const r = await runLoad({ nc: o.observer.nc, ns: o.observer.ns, tissue: 'echo', endpoint: 'burn', request: { ms: 2 }, shape: s });
  t.is(r.sent, [...arrivals(s)].length);
  t.is(r.sent, 60);
  t.is(r.ok, r.sent);
  t.is(r.errors, 0);
  t.is(r.shed, 0);
  // The step shows in what was sent each second.
  t.true(r.seconds[1]!.sent > 2 * r.seconds[0]!.sent, JSON.stringify(r.seconds.map((x) => x.sent)));
  t.true(r.latency!.p50 >= 2, 'each request burnt 2 ms of the cell');
  // The load reached the cell: it counted every request as handled work.
  const stats = openReply<{ work: { handled: number } }>((await o.observer.nc.request(o.observer.ns.cell(cell!.id, 'stats'), new Uint8Array(0))).data);
  t.is(stats.work.handled, r.ok);
});

test('load - requests to a tissue nobody serves are errors by code, and requests beyond the in-flight cap are shed', async (t) => {
  const { o } = await startOrganism(t, loadGenome({ sets: [...FAST, 'tissues.stem.min=0', 'tissues.echo.min=1'] }));
  await o.waitForPopulation();
  const nobody = await runLoad({ nc: o.observer.nc, ns: o.observer.ns, tissue: 'nobody', endpoint: 'x', request: null, shape: { name: 'constant', rate: 20, peak: 0, durationMs: 500 }, timeoutMs: 500 });
  t.is(nobody.ok, 0);
  t.is(nobody.errors, nobody.sent);
  t.deepEqual(Object.keys(nobody.errorsByCode), ['no-responders']);
  // One cell, 200 ms per request, at most 2 in flight: most of 40 requests in a second are shed.
  const capped = await runLoad({ nc: o.observer.nc, ns: o.observer.ns, tissue: 'echo', endpoint: 'burn', request: { ms: 200 }, shape: { name: 'constant', rate: 40, peak: 0, durationMs: 1_000 }, maxInflight: 2 });
  t.true(capped.shed > 20, `shed ${capped.shed}`);
  t.is(capped.sent + capped.shed, 40);
  t.is(capped.ok, capped.sent);
});

// Serial: the stem's stress is its share of the machine's lateness, and the other tests of
// this file burning CPU at the same time would be measured as this one's.
test.serial('load - real work on a tissue raises its stress in the census, and it decays once the load stops', async (t) => {
  const nats = await startNats(t);
  const o = await runOrganism(t, {
    stateDir: tempDir(t), servers: [nats.url], id: uniqueId(),
    // Homeostasis off: this test is about the stress measure; growth would spread the load.
    genome: loadGenome({ sets: [...FAST, 'limits.homeostasis=false', 'tissues.stem.min=1', 'tissues.echo.min=1', 'tissues.echo.halfLifeMs=500', 'tissues.stem.halfLifeMs=500'] }),
  });
  await o.waitForPopulation();
  const census = o.observer.census;
  let peak = 0;
  let stemPeak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, census.stress().echo ?? 0);
    stemPeak = Math.max(stemPeak, census.stress().stem ?? 0);
  }, 50);
  t.teardown(() => clearInterval(poll));
  // 40 requests a second of 20 ms of CPU each: the echo cell is busy most of every second.
  await runLoad({ nc: o.observer.nc, ns: o.observer.ns, tissue: 'echo', endpoint: 'burn', request: { ms: 20 }, shape: { name: 'constant', rate: 40, peak: 0, durationMs: 3_000 } });
  t.true(peak > 0.4, `echo stress peaked at ${peak}`);
  // The idle stem cell shares the two cores, so its event loop is late too; but the work, and
  // so most of the stress, is the echo tissue's.
  t.true(stemPeak < peak / 2, `stem stress peaked at ${stemPeak}, echo at ${peak}: the load is the echo tissue's, not everyone's`);
  // Idle again: stress decays (half-life 0.5 s) below the low mark.
  const end = Date.now() + 6_000;
  while ((census.stress().echo ?? 1) >= 0.2 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  t.true((census.stress().echo ?? 1) < 0.2, `echo stress after the load ${census.stress().echo}`);
});
