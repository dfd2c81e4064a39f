/**
 * grow's watch over its host's cells (organism/grow/host-watch.ts), through the host digest
 * into a watcher's evidence: what a flooder, a cell on another genome and a liar look like
 * in the rows, and that a finding is taken back. The liar is checked against a real process
 * (a child that carries a cell's command-line markers), read from the real /proc.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Evidence } from '../../../cells/immune/evidence.ts';
import { CELL_MAIN } from '../../../cells/spawn.ts';
import { Census } from '../../../organism/kernel/census.ts';
import { defaultGenome } from '../../../organism/kernel/genome/index.ts';
import type { Hormone } from '../../../organism/kernel/hormone.ts';
import { usageOf } from '../../../organism/kernel/process-usage.ts';
import { DIGEST_REPEAT, type DigestBody, type HormoneKind, type PulseBody } from '../../../organism/kernel/vocabulary.ts';
import { HostDigest } from '../../../organism/grow/host-digest.ts';
import { HostWatch } from '../../../organism/grow/host-watch.ts';
import { generateKeypair, privateKeyObject } from '../../../organism/kernel/keys.ts';
import { issueCertificate, ROOT_ISSUER } from '../../../organism/kernel/lineage.ts';

const limits = { pulseIntervalMs: 100, suspectAfterPulses: 3, deadAfterPulses: 6, deadRetentionMs: 1_000, hormoneMaxBytes: 8192 };
const gene = { ...defaultGenome().immune, floodPerSecond: 50, floodWindowMs: 1_000, liarChecks: 2, genomeMismatches: 2, checkIntervalMs: 100 };

function setup(code = 'c0de', certOf?: ConstructorParameters<typeof Census>[0]['certOf']) {
  let t = Date.now();
  const now = () => t;
  const census = new Census({ limits, now, ...(certOf ? { certOf } : {}) });
  const watch = new HostWatch({ gene, organism: 'o1', host: 'host-1', genomeHash: 'g1', code: () => code, census, now });
  const digests: DigestBody[] = [];
  const digest = new HostDigest({ census, host: 'host-1', limits, beacon: (e) => `b${e}`, now, exists: () => true, watch, publish: (b) => digests.push(b) });
  // A watcher of the cells: its evidence is what the rows say.
  const watcher = new Evidence(gene, now);
  let seq = 0;
  const send = (kind: HormoneKind, from: string, body: unknown) => {
    const h: Hormone = { v: 1, kind, from, seq: ++seq, ts: t, body, sig: new Uint8Array(64) };
    census.observe(h);
    watch.observe(h);
  };
  const pulse = (from: string, over: Partial<PulseBody> = {}) => send('pulse', from, pulseBody(over));
  const round = () => {
    digest.round();
    for (const row of digests.at(-1)!.rows) watcher.hostSays(row.i, row.e);
    return digests.at(-1)!;
  };
  return { census, watch, digest, digests, watcher, send, pulse, round, advance: (ms: number) => (t += ms), now };
}

function pulseBody(over: Partial<PulseBody> = {}): PulseBody {
  return {
    tissue: 'echo', host: 'host-1', pid: 999_999_999, parent: null, born: Date.now() - 5_000, state: 'alive', load: 0.1, demand: 0.1, cpu: 1, cpuMs: 100, rss: 50_000_000, lag: 1, code: 'c0de',
    work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, genome: 'g1', url: null, n: 1, ...over,
  };
}

test('host watch - a cell pulsing another genome or code is named in its row (kind genome); honest cells carry no finding', (t) => {
  const w = setup();
  for (let i = 1; i <= 3; i++) {
    w.pulse('honest-1', { n: i });
    w.pulse('tamper-1', { n: i, code: i === 1 ? 'c0de' : 'beef' });
    w.advance(100);
    w.round();
  }
  const rows = new Map(w.digests.flatMap((d) => d.rows).map((r) => [r.i, r]));
  t.is(rows.get('honest-1')!.e, undefined);
  t.is(w.digests.at(-1)!.rows.find((r) => r.i === 'tamper-1')?.e?.k, 'genome');
  t.regex(w.digests.at(-1)!.rows.find((r) => r.i === 'tamper-1')!.e!.x, /g1\/beef/);
  t.is(w.watcher.against('tamper-1')?.kind, 'genome');
  t.regex(w.watcher.against('tamper-1')!.detail, /^its host: /);
  t.is(w.watcher.against('honest-1'), undefined);
  // The first pulse (n 0) is sent before the cell could hash its code: only its genome counts.
  const w2 = setup();
  w2.pulse('newborn-1', { n: 0, code: '' });
  w2.pulse('newborn-1', { n: 0, code: '' });
  w2.round();
  t.is(w2.watcher.against('newborn-1'), undefined);
});

test('host watch - a flood is named while it lasts and taken back after, said again for DIGEST_REPEAT rounds each time', (t) => {
  const w = setup();
  w.pulse('flood-1');
  w.round();
  // 200 hormones within 200 ms: 200 a second over the 1 s window, past 50.
  for (let i = 0; i < 200; i++) {
    if (i % 50 === 0) w.advance(50);
    w.pulse('flood-1', { n: i + 2 });
  }
  const during = w.round();
  t.is(during.rows.find((r) => r.i === 'flood-1')?.e?.k, 'flood');
  t.is(w.watcher.against('flood-1')?.kind, 'flood');
  // Quiet for two windows: the rate is back to nothing and the row says so, DIGEST_REPEAT times.
  w.advance(2_500);
  let cleared = 0;
  for (let i = 0; i < DIGEST_REPEAT + 2; i++) {
    w.pulse('flood-1', { n: 300 + i });
    const d = w.round();
    const row = d.rows.find((r) => r.i === 'flood-1');
    if (row && row.e === undefined) cleared++;
    w.advance(100);
  }
  t.is(cleared, DIGEST_REPEAT, 'the taking back is said as often as a death is');
  t.is(w.watcher.against('flood-1'), undefined, 'the watcher holds nothing against it any more');
});

test('host watch - a liar: claims its real process (read from /proc) contradicts are a finding after liarChecks checks; honest claims never are', async (t) => {
  // A real process carrying a cell's markers, so grow's pid check accepts it as that cell.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', CELL_MAIN, '--cell', 'liar-1', '--organism', 'o1'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  await once(child, 'spawn');
  const pid = child.pid!;
  // Let it start, so its CPU time is settled enough to quote honestly.
  await new Promise((r) => setTimeout(r, 300));
  const w = setup();
  // An honest story first: the real CPU time and RSS, the percent its growth gives.
  for (let i = 1; i <= 3; i++) {
    const u = usageOf(pid)!;
    w.pulse('liar-1', { pid, n: i, cpuMs: u.cpuMs, cpu: 0, rss: u.rss });
    w.advance(100);
    w.round();
  }
  t.true(w.watch.stats.checks >= 2, `${w.watch.stats.checks} checks made`);
  t.is(w.watch.stats.lies, 0, 'honest claims are no lie');
  t.is(w.watcher.against('liar-1'), undefined);
  // Then a lie: a CPU time its process never used.
  for (let i = 4; i <= 6; i++) {
    const u = usageOf(pid)!;
    w.pulse('liar-1', { pid, n: i, cpuMs: u.cpuMs + 60_000, cpu: 100, rss: u.rss });
    w.advance(100);
    w.round();
  }
  const f = w.watcher.against('liar-1');
  t.is(f?.kind, 'liar');
  t.regex(f!.detail, /claims \d+ ms of CPU/);
  // A pid that is not the cell's (another process's) is not taken at its word: no check at all.
  const w2 = setup();
  w2.pulse('liar-2', { pid: process.pid, n: 1, cpuMs: 1e9 });
  w2.advance(100);
  w2.round();
  t.is(w2.watch.stats.checks, 0, 'this process is not liar-2: nothing to read');
});

test('host watch - only its own host: a pulse from another host, or a hormone from a cell it does not know, is no evidence', (t) => {
  const w = setup();
  for (let i = 0; i < 200; i++) w.pulse('far-1', { host: 'host-2', n: i + 1 });
  for (let i = 0; i < 200; i++) w.send('decision', 'unknown-1', {});
  t.is(w.watch.evidence.rate('far-1'), 0);
  t.is(w.watch.evidence.rate('unknown-1'), 0);
  t.is(w.watch.finding('far-1'), undefined);
});

test('evidence - a host finding is held until the host takes it back; kinds it does not name are unaffected', (t) => {
  const e = new Evidence(gene);
  e.hostSays('a', undefined);
  t.deepEqual([...e.peers()], [], 'nothing said about a stranger makes no ledger');
  e.hostSays('a', { k: 'liar', x: 'claims 9 ms' });
  t.is(e.against('a')?.kind, 'liar');
  t.is(e.against('a', 'flood'), undefined);
  t.is(e.against('a', 'liar')?.detail, 'its host: claims 9 ms');
  e.hostSays('a', undefined);
  t.is(e.against('a'), undefined);
  // The same finding again is no change (no review for nothing).
  e.hostSays('b', { k: 'flood', x: '300/s' });
  e.takeChanged();
  e.hostSays('b', { k: 'flood', x: '300/s' });
  t.deepEqual(e.takeChanged(), []);
  // Silence from the host is not absolution for what the cell itself saw.
  e.forgery('c', 'x');
  e.forgery('c', 'y');
  e.forgery('c', 'z');
  e.hostSays('c', undefined);
  t.is(e.against('c')?.kind, 'forgery');
});

test('host watch - each digest says what its grow holds cells to; another host holding to other code is told once per value', (t) => {
  const w = setup('c0de');
  w.pulse('a-1');
  t.is(w.round().genome, 'g1/c0de');
  t.is(w.watch.otherHost('host-1', 'g1/beef'), undefined, 'its own host is not another');
  t.is(w.watch.otherHost('host-2', 'g1/c0de'), undefined, 'the same build');
  t.is(w.watch.otherHost('host-2', undefined), undefined, 'not hashed yet');
  t.is(w.watch.otherHost('host-2', 'g1/beef'), 'g1/beef');
  t.is(w.watch.otherHost('host-2', 'g1/beef'), undefined, 'said once');
  t.is(w.watch.otherHost('host-2', 'g2/beef'), 'g2/beef', 'said again when it changes');
});

test('host watch - a cell that pulses another host\'s name, or says it is draining for good, is still checked: its certificate says where it lives', (t) => {
  const root = generateKeypair();
  const cert = issueCertificate({ cell: 'sneaky-1', pub: generateKeypair().pub, tissue: 'echo', host: 'host-1', born: Date.now() - 5_000, generation: 0, budget: 16, parent: null, issuer: ROOT_ISSUER }, privateKeyObject(root.seed));
  const w = setup('c0de', (id) => (id === 'sneaky-1' ? cert : undefined));
  for (let i = 1; i <= 3; i++) {
    w.pulse('sneaky-1', { n: i, host: 'host-elsewhere', state: 'draining', code: 'beef' });
    w.advance(100);
    w.round();
  }
  t.is(w.census.get('sneaky-1')?.host, 'host-1');
  t.is(w.watcher.against('sneaky-1')?.kind, 'genome');
});
