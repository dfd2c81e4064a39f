/**
 * Recruiting a stem cell over a real nats-server: a yes resolves, a no or a stem that is
 * gone is a HOMEOSTASIS_ERR_DIFFERENTIATE (the recruiter spawns in its place), and silence is
 * HOMEOSTASIS_ERR_UNANSWERED — never a no, because a stem still waiting for its credential
 * differentiates after all, and a cell spawned in its place would be one too many (a chaos
 * run once peaked at 3 workers of a max of 2 this way).
 */
import test, { type ExecutionContext } from 'ava';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { generateKeyPairSync } from 'node:crypto';
import { Mitosis } from '../../cells/mitosis.ts';
import type { BirthPacket } from '../../cells/birth-packet.ts';
import { defaultGenome } from '../../organism/kernel/genome/index.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { packError, packReply, pack } from '../../organism/kernel/reply.ts';
import { CellularError, isCellularError } from '../../organism/wire/errors.ts';
import { startNats, uniqueId } from '../helpers/nats.ts';

async function recruiter(t: ExecutionContext): Promise<{ mitosis: Mitosis; stemSide: NatsConnection; ns: Namespace }> {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  const stemSide = await connect({ servers: nats.url });
  t.teardown(async () => {
    await nc.close();
    await stemSide.close();
  });
  const ns = new Namespace(uniqueId());
  // Recruiting uses the connection and the namespace only; no child is made here, so the
  // packet (whose fields are for spawning) is never read.
  const mitosis = new Mitosis({
    nc, ns, packet: {} as BirthPacket, genome: defaultGenome(), key: generateKeyPairSync('ed25519').privateKey,
    generation: 0, budget: 4, lineage: Promise.resolve(undefined),
  });
  return { mitosis, stemSide, ns };
}

const request = { tissue: 'worker', by: 'echo-1', epoch: 3 };

async function rejection(p: Promise<unknown>): Promise<CellularError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  if (!isCellularError(e)) throw new Error(`expected a CellularError, got ${String(e)}`);
  return e;
}

test('mitosis - a stem that says yes is recruited', async (t) => {
  const { mitosis, stemSide, ns } = await recruiter(t);
  let asked: unknown;
  stemSide.subscribe(ns.cell('stem-a', 'differentiate'), { callback: (_e, m) => { asked = m.data; m.respond(packReply({ tissue: 'worker' })); } });
  await stemSide.flush();
  await mitosis.recruit('stem-a', request);
  t.deepEqual(asked, pack(request), 'the stem was asked for the tissue, by the recruiter, at the decision epoch');
});

test('mitosis - a stem that says no, or is gone, is HOMEOSTASIS_ERR_DIFFERENTIATE (spawn instead)', async (t) => {
  const { mitosis, stemSide, ns } = await recruiter(t);
  stemSide.subscribe(ns.cell('stem-b', 'differentiate'), { callback: (_e, m) => void m.respond(packError(new CellularError('HOMEOSTASIS_ERR_DIFFERENTIATE', 'stem-b is draining'))) });
  await stemSide.flush();
  const no = await rejection(mitosis.recruit('stem-b', request));
  t.is(no.code, 'HOMEOSTASIS_ERR_DIFFERENTIATE');
  t.regex(no.message, /draining/);
  const gone = await rejection(mitosis.recruit('stem-nobody', request));
  t.is(gone.code, 'HOMEOSTASIS_ERR_DIFFERENTIATE');
  t.regex(gone.message, /gone/);
});

test('mitosis - a stem that does not answer in time is HOMEOSTASIS_ERR_UNANSWERED, not a no', async (t) => {
  const { mitosis, stemSide, ns } = await recruiter(t);
  let heard = 0;
  stemSide.subscribe(ns.cell('stem-c', 'differentiate'), { callback: () => void heard++ }); // waits for its credential, past the recruiter's patience
  await stemSide.flush();
  const e = await rejection(mitosis.recruit('stem-c', request, 300));
  t.is(e.code, 'HOMEOSTASIS_ERR_UNANSWERED');
  t.is(heard, 1, 'the stem did get the request: it may still act on it');
});
