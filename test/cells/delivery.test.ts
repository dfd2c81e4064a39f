/**
 * Delivery (cells/receiver/delivery.ts) against a consumer that numbers an inbox unlike the
 * stream leader: nats-server 2.9 can let a replica diverge after a partition (a message
 * missing, every later sequence one lower; seen in a seeded multihost run, where consumers on
 * that replica delivered 175 copies under sequences that held other messages on the leader).
 * Here two real streams stand for the leader and the diverged replica: the delivery consumes
 * the replica and asks the leader, as a receiver does.
 */
import test, { type ExecutionContext } from 'ava';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Delivery } from '../../cells/receiver/delivery.ts';
import { cursorKey, H, Inboxes } from '../../cells/messenger/inbox.ts';
import { MessengerSubjects } from '../../cells/messenger/subjects.ts';
import { codec } from '../../organism/wire/codec.ts';
import { isCellularError } from '../../organism/wire/errors.ts';
import type { Delivered } from '../../organism/wire/frames.ts';
import { startNats, uniqueId } from '../helpers/nats.ts';

/** The leader's read a receiver makes (Inboxes.nextAt), of `stream`'s inbox of bob; counts its requests. */
function leaderOf(c: Broker, stream: string): { next: (from: number) => Promise<{ seq: number; msg: string | null } | null>; asked: () => number } {
  const inboxes = new Inboxes({ ...c, stream, subjects: new MessengerSubjects({ prefix: stream }) });
  let asked = 0;
  return {
    asked: () => asked,
    next: (from) => {
      asked++;
      return inboxes.nextAt('bob', from);
    },
  };
}

/** A broker, a connection and streams named `names`, each with bob's inbox `<name>.inbox.bob`. */
interface Broker {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

async function streams(t: ExecutionContext, names: string[]): Promise<Broker> {
  const broker = await startNats(t);
  const nc = await connect({ servers: broker.url });
  t.teardown(() => nc.close());
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  for (const name of names) await jsm.streams.add({ name, subjects: [`${name}.inbox.*`] });
  return { nc, js, jsm };
}

/** Stores copies from ann into bob's inbox of `stream`, one per message id, in order. */
async function storeCopies(js: JetStreamClient, stream: string, msgs: string[]): Promise<void> {
  for (const msg of msgs) {
    const h = headers();
    h.set(H.FROM, 'ann');
    h.set(H.MSG, msg);
    h.set(H.AT, String(Date.now()));
    await js.publish(`${stream}.inbox.bob`, new Uint8Array([1]), { headers: h });
  }
}

test('delivery - the cursor never moves on a sequence the stream leader holds another message at', async (t) => {
  const id = uniqueId();
  const leader = `L${id}`;
  const replica = `R${id}`;
  const c = await streams(t, [leader, replica]);
  const { nc, js } = c;
  await storeCopies(js, leader, ['m1', 'm2', 'm3', 'm4', 'm5']);
  await storeCopies(js, replica, ['m1', 'm3', 'm4', 'm5']); // m2 missing: m3 is 2, m4 is 3, m5 is 4
  const cursors = await new Kvm(nc).create(`cursors${id}`);
  const leaderRead = leaderOf(c, leader);
  const pushed: Delivered[] = [];
  const diverged: number[] = [];
  const delivery = new Delivery({
    js, stream: replica, subject: `${replica}.inbox.bob`, cursors, user: 'bob', window: 16, flushMs: 0,
    writable: async () => true, push: (d) => pushed.push(d), onError: (e) => t.fail(String(e)),
    leaderNext: leaderRead.next, onDiverged: (seq) => diverged.push(seq),
  });
  t.teardown(() => delivery.close());
  await delivery.start();
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  await until(() => pushed.length === 4);
  t.deepEqual(pushed.map((d) => `${d.msg}@${d.seq}`), ['m1@1', 'm3@2', 'm4@3', 'm5@4'], 'the replica numbers them one lower from m3 on');
  const cursor = async () => codec.unpack((await cursors.get(cursorKey('bob')))!.value) as { seq: number };
  // m1 is where the leader has it: the cursor moves.
  await delivery.ack(1);
  t.is((await cursor()).seq, 1);
  // m5 "at 4" is m4 on the leader: moving the cursor to 4 would pass m2, which bob never had.
  const refused = await delivery.ack(4).then(() => undefined, (e: unknown) => e);
  t.true(isCellularError(refused, 'MESSAGE_ERR_REPLICA'), String(refused));
  t.deepEqual(diverged, [2], 'caught at m2, the first message the leader holds that was not pushed as itself');
  t.is((await cursor()).seq, 1, 'the cursor stays before m2');
  // Starting again from the cursor redelivers what came after it (ids the client drops), never skips.
  pushed.length = 0;
  await delivery.rewind();
  await until(() => pushed.length === 3);
  t.deepEqual(pushed.map((d) => d.msg), ['m3', 'm4', 'm5']);
});

test('delivery - a consumer that agrees with the leader moves the cursor as before', async (t) => {
  const s = `S${uniqueId()}`;
  const c = await streams(t, [s]);
  const { nc, js } = c;
  await storeCopies(js, s, ['a', 'b', 'c']);
  const cursors = await new Kvm(nc).create(`c${s}`);
  const leaderRead = leaderOf(c, s);
  const pushed: Delivered[] = [];
  const delivery = new Delivery({
    js, stream: s, subject: `${s}.inbox.bob`, cursors, user: 'bob', window: 16, flushMs: 0,
    writable: async () => true, push: (d) => pushed.push(d), onError: (e) => t.fail(String(e)),
    leaderNext: leaderRead.next,
    onDiverged: () => t.fail('no divergence here'),
  });
  t.teardown(() => delivery.close());
  await delivery.start();
  for (let i = 0; i < 500 && pushed.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
  await delivery.ack(3);
  t.is((codec.unpack((await cursors.get(cursorKey('bob')))!.value) as { seq: number }).seq, 3);
  t.is(leaderRead.asked(), 3, 'one leader read per message between the cursor and the ack');
});

test('delivery - a replica missing a message under the right sequences (a gap) is caught too', async (t) => {
  const id = uniqueId();
  const leader = `L${id}`;
  const replica = `R${id}`;
  const c = await streams(t, [leader, replica]);
  const { nc, js, jsm } = c;
  for (const name of [leader, replica]) await storeCopies(js, name, ['m1', 'm2', 'm3']);
  await jsm.streams.deleteMessage(replica, 2); // the replica lacks m2; m3 keeps its sequence 3
  const cursors = await new Kvm(nc).create(`cursors${id}`);
  const pushed: Delivered[] = [];
  const diverged: number[] = [];
  const delivery = new Delivery({
    js, stream: replica, subject: `${replica}.inbox.bob`, cursors, user: 'bob', window: 16, flushMs: 0,
    writable: async () => true, push: (d) => pushed.push(d), onError: (e) => t.fail(String(e)),
    leaderNext: leaderOf(c, leader).next, onDiverged: (seq) => diverged.push(seq),
  });
  t.teardown(() => delivery.close());
  await delivery.start();
  for (let i = 0; i < 500 && pushed.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(pushed.map((d) => `${d.msg}@${d.seq}`), ['m1@1', 'm3@3'], 'every label right, m2 absent');
  // m3 at 3 is what the leader holds at 3: only walking the range finds m2 missing.
  const refused = await delivery.ack(3).then(() => undefined, (e: unknown) => e);
  t.true(isCellularError(refused, 'MESSAGE_ERR_REPLICA'), String(refused));
  t.deepEqual(diverged, [2]);
  t.is(await cursors.get(cursorKey('bob')), null, 'the cursor never moved');
});
