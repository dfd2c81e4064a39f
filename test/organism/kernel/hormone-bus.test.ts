import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { CertBook } from '../../../organism/kernel/cert-book.ts';
import { HormoneBus } from '../../../organism/kernel/hormone-bus.ts';
import { HormoneGate } from '../../../organism/kernel/hormone-gate.ts';
import { sealHormone, SharedSequence, type Hormone } from '../../../organism/kernel/hormone.ts';
import { generateKeypair, privateKeyObject } from '../../../organism/kernel/keys.ts';
import { issueCertificate, ROOT_ISSUER } from '../../../organism/kernel/lineage.ts';
import { Namespace } from '../../../organism/kernel/namespace.ts';
import { startNats, uniqueId } from '../../helpers/nats.ts';
import { until } from '../../helpers/grow.ts';

test('hormone bus - a newborn sender\'s birth and the pulses right behind it all arrive, in order, none counted as replayed', async (t) => {
  const nats = await startNats(t);
  const ns = new Namespace(uniqueId());
  const root = generateKeypair();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const bus = new HormoneBus({
    nc, ns, certs: new CertBook(root.pub), maxBytes: 8192,
    gate: new HormoneGate({ organism: ns.id, maxBytes: 8192, maxAgeMs: 30_000, replayWindow: 2_000_000 }),
  });
  t.teardown(() => bus.close());
  const heard: Hormone[] = [];
  bus.on((h) => heard.push(h));
  bus.start();

  const cell = generateKeypair();
  const cert = issueCertificate(
    { cell: 'stem-00000001', pub: cell.pub, tissue: 'stem', host: 'h', born: Date.now(), generation: 0, budget: 16, parent: null, issuer: ROOT_ISSUER },
    privateKeyObject(root.seed),
  );
  const seq = new SharedSequence();
  const signer = { id: 'stem-00000001', organism: ns.id, key: privateKeyObject(cell.seed), nextSeq: () => seq.next() };
  const pulse = (n: number) => ({ tissue: 'stem', host: 'h', pid: 1, parent: null, born: 1, state: 'alive', load: 0, demand: 0, cpu: 0, cpuMs: 0, rss: 0, lag: 0, code: '', work: { handled: 0, inflight: 0, queued: 0, errors: 0 }, genome: 'g', url: null, n });
  const pub = nc; // the sender's own connection is not needed: order on one connection is what matters
  pub.publish(ns.hormone('birth', signer.id), sealHormone(signer, 'birth', { pid: 1, cert, url: null }, 8192));
  for (let n = 1; n <= 5; n++) pub.publish(ns.hormone('pulse', signer.id), sealHormone(signer, 'pulse', pulse(n), 8192));
  await until(() => heard.length === 6, 5_000, 'six hormones');
  t.deepEqual(heard.map((h) => h.kind), ['birth', 'pulse', 'pulse', 'pulse', 'pulse', 'pulse']);
  t.is(bus.stats().dropped.replayed, 0);
  t.is(bus.stats().accepted, 6);
});
