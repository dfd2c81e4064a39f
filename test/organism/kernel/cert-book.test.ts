/**
 * The CertBook against a real lineage bucket on a real nats-server: a certificate that is
 * not there is remembered as unknown for a while (a flood of forged senders costs one read
 * each per window), but one that could not be read (the server down) is not — it is found
 * as soon as the bucket answers again, and the failure is counted for the mint to tell
 * "unavailable" from "foreign".
 */
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { CertBook } from '../../../organism/kernel/cert-book.ts';
import { generateKeypair, privateKeyObject } from '../../../organism/kernel/keys.ts';
import { issueCertificate, packCertificate, ROOT_ISSUER, type UnsignedCertificate } from '../../../organism/kernel/lineage.ts';
import { startNats } from '../../helpers/nats.ts';

const root = generateKeypair();
const parentPair = generateKeypair();
const childPair = generateKeypair();
const fields = (cell: string, pub: Uint8Array, over: Partial<UnsignedCertificate> = {}): UnsignedCertificate =>
  ({ cell, pub, tissue: 'stem', host: 'host-1', born: 1_700_000_000_000, generation: 0, budget: 4, parent: null, issuer: ROOT_ISSUER, ...over });
const parentCert = issueCertificate(fields('p1', parentPair.pub), privateKeyObject(root.seed));
const childOf = (cell: string) => issueCertificate(fields(cell, childPair.pub, { generation: 1, budget: 1, parent: 'p1', issuer: 'p1', tissue: 'echo' }), privateKeyObject(parentPair.seed));

test.serial('cert book - a parent missing from the bucket is remembered as unknown; one the bucket could not be read for is not, and is found once it answers', async (t) => {
  const broker = await startNats(t);
  const nc = await connect({ servers: broker.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  t.teardown(() => nc.close());
  // Short operation timeouts: a read while the server is down fails in 1 s, not 5.
  const kv = await new Kvm(jetstream(nc, { timeout: 1_000 })).create(`lineage-${process.pid}`, { history: 1 });
  const book = new CertBook(root.pub, kv);

  // Not in the bucket: refused, remembered as unknown, no store failure counted.
  t.is(await book.learn(childOf('c0')), undefined);
  t.is(book.storeFailures, 0);
  await kv.create('p1', packCertificate(parentCert));
  t.is(await book.learn(childOf('c1')), undefined, 'still unknown: the miss is remembered for a while');
  t.is(book.storeFailures, 0);

  // The broker down: the read fails, and that is counted, not remembered.
  const other = new CertBook(root.pub, kv);
  await broker.crash();
  t.is(await other.learn(childOf('c2')), undefined);
  t.true(other.storeFailures >= 1, 'the failed read is counted');
  t.truthy(other.lastStoreError);
  await broker.restart();
  // Back once the bucket answers this connection again (bounded: 100 tries of ≤ 1 s).
  for (let i = 0; i < 100 && !(await kv.get('p1').catch(() => null)); i++) await new Promise((r) => setTimeout(r, 100));
  // The very next lookup reads the bucket: a parent that exists is not "unknown" for 5 s.
  const learnt = await other.learn(childOf('c3'));
  t.is(learnt?.cell, 'c3', 'found at the first try once the bucket answers');
  t.is(other.certOf('p1')?.cell, 'p1');
});
