/**
 * The flight recorder on a real broker (cells/dashboard/recorder.ts): `mark` records a frame
 * and gives its sequence number once the stream holds it; a read through that number holds
 * every hormone published before it and none after, drops forged ones, and keeps frames.
 */
import test from 'ava';
import type { KeyObject } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { Recorder } from '../../cells/dashboard/recorder.ts';
import { sealHormone, type Signer } from '../../organism/kernel/hormone.ts';
import { generateKeypair, privateKeyObject, publicKeyObject, publicKeyOf } from '../../organism/kernel/keys.ts';
import { ROOT_ISSUER } from '../../organism/kernel/lineage.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { ensureStores } from '../../organism/kernel/stores.ts';
import type { DeathBody, ShutdownBody } from '../../organism/kernel/vocabulary.ts';
import type { CellRow } from '../../organism/wire/dashboard-frames.ts';
import { startNats, uniqueId } from '../helpers/nats.ts';

const MAX_BYTES = 64 * 1024;

test('recorder - a read through a mark holds every hormone sent before it, none after; forged ones are counted, not shown', async (t) => {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  const other = await connect({ servers: nats.url }); // another cell's connection
  t.teardown(async () => {
    await nc.close();
    await other.close();
  });
  const ns = new Namespace(uniqueId());
  await ensureStores(nc, ns);
  let seq = 0;
  const signer = (id: string, seed = generateKeypair().seed): Signer & { pub: KeyObject } => ({ id, organism: ns.id, key: privateKeyObject(seed), pub: publicKeyObject(publicKeyOf(seed)), nextSeq: () => ++seq });
  const root = signer(ROOT_ISSUER);
  // Another key speaking as the root: what a process with the broker's ear but not the root key could send.
  const forger = signer(ROOT_ISSUER);
  // A cell this reader has not met: only the lineage bucket (findKey) knows its key.
  const met = signer('echo-met');
  const lookups: string[] = [];
  const recorder = new Recorder({
    nc, ns, hormoneMaxBytes: MAX_BYTES, tissueOf: () => null,
    keyOf: (id) => (id === ROOT_ISSUER ? root.pub : undefined),
    findKey: async (id) => (lookups.push(id), id === met.id ? met.pub : undefined),
  });
  const send = (from: Signer, kind: 'shutdown' | 'death', body: ShutdownBody | DeathBody, subjectFrom = from.id) => other.publish(ns.hormone(kind, subjectFrom), sealHormone(from, kind, body, MAX_BYTES));
  const shutdown = (from: Signer, reason: string) => send(from, 'shutdown', { reason });

  // Published on another connection right before the mark (the flush says the server has
  // them, not that the stream has stored them: the mark's ack says that).
  for (let i = 0; i < 20; i++) shutdown(root, `before ${i}`);
  await other.flush();
  const row: CellRow = { id: 'echo-1', tissue: 'echo', host: 'h', parent: null, state: 'alive', load: 0, smoothed: 0, cpu: 0, rss: 0, lag: 0, born: 1, pid: 1, url: null, cause: null, died: null, inflight: 0, handled: 0 };
  recorder.frame(Date.now(), [row]);
  const mark = await recorder.mark();
  t.is(mark, 22, 'the mark follows the twenty hormones and the frame in the stream');
  for (let i = 0; i < 5; i++) shutdown(root, `after ${i}`);
  await other.flush();

  const past = await recorder.read(Date.now() - 60_000, Date.now(), 0, mark);
  t.true(past.complete);
  t.deepEqual(past.events.map((e) => e.text), Array.from({ length: 20 }, (_x, i) => `shutdown by root: before ${i}`), 'every hormone before the mark, in order');
  t.false(past.events.some((e) => e.text.includes('after')), 'none after the mark');
  t.is(past.frames.length, 0, 'an events-only read decodes no frame');
  t.is(past.read, 22);
  t.is(past.rejected, 0, 'neither the frame nor the mark is a rejected hormone');

  // A whole read: the frame comes back (the mark is no frame); forgeries are counted, not shown.
  await recorder.read(0, 0, 0).then((r) => t.is(r.events.length, 0, 'a span before everything holds nothing'));
  shutdown(forger, 'forged by another key');
  // A root hormone, truly signed, published again under a cell's own subject (all a cell may publish to).
  send(root, 'shutdown', { reason: 'replayed under a cell subject' }, 'echo-evil');
  // A cell's event signed by another key than the one its certificate holds.
  send({ ...signer(met.id) }, 'death', { pid: 8, cause: 'toxin', detail: 'forged' });
  send(met, 'death', { pid: 9, cause: 'apoptosis', detail: 'true' });
  await other.flush();
  const whole = await recorder.read(Date.now() - 60_000, Date.now() + 60_000, 10);
  t.true(whole.complete);
  t.deepEqual(whole.frames.map((f) => f.cells.map((c) => c.id)), [['echo-1']]);
  t.false(whole.events.some((e) => /forged|replayed/.test(e.text)), 'no forgery shown');
  t.is(whole.rejected, 3, 'the three forgeries are counted');
  const metDeath = whole.events.at(-1);
  t.is(metDeath?.text, 'echo-met died: apoptosis — true', 'a sender known only to the lineage bucket is checked with its key, and shown as it is');
  t.is(metDeath?.data?.unverified, undefined);
  t.deepEqual(lookups, [met.id], 'looked up once per read and sender');

  // A cell no one knows (long gone): its event is kept, and says it could not be checked.
  const gone = signer('echo-gone');
  send(gone, 'death', { pid: 7, cause: 'apoptosis', detail: '' });
  await other.flush();
  const last = (await recorder.read(Date.now() - 60_000, Date.now() + 60_000, 0)).events.at(-1);
  t.is(last?.kind, 'death');
  t.like(last?.data, { unverified: true });
  t.regex(last?.text ?? '', /unverified/);
});
