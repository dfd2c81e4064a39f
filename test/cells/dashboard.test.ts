/**
 * The dashboard's pure parts: the page-frame parser and the control schema (properties and
 * fuzzing: anything a page sends is either a valid frame or a DASHBOARD_ERR_* with a
 * message, never a crash), the event model's bounds, and the receivers' latency window.
 */
import test from 'ava';
import fc from 'fast-check';
import { parseControl } from '../../organism/wire/control.ts';
import { isCellularError } from '../../organism/wire/errors.ts';
import { parsePageFrame, REPLAY_MAX_SPAN_MS, type PageFrame } from '../../organism/wire/dashboard-frames.ts';
import { eventOf, SwarmModel } from '../../cells/dashboard/model.ts';
import { LatencyWindow } from '../../cells/receiver/latency-window.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';

const LIMITS = { loadMaxRate: 2_000, loadMaxSeconds: 120 };
const id = fc.nat({ max: 2 ** 31 });
const cellId = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/);

const pageFrame: fc.Arbitrary<PageFrame> = fc.oneof(
  fc.record({ t: fc.constant('auth' as const), id, token: fc.string({ maxLength: 256 }) }),
  fc.record({ t: fc.constant('control' as const), id, token: fc.string({ maxLength: 256 }), control: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }) }),
  fc.record({ t: fc.constant('detail' as const), id, cell: cellId }),
  fc.tuple(id, fc.nat({ max: 2 ** 40 }), fc.nat({ max: REPLAY_MAX_SPAN_MS })).map(([i, from, span]) => ({ t: 'replay' as const, id: i, from, to: from + span })),
);

test('dashboard frames - every valid page frame parses back to itself', (t) => {
  fc.assert(fc.property(pageFrame, (f) => {
    t.deepEqual(parsePageFrame(JSON.stringify(f), 1 << 20), JSON.parse(JSON.stringify(f)) as PageFrame);
  }), { numRuns: 500 });
});

test('dashboard frames - any text is a frame or DASHBOARD_ERR_FRAME, never another error', (t) => {
  const texts = fc.oneof(fc.string({ maxLength: 300 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), pageFrame.chain((f) => fc.tuple(fc.constant(f), fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 })).map(([g, k, v]) => JSON.stringify({ ...g, [k]: v }))));
  fc.assert(fc.property(texts, (text) => {
    try {
      const f = parsePageFrame(text, 4096);
      return ['auth', 'control', 'detail', 'replay'].includes(f.t);
    } catch (e) {
      return isCellularError(e, 'DASHBOARD_ERR_FRAME') && e.message.length > 0;
    }
  }), { numRuns: 2_000 });
  t.pass();
});

test('dashboard frames - limits and strictness', (t) => {
  const code = (text: string) => {
    try {
      parsePageFrame(text, 200);
      return 'ok';
    } catch (e) {
      return isCellularError(e) ? `${e.code}: ${e.message}` : 'other';
    }
  };
  t.regex(code(JSON.stringify({ t: 'auth', id: 1, token: 'x'.repeat(300) })), /DASHBOARD_ERR_FRAME: frame of \d+ characters exceeds/);
  t.regex(code('{"t":"auth","id":1,"token":"x","admin":true}'), /has no field "admin"/);
  t.regex(code('{"t":"replay","id":1,"from":10,"to":5}'), /from <= to/);
  t.regex(code(JSON.stringify({ t: 'replay', id: 1, from: 0, to: REPLAY_MAX_SPAN_MS + 1 })), /at most 10 minutes/);
  t.regex(code('{"t":"detail","id":-1,"cell":"a"}'), /non-negative integer/);
  t.regex(code('{"t":"detail","id":1,"cell":"../etc"}'), /cell id/);
  t.regex(code('{"t":"__proto__","id":1}'), /unknown frame type/);
  t.is(code('{"t":"detail","id":1,"cell":"echo-1a"}'), 'ok');
});

test('dashboard controls - the schema takes what the operator can do and refuses the rest by name', (t) => {
  t.deepEqual(parseControl({ action: 'kill', cell: 'echo-1' }, LIMITS), { action: 'kill', cell: 'echo-1' });
  t.deepEqual(parseControl({ action: 'load', tissue: 'echo', rate: 10, seconds: 5 }, LIMITS), { action: 'load', tissue: 'echo', rate: 10, seconds: 5 });
  t.deepEqual(parseControl({ action: 'inject', tissue: 'echo', fault: 'flood' }, LIMITS), { action: 'inject', tissue: 'echo', fault: 'flood' });
  t.deepEqual(parseControl({ action: 'chaos', scenario: 'monkey' }, LIMITS), { action: 'chaos', scenario: 'monkey', seed: 1 });
  t.deepEqual(parseControl({ action: 'shutdown' }, LIMITS), { action: 'shutdown' });
  const refused = (v: unknown, pattern: RegExp) => {
    const e = t.throws(() => parseControl(v, LIMITS));
    t.true(isCellularError(e, 'DASHBOARD_ERR_CONTROL'));
    t.regex(e?.message ?? '', pattern);
  };
  refused({ action: 'load', tissue: 'echo', rate: 2_001, seconds: 5 }, /rate must be an integer from 1 to 2000/);
  refused({ action: 'load', tissue: 'echo', rate: 1, seconds: 121 }, /seconds must be an integer from 1 to 120/);
  refused({ action: 'inject', tissue: 'echo', fault: 'rootkit' }, /fault must be one of "flood", "liar", "forger", "tamper", "cancer", received a string of 7 characters/);
  refused({ action: 'kill', cell: 'Echo 1' }, /cell must be a cell or tissue name/);
  refused({ action: 'shutdown', now: true }, /has no field "now"/);
  refused({ action: 'format' }, /action must be one of "kill", "load", "inject", "chaos", "shutdown"/);
  refused([], /must be an object/);
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 3 }), (v) => {
    try {
      parseControl(v, LIMITS);
      return true;
    } catch (e) {
      return isCellularError(e, 'DASHBOARD_ERR_CONTROL');
    }
  }), { numRuns: 1_000 });
});

const hormone = (kind: string, from: string, body: unknown, ts = 1_000): Hormone => ({ v: 1, kind, from, seq: 1, ts, body, sig: new Uint8Array(64) }) as unknown as Hormone;

test('dashboard model - events are bounded, ordered, and found by cell', (t) => {
  fc.assert(fc.property(fc.integer({ min: 10, max: 50 }), fc.integer({ min: 0, max: 200 }), (max, n) => {
    const m = new SwarmModel({ eventsMax: max, seriesPoints: 10 });
    for (let i = 0; i < n; i++) m.add({ ts: i, kind: 'birth', from: `c-${i}`, cells: [`c-${i}`], tissue: 'echo', text: `c-${i} born`, data: null });
    t.true(m.events.length === Math.min(max, n));
    t.is(m.last, n);
    t.deepEqual(m.since(Math.max(0, n - 3)).map((e) => e.n), Array.from({ length: Math.min(3, n, max) }, (_v, i) => n - Math.min(3, n, max) + i + 1));
    if (n > 0) t.is(m.about(`c-${n - 1}`).length, 1);
  }), { numRuns: 100 });
});

test('dashboard model - decisions carry their readings, verdicts their votes, deaths their cause', (t) => {
  const tissueOf = () => 'echo';
  const decision = eventOf(hormone('decision', 'echo-1', { tissue: 'echo', action: 'divide', cells: ['echo-2'], count: 1, reason: 'stress 0.8 is above 0.75', epoch: 3, readings: { stress: 0.8, demand: 2.1 } }), tissueOf);
  t.like(decision, { kind: 'decision', tissue: 'echo', cells: ['echo-1', 'echo-2'], data: { action: 'divide', stress: 0.8, demand: 2.1 } });
  t.regex(decision?.text ?? '', /echo: divide ×1: echo-2 — stress 0.8 is above 0.75/);
  const verdict = eventOf(hormone('verdict', 'echo-1', { accusation: 'a1', accused: 'echo-9', kind: 'flood', guilty: true, votes: 4, against: 0, jury: 5, needed: 4, condemned: ['echo-9'] }), tissueOf);
  t.like(verdict, { kind: 'verdict', cells: ['echo-9'], data: { guilty: true, votes: 4, jury: 5, needed: 4, kind: 'flood' } });
  t.regex(verdict?.text ?? '', /echo-9 GUILTY of flood: 4 guilty, 0 innocent of a jury of 5 \(needed 4\)/);
  const death = eventOf(hormone('death', 'echo-3', { pid: 7, cause: 'apoptosis', detail: 'idle 30 s' }), tissueOf);
  t.like(death, { kind: 'death', cells: ['echo-3'], data: { cause: 'apoptosis' } });
  t.is(eventOf(hormone('pulse', 'echo-3', {}), tissueOf), undefined, 'pulses make no log line');
});

test('receiver latency window - its percentile is the nearest rank of the recent samples', (t) => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 9_999 }), { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 100 }), (samples, p) => {
    const w = new LatencyWindow(10_000, 4_096);
    for (const s of samples) w.record(s, 1_000);
    const sorted = [...samples].sort((a, b) => a - b);
    t.is(w.percentile(p, 1_000), sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? null);
  }), { numRuns: 200 });
  const w = new LatencyWindow(1_000, 3);
  w.record(50_000, 0); // history replayed after a reconnect: not latency
  t.is(w.percentile(99, 0), null);
  for (const [ms, at] of [[1, 0], [2, 0], [3, 0], [4, 0]] as const) w.record(ms, at);
  t.is(w.percentile(0.1, 0), 2, 'bounded in count: the oldest went');
  t.is(w.percentile(99, 5_000), null, 'bounded in age');
});
