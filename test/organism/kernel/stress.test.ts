import test from 'ava';
import fc from 'fast-check';
import { decay, StressMeter, tissueStress } from '../../../organism/kernel/stress.ts';

test('stress - one half-life moves the smoothed load halfway to the new reading', (t) => {
  t.is(decay(0, 1, 2_000, 2_000), 0.5);
  t.is(decay(1, 0, 4_000, 2_000), 0.25);
  t.is(decay(0.3, 0.9, 0, 2_000), 0.3, 'no time, no change');
  t.is(decay(0.3, 0.9, -5, 2_000), 0.3, 'a reading from the past changes nothing');
});

test('stress - the smoothed load stays between the readings and moves toward the latest', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 10_000 })), { minLength: 1, maxLength: 50 }),
        fc.integer({ min: 1, max: 60_000 }),
        (readings, halfLife) => {
          const meter = new StressMeter(() => halfLife);
          let ts = 0;
          let lo = Infinity;
          let hi = -Infinity;
          for (const [load, dt] of readings) {
            const before = meter.smoothed('c') ?? load;
            ts += dt;
            const after = meter.observe('c', 'echo', load, ts);
            lo = Math.min(lo, load);
            hi = Math.max(hi, load);
            if (after < lo - 1e-12 || after > hi + 1e-12) throw new Error(`${after} outside [${lo}, ${hi}]`);
            if (Math.abs(after - load) > Math.abs(before - load) + 1e-12) throw new Error('moved away from the reading');
          }
        },
      ),
    ),
  );
});

test('stress - every receiver of the same pulses holds the same stress (sender time, not arrival time)', (t) => {
  const pulses = [
    { id: 'a', load: 0.9, ts: 1_000 },
    { id: 'b', load: 0.1, ts: 1_100 },
    { id: 'a', load: 0.7, ts: 1_500 },
    { id: 'b', load: 0.3, ts: 1_600 },
  ];
  const one = new StressMeter(() => 1_000);
  const two = new StressMeter(() => 1_000);
  for (const p of pulses) one.observe(p.id, 'echo', p.load, p.ts);
  // The second receiver hears b's pulses before a's (per-sender order is kept by the bus).
  for (const p of [pulses[1]!, pulses[3]!, pulses[0]!, pulses[2]!]) two.observe(p.id, 'echo', p.load, p.ts);
  t.is(one.smoothed('a'), two.smoothed('a'));
  t.is(one.smoothed('b'), two.smoothed('b'));
});

test("stress - a tissue's stress is the mean over its alive members only", (t) => {
  t.deepEqual(
    tissueStress([
      { tissue: 'echo', state: 'alive', smoothed: 0.8 },
      { tissue: 'echo', state: 'alive', smoothed: 0.4 },
      { tissue: 'echo', state: 'suspect', smoothed: 1 },
      { tissue: 'echo', state: 'draining', smoothed: 1 },
      { tissue: 'stem', state: 'alive', smoothed: 0 },
      { tissue: 'gone', state: 'dead', smoothed: 1 },
    ]),
    { echo: 0.6, stem: 0 },
  );
});
