/**
 * The flight recorder on a real broker (cells/dashboard/recorder.ts): `mark` records a frame
 * and gives its sequence number once the stream holds it; a read through that number holds
 * every hormone published before it and none after, drops forged ones, and keeps frames.
 */
import test from 'ava';
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
  const rootSeed = generateKeypair().seed;
  const root: Signer = { id: ROOT_ISSUER, organism: ns.id, key: privateKeyObject(rootSeed), nextSeq: () => ++seq };
  // Another key speaking as the root: what a process with the broker's ear but not the root key could send.
  const forger: Signer = { ...root, key: privateKeyObject(generateKeypair().seed) };
  const rootKey = publicKeyObject(publicKeyOf(rootSeed));
  const recorder = new Recorder({ nc, ns, hormoneMaxBytes: MAX_BYTES, keyOf: (id) => (id === ROOT_ISSUER ? rootKey : undefined), tissueOf: () => null });
  const shutdown = (signer: Signer, reason: string) => other.publish(ns.hormone('shutdown', ROOT_ISSUER), sealHormone<ShutdownBody>(signer, 'shutdown', { reason }, MAX_BYTES));

  // Published on another connection right before the mark, with no flush between: only the
  // mark's ack says the stream has them.
  for (let i = 0; i < 20; i++) shutdown(root, `before ${i}`);
  await other.flush();
  const row: CellRow = { id: 'echo-1', tissue: 'echo', host: 'h', parent: null, state: 'alive', load: 0, smoothed: 0, cpu: 0, rss: 0, lag: 0, born: 1, pid: 1, url: null, cause: null, died: null, inflight: 0, handled: 0 };
  const mark = await recorder.mark(Date.now(), [row]);
  t.is(mark, 21, 'the mark follows the twenty hormones in the stream');
  for (let i = 0; i < 5; i++) shutdown(root, `after ${i}`);
  await other.flush();

  const past = await recorder.read(Date.now() - 60_000, Date.now(), 0, mark);
  t.true(past.complete);
  t.deepEqual(past.events.map((e) => e.text), Array.from({ length: 20 }, (_x, i) => `shutdown by root: before ${i}`), 'every hormone before the mark, in order');
  t.false(past.events.some((e) => e.text.includes('after')), 'none after the mark');
  t.is(past.frames.length, 0, 'an events-only read decodes no frame');
  t.is(past.read, 21);

  // A whole read: the frame comes back, and a hormone whose signature fails is counted.
  await recorder.read(0, 0, 0).then((r) => t.is(r.events.length, 0, 'a span before everything holds nothing'));
  shutdown(forger, 'forged');
  await other.flush();
  const whole = await recorder.read(Date.now() - 60_000, Date.now() + 60_000, 10);
  t.true(whole.complete);
  t.deepEqual(whole.frames.map((f) => f.cells.map((c) => c.id)), [['echo-1']]);
  t.is(whole.events.length, 25);
  t.false(whole.events.some((e) => e.text.includes('forged')));
  t.is(whole.rejected, 1, 'the forged hormone is counted');

  // A cell this reader does not know (long gone): its event is kept, flagged unverified.
  const stranger: Signer = { id: 'echo-gone', organism: ns.id, key: privateKeyObject(generateKeypair().seed), nextSeq: () => ++seq };
  other.publish(ns.hormone('death', stranger.id), sealHormone<DeathBody>(stranger, 'death', { pid: 7, cause: 'apoptosis', detail: '' }, MAX_BYTES));
  await other.flush();
  const last = (await recorder.read(Date.now() - 60_000, Date.now() + 60_000, 0)).events.at(-1);
  t.is(last?.kind, 'death');
  t.like(last?.data, { unverified: true });
});
