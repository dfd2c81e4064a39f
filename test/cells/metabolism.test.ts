import test from 'ava';
import fc from 'fast-check';
import { computeDemand, computeLoad, LAG_SATURATION_MS } from '../../cells/metabolism.ts';

const inputs = fc.record({
  cpu: fc.double({ min: 0, max: 800, noNaN: true }),
  lag: fc.double({ min: 0, max: 10_000, noNaN: true }),
  inflight: fc.double({ min: 0, max: 1_000, noNaN: true }),
  queued: fc.nat(1_000),
  capacity: fc.integer({ min: 1, max: 1_000 }),
});

test('metabolism - an idle cell that lags is not loaded by its lag (its host starves it)', (t) => {
  fc.assert(
    fc.property(inputs, (m) => {
      const idle = { ...m, inflight: 0, queued: 0 };
      t.is(computeDemand(idle), computeDemand({ ...idle, lag: 0 }));
      t.true(computeLoad({ ...idle, cpu: 0, lag: 10 * LAG_SATURATION_MS }) === 0);
    }),
  );
});

test('metabolism - with work in flight, lag saturates load at 100 ms', (t) => {
  const m = { cpu: 0, inflight: 0.01, queued: 0, capacity: 4 };
  t.is(computeLoad({ ...m, lag: LAG_SATURATION_MS }), 1);
  t.is(computeLoad({ ...m, lag: LAG_SATURATION_MS / 2 }), 0.5);
  fc.assert(fc.property(inputs, (x) => computeLoad(x) >= 0 && computeLoad(x) <= 1 && computeDemand(x) >= computeLoad(x)));
});

test('metabolism - CPU and lag say full, not by how much; work says how much', (t) => {
  t.is(computeDemand({ cpu: 400, lag: 1_000, inflight: 1, queued: 0, capacity: 4 }), 1);
  t.is(computeDemand({ cpu: 0, lag: 0, inflight: 8, queued: 4, capacity: 4 }), 3);
});
