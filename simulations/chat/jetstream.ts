/**
 * The chat benchmark's raw JetStream system: acked publishes on the cellular run's broker,
 * one connection, msg-id and headers as the receiver writes them, into a stream configured
 * like the messages stream: the limit of durable delivery here. A message completes at its
 * publish ack; the serving process is nats-server.
 */
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, headers as natsHeaders } from '@nats-io/transport-node';
import { messagesStreamConfig } from '../../cells/messenger/stores.ts';
import { H } from '../../cells/messenger/inbox.ts';
import { natsOptions } from '../../organism/kernel/access.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import type { Organism } from '../../organism/grow/organism.ts';
import { driveRateAndSaturation, type DriveContext } from './driver.ts';
import type { Proc } from './meter.ts';
import { RAW_IN_FLIGHT, type ChatBenchOptions, type ChatBenchResult } from './result.ts';

export async function rawJetstreamPhase(o: ChatBenchOptions, r: ChatBenchResult, ctx: DriveContext, organism: Organism): Promise<void> {
  const ns = new Namespace(organism.id);
  const nc = await natsConnect(natsOptions(organism.access, 'bench-chat/raw'));
  const jsm = await jetstreamManager(nc);
  const stream = { ...messagesStreamConfig(ns, organism.genome.messenger, 1), name: ns.stream('benchraw'), subjects: [`${ns.prefix}.benchraw.>`] };
  try {
    await jsm.streams.delete(stream.name).catch(() => false);
    await jsm.streams.add(stream);
    const js = jetstream(nc);
    const run = randomBytes(4).toString('base64url');
    let n = 0;
    const send = (_from: number, to: number, body: Buffer) => {
      const h = natsHeaders();
      const msg = `${run}${(n++).toString(36).padStart(8, '0')}`;
      const user = `u${to}`;
      h.set(H.FROM, 'bench');
      h.set(H.MSG, msg);
      h.set(H.AT, String(Date.now()));
      return js.publish(`${ns.prefix}.benchraw.${user}`, body, { msgID: `${user}.${msg}`, headers: h });
    };
    const procs = (): Proc[] => (organism.broker?.pid ? [{ name: 'nats-server', pid: organism.broker.pid }] : []);
    const spec = { system: 'jetstream' as const, completes: 'acked' as const, senders: 1, recipients: o.clients, send, procs };
    r.runs.push(...await driveRateAndSaturation(spec, 'raw JetStream', o.rate, RAW_IN_FLIGHT, ctx, `raw JetStream, ${RAW_IN_FLIGHT} in flight`));
  } finally {
    await jsm.streams.delete(stream.name).catch(() => false);
    await nc.close().catch(() => undefined);
  }
}
