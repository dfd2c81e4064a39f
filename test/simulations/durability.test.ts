import test from 'ava';
import { classify, describeDurability, explainedDouble, type Participant, type StoredCopy } from '../../simulations/durability.ts';

const sent = (entries: [string, { to: string; seq: number | null; acked?: boolean }][]) =>
  new Map(entries.map(([msg, e]) => [msg, { msg, to: e.to, ackedAt: e.acked === false ? null : 1, seq: e.seq, via: 'http://r1' }]));

function participants(): Participant[] {
  return [
    {
      user: 'ann',
      sent: sent([
        ['ok', { to: 'bob', seq: 1 }],
        ['gone', { to: 'bob', seq: 2 }], // acknowledged, never in the stream
        ['waiting', { to: 'bob', seq: 3 }], // stored, never pushed (cursor 4: skipped; cursor 2: not delivered)
        ['passed', { to: 'bob', seq: 4 }], // stored, never pushed, the cursor at it: skipped
        ['uncounted', { to: 'bob', seq: 5 }], // pushed, not in the tally
        ['twice', { to: 'bob', seq: 6 }],
        ['unacked', { to: 'bob', seq: null, acked: false }],
      ]),
      received: new Map(),
      deliveries: [],
    },
    {
      user: 'bob',
      sent: new Map(),
      received: new Map([['ok', 1], ['twice', 1]]),
      deliveries: [{ msg: 'ok', seq: 1 }, { msg: 'uncounted', seq: 5 }, { msg: 'twice', seq: 6 }, { msg: 'twice', seq: 9 }],
    },
  ];
}

const copy = (seq: number, msg: string, at = 1_000): StoredCopy => ({ seq, to: 'bob', from: 'ann', msg, at });

test('durability - each missing acknowledged message is classed by the step that lost it', (t) => {
  const copies = [copy(1, 'ok'), copy(3, 'waiting'), copy(4, 'passed'), copy(5, 'uncounted'), copy(6, 'twice', 1_000), copy(9, 'twice', 1_250)];
  const r = classify(participants(), copies, new Map([['bob', 4]]));
  t.is(r.acknowledged, 6, 'the unacknowledged send is not counted');
  t.deepEqual(Object.fromEntries(r.losses.map((l) => [l.msg, l.class])), { gone: 'never-stored', waiting: 'skipped', passed: 'skipped', uncounted: 'not-counted' });
  t.deepEqual(r.byClass, { 'never-stored': 1, 'not-delivered': 0, skipped: 2, 'not-counted': 1 });
  t.deepEqual(r.doubles, [{ msg: 'twice', from: 'ann', to: 'bob', seqs: [6, 9], firstAt: 1_000, apartMs: 250 }]);
  t.is(r.ackSeqMismatches, 1, "'gone' was acknowledged with seq 2, which holds nothing");
  t.is(r.phantoms, 0, 'every delivery, both copies of the double included, is a stored copy');
});

test('durability - a copy past the cursor is "not delivered"; a delivery of no stored copy is a phantom', (t) => {
  const p = participants();
  (p[1]!.deliveries as { msg: string; seq: number }[]).push({ msg: 'ok', seq: 3 }); // 'ok' relabelled as seq 3
  const r = classify(p, [copy(1, 'ok'), copy(3, 'waiting'), copy(6, 'twice')], new Map([['bob', 2]]));
  t.is(r.losses.find((l) => l.msg === 'waiting')?.class, 'not-delivered');
  t.is(r.phantoms, 3, "the relabelled 'ok', 'uncounted' at 5 and 'twice' at 9, which this stream does not hold");
  const lines = describeDurability({ ...r, streamMessages: 3, firstSeq: 1, lastSeq: 6 });
  t.regex(lines[0]!, /never stored 2, stored not delivered 1, skipped by the cursor 0, delivered not counted 1/);
  t.regex(lines[0]!, /deliveries of no stored copy: 3/);
});

test('durability - a delivery naming another sender than the stored copy is a phantom', (t) => {
  const p = participants();
  (p[1]!.deliveries as { msg: string; seq: number; from?: string }[]).splice(0, p[1]!.deliveries.length, { msg: 'ok', seq: 1, from: 'mallory' });
  t.is(classify(p, [copy(1, 'ok')], new Map()).phantoms, 1);
  (p[1]!.deliveries as { msg: string; seq: number; from?: string }[])[0]!.from = 'ann';
  t.is(classify(p, [copy(1, 'ok')], new Map()).phantoms, 0);
});

test('durability - a double is explained only by a stream leader change around it, within the dedupe window', (t) => {
  const x = { msg: 'm', from: 'ann', to: 'bob', seqs: [6, 9], firstAt: 100_000, apartMs: 2_000 };
  const leaders = [{ t: 10_000, leader: 's1' }];
  t.false(explainedDouble(x, leaders, 600_000), 'no change at all');
  t.true(explainedDouble(x, [...leaders, { t: 101_000, leader: 's2' }], 600_000), 'a change between the two writes');
  t.true(explainedDouble(x, [...leaders, { t: 96_000, leader: 's2' }], 600_000), 'a change just before the first (sampled once a second)');
  t.false(explainedDouble(x, [...leaders, { t: 50_000, leader: 's2' }], 600_000), 'a change long before');
  t.false(explainedDouble({ ...x, apartMs: 700_000 }, [...leaders, { t: 101_000, leader: 's2' }], 600_000), 'written further apart than the dedupe window');
});
