import test from 'ava';
import { codec as packr } from '../../organism/wire/codec.ts';
import type { CensusEntry, CensusEvent } from '../../organism/kernel/census.ts';
import { isCellularError } from '../../organism/wire/errors.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { sealHormone, SharedSequence } from '../../organism/kernel/hormone.ts';
import { generateKeypair, privateKeyObject } from '../../organism/kernel/keys.ts';
import { issueCertificate, packCertificate } from '../../organism/kernel/lineage.ts';
import { loadRootKey } from '../../organism/grow/root-key.ts';
import { openLineage } from '../../organism/kernel/stores.ts';
import { pack, openReply } from '../../organism/kernel/reply.ts';
import type { PulseBody } from '../../organism/kernel/vocabulary.ts';
import { censusJson, grow, observe, until } from '../helpers/grow.ts';
import { isAlive } from '../../organism/kernel/processes.ts';
import { strideMs, strideSlackMs } from '../../organism/kernel/phase.ts';

// Timing-sensitive: one organism at a time in this file.

test.serial('cell - kill -9 is dead within an interval (its host finds the pid gone); a stopped cell is suspect, then dead, within the configured pulses', async (t) => {
  // Homeostasis off: this is about missed pulses (regrowth is tested in homeostasis.test).
  const g = await grow(t, { sets: ['tissues.stem.min=1', 'tissues.echo.min=2', 'limits.homeostasis=false'] });
  const observer = await observe(t, g);
  const { pulseIntervalMs, suspectAfterPulses, deadAfterPulses } = g.genome.limits;
  const [killed, victim] = (await censusJson(g)).filter((e) => e.tissue === 'echo');
  t.truthy(victim);
  await until(() => observer.census.get(victim!.id)?.state === 'alive' && observer.census.get(killed!.id)?.state === 'alive', 5_000, 'observer sees both');
  // kill -9: grow probes its cells' pids every quarter interval, and its next digest says so.
  const killedAt = Date.now();
  process.kill(killed!.pid, 'SIGKILL');
  await until(() => observer.census.get(killed!.id)?.state === 'dead', 3 * pulseIntervalMs, 'dead after kill -9');
  const vanishedAfter = Date.now() - killedAt;
  t.is(observer.census.get(killed!.id)?.cause, 'vanished');
  t.true(vanishedAfter <= 2 * pulseIntervalMs + 250, `dead ${vanishedAfter} ms after kill -9`);
  t.log(`kill -9 → dead in ${vanishedAfter} ms`);
  // A stopped process still exists: only its silence speaks, as for a cell cut off.
  const events: { e: CensusEvent; at: number }[] = [];
  observer.census.on((e) => {
    if (e.entry.id === victim!.id) events.push({ e, at: Date.now() });
  });
  const lastSeen = observer.census.get(victim!.id)!.lastSeen;
  process.kill(victim!.pid, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(victim!.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  await until(() => events.some(({ e }) => e.type === 'state' && e.entry.state === 'dead'), (deadAfterPulses + 10) * pulseIntervalMs, 'dead');
  const states = events.filter(({ e }) => e.type === 'state') as { e: Extract<CensusEvent, { type: 'state' }>; at: number }[];
  t.deepEqual(states.map(({ e }) => `${e.from}->${e.entry.state}`), ['alive->suspect', 'suspect->dead']);
  // From its last pulse's send time (the observer's lastSeen also moves with each digest of its host).
  // A calm cell pulses once a stride, and its pulse reaches the observer in its host's next
  // digest: the last one heard may be a stride and an interval older than the last digest.
  const lastPulse = observer.census.get(victim!.id)!.ts;
  t.true(lastPulse >= lastSeen - strideMs(g.genome.limits) - pulseIntervalMs, `the last pulse heard is from about when it stopped (${lastSeen - lastPulse} ms before the last digest)`);
  const suspectAfter = states[0]!.at - lastPulse;
  const deadAfter = states[1]!.at - lastPulse;
  // Judged after the configured number of missed pulses: never before, and not much after.
  t.true(suspectAfter >= suspectAfterPulses * pulseIntervalMs, `suspect after ${suspectAfter} ms`);
  t.true(deadAfter >= deadAfterPulses * pulseIntervalMs, `dead after ${deadAfter} ms`);
  // (Its last pulse may have been a calm one: a stride's slack on top, organism/kernel/phase.ts.)
  t.true(deadAfter <= (deadAfterPulses + 3) * pulseIntervalMs + strideSlackMs(g.genome.limits), `dead after ${deadAfter} ms`);
  t.is(states[1]!.e.entry.cause, 'missed-pulses');
  // The CLI sees the same thing.
  const row = (await censusJson(g)).find((e) => e.id === victim!.id);
  t.is(row?.state, 'dead');
  // The survivor was never suspected.
  const stem = observer.census.list().find((e) => e.tissue === 'stem')!;
  t.is(stem.state, 'alive');
});

test.serial('cell - a cell busy in a CPU loop is busy, not dead: its host sees it run, and the census shows its lag', async (t) => {
  const g = await grow(t, { sets: ['tissues.stem.min=0', 'tissues.echo.min=1'] });
  const observer = await observe(t, g);
  const { pulseIntervalMs, suspectAfterPulses } = g.genome.limits;
  const [cell] = await censusJson(g);
  await until(() => observer.census.get(cell!.id)?.state === 'alive', 5_000, 'observer sees the cell');
  const pulses: { at: number; body: PulseBody }[] = [];
  const states: string[] = [];
  observer.bus.on((h: Hormone) => {
    if (h.kind === 'pulse' && h.from === cell!.id) pulses.push({ at: Date.now(), body: h.body as PulseBody });
  });
  observer.census.on((e) => {
    if (e.entry.id === cell!.id && e.type === 'state') states.push(e.entry.state);
  });
  // What the census (grow's digests) says of the cell while its main thread is stuck.
  const seen: { lag: number; load: number; state: string }[] = [];
  const watch = setInterval(() => {
    const e = observer.census.get(cell!.id);
    if (e) seen.push({ lag: e.lag, load: e.load, state: e.state });
  }, 50);
  t.teardown(() => clearInterval(watch));
  const burnMs = suspectAfterPulses * pulseIntervalMs * 5; // 3.75 s: five times the suspect threshold
  const sent = Date.now();
  const reply = await observer.nc.request(observer.ns.tissue('echo', 'burn'), pack({ ms: burnMs }), { timeout: burnMs + 5_000 });
  const done = Date.now();
  clearInterval(watch);
  const value = openReply<{ ms: number; spins: number }>(reply.data);
  t.is(value.ms, burnMs);
  t.true(value.spins > 0);
  t.deepEqual(states, [], 'no suspect/dead while busy');
  // Its main thread pulses, so it was silent while stuck (the peer in `npm run bench -- busy`) …
  const during = pulses.filter((p) => p.at > sent + pulseIntervalMs && p.at < done - pulseIntervalMs);
  t.deepEqual(during.map((p) => p.body.n), [], 'no pulse while the main thread was stuck');
  // … and grow, which saw its process run, said busy: lag growing with the silence.
  const longest = Math.max(...seen.map((s) => s.lag));
  t.true(longest >= burnMs - 3 * pulseIntervalMs, `the census showed a lag of up to ${longest} ms during a ${burnMs} ms burn`);
  t.true(seen.every((s) => s.state === 'alive'), 'alive throughout');
  // The next pulse counts the finished request, reports the block, and shows the loop free again.
  await until(() => pulses.at(-1)?.body.work.handled === 1, 5 * pulseIntervalMs, 'a pulse after the burn');
  t.true(pulses.some((p) => p.at >= done - pulseIntervalMs && p.body.lag >= burnMs - 2 * pulseIntervalMs), 'the first pulse after says how long the loop was blocked');
  t.is(pulses.at(-1)!.body.work.inflight, 0);
});

test.serial('cell - a calm cell pulses once a stride, with its host\'s digest; work makes it pulse every interval at once, and the census never doubts it', async (t) => {
  const g = await grow(t, { sets: ['tissues.stem.min=0', 'tissues.echo.min=1', 'limits.calmStride=3'] });
  const observer = await observe(t, g);
  const { pulseIntervalMs: T } = g.genome.limits;
  const stride = 3 * T;
  const [cell] = await censusJson(g);
  const pulses: number[] = [];
  /** Each pulse's time and the work it reports (what decides whether its next one is calm). */
  const bodies: { ts: number; handled: number; busy: number }[] = [];
  const states: string[] = [];
  observer.bus.on((h: Hormone) => {
    if (h.kind !== 'pulse' || h.from !== cell!.id) return;
    pulses.push(h.ts);
    const w = (h.body as PulseBody).work;
    bodies.push({ ts: h.ts, handled: w.handled, busy: w.inflight + w.queued });
  });
  observer.census.on((e) => {
    if (e.entry.id === cell!.id && e.type === 'state') states.push(e.entry.state);
  });
  // Past its startup and two pulses with nothing handled: calm, three pulses a stride apart.
  const calmGaps = () => pulses.slice(-3).map((ts, i, a) => (i === 0 ? stride : ts - a[i - 1]!));
  await until(() => pulses.length >= 4 && calmGaps().every((gap) => gap >= stride - T / 2), 30 * T, 'three calm pulses in a row');
  // In the wakeup its host's digest brings, a quarter interval into the stride (and the
  // digest comes on the stride's first interval): every calm cell of a host at once.
  // A pulse is calm when the two before it report the same work and none under way (the cell
  // then arms no timer): a request that reached the cell meanwhile (its census endpoint is a
  // queue group every cell serves) rightly makes the next pulses come every interval.
  const calm = bodies.filter((b, i) => i >= 2 && b.busy === 0 && bodies[i - 1]!.handled === bodies[i - 2]!.handled && b.handled === bodies[i - 1]!.handled).slice(-3);
  t.true(calm.length >= 2, `calm pulses: ${JSON.stringify(bodies.slice(-6).map((b) => [b.ts % stride, b.handled, b.busy]))}`);
  for (const b of calm) t.true(b.ts % stride < T, `a calm pulse at ${b.ts % stride} ms into the stride: in its first interval (the last pulses [offset, handled, busy]: ${JSON.stringify(bodies.slice(-6).map((x) => [x.ts % stride, x.handled, x.busy]))})`);
  // Work: a request held for six intervals. Its pulses come every interval from the next one.
  const sent = Date.now();
  const reply = await observer.nc.request(observer.ns.tissue('echo', 'wait'), pack({ ms: 6 * T }), { timeout: 20 * T });
  t.true(openReply<{ ms: number }>(reply.data).ms >= 0);
  const done = Date.now();
  const during = pulses.filter((ts) => ts > sent + T && ts < done);
  t.true(during.length >= 4, `${during.length} pulses while it worked for ${done - sent} ms (${JSON.stringify(during.map((ts) => ts - sent))})`);
  for (let i = 1; i < during.length; i++) t.true(during[i]! - during[i - 1]! < 1.5 * T, 'every interval while it works');
  t.deepEqual(states, [], 'neither suspect nor dead, calm or busy');
  t.is(observer.census.get(cell!.id)?.state, 'alive');
});

test.serial('cell - answers ping, info and stats; counts bad and foreign hormones without dying', async (t) => {
  const g = await grow(t, { sets: ['tissues.stem.min=0', 'tissues.echo.min=1'] });
  const observer = await observe(t, g);
  const [cell] = (await censusJson(g)) as [CensusEntry];
  const ask = async <T>(verb: 'ping' | 'info' | 'stats') => openReply<T>((await observer.nc.request(observer.ns.cell(cell.id, verb), new Uint8Array(0), { timeout: 2_000 })).data);
  const ping = await ask<{ id: string; state: string }>('ping');
  t.is(ping.id, cell.id);
  t.is(ping.state, 'alive');
  const info = await ask<{ pid: number; tissue: string; endpoints: string[]; genome: string }>('info');
  t.is(info.pid, cell.pid);
  t.is(info.tissue, 'echo');
  t.deepEqual(info.endpoints, ['echo', 'burn', 'wait', 'fail']);
  t.is(info.genome, cell.genome);

  type Stats = { hormones: { accepted: number; dropped: Record<string, number> } };
  const before = await ask<Stats>('stats');
  t.true(before.hormones.accepted > 0);
  // Ordinary traffic (its own birth and pulses) is never dropped.
  t.deepEqual(Object.values(before.hormones.dropped).filter((n) => n !== 0), [], JSON.stringify(before.hormones.dropped));
  // Garbage bytes, an unknown kind and a stranger's signed pulse on the hormone subjects a
  // cell hears (every kind but pulses: a cell reads no pulses, only its hosts' digests).
  observer.nc.publish(observer.ns.hormone('birth', 'x'), new Uint8Array([0xc1, 0xff, 0x00]));
  observer.nc.publish(observer.ns.hormone('birth', 'x'), packr.pack({ v: 1, kind: 'gossip', from: 'x', seq: 1, ts: Date.now(), body: {}, sig: new Uint8Array(64) }));
  const stranger = generateKeypair();
  const seq = new SharedSequence();
  observer.nc.publish(
    observer.ns.hormone('shutdown', 'stranger-1'),
    sealHormone({ id: 'stranger-1', organism: observer.ns.id, key: privateKeyObject(stranger.seed), nextSeq: () => seq.next() }, 'shutdown', { reason: 'evil' }, 8192),
  );
  // A forged "root" shutdown: signed by a key that is not the organism's root.
  observer.nc.publish(
    observer.ns.hormone('shutdown', 'root'),
    sealHormone({ id: 'root', organism: observer.ns.id, key: privateKeyObject(stranger.seed), nextSeq: () => seq.next() }, 'shutdown', { reason: 'forged' }, 8192),
  );
  await observer.nc.flush();
  let after = before;
  const end = Date.now() + 5_000;
  while (Date.now() < end) {
    after = await ask<Stats>('stats');
    if (after.hormones.dropped.foreign! > before.hormones.dropped.foreign! && after.hormones.dropped.badSignature! > before.hormones.dropped.badSignature!) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is(after.hormones.dropped.malformed! - before.hormones.dropped.malformed!, 1);
  t.is(after.hormones.dropped.unknownKind! - before.hormones.dropped.unknownKind!, 1);
  t.is(after.hormones.dropped.foreign! - before.hormones.dropped.foreign!, 1);
  t.is(after.hormones.dropped.badSignature! - before.hormones.dropped.badSignature!, 1);
  // A shutdown from a properly certified cell passes every check of the gate, yet only the
  // root may stop the organism: the cell must ignore it.
  const rootKey = loadRootKey(g.stateDir);
  const fake = generateKeypair();
  const cert = issueCertificate(
    { cell: 'fake-1', pub: fake.pub, tissue: 'echo', host: 'elsewhere', born: Date.now(), generation: 0, budget: 0, parent: null, issuer: 'root' },
    rootKey.privateKey,
  );
  await (await openLineage(observer.nc, observer.ns)).create('fake-1', packCertificate(cert));
  const seen: string[] = [];
  observer.bus.on((h: Hormone) => h.from === 'fake-1' && seen.push(h.kind));
  observer.nc.publish(
    observer.ns.hormone('shutdown', 'fake-1'),
    sealHormone({ id: 'fake-1', organism: observer.ns.id, key: privateKeyObject(fake.seed), nextSeq: () => seq.next() }, 'shutdown', { reason: 'not root' }, 8192),
  );
  await until(() => seen.includes('shutdown'), 5_000, 'the certified shutdown admitted by an observer');
  await new Promise((r) => setTimeout(r, 2 * g.genome.limits.pulseIntervalMs));
  // Still alive and serving: neither the garbage nor the forged nor the non-root shutdown stopped it.
  t.is((await ask<{ state: string }>('ping')).state, 'alive');
  const echo = openReply<unknown>((await observer.nc.request(observer.ns.tissue('echo', 'echo'), pack({ hello: 'world' }), { timeout: 2_000 })).data);
  t.deepEqual(echo, { hello: 'world' });
  // Endpoint errors cross the bus as coded data.
  const fail = await observer.nc.request(observer.ns.tissue('echo', 'fail'), pack(null), { timeout: 2_000 });
  const err = t.throws(() => openReply(fail.data));
  t.true(isCellularError(err, 'TISSUE_ERR_BAD_REQUEST'));
  t.is((err as { cell?: string }).cell, cell.id);
  const garbage = await observer.nc.request(observer.ns.tissue('echo', 'echo'), new Uint8Array([0xc1]), { timeout: 2_000 });
  t.true(isCellularError(t.throws(() => openReply(garbage.data)), 'TISSUE_ERR_BAD_REQUEST'));
});

test.serial('cell - SIGTERM drains it: death announced with cause signal, process gone, others untouched', async (t) => {
  const g = await grow(t, { sets: ['tissues.stem.min=1', 'tissues.echo.min=1'] });
  const observer = await observe(t, g);
  const entries = await censusJson(g);
  const victim = entries.find((e) => e.tissue === 'echo')!;
  await until(() => observer.census.get(victim.id)?.state === 'alive', 5_000, 'observer sees the victim');
  // Everything the victim says, in order, from before the signal.
  const said: Hormone[] = [];
  observer.bus.on((h: Hormone) => h.from === victim.id && said.push(h));
  await until(() => said.some((h) => h.kind === 'pulse'), 5_000, 'a pulse heard (the listener works)');
  process.kill(victim.pid, 'SIGTERM');
  await until(() => said.some((h) => h.kind === 'death'), 5_000, 'death hormone');
  const death = said.find((h) => h.kind === 'death')!;
  t.like(death.body, { cause: 'signal', pid: victim.pid });
  t.is(observer.census.get(victim.id)?.state, 'dead');
  t.is(observer.census.get(victim.id)?.cause, 'signal');
  await until(() => !isAlive(victim.pid), 5_000, 'process exit');
  // No pulse after the death: the heart stopped first.
  await new Promise((r) => setTimeout(r, 3 * g.genome.limits.pulseIntervalMs));
  t.deepEqual(said.slice(said.indexOf(death) + 1).map((h) => h.kind), []);
  const stem = entries.find((e) => e.tissue === 'stem')!;
  t.is(observer.census.get(stem.id)?.state, 'alive');
});
