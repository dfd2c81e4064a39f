/**
 * Compare-and-set against a real nats-server: concurrent writers at one revision (exactly
 * one lands), concurrent counters with retries (none lost), refusals that are not
 * conflicts (never mistaken for one), a first write from a known revision, removal, and a
 * race lost on every attempt.
 */
import test, { type ExecutionContext } from 'ava';
import { connect } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { isCasConflict, JetStreamApi, jetStreamApiCode, updateWithRetries, writeIfUnchanged } from '../../../organism/kernel/compare-and-set.ts';
import { startNats, uniqueId } from '../../helpers/nats.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function bucket(t: ExecutionContext, options: { maxValueSize?: number } = {}): Promise<{ kv: KV; kvs: KV[] }> {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const name = uniqueId('cas');
  const kv = await new Kvm(nc).create(name, { history: 1, ...(options.maxValueSize ? { maxValueSize: options.maxValueSize } : {}) });
  // Writers on connections of their own, as cells are.
  const kvs: KV[] = [];
  for (let i = 0; i < 4; i++) {
    const c = await connect({ servers: nats.url });
    t.teardown(() => c.close());
    kvs.push(await new Kvm(c).open(name));
  }
  return { kv, kvs };
}

test('compare-and-set - of concurrent writers at one revision exactly one lands; the others are told it is a conflict', async (t) => {
  const { kv, kvs } = await bucket(t);
  // Creation: no entry yet (revision 0).
  const created = await Promise.all(Array.from({ length: 8 }, (_, i) => writeIfUnchanged(kvs[i % kvs.length]!, 'record', bytes(`create ${i}`), 0)));
  const winners = created.filter((r) => r !== undefined);
  t.is(winners.length, 1, 'one create lands');
  const first = await kv.get('record');
  t.is(first!.revision, winners[0]!);
  t.is(text(first!.value), `create ${created.findIndex((r) => r !== undefined)}`);
  // Update: every writer read the same revision.
  const updated = await Promise.all(Array.from({ length: 8 }, (_, i) => writeIfUnchanged(kvs[i % kvs.length]!, 'record', bytes(`update ${i}`), first!.revision)));
  t.is(updated.filter((r) => r !== undefined).length, 1, 'one update lands');
  const second = await kv.get('record');
  t.is(text(second!.value), `update ${updated.findIndex((r) => r !== undefined)}`);
  // The refusal is JetStream's numbered one.
  const e = await kv.update('record', bytes('stale'), first!.revision).then(() => undefined, (err: unknown) => err);
  t.is(jetStreamApiCode(e), JetStreamApi.WrongLastSequence);
  t.true(isCasConflict(e));
});

test('compare-and-set - concurrent read-modify-writes with retries lose no change', async (t) => {
  const { kv, kvs } = await bucket(t);
  const writers = 12;
  const outcomes = await Promise.all(Array.from({ length: writers }, (_, i) => updateWithRetries(kvs[i % kvs.length]!, 'counter', (entry) => {
    const n = entry ? Number(text(entry.value)) : 0;
    return { write: bytes(String(n + 1)), value: n + 1 };
  }, { attempts: 64 })));
  t.true(outcomes.every((o) => o.type === 'written'), 'every writer landed, some after conflicts');
  t.deepEqual(outcomes.map((o) => (o.type === 'written' ? o.value : 0)).sort((a, b) => a - b), Array.from({ length: writers }, (_, i) => i + 1), 'each saw a different count');
  t.is(text((await kv.get('counter'))!.value), String(writers));
  // Nothing to write: kept, and nothing written.
  const kept = await updateWithRetries(kv, 'counter', (entry) => ({ keep: Number(text(entry!.value)) }), { attempts: 3 });
  t.deepEqual(kept, { type: 'kept', value: writers });
  t.is((await kv.get('counter'))!.revision, (outcomes.find((o) => o.type === 'written' && o.value === writers) as { revision: number }).revision);
});

test('compare-and-set - a refusal that is not a conflict is thrown, not taken for one, and not retried', async (t) => {
  const { kv } = await bucket(t, { maxValueSize: 128 });
  await kv.create('small', bytes('ok'));
  const big = bytes('x'.repeat(512));
  const e = await kv.update('small', big, 1).then(() => undefined, (err: unknown) => err);
  t.truthy(e, 'the server refused the oversized value');
  t.false(isCasConflict(e), `not a conflict: ${(e as Error).message} (code ${jetStreamApiCode(e)})`);
  await t.throwsAsync(writeIfUnchanged(kv, 'small', big, 1));
  let attempts = 0;
  await t.throwsAsync(updateWithRetries(kv, 'small', () => {
    attempts++;
    return { write: big, value: undefined };
  }, { attempts: 8 }));
  t.is(attempts, 1, 'thrown at the first refusal');
  // Errors that are not JetStream's at all are not conflicts either.
  t.false(isCasConflict(new Error('wrong last sequence: 3')), 'the message text decides nothing');
  t.false(isCasConflict(undefined));
  t.is((await kv.get('small'))!.revision, 1, 'nothing was written');
});

test('compare-and-set - a write from a known revision needs no read; a removal is a compare-and-set too; a lost race says why', async (t) => {
  const { kv, kvs } = await bucket(t);
  const known = await kv.create('cursor', bytes('1'));
  let reads = 0;
  const increment = (entry: { value: Uint8Array } | null) => {
    reads++;
    return { write: bytes(String(Number(text(entry!.value)) + 1)), value: 'read' };
  };
  // The known revision is still the entry's: one write, no read.
  const blind = await updateWithRetries(kv, 'cursor', increment, { attempts: 2, first: { write: bytes('2'), value: 'known', revision: known } });
  t.deepEqual([blind.type, reads], ['written', 0]);
  t.is((blind as { value: string }).value, 'known');
  // It is stale now: refused as a conflict, then read and written.
  const stale = await updateWithRetries(kv, 'cursor', increment, { attempts: 2, first: { write: bytes('stale'), value: 'known', revision: known } });
  t.deepEqual([stale.type, reads], ['written', 1]);
  t.is(text((await kv.get('cursor'))!.value), '3');

  // Another writer lands between every read and write: no attempt lands, and the outcome says why.
  let tries = 0;
  const lost = await updateWithRetries(kv, 'cursor', async () => {
    tries++;
    await kvs[0]!.put('cursor', bytes(`meanwhile ${tries}`));
    return { write: bytes('never'), value: tries };
  }, { attempts: 3, pauseMs: () => 0 });
  t.is(lost.type, 'contended');
  t.is(tries, 3);
  t.true(lost.type === 'contended' && isCasConflict(lost.error) && lost.value === 3);
  t.is(text((await kv.get('cursor'))!.value), 'meanwhile 3');

  // Removal at a stale revision is a conflict too: read again, then removed.
  const removed = await updateWithRetries(kv, 'cursor', (entry) => ({ remove: text(entry!.value) }), { attempts: 2, first: { remove: 'stale', revision: known } });
  t.deepEqual(removed, { type: 'removed', value: 'meanwhile 3' });
  t.is((await kv.get('cursor'))!.operation, 'DEL');
  // Nothing to remove (no entry at all): kept, nothing written.
  t.deepEqual(await updateWithRetries(kv, 'absent', () => ({ remove: 0 }), { attempts: 1 }), { type: 'kept', value: 0 });
  t.is(await kv.get('absent'), null);
});
