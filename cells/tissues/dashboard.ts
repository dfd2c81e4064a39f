/**
 * Dashboard tissue: a singleton cell (genome min = max = 1, regrown when it dies) that shows
 * the swarm live in a browser (docs/dashboard.md). It hears every hormone like any cell,
 * keeps the event log and the time series, writes census frames into the flight recorder,
 * serves the page, the live feed and Prometheus metrics, and relays controls to the
 * operator (grow) — only with the dashboard token.
 */
import { RequestError } from '@nats-io/transport-node';
import { readDashboardToken, signControl, tokenChecker } from '../../organism/kernel/dashboard-token.ts';
import { CellularError, isCellularError } from '../../organism/wire/errors.ts';
import { toHex } from '../../organism/kernel/keys.ts';
import { openReply, pack, unpack } from '../../organism/kernel/reply.ts';
import { LIVE_SCENARIOS } from '../../organism/chaos/scenarios.ts';
import { censusEvent, controlEvent, eventOf, rowOf, SwarmModel } from '../dashboard/model.ts';
import { Metrics } from '../dashboard/metrics.ts';
import { Recorder } from '../dashboard/recorder.ts';
import { DashboardServer } from '../dashboard/server.ts';
import type { SwarmEvent } from '../../organism/wire/dashboard-frames.ts';
import { FAULT_KINDS } from '../immune/faults.ts';
import { defineTissue, type TissueContext, type TissueInstance } from '../tissue.ts';
import type { ControlRecord } from '../../organism/wire/control.ts';

/** Frames a replay sends at most (the page plays them; a span has one per frameIntervalMs). */
const REPLAY_FRAMES_MAX = 300;
/** Events a new page gets in its snapshot (the rest of the log stays on the cell). */
const SNAPSHOT_EVENTS = 1_000;
/** How far back a newborn dashboard refills its log from the recorder. */
const BACKFILL_MS = 10 * 60_000;

async function receiverTotals(ctx: TissueContext): Promise<{ delivered: number; p99: number | null }> {
  const receivers = ctx.census.living().filter((c) => c.tissue === 'receiver' && c.state !== 'suspect');
  let delivered = 0;
  let p99: number | null = null;
  await Promise.all(receivers.map(async (c) => {
    try {
      const s = openReply<{ tissueStats?: { delivered?: unknown; deliveryP99Ms?: unknown } | null }>((await ctx.nc.request(ctx.ns.cell(c.id, 'stats'), new Uint8Array(0), { timeout: 800 })).data);
      const t = s.tissueStats ?? {};
      if (typeof t.delivered === 'number') delivered += t.delivered;
      if (typeof t.deliveryP99Ms === 'number') p99 = Math.max(p99 ?? 0, t.deliveryP99Ms);
    } catch {
      // a receiver that does not answer now adds nothing this second
    }
  }));
  return { delivered, p99 };
}

export default defineTissue({
  name: 'dashboard',
  capacity: 16,
  async start(ctx): Promise<TissueInstance> {
    const gene = ctx.genome.dashboard;
    const m = new SwarmModel(gene);
    const metrics = new Metrics();
    const tissueOf = (id: string) => ctx.census.get(id)?.tissue ?? ctx.certOf(id)?.tissue ?? null;
    const recorder = new Recorder({ nc: ctx.nc, ns: ctx.ns, hormoneMaxBytes: ctx.genome.limits.hormoneMaxBytes, keyOf: ctx.keyOf, findKey: async (id) => ((await ctx.findCert(id)) ? ctx.keyOf(id) : undefined), tissueOf });
    let allowed: (token: unknown) => boolean = () => false;
    try {
      allowed = tokenChecker(readDashboardToken(ctx.stateDir));
    } catch (e) {
      ctx.log.warn({ err: (e as Error).message }, 'no dashboard token here: the dashboard is read-only');
    }
    // Live events are heard from the start and held while the recent past is read from the
    // recorder, then added after it, but for those the past already holds: a hormone that came
    // during the read was in neither before (seen in CI: a first cell's birth missing from the log).
    // The read goes through a mark this cell records once it listens, not the stream's last
    // number: on one server a hormone heard just before the listener could still be on its
    // way into the stream (seen in CI: a stem born with the dashboard missing from its log).
    let held: Omit<SwarmEvent, 'n'>[] | undefined = [];
    const add = (e: Omit<SwarmEvent, 'n'>) => (held ? void held.push(e) : void metrics.event(m.add(e)));
    const offs = [
      ctx.onHormone((h) => {
        metrics.hormone(h.kind);
        const e = eventOf(h, tissueOf);
        if (e) add(e);
      }),
      ctx.census.on((e) => {
        const event = censusEvent(e);
        if (event) add(event);
      }),
    ];
    const controls = ctx.nc.subscribe(ctx.ns.recorder('control'), {
      callback: (_e, msg) => {
        try {
          const r = unpack(msg.data) as ControlRecord;
          if (typeof r?.ts === 'number' && typeof r.control?.action === 'string') add(controlEvent(r));
        } catch {
          // not a control record: nothing to show
        }
      },
    });
    // A regrown dashboard starts with the recent past, not an empty log.
    const told = new Set<string>();
    const said = (e: Omit<SwarmEvent, 'n'>) => `${e.ts} ${e.from} ${e.kind} ${e.text}`;
    try {
      // No mark (a stream that takes no writes just now): read to its last number, as before.
      const mark = await recorder.mark().catch((e: unknown) => void ctx.log.warn({ err: (e as Error).message }, 'no recorder mark: the log may miss what came while it was read'));
      const past = await recorder.read(Date.now() - BACKFILL_MS, Date.now(), 0, mark ?? undefined);
      if (!past.complete) ctx.log.warn({ read: past.read }, 'the flight recorder read stopped short (time or size): the log misses part of the recent past');
      for (const e of past.events.sort((a, b) => a.ts - b.ts)) {
        told.add(said(e));
        m.add(e);
      }
    } catch (e) {
      ctx.log.warn({ err: (e as Error).message }, 'flight recorder unreadable: the log starts empty');
    }
    const live = held;
    held = undefined;
    for (const e of live) if (!told.has(said(e))) add(e);

    const s = new DashboardServer({
      gene, http: ctx.genome.limits, log: ctx.log,
      welcome: () => [
        {
          t: 'hello', organism: ctx.ns.id, cell: ctx.cell.id, host: ctx.cell.host, pushIntervalMs: gene.pushIntervalMs, recorderMaxAgeMs: gene.recorderMaxAgeMs,
          tissues: Object.fromEntries(Object.entries(ctx.genome.tissues).map(([t, g]) => [t, { min: g.min, max: g.max, high: g.high, low: g.low, target: g.target }])),
          faults: FAULT_KINDS, scenarios: LIVE_SCENARIOS.map((x) => ({ name: x.name, description: x.description })),
          loadMaxRate: gene.loadMaxRate, loadMaxSeconds: gene.loadMaxSeconds,
        },
        { t: 'snapshot', ts: Date.now(), cells: ctx.census.list().map(rowOf), events: m.events.slice(-SNAPSHOT_EVENTS), series: m.series, last: m.last },
      ],
      metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
      health: () => ({ cell: ctx.cell.id, ok: !ctx.signal.aborted }),
      authorized: (token) => allowed(token),
      control: async (token, control, page) => {
        try {
          // The page's token checked here; the operator gets proof of it, never the token.
          if (!allowed(token) || typeof token !== 'string') throw new CellularError('DASHBOARD_ERR_TOKEN', 'the dashboard token is missing or wrong: controls are refused (the dashboard is read-only without it)');
          const reply = await ctx.nc.request(ctx.ns.operator, pack(signControl(token, ctx.ns.id, `${ctx.cell.id}/${page}`, control)), { timeout: 15_000 });
          return openReply<{ message: string }>(reply.data).message;
        } catch (cause) {
          if (isCellularError(cause)) throw cause;
          throw new CellularError('OPERATOR_ERR_UNAVAILABLE', cause instanceof RequestError && cause.isNoResponders() ? 'no operator is listening (grow is not running?)' : `the operator did not answer: ${(cause as Error).message}`, { cause });
        }
      },
      detail: async (id) => {
        const entry = ctx.census.get(id);
        const cert = ctx.certOf(id) ?? (entry ? await ctx.findCert(id) : undefined);
        if (!entry && !cert) return undefined;
        let stats: unknown = null;
        if (entry && entry.state !== 'dead') {
          stats = await ctx.nc.request(ctx.ns.cell(id, 'stats'), new Uint8Array(0), { timeout: 1_000 }).then((r) => openReply(r.data), () => null);
        }
        return {
          id, row: entry ? rowOf(entry) : null, age: entry ? Date.now() - entry.born : null, pulses: entry?.pulses ?? null, genome: entry?.genome ?? null, demand: entry?.demand ?? null, work: entry?.work ?? null,
          cert: cert ? { issuer: cert.issuer, parent: cert.parent, generation: cert.generation, budget: cert.budget, tissue: cert.tissue, host: cert.host, born: cert.born, pub: toHex(cert.pub) } : null,
          evidence: ctx.evidenceAgainst(id) ?? null,
          decisions: m.about(id, ['decision']).slice(-20),
          events: m.about(id).slice(-50),
          stats,
        };
      },
      replay: async (from, to) => {
        const r = await recorder.read(from, to, REPLAY_FRAMES_MAX);
        return { from: r.from, to: r.to, frames: r.frames, events: r.events, read: r.read, rejected: r.rejected };
      },
    });
    ctx.setUrl(await s.start());

    // The feed: census and new events at the push rate; a series point, metrics and a
    // recorder frame on their own clocks.
    let sent = m.last;
    const push = setInterval(() => {
      const events = m.since(sent);
      sent = m.last;
      s.broadcast({ t: 'tick', ts: Date.now(), cells: ctx.census.list().map(rowOf), events, last: sent });
    }, gene.pushIntervalMs);
    let previous: { at: number; delivered: number } | undefined;
    let sampling = false;
    const sample = setInterval(() => {
      if (sampling) return;
      sampling = true;
      void receiverTotals(ctx).then(({ delivered, p99 }) => {
        const now = Date.now();
        // Counters of receivers that died or were born make the sum jump: clamp at 0.
        const rate = previous ? Math.max(0, ((delivered - previous.delivered) * 1000) / (now - previous.at)) : 0;
        previous = { at: now, delivered };
        const living = ctx.census.living();
        const point = m.point(living, rate, p99, now);
        metrics.update(ctx.census.list(), point);
        s.broadcast({ t: 'point', point });
      }).finally(() => (sampling = false));
    }, 1_000);
    const frames = setInterval(() => {
      try {
        recorder.frame(Date.now(), ctx.census.list().map(rowOf));
      } catch (e) {
        ctx.log.warn({ err: (e as Error).message }, 'recorder frame not written');
      }
    }, gene.frameIntervalMs);
    for (const t of [push, sample, frames]) t.unref();
    ctx.signal.addEventListener('abort', () => {
      for (const t of [push, sample, frames]) clearInterval(t);
      for (const off of offs) off();
      controls.unsubscribe();
    }, { once: true });
    ctx.log.info({ url: s.url }, 'dashboard listening');
    return {
      stats: () => ({ url: s.url, ...s.stats, open: s.pages, events: m.events.length }),
      drain: () => s.close(),
    };
  },
});
