/**
 * What a lone nats-server keeps of the copies the receiver was told are stored (Inboxes.store,
 * the path of every `send`): killed -9 in the middle of writes, and with its disk full. Each
 * acknowledged copy is read back from the stream after a restart on the same store.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Broker, ensureNatsServer } from '../../organism/grow/broker.ts';
import { loadGenome } from '../../organism/kernel/genome/index.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { isCellularError } from '../../organism/wire/errors.ts';
import { Inboxes } from '../../cells/messenger/inbox.ts';
import { ensureMessengerStores } from '../../cells/messenger/stores.ts';
import { startNats, tempDir, uniqueId } from '../helpers/nats.ts';

/**
 * Starts the crashed `b` again on the same store, then reads every acknowledged copy back by
 * sequence: none may be missing or another message.
 */
async function restartAndReadBack(t: ExecutionContext, b: Broker, ns: Namespace, acked: ReadonlyMap<string, number>): Promise<void> {
  await b.restart();
  const nc = await connect({ servers: b.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const lost: [string, number][] = [];
  for (const [msg, seq] of acked) {
    const m = await jsm.streams.getMessage(ns.stream('messages'), { seq }).catch(() => null);
    if (m?.header.get('Cm-Msg') !== msg) lost.push([msg, seq]);
  }
  t.deepEqual(lost, [], `of ${acked.size} acknowledged copies, none missing after the restart`);
}

/** Stores copies from `writers` concurrent senders until `stop()` says so or a store fails; returns what was acknowledged. */
async function storeUntil(inboxes: Inboxes, o: { writers: number; bytes: number; stop: () => boolean }): Promise<{ acked: Map<string, number>; errors: unknown[] }> {
  const acked = new Map<string, number>();
  const errors: unknown[] = [];
  await Promise.all(Array.from({ length: o.writers }, async (_, w) => {
    for (let i = 0; i < 100_000 && !o.stop(); i++) {
      const msg = `w${w}-${i}`;
      try {
        acked.set(msg, await inboxes.store({ from: `sender${w}`, to: 'bob', msg, body: new Uint8Array(o.bytes) }));
      } catch (e) {
        errors.push(e);
        return;
      }
    }
  }));
  return { acked, errors };
}

test('store durability - a lone nats-server killed -9 during writes keeps every acknowledged copy', async (t) => {
  const b = await startNats(t);
  const ns = new Namespace(uniqueId());
  const nc = await connect({ servers: b.url, reconnect: false });
  await ensureMessengerStores(nc, ns, loadGenome().messenger);
  const inboxes = await Inboxes.open(nc, ns);
  let settled = false;
  const writing = storeUntil(inboxes, { writers: 8, bytes: 256, stop: () => false }).finally(() => (settled = true));
  // Killed once writes are flowing: every copy acknowledged so far, and any in flight, is at stake.
  const jsm = await jetstreamManager(nc);
  const deadline = Date.now() + 60_000;
  for (let n = 0; n < 500 && !settled && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 50));
    n = (await jsm.streams.info(ns.stream('messages')).catch(() => undefined))?.state.messages ?? 0;
  }
  t.false(settled, 'the writers were still writing when the server was killed');
  await b.crash();
  const { acked, errors } = await writing;
  await nc.close().catch(() => undefined);
  t.true(acked.size >= 500, `${acked.size} acknowledged before the kill`);
  t.true(errors.every((e) => isCellularError(e, 'MESSAGE_ERR_STORE')), 'a write cut off by the kill is refused, never acknowledged');
  await restartAndReadBack(t, b, ns, acked);
});

/**
 * A nats-server whose store is a small ext4 image, loop-mounted in a mount namespace of its
 * own (unshare -m): its disk really fills (ENOSPC), and the image outlives each server. Needs
 * root (CI is); elsewhere JetStream's own store limit stands in (said in the log).
 */
function smallDisk(t: ExecutionContext, dir: string, mb: number): { binary: string; real: boolean } {
  const nats = ensureNatsServer({ autoInstall: false });
  const image = join(dir, 'disk.img');
  const store = join(dir, 'jetstream');
  mkdirSync(store, { recursive: true });
  try {
    if (process.getuid?.() !== 0) throw new Error('not root');
    execFileSync('truncate', ['-s', `${mb}M`, image]);
    execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
    // The wrapper becomes nats-server itself (exec twice): the Broker's pid and command line stay nats-server's.
    const wrapper = join(dir, 'nats-on-small-disk');
    // JetStream sizes its own limit from the free space it sees at start: told 1 GiB, it writes
    // until the disk itself says no (as when something else fills the disk after it started).
    writeFileSync(wrapper, `#!/bin/sh\n[ "$1" = -c ] && sed -i 's|^  store_dir: .*|&\\n  max_file_store: 1073741824|' "$2"\nexec unshare -m --propagation private sh -c 'mount -o loop "$0" "$1" && shift && exec "$@"' "${image}" "${store}" "${nats}" "$@"\n`);
    chmodSync(wrapper, 0o755);
    execFileSync(wrapper, ['--version'], { stdio: 'ignore' }); // a loop device and mount work here
    return { binary: wrapper, real: true };
  } catch (e) {
    t.log(`no loop-mounted disk here (${(e as Error).message.split('\n')[0]}): JetStream's max_file_store limit stands in for a full disk`);
    const wrapper = join(dir, 'nats-with-store-limit');
    writeFileSync(wrapper, `#!/bin/sh\nsed -i 's|^  store_dir: .*|&\\n  max_file_store: ${mb * 1024 * 1024}|' "$2"\nexec "${nats}" "$@"\n`);
    chmodSync(wrapper, 0o755);
    return { binary: wrapper, real: false };
  }
}

test('store durability - a full disk refuses copies with MESSAGE_ERR_STORE and keeps every acknowledged one', async (t) => {
  const dir = tempDir(t);
  const disk = smallDisk(t, dir, 24);
  const b = await startNats(t, { dir, binary: disk.binary });
  const ns = new Namespace(uniqueId());
  const nc = await connect({ servers: b.url });
  await ensureMessengerStores(nc, ns, loadGenome().messenger);
  const inboxes = await Inboxes.open(nc, ns);
  // Each writer stops at its first refusal.
  const { acked, errors } = await storeUntil(inboxes, { writers: 4, bytes: 16 * 1024, stop: () => false });
  t.true(errors.length > 0, 'the disk filled up');
  t.true(acked.size > 100, `${acked.size} copies stored before it did`);
  t.log(`${acked.size} copies acknowledged, then ${errors.length} refused: ${(errors[0] as Error).message}`);
  for (const e of errors) t.true(isCellularError(e, 'MESSAGE_ERR_STORE'), `refused with MESSAGE_ERR_STORE: ${(e as Error).message}`);
  // nats-server 2.9 answers writes past the end "no space left on device" (small copies) or not
  // at all (larger ones: the publish times out, nothing is logged): either way no
  // acknowledgement. It was the disk that stopped it, not JetStream's own 1 GiB limit: what
  // was stored is most of the image.
  const stored = acked.size * 16 * 1024;
  if (disk.real) t.true(stored > 12 * 2 ** 20 && stored < 24 * 2 ** 20, `${stored} bytes of copies on a 24 MiB disk`);
  await nc.close();
  // The server comes back on the full disk: everything acknowledged is there.
  await b.crash();
  await restartAndReadBack(t, b, ns, acked);
});
