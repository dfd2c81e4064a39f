/**
 * The immune system with real cells on a real nats-server: each injected misbehaviour is
 * accused, voted out by 2/3 of the census, quarantined and killed, and the tissue regrown;
 * forged accusations, votes and toxins change nothing; a minority of colluding liars cannot
 * condemn an honest cell.
 */
import { hostName } from '../../organism/kernel/host.ts';
import test, { type ExecutionContext } from 'ava';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { encode } from 'msgpackr';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { genomeHash, loadGenome } from '../../organism/kernel/genome/index.ts';
import { generateKeypair, privateKeyObject } from '../../organism/kernel/keys.ts';
import { issueCertificate, packCertificate, ROOT_ISSUER, unpackCertificate } from '../../organism/kernel/lineage.ts';
import { loadRootKey } from '../../organism/grow/root-key.ts';
import { openLineage } from '../../organism/kernel/stores.ts';
import type { Hormone } from '../../organism/kernel/hormone.ts';
import { sealHormone, SharedSequence } from '../../organism/kernel/hormone.ts';
import { isAlive, waitGone } from '../../organism/kernel/processes.ts';
import type { AccuseBody, HormoneKind, ToxinBody, VerdictBody, VoteBody } from '../../organism/kernel/vocabulary.ts';
import type { FaultKind } from '../../cells/immune/faults.ts';
import { codeHash } from '../../cells/code-hash.ts';
import { openReply } from '../../organism/kernel/reply.ts';
import { until } from '../helpers/grow.ts';
import { Ring } from '../../organism/kernel/sortition.ts';
import { startOrganism } from '../helpers/organism.ts';
import type { Organism } from '../../organism/grow/organism.ts';

const FAST = ['limits.pulseIntervalMs=250', 'limits.suspectAfterPulses=3', 'limits.deadAfterPulses=6', 'limits.drainTimeoutMs=2000', 'limits.shutdownTimeoutMs=8000'];

async function organism(t: ExecutionContext, sets: string[] = []) {
  const genome = loadGenome({ sets: [...FAST, 'tissues.stem.min=0', 'tissues.echo.min=4', 'tissues.echo.max=6', ...sets] });
  const { o, nats } = await startOrganism(t, genome);
  const heard: Hormone[] = [];
  o.observer.bus.on((h) => {
    if (h.kind === 'accuse' || h.kind === 'vote' || h.kind === 'verdict' || h.kind === 'toxin') heard.push(h);
  });
  await o.waitForPopulation();
  const of = <B>(kind: string) => heard.filter((h) => h.kind === kind) as Hormone<B>[];
  return { o, nats, genome, heard, of };
}

/** Inject `fault` into a new echo cell; wait until it is voted out and killed. */
async function convicts(t: ExecutionContext, fault: FaultKind, sets: string[] = []) {
  const m = await organism(t, sets);
  const honest = m.o.observer.census.living().filter((c) => c.state === 'alive').map((c) => c.id);
  const bad = await m.o.spawn('echo', undefined, { fault });
  const onset = Date.now();
  await until(() => m.of<VerdictBody>('verdict').some((v) => v.body.accused === bad.id && v.body.guilty), 20_000, `a guilty verdict on the ${fault} ${bad.id}`);
  const verdict = m.of<VerdictBody>('verdict').find((v) => v.body.accused === bad.id && v.body.guilty)!.body;
  t.is(await waitGone(bad.pid, 5_000), true, `the ${fault} cell is dead`);
  const dead = Date.now() - onset;
  t.log(`${fault}: ${verdict.kind} — ${verdict.votes} of a jury of ${verdict.jury} (needed ${verdict.needed}); dead ${dead} ms after it was made`);
  t.true(verdict.votes >= Math.ceil((2 * verdict.jury) / 3), 'at least 2/3 of the jury voted guilty');
  t.true(verdict.jury >= honest.length - 1, `the jury is the census (${verdict.jury} of ${honest.length} honest cells)`);
  // Jurors are honest cells only: never the accused.
  const voters = m.of<VoteBody>('vote').filter((v) => v.body.accused === bad.id && v.body.guilty).map((v) => v.from);
  t.false(voters.includes(bad.id));
  // The toxin is announced just after the kill: it may arrive a moment after the pid is gone.
  await until(() => m.of<ToxinBody>('toxin').some((x) => x.body.cell === bad.id), 3_000, 'the toxin announced');
  // No honest cell was condemned, and every honest cell still lives.
  t.deepEqual(m.of<VerdictBody>('verdict').filter((v) => v.body.guilty && honest.includes(v.body.accused)), []);
  for (const id of honest) t.not(m.o.observer.census.get(id)?.state, 'dead', `${id} lives`);
  return { ...m, bad, verdict, honest };
}

test.serial('immune - a flooder is accused, voted out by 2/3 of its panel and killed; its trial replayed changes nothing', async (t) => {
  const m = await convicts(t, 'flood');
  const { verdict, o, nats, of, honest } = m;
  t.is(verdict.kind, 'flood');
  // It floods pulses, which only its host's grow hears: the accusation rests on the grow's row.
  t.regex(accusedFor(m), /^its host: \d+ hormones\/s/);
  // Record the trial's hormones as they crossed the wire… (they are in the census's past by now)
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const raw: Uint8Array[] = [];
  // …re-encoded exactly (the codec is canonical: the same bytes, the same signatures).
  const { codec } = await import('../../organism/wire/codec.ts');
  for (const h of of('accuse').concat(of('vote'), of('verdict'), of('toxin'))) raw.push(codec.pack(h));
  // Two cells may have accused it at the same moment: each trial's verdict arrives in its own
  // time, so what the replay must not change is judged by content, not by counting.
  const trials = new Set(of<AccuseBody>('accuse').map((h) => h.body.id));
  const before = await Promise.all(honest.map((id) => stats(o, id).catch(() => undefined)));
  for (const bytes of raw) nc.publish(((e) => o.observer.ns.hormone(e.kind, e.from))(codec.unpack(bytes) as { kind: HormoneKind; from: string }), bytes);
  await nc.flush();
  await new Promise((r) => setTimeout(r, 1_500));
  t.deepEqual(of<VerdictBody>('verdict').filter((v) => v.body.accused !== verdict.accused), [], 'no verdict on anyone else');
  t.deepEqual(of<AccuseBody>('accuse').filter((h) => h.body.accused !== verdict.accused), [], 'no accusation of anyone else');
  t.deepEqual(of<VerdictBody>('verdict').filter((v) => !trials.has(v.body.accusation) && v.body.guilty), [], 'no new guilty verdict');
  t.deepEqual(of<ToxinBody>('toxin').filter((x) => x.body.cell !== verdict.accused), [], 'no toxin for anyone else');
  const after = await Promise.all(honest.map((id) => stats(o, id).catch(() => undefined)));
  const replayed = after.reduce((n, s, i) => n + (s && before[i] ? (s.hormones.dropped.replayed ?? 0) - (before[i]!.hormones.dropped.replayed ?? 0) : 0), 0);
  t.true(replayed >= raw.length, `${replayed} replays dropped (${raw.length} sent, to each cell)`);
  for (const id of honest) t.not(o.observer.census.get(id)?.state, 'dead', `${id} lives`);
});

async function stats(o: Organism, id: string) {
  return openReply<{ hormones: { dropped: Record<string, number> }; immune: { verdicts: { guilty: number; acquitted: number } } }>((await o.observer.nc.request(o.observer.ns.cell(id, 'stats'), new Uint8Array(0), { timeout: 2_000 })).data);
}

/** What the accusation said: pulse and process evidence comes from the accused's host's grow, in its digest row. */
function accusedFor(m: Awaited<ReturnType<typeof convicts>>): string {
  return m.of<AccuseBody>('accuse').find((a) => a.body.accused === m.bad.id)!.body.detail;
}

test.serial('immune - a cell running another genome (tampered hash) is named by its host grow, voted out and killed', async (t) => {
  const m = await convicts(t, 'tamper');
  t.is(m.verdict.kind, 'genome');
  t.regex(accusedFor(m), /^its host: \d+ pulses with genome\/code /);
});

test.serial('immune - a liar (claims a full core while idle) is caught by its host grow checking its real process; its watchers accuse, its panel convicts', async (t) => {
  const m = await convicts(t, 'liar');
  t.is(m.verdict.kind, 'liar');
  t.regex(accusedFor(m), /^its host: \d+ checks in a row: claims/);
});

test.serial('immune - a forger (signed bad bodies, votes and toxins for trials that never were) is voted out; its toxins kill nobody', async (t) => {
  const { verdict, of, bad } = await convicts(t, 'forger');
  t.is(verdict.kind, 'forgery');
  // Its forged toxins named honest cells: none of them died.
  const forgedToxins = of<ToxinBody>('toxin').filter((x) => x.from === bad.id);
  t.true(forgedToxins.length > 0, 'it did send toxins');
});

test.serial('immune - cancer: a lineage dividing past its budget is condemned whole, and the tissue regrows to its healthy size', async (t) => {
  const { o, verdict, bad } = await convicts(t, 'cancer', ['limits.lineageBudget=3', 'tissues.echo.max=12', 'limits.cellsPerHost=40']);
  t.is(verdict.kind, 'cancer');
  t.true(verdict.condemned.includes(bad.id));
  // Every cell of the lineage, condemned with it or born into it later, is dead.
  const lineage = new Set([bad.id]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of o.observer.census.list()) if (c.parent && lineage.has(c.parent) && !lineage.has(c.id)) (lineage.add(c.id), (grew = true));
  }
  await until(() => [...lineage].every((id) => { const c = o.observer.census.get(id); return !c || c.state === 'dead'; }), 10_000, 'the whole lineage dead');
  // And no process anywhere on this host descends from it, by its certificate chain (a child
  // whose process started as the verdict fell is condemned at its birth).
  const { localCells } = await import('../../organism/kernel/processes.ts');
  const kv = await openLineage(o.observer.nc, o.observer.ns);
  const descends = async (id: string): Promise<boolean> => {
    for (let at: string | null = id, depth = 0; at !== null && depth < 64; depth++) {
      if (at === bad.id) return true;
      const e = await kv.get(at);
      if (!e || e.operation !== 'PUT') return false;
      at = (unpackCertificate(e.value) as { parent: string | null }).parent;
    }
    return false;
  };
  let survivors: string[] = [];
  await until(async () => {
    survivors = [];
    for (const p of localCells(o.id)) if (await descends(p.cell)) survivors.push(`${p.cell} (pid ${p.pid}, census: ${o.observer.census.get(p.cell)?.state ?? 'unknown'})`);
    return survivors.length === 0;
  }, 10_000, 'no process descending from the cancer left').catch((e: Error) => {
    throw new Error(`${e.message}; still alive: ${survivors.join(', ')}`);
  });
  let made = 0;
  for await (const _ of await kv.keys()) made++;
  t.log(`lineage of ${lineage.size} cells in the census removed (${made} certificates made in all)`);
  // Regrown to the healthy size (min 4), and no larger than the genome allows.
  await until(() => o.observer.census.living().filter((c) => c.tissue === 'echo' && c.state === 'alive').length >= 4, 15_000, 'echo regrown to 4').catch((e: Error) => {
    throw new Error(`${e.message}; census: ${o.observer.census.list().map((c) => `${c.id} ${c.state}${c.cause ? ` (${c.cause})` : ''}`).join(', ')}`);
  });
});

test.serial('immune - forged accusations, votes and toxins (foreign key, bad signature, replay) change nothing', async (t) => {
  const m = await organism(t);
  const victim = m.o.observer.census.living().find((c) => c.tissue === 'echo')!;
  const nc = await connect({ servers: m.nats.url });
  t.teardown(() => nc.close());
  const foreign = generateKeyPairSync('ed25519').privateKey;
  const seq = new SharedSequence();
  const at = Date.now();
  const accuse: AccuseBody = { id: 'forged.1', accused: victim.id, kind: 'flood', detail: 'forged', at, lineage: false };
  // A foreign key speaking as itself, and as a real cell (the signature cannot verify).
  for (const from of ['echo-0badc0de', ...m.o.observer.census.living().map((c) => c.id)]) {
    const signer = { id: from, organism: m.o.observer.ns.id, key: foreign, nextSeq: () => seq.next() };
    nc.publish(m.o.observer.ns.hormone('accuse', from), sealHormone(signer, 'accuse', accuse, 8192));
    nc.publish(m.o.observer.ns.hormone('vote', from), sealHormone(signer, 'vote', { accusation: 'forged.1', accused: victim.id, guilty: true, detail: 'forged' }, 8192));
    nc.publish(m.o.observer.ns.hormone('toxin', from), sealHormone(signer, 'toxin', { accusation: 'forged.1', accused: victim.id, cell: victim.id, pid: victim.pid, host: victim.host }, 8192));
  }
  // Replays of real hormones (a pulse of the victim's) change nothing either.
  await nc.flush();
  await new Promise((r) => setTimeout(r, 4_000));
  t.true(isAlive(victim.pid), 'the victim lives');
  t.is(m.o.observer.census.get(victim.id)?.state, 'alive');
  t.deepEqual(m.of('verdict'), [], 'no verdict');
  t.deepEqual(m.of('vote').filter((v) => (v.body as VoteBody).accusation === 'forged.1'), [], 'no cell voted on the forged accusation');
  // Every cell dropped them as foreign or badly signed: counted in stats.
  const stats = openReply<{ hormones: { dropped: { foreign: number; badSignature: number } } }>((await m.o.observer.nc.request(m.o.observer.ns.cell(victim.id, 'stats'), new Uint8Array(0), { timeout: 2_000 })).data);
  t.true(stats.hormones.dropped.foreign > 0, 'foreign senders counted');
  t.true(stats.hormones.dropped.badSignature > 0, 'bad signatures counted');
});

/** A certified identity the test speaks as (signed by the organism's root key, like any first cell). */
async function certifiedImpostor(m: Awaited<ReturnType<typeof organism>>, tissue = 'echo') {
  const root = loadRootKey(m.o.stateDir);
  const pair = generateKeypair();
  const id = `${tissue}-${randomBytes(4).toString('hex')}`;
  const cert = issueCertificate({ cell: id, pub: pair.pub, tissue, host: hostName(), born: Date.now(), generation: 0, budget: 0, parent: null, issuer: ROOT_ISSUER }, root.privateKey);
  const lineage = await openLineage(m.o.observer.nc, m.o.observer.ns);
  await lineage.create(id, packCertificate(cert));
  const seq = new SharedSequence();
  const signer = { id, organism: m.o.observer.ns.id, key: privateKeyObject(pair.seed), nextSeq: () => seq.next() };
  const say = (kind: HormoneKind, body: unknown) => m.o.observer.nc.publish(m.o.observer.ns.hormone(kind, id), sealHormone(signer, kind, body, 8192));
  return { id, cert, say };
}

test.serial('immune - fewer than 1/3 colluding liars cannot condemn an honest cell', async (t) => {
  const m = await organism(t, ['tissues.echo.min=5']);
  const honest = m.o.observer.census.living().filter((c) => c.state === 'alive');
  const victim = honest.find((c) => c.tissue === 'echo')!;
  // Two certified colluders, alive in the census (they pulse), out of a jury of 2 + the
  // honest cells but the victim: short of 2/3 by themselves.
  const colluders = [await certifiedImpostor(m), await certifiedImpostor(m)];
  const code = await codeHash(); // the organism's own code: they are not caught for that

  const beat = setInterval(() => {
    for (const c of colluders) {
      c.say('pulse', { tissue: 'echo', host: hostName(), pid: process.pid, parent: null, born: c.cert.born, state: 'alive', load: 0, demand: 0, cpu: 1, cpuMs: 10, rss: 50e6, lag: 0, work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, genome: genomeHash(m.genome), code, url: null, n: 1 });
    }
  }, 200);
  t.teardown(() => clearInterval(beat));
  await until(() => colluders.every((c) => m.o.observer.census.get(c.id)?.state === 'alive'), 5_000, 'colluders in the census');
  await new Promise((r) => setTimeout(r, 500));
  // The victim's panel as every cell draws it: from the beacon in the digests, never the accuser's choice.
  const panelOf = (accused: string, at: number) => {
    const b = m.o.observer.census.beacon!;
    const ring = new Ring(b.beacon, m.o.observer.census.list().filter((c) => c.state !== 'dead'));
    return { jury: ring.panel(accused, m.genome.immune.jury, at), epoch: b.epoch };
  };
  // First they name themselves as the jury: no cell draws that panel, so none hears it.
  const packed: AccuseBody = { id: `${colluders[0]!.id}.0`, accused: victim.id, kind: 'flood', detail: 'colluding', at: Date.now(), lineage: false, jury: colluders.map((c) => c.id), epoch: m.o.observer.census.beacon!.epoch };
  colluders[0]!.say('accuse', packed);
  for (const c of colluders) c.say('vote', { accusation: packed.id, accused: victim.id, guilty: true, detail: 'colluding' });
  // Then the real panel: they sit on it (a small organism), short of 2/3 by themselves.
  const at = Date.now();
  const accusation: AccuseBody = { id: `${colluders[0]!.id}.1`, accused: victim.id, kind: 'flood', detail: 'colluding', at, lineage: false, ...panelOf(victim.id, at) };
  colluders[0]!.say('accuse', accusation);
  for (const c of colluders) c.say('vote', { accusation: accusation.id, accused: victim.id, guilty: true, detail: 'colluding' });
  await new Promise((r) => setTimeout(r, m.genome.immune.voteDeadlineMs + 1_500));
  t.deepEqual(m.of<VoteBody>('vote').filter((v) => v.body.accusation === packed.id && !colluders.some((c) => c.id === v.from)), [], 'a packed panel is heard by nobody: no honest cell votes on it');
  t.true(isAlive(victim.pid), 'the victim lives');
  t.is(m.o.observer.census.get(victim.id)?.state, 'alive', 'the witness did not condemn it either');
  t.deepEqual(m.of<ToxinBody>('toxin'), [], 'no toxin');
  // Honest jurors voted innocent (no evidence of their own) until 2/3 guilty was out of
  // reach: a jury of the honest cells but the victim, and the two colluders.
  const votes = m.of<VoteBody>('vote').filter((v) => v.body.accusation === accusation.id && !colluders.some((c) => c.id === v.from));
  const jury = accusation.jury!.length;
  t.true(accusation.jury!.filter((j) => colluders.some((c) => c.id === j)).length < (2 * jury) / 3, 'the colluders are short of 2/3 of the panel');
  t.true(votes.length >= jury - Math.ceil((2 * jury) / 3) + 1, `${votes.length} honest votes out of a jury of ${jury}`);
  t.true(votes.every((v) => !v.body.guilty), 'all innocent');
  const stats = openReply<{ immune: { verdicts: { acquitted: number; guilty: number } } }>((await m.o.observer.nc.request(m.o.observer.ns.cell(victim.id === honest[0]!.id ? honest[1]!.id : honest[0]!.id, 'stats'), new Uint8Array(0), { timeout: 2_000 })).data);
  t.is(stats.immune.verdicts.guilty, 0);
  t.is(stats.immune.verdicts.acquitted, 1, 'the trial ended in an acquittal');

  // Alone, an accuser whose accusations no juror supports is held to account: three
  // baseless accusations are forgery, and the jury condemns it (quarantined: it has no
  // process of ours to kill).
  const [liar] = colluders;
  const condemned = () => m.of<VerdictBody>('verdict').some((v) => v.body.accused === liar!.id && v.body.guilty && v.body.kind === 'forgery');
  for (let i = 2; i <= 4 && !condemned(); i++) {
    const id = `${liar!.id}.${i}`;
    const when = Date.now();
    liar!.say('accuse', { ...accusation, id, at: when, ...panelOf(victim.id, when) });
    liar!.say('vote', { accusation: id, accused: victim.id, guilty: true, detail: 'alone' });
    await until(() => condemned() || m.of<VoteBody>('vote').filter((v) => v.body.accusation === id && !v.body.guilty).length >= 3, 5_000, `innocent votes on ${id}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  await until(() => m.of<VerdictBody>('verdict').some((v) => v.body.accused === liar!.id && v.body.guilty && v.body.kind === 'forgery'), 10_000, 'the lone false accuser condemned for forgery');
  t.is(m.o.observer.census.get(liar!.id)?.state, 'dead', 'quarantined: dead to the census');
  t.true(isAlive(victim.pid), 'the victim still lives');
});

test.serial('immune - an honest swarm with its CPU saturated (pulses late, cells busy) accuses nobody', async (t) => {
  const m = await organism(t, ['tissues.echo.min=6', 'limits.homeostasis=false']);
  // Two busy loops per core's worth, started and stopped by this test.
  const hogs = Array.from({ length: 4 }, () => spawn(process.execPath, ['-e', 'const end = Date.now() + 30000; while (Date.now() < end) {}'], { stdio: 'ignore' }));
  t.teardown(() => hogs.forEach((h) => h.kill('SIGKILL')));
  // And the cells themselves busy: requests that burn CPU in the echo cells.
  const echo = m.o.observer.ns.tissue('echo', 'burn');
  const end = Date.now() + 15_000;
  let sent = 0;
  while (Date.now() < end) {
    await Promise.allSettled(Array.from({ length: 16 }, () => m.o.observer.nc.request(echo, encode({ ms: 20 }), { timeout: 5_000 })));
    sent += 16;
  }
  hogs.forEach((h) => h.kill('SIGKILL'));
  t.log(`${sent} requests over 15 s with 4 busy loops on the cores`);
  t.deepEqual(m.of('accuse').map((h) => (h.body as AccuseBody).detail), [], 'no accusation');
  t.deepEqual(m.of('verdict'), [], 'no verdict');
  for (const c of m.o.observer.census.living()) t.true(isAlive(c.pid), `${c.id} lives`);
});

test.serial('immune - a side that cannot write the store (a minority without KV quorum; here the bucket is sealed) reaches no verdict and grows nothing', async (t) => {
  const m = await organism(t);
  // Sealing makes every write to the homeostasis bucket fail, as losing the quorum does.
  const jsm = await jetstreamManager(m.o.observer.nc);
  const stream = `KV_${m.o.observer.ns.bucket('homeostasis')}`;
  const info = await jsm.streams.info(stream);
  await jsm.streams.update(stream, { ...info.config, sealed: true } as Parameters<typeof jsm.streams.update>[1]);
  const decisionsBefore = m.heard.length;
  const bad = await m.o.spawn('echo', undefined, { fault: 'flood' });
  // The jurors still accuse and vote guilty: each tally reaches 2/3 on its own.
  await until(() => m.of<VoteBody>('vote').filter((v) => v.body.accused === bad.id && v.body.guilty).length >= 3, 20_000, `guilty votes on the flooder ${bad.id}`);
  // …but nobody can record the verdict, so nobody acts on it (a vote deadline and more).
  await new Promise((r) => setTimeout(r, m.genome.immune.voteDeadlineMs + 1_500));
  t.false(m.of<VerdictBody>('verdict').some((v) => v.body.accused === bad.id && v.body.guilty), 'no guilty verdict published');
  t.deepEqual(m.of<ToxinBody>('toxin').filter((h) => h.body.cell === bad.id), [], 'no toxin');
  t.true(isAlive(bad.pid), 'the accused still runs: convicting it needs the whole organism\'s store');
  t.true(m.heard.length > decisionsBefore, 'the trial itself was heard');
  // Kill it ourselves (the test made it), and see that no regrowth can be decided either.
  process.kill(bad.pid, 'SIGKILL');
  await waitGone(bad.pid, 5_000);
});
