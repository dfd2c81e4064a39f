/**
 * Receiver tissue: the messenger's front. Each receiver listens on its own port (and may
 * hold the shared front door), serves the browser client and the WebSocket protocol
 * (docs/protocol.md), stores sends in JetStream and delivers each logged-in user's inbox.
 * Account work goes to the worker tissue. Its load is its sockets' in-flight frames.
 * Draining, it hands its clients the other receivers and closes them with "moved".
 */
import { onBeat } from '../../organism/kernel/phase.ts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { KvWatchInclude } from '@nats-io/kv';
import { RequestError } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { CellularError, isCellularError } from '../../organism/wire/errors.ts';
import { openReply, pack } from '../../organism/kernel/reply.ts';
import { Inboxes } from '../messenger/inbox.ts';
import { openMessengerStores } from '../messenger/stores.ts';
import { MessengerSubjects } from '../messenger/subjects.ts';
import { CLOSE } from '../../organism/wire/frames.ts';
import { Gateway } from '../receiver/gateway.ts';
import { Presence } from '../receiver/presence.ts';
import { defineTissue, type TissueContext, type TissueInstance } from '../tissue.ts';
import { workerClient } from '../worker/api.ts';

/** How long a positive "this user exists" answer is trusted; deletions also evict it at once (watch below). */
const EXISTS_TTL_MS = 60_000;
const EXISTS_CACHE_MAX = 100_000;

function liveReceivers(ctx: TissueContext, own?: string): string[] {
  // Behind a front door the receivers' own addresses are not the browsers' to use.
  if (ctx.genome.messenger.publicUrl !== '') return [ctx.genome.messenger.publicUrl];
  const urls = new Set(ctx.census.living().filter((c) => c.tissue === ctx.cell.tissue && c.state === 'alive' && c.url !== null).map((c) => c.url!));
  // Its own address is known here before any census has it (its next pulse, then its host's
  // digest, carry it): a client's first hello must not hear an empty list from it.
  if (own !== undefined) urls.add(own);
  return [...urls].sort();
}

export default defineTissue({
  name: 'receiver',
  capacity: 64,
  async start(ctx): Promise<TissueInstance> {
    const stores = await openMessengerStores(ctx.nc, ctx.ns);
    const js = jetstream(ctx.nc);
    const jsm = await jetstreamManager(ctx.nc);
    const subjects = new MessengerSubjects(ctx.ns);
    const known = new Map<string, number>();
    const worker = workerClient(async (endpoint, request) => {
      const data = pack(request);
      const giveUp = Date.now() + ctx.genome.messenger.workerWaitMs;
      for (let pause = 25; ; pause = Math.min(pause * 2, 400)) {
        try {
          const reply = await ctx.nc.request(ctx.ns.tissue('worker', endpoint), data, { timeout: 10_000 });
          return openReply(reply.data);
        } catch (cause) {
          if (isCellularError(cause)) throw cause;
          // "No responders" means no worker took it (one is being regrown): retrying cannot
          // do it twice. A timeout might have been done, so it is not retried.
          const retry = cause instanceof RequestError && cause.isNoResponders() && Date.now() + pause < giveUp && !ctx.signal.aborted;
          if (!retry) throw new CellularError('TISSUE_ERR_UNAVAILABLE', `no worker answered ${endpoint}: ${(cause as Error).message}`, { cause });
          await sleep(pause);
        }
      }
    });
    /** Set once listening: a deletion before that has no sockets here to end. */
    let gateway: Gateway | undefined;
    // A deleted account stops receiving at once on every receiver, not when the cache ages.
    const deletions = await stores.accounts.watch({ key: 'u.*', include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const e of deletions) {
        if (e.operation === 'PUT') continue;
        const user = e.key.slice(2);
        known.delete(user);
        // Its sockets here end too: a name registered again must not reach the old owner.
        gateway?.closeUser(user, CLOSE.ACCOUNT_DELETED, 'account deleted');
      }
    })().catch((e: unknown) => ctx.log.warn({ err: (e as Error).message }, 'account watch ended'));
    ctx.signal.addEventListener('abort', () => deletions.stop(), { once: true });
    let g: Gateway;
    const presence = new Presence({
      presence: stores.presence, contacts: stores.contacts, self: ctx.cell.id,
      alive: (cell) => ctx.census.get(cell)?.state !== 'dead' && ctx.census.get(cell) !== undefined,
      push: (to, user, online) => g.toUser(to, { v: 1, t: 'presence', user, online }),
      onError: (e) => ctx.log.warn({ err: (e as Error).message }, 'presence watch ended'),
      // Two pulse intervals: longer than a socket takes to move, shorter than people notice.
      offlineGraceMs: Math.max(500, 2 * ctx.genome.limits.pulseIntervalMs),
    });
    await presence.start();
    const offCensus = ctx.census.on((e) => {
      if (e.entry.tissue === ctx.cell.tissue && e.entry.state === 'dead' && e.entry.id !== ctx.cell.id) void presence.receiverGone(e.entry.id).catch(() => undefined);
    });
    ctx.signal.addEventListener('abort', () => {
      offCensus();
      presence.close();
    }, { once: true });
    g = new Gateway({
      presence,
      gene: ctx.genome.messenger, http: ctx.genome.limits, subjects, js, inboxes: new Inboxes({ nc: ctx.nc, js, jsm, stream: stores.messages, subjects }), nc: ctx.nc, stores, cell: ctx.cell.id, log: ctx.log, work: ctx.work,
      receivers: () => liveReceivers(ctx, gateway?.url),
      worker,
      exists: async (user) => {
        const at = known.get(user);
        if (at !== undefined && Date.now() - at < EXISTS_TTL_MS) return true;
        const e = await stores.accounts.get(`u.${user}`);
        const yes = e !== null && e.operation === 'PUT';
        if (yes) {
          if (known.size >= EXISTS_CACHE_MAX) known.clear();
          known.set(user, Date.now());
        }
        return yes;
      },
    });
    await g.start();
    gateway = g;
    // Tell clients when the live receivers change. Polled at the pulse rate rather than on
    // census events: a newborn's URL arrives in a later pulse, with no change of state.
    let told = liveReceivers(ctx, g.url).join(' ');
    const watchReceivers = onBeat(ctx.genome.limits, () => {
      const now = liveReceivers(ctx, g.url);
      if (now.join(' ') === told) return;
      told = now.join(' ');
      g.announceReceivers(now);
    });
    ctx.signal.addEventListener('abort', () => watchReceivers.stop(), { once: true });
    ctx.setUrl(g.url);
    ctx.log.info({ url: g.url }, 'receiver listening');
    return {
      stats: () => ({ url: g.url, frontDoor: g.holdsFrontDoor, connections: g.connections, ...g.stats, deliveryP99Ms: g.latency.percentile(99) }),
      drain: () => g.close(),
    };
  },
});
