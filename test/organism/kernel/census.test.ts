/**
 * The census, driven by hand-made hormones and an injected clock (tick() instead of the
 * timer). The census reads only kind, from, ts and body, so no signing is needed here.
 */
import test from 'ava';
import { Census, type CensusEvent } from '../../../organism/kernel/census.ts';
import type { Hormone } from '../../../organism/kernel/hormone.ts';
import { generateKeypair, privateKeyObject } from '../../../organism/kernel/keys.ts';
import { issueCertificate, ROOT_ISSUER } from '../../../organism/kernel/lineage.ts';
import type { DeathCause, HormoneKind, PulseBody } from '../../../organism/kernel/vocabulary.ts';

const limits = { pulseIntervalMs: 100, suspectAfterPulses: 3, deadAfterPulses: 6, deadRetentionMs: 1_000 };
const T0 = 1_700_000_000_000;

class Clock {
  t = T0;
  now = (): number => this.t;
}

function setup() {
  const clock = new Clock();
  const census = new Census({ limits, now: clock.now });
  const events: CensusEvent[] = [];
  census.on((e) => events.push(e));
  let seq = 0;
  const hormone = (kind: HormoneKind, from: string, body: unknown): Hormone => ({ v: 1, kind, from, seq: ++seq, ts: clock.t, body, sig: new Uint8Array(64) });
  const pulse = (from: string, over: Partial<PulseBody> = {}) => census.observe(hormone('pulse', from, pulseBody(over)));
  const death = (from: string, cause: DeathCause) => census.observe(hormone('death', from, { pid: 4242, cause, detail: 'test' }));
  /** Moves the clock and lets the census notice. */
  const advance = (ms: number) => {
    clock.t += ms;
    census.tick();
  };
  return { clock, census, events, hormone, pulse, death, advance };
}

function pulseBody(over: Partial<PulseBody> = {}): PulseBody {
  return {
    tissue: 'stem', host: 'host-1', pid: 4242, parent: null, born: T0 - 5_000, state: 'alive', load: 0.25, demand: 0.25, cpu: 3, cpuMs: 1_200, rss: 50_000_000, lag: 1.5, code: 'c0de',
    work: { handled: 10, inflight: 1, queued: 0, errors: 0 }, genome: 'abcd', url: null, n: 1, ...over,
  };
}

const summary = (e: CensusEvent) => (e.type === 'state' ? `${e.entry.id}:${e.from}->${e.entry.state}` : `${e.entry.id}:${e.type}`);

test('census - a first pulse makes an alive entry and a joined event', (t) => {
  const { census, events, pulse } = setup();
  pulse('c1', { load: 0.5, n: 7 });
  t.deepEqual(events.map(summary), ['c1:joined']);
  const entry = census.get('c1');
  t.like(entry, { id: 'c1', tissue: 'stem', host: 'host-1', pid: 4242, state: 'alive', load: 0.5, pulses: 7, lastSeen: T0, cause: null, age: 5_000 });
  t.deepEqual(census.living().map((e) => e.id), ['c1']);
  // Later pulses update the entry without another joined event.
  pulse('c1', { load: 0.9, n: 8 });
  t.is(events.length, 1);
  t.like(census.get('c1'), { load: 0.9, pulses: 8 });
});

test('census - a cell condemned before it was heard of joins dead by toxin, and stays dead whatever it says', (t) => {
  // A child certified into a condemned lineage: condemned from its certificate, before its process runs.
  const { census, events, pulse } = setup();
  census.condemn('c9');
  t.is(census.get('c9'), undefined, 'nothing to mark yet');
  pulse('c9');
  t.like(census.get('c9'), { state: 'dead', cause: 'toxin' });
  t.deepEqual(events.map(summary), ['c9:joined', 'c9:alive->dead'], 'joined, then dead at once');
  pulse('c9', { n: 2 });
  t.is(census.get('c9')?.state, 'dead', 'its later pulses change nothing');
  t.deepEqual(census.living().map((e) => e.id), []);
  // Any other cell joins alive as ever.
  pulse('c1');
  t.is(census.get('c1')?.state, 'alive');
});

test('census - snapshots are copies', (t) => {
  const { census, pulse } = setup();
  pulse('c1');
  const snap = census.get('c1')!;
  snap.state = 'dead';
  snap.work.handled = 999;
  t.like(census.get('c1'), { state: 'alive', work: { handled: 10 } });
});

test('census - silence past suspectAfterPulses intervals makes a cell suspect', (t) => {
  const { census, events, pulse, advance } = setup();
  pulse('c1');
  advance(300); // exactly 3 intervals: not yet
  t.is(census.get('c1')?.state, 'alive');
  advance(1);
  t.is(census.get('c1')?.state, 'suspect');
  t.deepEqual(events.map(summary), ['c1:joined', 'c1:alive->suspect']);
  t.deepEqual(census.living().map((e) => e.id), ['c1']); // suspect is still living
  advance(1);
  t.is(events.length, 2); // no repeated event while nothing changes
});

test('census - silence past deadAfterPulses intervals makes a cell dead of missed pulses', (t) => {
  const { census, events, pulse, advance } = setup();
  pulse('c1');
  advance(600);
  t.is(census.get('c1')?.state, 'suspect');
  advance(1);
  t.like(census.get('c1'), { state: 'dead', cause: 'missed-pulses' });
  t.deepEqual(events.map(summary), ['c1:joined', 'c1:alive->suspect', 'c1:suspect->dead']);
  t.deepEqual(census.living(), []);
  t.is(census.list().length, 1); // listed until its retention ends
});

test('census - a cell judged dead of its silence that then says goodbye is dead of that cause, and leaves the ring (a membership change)', (t) => {
  const { census, pulse, advance, death } = setup();
  pulse('c1');
  advance(601);
  t.like(census.get('c1'), { state: 'dead', cause: 'missed-pulses' });
  const before = census.membership;
  death('c1', 'apoptosis');
  t.like(census.get('c1'), { state: 'dead', cause: 'apoptosis' }, 'the goodbye says why, over the guess');
  t.true(census.membership > before, 'rings drawn from this census see it leave');
});

test('census - a silent cell its host sees running is busy, not dead: alive, lag = the silence, full load; once it stops running, silence judges it', (t) => {
  const clock = new Clock();
  let runs = true;
  const asked: string[] = [];
  const census = new Census({ limits, now: clock.now, running: (e) => (asked.push(e.id), runs) });
  const events: CensusEvent[] = [];
  census.on((e) => events.push(e));
  census.observe({ v: 1, kind: 'pulse', from: 'c1', seq: 1, ts: clock.t, body: pulseBody({ load: 0.1, demand: 0.1, lag: 1.5 }), sig: new Uint8Array(64) });
  const advance = (ms: number) => {
    clock.t += ms;
    census.tick();
  };
  advance(300);
  t.deepEqual(asked, [], 'a cell within the suspect threshold is not looked at');
  // Far past the death threshold, and still alive: stuck, not gone.
  for (let i = 0; i < 20; i++) advance(100);
  t.like(census.get('c1'), { state: 'alive', load: 1, cause: null });
  t.true(census.get('c1')!.demand >= 1);
  t.true(census.get('c1')!.lag >= 2_000 && census.get('c1')!.lag <= 2_300, `lag ${census.get('c1')!.lag}`);
  t.deepEqual(events.map(summary), ['c1:joined']);
  // Stopped (or gone): silence judges it, from its last pulse.
  runs = false;
  advance(1);
  t.like(census.get('c1'), { state: 'dead', cause: 'missed-pulses' });
  t.deepEqual(events.map(summary), ['c1:joined', 'c1:alive->dead']);
});

test('census - busy lasts limits.busyMaxMs of silence: past it, a cell that runs but never pulses is dead of missed pulses', (t) => {
  const clock = new Clock();
  const census = new Census({ limits: { ...limits, busyMaxMs: 2_000 }, now: clock.now, running: () => true });
  census.observe({ v: 1, kind: 'pulse', from: 'c1', seq: 1, ts: clock.t, body: pulseBody(), sig: new Uint8Array(64) });
  for (let i = 0; i < 20; i++) {
    clock.t += 100;
    census.tick();
  }
  t.like(census.get('c1'), { state: 'alive', load: 1 }, 'busy up to 2 s of silence');
  clock.t += 100;
  census.tick();
  t.like(census.get('c1'), { state: 'dead', cause: 'missed-pulses' });
  // busyMaxMs 0: never busy, as a census without `running`.
  const never = new Census({ limits: { ...limits, busyMaxMs: 0 }, now: clock.now, running: () => true });
  never.observe({ v: 1, kind: 'pulse', from: 'c2', seq: 1, ts: clock.t, body: pulseBody(), sig: new Uint8Array(64) });
  clock.t += 301;
  never.tick();
  t.is(never.get('c2')?.state, 'suspect');
});

test('census - a busy cell whose last pulse showed no work keeps its load (a starved idle cell is not full)', (t) => {
  const clock = new Clock();
  const census = new Census({ limits, now: clock.now, running: () => true });
  census.observe({ v: 1, kind: 'pulse', from: 'c1', seq: 1, ts: clock.t, body: pulseBody({ load: 0.1, demand: 0.1, work: { handled: 3, inflight: 0, queued: 0, errors: 0 } }), sig: new Uint8Array(64) });
  for (let i = 0; i < 10; i++) {
    clock.t += 100;
    census.tick();
  }
  t.like(census.get('c1'), { state: 'alive', load: 0.1, demand: 0.1 });
  t.true(census.get('c1')!.lag >= 900);
});

test('census - a suspect cell seen running again is alive (busy)', (t) => {
  const clock = new Clock();
  let runs = false;
  const census = new Census({ limits, now: clock.now, running: () => runs });
  census.observe({ v: 1, kind: 'pulse', from: 'c1', seq: 1, ts: clock.t, body: pulseBody(), sig: new Uint8Array(64) });
  clock.t += 301;
  census.tick();
  t.is(census.get('c1')?.state, 'suspect');
  runs = true;
  clock.t += 50;
  census.tick();
  t.like(census.get('c1'), { state: 'alive', load: 1 });
});

test('census - a cell its host found vanished and then condemned is dead by toxin (the verdict says why); a death it announced keeps its cause', (t) => {
  const { census, pulse, death } = setup();
  pulse('c1');
  pulse('c2');
  census.confirmDead('c1', 'vanished');
  census.condemn('c1');
  t.like(census.get('c1'), { state: 'dead', cause: 'toxin' });
  death('c2', 'apoptosis');
  census.condemn('c2');
  t.like(census.get('c2'), { state: 'dead', cause: 'apoptosis' });
});

test('census - a pulse from a suspect cell makes it alive again', (t) => {
  const { census, events, pulse, advance } = setup();
  pulse('c1');
  advance(301);
  pulse('c1');
  t.like(census.get('c1'), { state: 'alive', lastSeen: T0 + 301 });
  t.deepEqual(events.map(summary), ['c1:joined', 'c1:alive->suspect', 'c1:suspect->alive']);
});

test('census - a pulse revives a cell declared dead of missed pulses', (t) => {
  const { census, events, pulse, advance } = setup();
  pulse('c1');
  advance(601);
  t.like(census.get('c1'), { state: 'dead', cause: 'missed-pulses' });
  advance(500);
  pulse('c1', { n: 2 });
  t.like(census.get('c1'), { state: 'alive', cause: null, pulses: 2 });
  t.is(summary(events.at(-1)!), 'c1:dead->alive');
  // It does not leave when the old death's retention ends (601 + 1000).
  advance(500);
  t.is(census.get('c1')?.state, 'suspect');
});

test('census - a death hormone makes a cell dead with its cause; later pulses are ignored', (t) => {
  const { census, events, pulse, death, advance } = setup();
  pulse('c1');
  death('c1', 'apoptosis');
  t.like(census.get('c1'), { state: 'dead', cause: 'apoptosis' });
  pulse('c1', { n: 99, load: 1 });
  t.like(census.get('c1'), { state: 'dead', cause: 'apoptosis', pulses: 1 });
  advance(700); // silence does not turn it into missed-pulses either
  t.like(census.get('c1'), { state: 'dead', cause: 'apoptosis' });
  t.deepEqual(events.map(summary), ['c1:joined', 'c1:alive->dead']);
});

test('census - a death from a cell never seen is ignored', (t) => {
  const { census, events, death } = setup();
  death('ghost', 'toxin');
  t.is(census.get('ghost'), undefined);
  t.deepEqual(events, []);
});

test('census - a draining pulse is reported as draining', (t) => {
  const { census, events, pulse } = setup();
  pulse('c1');
  pulse('c1', { state: 'draining' });
  t.is(census.get('c1')?.state, 'draining');
  t.is(summary(events.at(-1)!), 'c1:alive->draining');
});

test('census - dead entries leave after deadRetentionMs', (t) => {
  const { census, events, pulse, death, advance } = setup();
  pulse('c1');
  death('c1', 'shutdown');
  advance(999);
  t.truthy(census.get('c1'));
  advance(1);
  t.is(census.get('c1'), undefined);
  t.like(events.at(-1), { type: 'left', entry: { id: 'c1', state: 'dead', cause: 'shutdown' } });
  // A missed-pulses death leaves the same way, retention counted from the death.
  pulse('c2');
  advance(601);
  t.like(census.get('c2'), { state: 'dead', cause: 'missed-pulses' });
  advance(999);
  t.truthy(census.get('c2'));
  advance(1);
  t.is(census.get('c2'), undefined);
  t.deepEqual(census.list(), []);
  t.deepEqual(events.filter((e) => e.type === 'left').map((e) => e.entry.id), ['c1', 'c2']);
});

test('census - a birth hormone with a valid certificate joins the cell from its certificate', (t) => {
  const { census, events, hormone } = setup();
  const root = generateKeypair();
  const cert = issueCertificate(
    { cell: 'b1', pub: generateKeypair().pub, tissue: 'echo', host: 'host-9', born: T0 - 10, generation: 0, budget: 4, parent: null, issuer: ROOT_ISSUER },
    privateKeyObject(root.seed),
  );
  census.observe(hormone('birth', 'b1', { pid: 77, cert, url: 'http://127.0.0.1:1234' }));
  t.like(census.get('b1'), { tissue: 'echo', host: 'host-9', pid: 77, state: 'alive', url: 'http://127.0.0.1:1234', pulses: 0, born: T0 - 10 });
  census.observe(hormone('birth', 'b2', { pid: 78, cert: { junk: true }, url: null }));
  t.is(census.get('b2'), undefined);
  census.observe(hormone('birth', 'b1', { pid: 79, cert, url: null })); // a second birth changes nothing
  t.is(census.get('b1')?.pid, 77);
  t.deepEqual(events.map(summary), ['b1:joined']);
});

test('census - other kinds do not touch the census', (t) => {
  const { census, events, hormone } = setup();
  census.observe(hormone('mitosis', 'c1', {}));
  census.observe(hormone('shutdown', 'root', { reason: 'x' }));
  t.deepEqual(census.list(), []);
  t.deepEqual(events, []);
});

test('census - list sorts by tissue, then birth', (t) => {
  const { census, pulse } = setup();
  pulse('w-late', { tissue: 'worker', born: T0 - 1 });
  pulse('s-late', { tissue: 'stem', born: T0 - 1 });
  pulse('w-early', { tissue: 'worker', born: T0 - 9 });
  pulse('e', { tissue: 'echo', born: T0 });
  t.deepEqual(census.list().map((e) => e.id), ['e', 's-late', 'w-early', 'w-late']);
});

test('census - on() returns an unsubscribe function and close() drops every listener', (t) => {
  const { census, pulse } = setup();
  let seen = 0;
  const off = census.on(() => seen++);
  pulse('c1');
  off();
  pulse('c2');
  t.is(seen, 1);
  census.on(() => seen++);
  census.close();
  pulse('c3');
  t.is(seen, 1);
});

test('census - events() yields the tagged events in order', async (t) => {
  const { census, pulse, death, advance } = setup();
  const ac = new AbortController();
  const it = census.events(ac.signal);
  const first = it.next(); // starts the generator, which subscribes
  pulse('c1');
  advance(301);
  death('c1', 'toxin');
  t.like((await first).value, { type: 'joined', entry: { id: 'c1' } });
  t.like((await it.next()).value, { type: 'state', from: 'alive', entry: { state: 'suspect' } });
  t.like((await it.next()).value, { type: 'state', from: 'suspect', entry: { state: 'dead', cause: 'toxin' } });
  ac.abort();
  t.deepEqual(await it.next(), { done: true, value: undefined });
});

test('census - events() ends while waiting when its signal aborts, and stops listening', async (t) => {
  const { census, pulse } = setup();
  const ac = new AbortController();
  const seen: CensusEvent[] = [];
  let stopped = false;
  const consumer = (async () => {
    for await (const e of census.events(ac.signal)) {
      seen.push(e);
      if (seen.length === 2) ac.abort();
    }
    stopped = true;
  })();
  pulse('c1');
  pulse('c2');
  await consumer;
  t.true(stopped);
  t.deepEqual(seen.map(summary), ['c1:joined', 'c2:joined']);

  // A consumer parked on next() with nothing to read is released by the abort.
  const ac2 = new AbortController();
  const it = census.events(ac2.signal);
  const pending = it.next();
  ac2.abort();
  t.deepEqual(await pending, { done: true, value: undefined });
  // Nothing left subscribed: a later event reaches no dead iterator (and nothing throws).
  t.notThrows(() => pulse('c3'));
});

test('census - events() with an already aborted signal ends at once', async (t) => {
  const { census } = setup();
  const it = census.events(AbortSignal.abort());
  t.deepEqual(await it.next(), { done: true, value: undefined });
});

test('census - a pulse older than the suspect threshold, or older than one seen, is ignored (replays say nothing)', (t) => {
  const { clock, census, events, hormone, advance } = setup();
  const at = (ts: number, over: Partial<PulseBody> = {}) => census.observe({ ...hormone('pulse', 'c1', pulseBody(over)), ts });
  at(clock.t - limits.suspectAfterPulses * limits.pulseIntervalMs - 1);
  t.is(census.get('c1'), undefined, 'an old pulse does not join a cell');
  at(clock.t, { load: 0.3 });
  advance(50);
  at(clock.t - 60, { load: 0.9 }); // sent before the one already seen
  t.is(census.get('c1')?.load, 0.3);
  // Silence is judged from the fresh pulse, not refreshed by the stale one.
  advance(limits.deadAfterPulses * limits.pulseIntervalMs);
  t.is(census.get('c1')?.state, 'dead');
  t.deepEqual(events.map(summary), ['c1:joined', 'c1:alive->dead']);
});

test('census - who a cell is comes from its verified certificate, not from what its pulse claims', (t) => {
  const clock = new Clock();
  const root = generateKeypair();
  const cert = issueCertificate(
    { cell: 'c1', pub: generateKeypair().pub, tissue: 'echo', host: 'host-9', born: T0 - 1_000, generation: 0, budget: 16, parent: null, issuer: ROOT_ISSUER },
    privateKeyObject(root.seed),
  );
  const census = new Census({ limits, now: clock.now, certOf: (id) => (id === 'c1' ? cert : undefined) });
  census.observe({ v: 1, kind: 'pulse', from: 'c1', seq: 1, ts: clock.t, body: pulseBody({ tissue: 'stem', host: 'liar', parent: 'x-1', born: 1 }), sig: new Uint8Array(64) });
  t.like(census.get('c1'), { tissue: 'echo', host: 'host-9', parent: null, born: T0 - 1_000, pid: 4242 });
});

test('host digest - a grow census digested into a cell census: rows carry the pulses, deltas only what changed, a death three times, a kill -9 as vanished; silence of the host makes its cells suspect, then dead', async (t) => {
  const { HostDigest } = await import('../../../organism/grow/host-digest.ts');
  // grow's side: its census reads its host's pulses.
  const g = setup();
  // A cell's side: a census fed by digests only.
  const cell = new Census({ limits, now: g.clock.now, pulsesOf: () => false });
  const digests: import('../../../organism/kernel/vocabulary.ts').DigestBody[] = [];
  const gone = new Set<number>();
  const digest = new HostDigest({
    census: g.census, host: 'host-1', limits: { pulseIntervalMs: 100, hormoneMaxBytes: 8192 }, beacon: (e) => `beacon-${e}`, now: g.clock.now,
    exists: (e) => !gone.has(e.pid), publish: (body) => {
      digests.push(body);
      cell.observe(g.hormone('digest', ROOT_ISSUER, body));
    },
  });
  g.pulse('a', { pid: 1 });
  g.pulse('b', { pid: 2, load: 0.5 });
  // A direct pulse means nothing to the cell's census.
  cell.observe(g.hormone('pulse', 'a', pulseBody({ pid: 1 })));
  t.is(cell.list().length, 0);
  digest.round();
  t.true(digests[0]!.full, 'the first digest is whole');
  t.deepEqual(cell.living().map((c) => [c.id, c.state, c.host, c.pid, c.load]), [['a', 'alive', 'host-1', 1, 0.25], ['b', 'alive', 'host-1', 2, 0.5]]);
  t.is(cell.beacon?.beacon, `beacon-${Math.floor(g.clock.t / 60_000)}`);
  // A newcomer's row is said in three digests running (one lost digest hides nothing); then,
  // with nothing changed beyond the dead band, an empty delta, which still says both live.
  for (let i = 0; i < 3; i++) {
    g.advance(100);
    g.pulse('a', { pid: 1, load: 0.26 });
    g.pulse('b', { pid: 2, load: 0.5 });
    digest.round();
  }
  t.deepEqual(digests.slice(1).map((d) => d.rows.length), [2, 2, 0]);
  t.false(digests.at(-1)!.full);
  // A load step is news.
  g.advance(100);
  g.pulse('a', { pid: 1, load: 0.9, demand: 0.9 });
  g.pulse('b', { pid: 2, load: 0.5 });
  digest.round();
  t.deepEqual(digests.at(-1)!.rows.map((r) => r.i), ['a']);
  t.is(cell.get('a')!.load, 0.9);
  // kill -9 of b: the pid probe finds it gone; dead (vanished) in the next digest, and repeated.
  gone.add(2);
  digest.checkVanished();
  for (let i = 0; i < 4; i++) {
    g.advance(100);
    g.pulse('a', { pid: 1, load: 0.9, demand: 0.9 });
    digest.round();
  }
  t.is(cell.get('b')?.state, 'dead');
  t.is(cell.get('b')?.cause, 'vanished');
  t.is(digests.filter((d) => d.rows.some((r) => r.i === 'b' && r.s === 'dead')).length, 3, 'a death is said in three digests running');
  // The host falls silent (its grow gone): its cells are suspect, then dead, by the cell's own clock.
  for (let i = 0; i < 4; i++) {
    g.clock.t += 100;
    cell.tick();
  }
  t.is(cell.get('a')?.state, 'suspect');
  for (let i = 0; i < 3; i++) {
    g.clock.t += 100;
    cell.tick();
  }
  t.is(cell.get('a')?.state, 'dead');
  t.is(cell.get('a')?.cause, 'missed-pulses');
  t.true(cell.hostSilence('host-1') >= 600);
});

test('host digest - a newcomer that asks gets the whole host in the next digest, its dead included; asking often sends no more digests', async (t) => {
  const { HostDigest } = await import('../../../organism/grow/host-digest.ts');
  const g = setup();
  const digests: import('../../../organism/kernel/vocabulary.ts').DigestBody[] = [];
  const gone = new Set<number>();
  const digest = new HostDigest({
    census: g.census, host: 'host-1', limits: { pulseIntervalMs: 100, hormoneMaxBytes: 8192 }, beacon: (e) => `beacon-${e}`, now: g.clock.now,
    exists: (e) => !gone.has(e.pid), publish: (body) => digests.push(body),
  });
  g.pulse('a', { pid: 1 });
  g.pulse('b', { pid: 2 });
  digest.round();
  gone.add(2);
  digest.checkVanished();
  // Past the repeats: idle rows and a death said three times are in no delta any more.
  for (let i = 0; i < 5; i++) {
    g.advance(100);
    g.pulse('a', { pid: 1 });
    digest.round();
  }
  t.deepEqual(digests.at(-1)!.rows, [], 'an idle host sends empty deltas');
  // A newcomer's census (a joining grow, `cellular census`) hears only what comes next.
  const newcomer = new Census({ limits, now: g.clock.now, pulsesOf: () => false });
  const feed = (from: number) => digests.slice(from).forEach((body) => newcomer.observe(g.hormone('digest', ROOT_ISSUER, body)));
  let seen = digests.length;
  g.advance(100);
  g.pulse('a', { pid: 1 });
  digest.round();
  feed(seen);
  t.is(newcomer.list().length, 0, 'without asking, an unchanged host says nothing of its cells');
  // …but its digest says cells live there: enough for a joining grow not to seed again.
  t.deepEqual(newcomer.hostsWithCells(500), ['host-1']);
  // It asks (three times at once): one whole digest, with the living and the dead.
  seen = digests.length;
  digest.requestFull();
  digest.requestFull();
  digest.requestFull();
  g.advance(100);
  g.pulse('a', { pid: 1 });
  digest.round();
  g.advance(100);
  g.pulse('a', { pid: 1 });
  digest.round();
  feed(seen);
  t.deepEqual(digests.slice(seen).map((d) => d.full), [true, false], 'one whole digest however often asked, then deltas again');
  t.deepEqual(newcomer.list().map((c) => [c.id, c.state, c.cause]), [['a', 'alive', null], ['b', 'dead', 'vanished']]);
  t.deepEqual(newcomer.living().map((c) => c.id), ['a'], 'a death it never saw the life of is not a living cell');
  g.clock.t += 600;
  t.deepEqual(newcomer.hostsWithCells(500), [], 'a digest older than the window is no evidence');
  // A host whose every cell died says so: no evidence either.
  gone.add(1);
  digest.checkVanished();
  seen = digests.length;
  digest.round();
  feed(seen);
  t.is(digests.at(-1)!.alive, 0);
  t.deepEqual(newcomer.hostsWithCells(500), []);
});

test('host digest - a newborn gets the whole host privately (round 0, its dead included), and a birth makes no digest whole for everyone', async (t) => {
  const { HostDigest } = await import('../../../organism/grow/host-digest.ts');
  const g = setup();
  const digests: import('../../../organism/kernel/vocabulary.ts').DigestBody[] = [];
  const gone = new Set<number>();
  const digest = new HostDigest({
    census: g.census, host: 'host-1', limits: { pulseIntervalMs: 100, hormoneMaxBytes: 2048 }, beacon: (e) => `beacon-${e}`, now: g.clock.now,
    exists: (e) => !gone.has(e.pid), publish: (body) => digests.push(body),
  });
  // Forty cells (several parts at 2 KiB), one of them killed.
  const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
  ids.forEach((id, i) => g.pulse(id, { pid: i + 1 }));
  digest.round();
  gone.add(1);
  digest.checkVanished();
  for (let i = 0; i < 4; i++) {
    g.advance(100);
    ids.slice(1).forEach((id, j) => g.pulse(id, { pid: j + 2 }));
    digest.round();
  }
  // A birth: the next broadcast digest names the newborn, and only it.
  const before = digests.length;
  g.advance(100);
  g.pulse('newborn', { pid: 99 });
  ids.slice(1).forEach((id, j) => g.pulse(id, { pid: j + 2 }));
  digest.round();
  t.deepEqual(digests.slice(before).map((d) => [d.full, d.rows.map((r) => r.i)]), [[false, ['newborn']]], 'a birth is one new row, not the whole host');
  // The newborn's ask: the whole host, in parts, to it alone (nothing is published).
  const published = digests.length;
  const whole = digest.whole();
  t.is(digests.length, published, 'a private answer publishes nothing');
  t.true(whole.length > 1, `${whole.length} parts`);
  t.true(whole.every((d) => d.full && d.round === 0 && d.parts === whole.length));
  const gaps: string[] = [];
  const newborn = new Census({ limits, now: g.clock.now, pulsesOf: () => false, onGap: (h) => gaps.push(`newborn ${h}`) });
  // One whose ask went unanswered: its first delta of the host is a gap (it asks again).
  const unanswered = new Census({ limits, now: g.clock.now, pulsesOf: () => false, onGap: (h) => gaps.push(`unanswered ${h}`) });
  for (const body of whole) newborn.observe(g.hormone('digest', ROOT_ISSUER, body));
  t.is(newborn.living().length, 40, 'every living cell of the host, the newborn included');
  t.is(newborn.get('c0')?.state, 'dead', 'and its dead, still retained');
  // Its next delta counts as usual (a private round 0 is no round).
  g.advance(100);
  ids.slice(1).forEach((id, j) => g.pulse(id, { pid: j + 2 }));
  digest.round();
  newborn.observe(g.hormone('digest', ROOT_ISSUER, digests.at(-1)!));
  unanswered.observe(g.hormone('digest', ROOT_ISSUER, digests.at(-1)!));
  t.is(newborn.living().length, 40);
  // Never held whole, the delta is a gap; and since it holds none of the 40 the host counts, it is short too.
  t.deepEqual(gaps, ['unanswered host-1', 'unanswered host-1'], 'held whole, the next delta is no gap; never held whole, it is');
  t.is(newborn.shortSince(), undefined, 'held whole: not short');
  t.is(unanswered.shortSince(), g.clock.now(), 'short of the host\'s own count since this delta');
  // Short, it asks at every round (the asker spaces its asks, organism/kernel/whole-digest.ts) until it holds the host.
  g.advance(100);
  ids.slice(1).forEach((id, j) => g.pulse(id, { pid: j + 2 }));
  digest.round();
  unanswered.observe(g.hormone('digest', ROOT_ISSUER, digests.at(-1)!));
  t.is(gaps.filter((x) => x === 'unanswered host-1').length, 3);
  for (const body of digest.whole()) unanswered.observe(g.hormone('digest', ROOT_ISSUER, body));
  g.advance(100);
  ids.slice(1).forEach((id, j) => g.pulse(id, { pid: j + 2 }));
  digest.round();
  unanswered.observe(g.hormone('digest', ROOT_ISSUER, digests.at(-1)!));
  t.is(gaps.filter((x) => x === 'unanswered host-1').length, 3, 'held whole: no more asks');
  t.is(unanswered.shortSince(), undefined);
});

test('host digest - a late host: the delta after its silence gives back every cell it does not name (dead or suspect here only for that silence); after a longer gap of lost digests they wait for their own rows, and the census says the round was lost', async (t) => {
  const { HostDigest } = await import('../../../organism/grow/host-digest.ts');
  const g = setup();
  const gaps: string[] = [];
  const cell = new Census({ limits, now: g.clock.now, pulsesOf: () => false, onGap: (host) => gaps.push(host) });
  const cellEvents: CensusEvent[] = [];
  cell.on((e) => cellEvents.push(e));
  let deliver = true;
  const gone = new Set<number>();
  const digest = new HostDigest({
    census: g.census, host: 'host-1', limits: { pulseIntervalMs: 100, hormoneMaxBytes: 8192 }, beacon: (e) => `beacon-${e}`, now: g.clock.now,
    exists: (e) => !gone.has(e.pid), publish: (body) => {
      if (deliver) cell.observe(g.hormone('digest', ROOT_ISSUER, body));
    },
  });
  const ids = ['a', 'b', 'c', 'd'];
  /** One interval on grow's host: every living cell pulses, the digest goes out, the cell's clock ticks. */
  const interval = () => {
    g.clock.t += 100;
    ids.forEach((id, i) => { if (!gone.has(i + 1)) g.pulse(id, { pid: i + 1 }); });
    g.census.tick();
    digest.checkVanished();
    digest.round();
    cell.tick();
  };
  for (let i = 0; i < 6; i++) interval(); // past the newcomers' repeats: the deltas are empty now
  t.deepEqual(cell.living().map((c) => c.id), ids);
  // grow starves for 1 s: no digest, while its cells keep pulsing (it hears them later).
  const silent = () => {
    for (let i = 0; i < 10; i++) {
      g.clock.t += 100;
      ids.forEach((id, k) => { if (!gone.has(k + 1)) g.pulse(id, { pid: k + 1 }); });
      cell.tick();
    }
  };
  silent();
  t.deepEqual(cell.living().map((c) => c.id), [], 'the silent host\'s cells are dead here');
  // Meanwhile d is killed; grow comes back and the next delta names d dead and nobody else.
  gone.add(4);
  interval();
  t.deepEqual(cell.living().map((c) => c.id), ['a', 'b', 'c'], 'the next delta gives the others back');
  t.like(cell.get('d'), { state: 'dead', cause: 'vanished' });
  t.true(cellEvents.some((e) => e.type === 'state' && e.entry.id === 'a' && e.from === 'dead' && e.entry.state === 'alive'));
  // Suspect only (a shorter silence): alive again too.
  for (let i = 0; i < 4; i++) {
    g.clock.t += 100;
    cell.tick();
  }
  t.is(cell.get('a')?.state, 'suspect');
  interval();
  t.is(cell.get('a')?.state, 'alive');
  t.deepEqual(gaps, [], 'a late host lost no round: nothing to ask for');
  // Digests lost (not late): a death said in rounds this census never heard may be among the
  // unnamed, so after a gap of more than DIGEST_REPEAT rounds nobody is given back by silence.
  deliver = false;
  for (let i = 0; i < 4; i++) interval();
  silent();
  t.deepEqual(cell.living().map((c) => c.id), []);
  gone.add(3);
  for (let i = 0; i < 4; i++) interval(); // c's death is said in these rounds, all lost
  deliver = true;
  interval();
  t.deepEqual(cell.living().map((c) => c.id), [], 'after the gap the unnamed cells stay dead');
  interval();
  t.deepEqual(cell.living().map((c) => c.id), [], 'and at the rounds after it, which are no gap: what silence took waits for their rows');
  // Told at the first round after them (a cell then asks that grow for its host whole), and
  // again at each round while the census holds fewer of the host's cells than the host counts.
  t.deepEqual(gaps, ['host-1', 'host-1', 'host-1']);
  t.not(cell.shortSince(), undefined, 'short of the two the host counts');
  // Their rows come with the next whole digest (or the refresh): a and b live, c does not.
  digest.requestFull();
  interval();
  t.deepEqual(cell.living().map((c) => c.id), ['a', 'b']);
  interval();
  t.deepEqual(gaps, ['host-1', 'host-1', 'host-1'], 'rounds in order again, and the host held: no more asks');
  t.is(cell.shortSince(), undefined);
  // A grow that starts again counts its rounds from 1. Its first digest is whole (nothing to
  // ask for); had that one been lost, its next delta, round 2 after round n, is a gap.
  const again = new HostDigest({
    census: g.census, host: 'host-1', limits: { pulseIntervalMs: 100, hormoneMaxBytes: 8192 }, beacon: (e) => `beacon-${e}`, now: g.clock.now,
    exists: (e) => !gone.has(e.pid), publish: (body) => {
      if (deliver) cell.observe(g.hormone('digest', ROOT_ISSUER, body));
    },
  });
  deliver = false;
  g.clock.t += 100;
  again.round();
  deliver = true;
  g.clock.t += 100;
  again.round();
  t.deepEqual(gaps, ['host-1', 'host-1', 'host-1', 'host-1'], 'one more: the restarted grow\'s lost first round');
});

test('census - a row inside the dead band of what was last news is no news (no new version); a drift that adds up past it is', (t) => {
  const { clock, hormone } = setup();
  const cell = new Census({ limits, now: clock.now, pulsesOf: () => false, beat: false });
  const row = (l: number, r = 50) => ({ i: 'a', q: 'echo', s: 'alive' as const, c: null, l, m: l, d: l, u: 1, r, g: 1, p: 1, b: T0, a: null, w: null, n: 1, z: clock.t, k: [0, 0, 0, 0] });
  const digest = (rows: unknown[]) => cell.observe(hormone('digest', ROOT_ISSUER, { host: 'host-1', round: 1, part: 0, parts: 1, full: false, alive: 1, epoch: 1, beacon: 'b', rows }));
  digest([row(100)]);
  const v0 = cell.version;
  // A refresh that tells the same story (load 0.104 then 0.110: within 0.05 of 0.100).
  clock.t += 100;
  digest([row(104)]);
  clock.t += 100;
  digest([row(110)]);
  t.is(cell.version, v0, 'no news, no new version');
  t.is(cell.get('a')!.load, 0.11, 'the values themselves are current');
  // Small steps that add up past the band from the last news (0.100 → 0.150): news.
  clock.t += 100;
  digest([row(150)]);
  t.true(cell.version > v0, 'a drift past the band is news');
  const v1 = cell.version;
  // RSS past its band (16 MiB) is news too.
  clock.t += 100;
  digest([row(150, 70)]);
  t.true(cell.version > v1);
});

test('census - view() is the same array until something is news; list() stays fresh inside the band', (t) => {
  const { clock, hormone } = setup();
  const cell = new Census({ limits, now: clock.now, pulsesOf: () => false, beat: false });
  const row = (i: string, l: number) => ({ i, q: 'echo', s: 'alive' as const, c: null, l, m: 100, d: l, u: 1, r: 50, g: 1, p: 1, b: T0, a: null, w: null, n: 1, z: clock.t, k: [0, 0, 0, 0] });
  const digest = (rows: unknown[]) => cell.observe(hormone('digest', ROOT_ISSUER, { host: 'host-1', round: 1, part: 0, parts: 1, full: false, alive: 1, epoch: 1, beacon: 'b', rows }));
  digest([row('a', 100)]);
  const v = cell.view();
  t.deepEqual(v.map((e) => e.id), ['a']);
  // Inside the band, long after: the planners' view is the very same array; the dashboard's list is not.
  clock.t += limits.pulseIntervalMs * 4;
  digest([row('a', 120)]);
  t.is(cell.view(), v, 'no news: the same view, so what a planner derived from it still holds');
  t.is(cell.view()[0]!.load, 0.1, 'as of the last news');
  t.is(cell.list()[0]!.load, 0.12, 'list() shows the current value');
  // A newcomer is news: a new view that has it.
  digest([row('b', 0)]);
  t.not(cell.view(), v);
  t.deepEqual(cell.view().map((e) => e.id), ['a', 'b']);
});

test('calm stride - an idle host digests only on the stride, news at once; a census forgives a stride of silence, then judges as before', async (t) => {
  const { HostDigest } = await import('../../../organism/grow/host-digest.ts');
  const stride = { ...limits, calmStride: 4 };
  const clock = new Clock();
  // A whole stride from the epoch: interval i of the clock is on the stride when i % 4 === 0.
  clock.t = Math.ceil(T0 / 400) * 400 + 25;
  const grow = new Census({ limits: stride, now: clock.now });
  const cell = new Census({ limits: stride, now: clock.now, pulsesOf: () => false });
  let seq = 0;
  const hormone = (kind: HormoneKind, body: unknown): Hormone => ({ v: 1, kind, from: kind === 'digest' ? ROOT_ISSUER : 'a', seq: ++seq, ts: clock.t, body, sig: new Uint8Array(64) });
  const sent: { at: number; rows: number }[] = [];
  const digest = new HostDigest({
    census: grow, host: 'host-1', limits: { ...stride, hormoneMaxBytes: 8192 }, beacon: (e) => `beacon-${e}`, now: clock.now, exists: () => true, refreshMs: 1_000,
    publish: (body) => {
      sent.push({ at: Math.floor(clock.t / 100) % 4, rows: body.rows.length });
      cell.observe(hormone('digest', body));
    },
  });
  const interval = (load = 0.25) => {
    clock.t += 100;
    grow.observe(hormone('pulse', pulseBody({ pid: 1, load, demand: load })));
    grow.tick();
    digest.round();
    cell.tick();
  };
  grow.observe(hormone('pulse', pulseBody({ pid: 1 })));
  digest.round();
  for (let i = 0; i < 16; i++) interval();
  // The first (whole) and the newcomer's repeats are news; after them, only the stride's
  // intervals, and the row's refresh (due after 1 s) waits for one of them.
  const idle = sent.slice(4);
  t.true(idle.length >= 3, `idle rounds were sent: ${JSON.stringify(sent)}`);
  t.true(idle.every((d) => d.at === 0), `idle rounds only on the stride: ${JSON.stringify(idle)}`);
  t.deepEqual(idle.map((d) => d.rows).filter((n) => n > 0), [1], `one refresh: ${JSON.stringify(idle)}`);
  t.true(digest.stats.calm >= 4, `rounds left out: ${digest.stats.calm}`);
  t.is(cell.get('a')?.state, 'alive', 'a stride without a digest is not silence');
  // News is sent on the next round, on the stride or not.
  while (Math.floor(clock.t / 100) % 4 !== 1) interval();
  const before = sent.length;
  interval(0.95);
  t.is(sent.length, before + 1);
  t.is(sent.at(-1)!.rows, 1);
  t.is(cell.get('a')?.load, 0.95);
  // The host falls silent: suspect only past the stride's slack (300 ms) and 3 intervals, dead past 6.
  const quiet = (ms: number) => {
    clock.t += ms;
    cell.tick();
  };
  quiet(600);
  t.is(cell.get('a')?.state, 'alive', '600 ms of silence is within the slack and the suspect threshold');
  quiet(100);
  t.is(cell.get('a')?.state, 'suspect');
  quiet(300);
  t.is(cell.get('a')?.state, 'dead');
});

test('host digest - a whole round takes back nothing silence judged that it does not name: the rounds after it give back only what it named', (t) => {
  const { clock, hormone } = setup();
  const cell = new Census({ limits, now: clock.now, pulsesOf: () => false, beat: false });
  const row = (i: string) => ({ i, q: 'echo', s: 'alive' as const, c: null, l: 0, m: 0, d: 0, u: 0, r: 50, g: 0, p: 1, b: T0, a: null, w: null, n: 1, z: clock.t, k: [0, 0, 0, 0] });
  const digest = (round: number, full: boolean, rows: ReturnType<typeof row>[], alive: number) =>
    cell.observe(hormone('digest', ROOT_ISSUER, { host: 'h1', round, part: 0, parts: 1, full, alive, epoch: 1, beacon: 'b', rows }));
  digest(1, true, [row('a'), row('b')], 2);
  for (let round = 2; round <= 5; round++) digest(round, false, [], 2);
  t.deepEqual(cell.living().map((c) => c.id), ['a', 'b']);
  // The host falls silent: both dead here, for their silence only.
  clock.t += 1_000;
  cell.tick();
  t.deepEqual(cell.living().map((c) => c.id), []);
  // Its grow started again (round 1 anew), whole: a lives there, b is gone.
  digest(1, true, [row('a')], 1);
  t.deepEqual(cell.living().map((c) => c.id), ['a']);
  // The delta after it, a round later, names nobody: b must not come back.
  clock.t += 100;
  digest(2, false, [], 1);
  t.deepEqual(cell.living().map((c) => c.id), ['a'], 'b stays dead: the whole round did not name it');
  t.is(cell.get('b')?.state, 'dead');
});
