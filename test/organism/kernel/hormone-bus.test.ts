import test, { type ExecutionContext } from 'ava';
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

/** A started bus on a private broker, with every hormone it delivers kept in `heard`. */
async function listeningBus(t: ExecutionContext, pulses: 'all' | 'none' = 'all') {
  const nats = await startNats(t);
  const ns = new Namespace(uniqueId());
  const root = generateKeypair();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const bus = new HormoneBus({
    nc, ns, certs: new CertBook(root.pub), maxBytes: 8192, pulses,
    gate: new HormoneGate({ organism: ns.id, maxBytes: 8192, maxAgeMs: 30_000, replayWindow: 2_000_000 }),
  });
  t.teardown(() => bus.close());
  const heard: Hormone[] = [];
  bus.on((h) => heard.push(h));
  bus.start();
  return { nc, ns, root, bus, heard };
}

test('hormone bus - a newborn sender\'s birth and the pulses right behind it all arrive, in order, none counted as replayed', async (t) => {
  const { nc, ns, root, bus, heard } = await listeningBus(t);

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

test('hormone bus - receiveAs: a root digest that came as a reply is admitted like one on its subject; anything else sent that way is foreign', async (t) => {
  const { ns, root, bus, heard } = await listeningBus(t, 'none');
  const seq = new SharedSequence();
  const rootSigner = { id: ROOT_ISSUER, organism: ns.id, key: privateKeyObject(root.seed), nextSeq: () => seq.next() };
  const digest = { host: 'h', round: 0, part: 0, parts: 1, full: true, alive: 0, epoch: 1, beacon: 'b', rows: [] };
  bus.receiveAs(sealHormone(rootSigner, 'digest', digest, 8192), 'digest', ROOT_ISSUER);
  await until(() => heard.length === 1, 2_000, 'the digest');
  t.is(heard[0]!.kind, 'digest');
  // A stranger's key signing as root: a bad signature. A root shutdown passed as a digest: foreign.
  const stranger = generateKeypair();
  bus.receiveAs(sealHormone({ ...rootSigner, key: privateKeyObject(stranger.seed) }, 'digest', digest, 8192), 'digest', ROOT_ISSUER);
  bus.receiveAs(sealHormone(rootSigner, 'shutdown', { reason: 'slipped in as a reply' }, 8192), 'digest', ROOT_ISSUER);
  // The same digest again is a replay.
  const once = sealHormone(rootSigner, 'digest', digest, 8192);
  bus.receiveAs(once, 'digest', ROOT_ISSUER);
  bus.receiveAs(once, 'digest', ROOT_ISSUER);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(heard.map((h) => h.kind), ['digest', 'digest']);
  const dropped = bus.stats().dropped;
  t.is(dropped.badSignature, 1);
  t.is(dropped.foreign, 1);
  t.is(dropped.replayed, 1);
});
