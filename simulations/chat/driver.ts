/**
 * The chat benchmark's driver: the clients of one system sending and receiving, at a
 * fixed offered rate (open loop: a pacer fires sends on schedule, skipping a tick when too
 * much is in flight) or at saturation (every sender keeps `window` sends awaiting their
 * ack). One run is a warm-up, a measured window and a bounded drain; the `Meter` counts it
 * and the serving processes' CPU is read at the window's edges. The system is reached only
 * through `DriveSpec.send` and the `Sink` its clients hand deliveries to, so every system
 * is driven the same way.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CellularError, throwIfAborted } from '../../organism/wire/errors.ts';
import { LeanClient, ReplyError } from '../chat-client.ts';
import { logIn, registerAccount } from '../../client/app/account.ts';
import { generateIdentity } from '../../client/crypto/envelope.ts';
import { cpuMark, cpuUse, latencyOf, makeBody, Meter, now, type CpuMark, type Proc } from './meter.ts';
import { ACK_EVERY_MS, WARMUP_MS, type CpuUse, type LoadRun, type SystemName } from './result.ts';

/** How long a run may drain after its window (what was sent acked, what was acked delivered), ms. */
const DRAIN_MS = 20_000;

/** Where a system's clients hand their deliveries: the meter of the run in progress. */
export interface Sink {
  meter: Meter | undefined;
}

export interface DriveSpec {
  system: SystemName;
  label: string;
  mode: 'rate' | 'saturation';
  completes: 'delivered' | 'acked';
  /** Senders; a sender `i` sends to a random recipient ≠ i of `recipients` (default: senders). */
  senders: number;
  recipients?: number;
  rate?: number;
  window?: number;
  send(from: number, to: number, body: Buffer): Promise<unknown>;
  sink?: Sink;
  procs(): Proc[];
}

export interface DriveContext {
  seconds: number;
  progress: (line: string) => void;
  signal?: AbortSignal;
}

export const codeOf = (e: unknown) => (e instanceof ReplyError || e instanceof CellularError ? e.code : (e as { code?: unknown })?.code ? String((e as { code: unknown }).code) : (e as Error)?.message?.slice(0, 60) ?? 'error');
export const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
const fmtMs = (v: number | undefined | null) => (v === undefined || v === null ? '—' : v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(2)} ms`);

export async function drive(spec: DriveSpec, ctx: DriveContext): Promise<LoadRun> {
  throwIfAborted(ctx.signal);
  const measureMs = ctx.seconds * 1_000;
  const meter = new Meter(WARMUP_MS, measureMs);
  if (spec.sink) spec.sink.meter = meter;
  const recipients = spec.recipients ?? spec.senders;
  const errors: Record<string, number> = {};
  let inflight = 0;
  let skipped = 0;
  let stopped = false;
  const completesOnAck = spec.completes === 'acked';

  const fire = (from: number): Promise<void> => {
    let to = Math.floor(Math.random() * recipients);
    if (recipients === spec.senders && recipients > 1) while (to === from) to = Math.floor(Math.random() * recipients);
    const sentAt = now();
    const body = makeBody(meter.tag, sentAt);
    meter.onSent(sentAt);
    inflight++;
    return spec.send(from, to, body).then(
      () => {
        inflight--;
        meter.onAcked(sentAt, completesOnAck);
      },
      (e: unknown) => {
        inflight--;
        const code = codeOf(e);
        errors[code] = (errors[code] ?? 0) + 1;
        throw e;
      },
    );
  };

  // CPU at the window's edges.
  let procList: Proc[] | undefined;
  let cpu0: CpuMark | undefined;
  let cpu1: CpuMark | undefined;
  const t0 = setTimeout(() => {
    procList = spec.procs();
    cpu0 = cpuMark(procList);
  }, Math.max(0, meter.from - now()));
  const t1 = setTimeout(() => {
    cpu1 = cpuMark(procList ?? spec.procs());
    stopped = true;
  }, Math.max(0, meter.to - now()));
  // Running numbers every 5 s of the window.
  const ticker = setInterval(() => {
    const t = now();
    if (t < meter.from + 1_000 || t >= meter.to) return;
    const s = (t - meter.from) / 1_000;
    const done = completesOnAck ? meter.acked : meter.delivered;
    ctx.progress(`  … ${spec.label}: ${s.toFixed(0)} s, ${fmt(done / s)}/s ${spec.completes}, p99 ${fmtMs(meter.latency.totalCount ? meter.latency.getValueAtPercentile(99) / 1_000 : null)}, ${fmt(inflight)} in flight`);
  }, 5_000);

  const onAbort = () => (stopped = true);
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (spec.mode === 'rate') {
      const rate = spec.rate!;
      const cap = Math.max(10_000, rate * 5);
      let k = 0;
      while (!stopped) {
        const due = Math.floor(((now() - meter.start) * rate) / 1_000);
        while (k < due) {
          if (inflight >= cap) skipped++;
          else fire(k % spec.senders).catch(() => undefined);
          k++;
        }
        await sleep(1);
      }
    } else {
      const lane = async (from: number) => {
        while (!stopped) {
          try {
            await fire(from);
          } catch (e) {
            if (codeOf(e) === 'CLOSED') return;
            await sleep(5);
          }
        }
      };
      const lanes: Promise<void>[] = [];
      for (let i = 0; i < spec.senders; i++) for (let w = 0; w < spec.window!; w++) lanes.push(lane(i));
      while (!stopped) await sleep(50);
      // Lanes end once their send in flight settles; the drain below bounds the wait.
      void Promise.all(lanes);
    }
    // Drain: what was sent is acked, what was acked is delivered (bounded).
    const end = now() + DRAIN_MS;
    while (now() < end && !ctx.signal?.aborted) {
      if (inflight === 0 && (completesOnAck || meter.deliveredTotal >= meter.ackedTotal)) break;
      await sleep(20);
    }
  } finally {
    clearTimeout(t0);
    clearTimeout(t1);
    clearInterval(ticker);
    ctx.signal?.removeEventListener('abort', onAbort);
    if (spec.sink) spec.sink.meter = undefined;
  }
  throwIfAborted(ctx.signal);

  const secs = measureMs / 1_000;
  const done = completesOnAck ? meter.acked : meter.delivered;
  const cpu: CpuUse | null = cpu0 && cpu1 && procList ? cpuUse(procList, cpu0, cpu1, done) : null;
  const run: LoadRun = {
    system: spec.system, mode: spec.mode, completes: spec.completes,
    offeredPerSecond: spec.mode === 'rate' ? spec.rate! : null, window: spec.mode === 'saturation' ? spec.window! : null,
    senders: spec.senders, seconds: secs,
    sent: meter.sent, acked: meter.acked, delivered: completesOnAck ? meter.acked : meter.delivered,
    sentPerSecond: meter.sent / secs, ackedPerSecond: meter.acked / secs, deliveredPerSecond: (completesOnAck ? meter.acked : meter.delivered) / secs,
    throughput: done / secs,
    latency: latencyOf(meter.latency), ackLatency: latencyOf(meter.ackLatency),
    errors, skipped, undelivered: completesOnAck ? 0 : Math.max(0, meter.ackedTotal - meter.deliveredTotal), stray: meter.stray,
    timeline: meter.timeline(),
    drainDeliveredPerSecond: completesOnAck ? null : meter.drainDeliveredPerSecond(),
    cpu,
  };
  const errs = Object.entries(errors).map(([c, n]) => `${c}×${n}`).join(', ');
  ctx.progress(
    `${spec.label}: ${fmt(run.throughput)}/s ${spec.completes}${spec.mode === 'rate' ? ` (offered ${fmt(spec.rate!)}/s, sent ${fmt(run.sentPerSecond)}/s)` : ` (window ${spec.window})`}, ` +
      `p50 ${fmtMs(run.latency?.p50)}, p99 ${fmtMs(run.latency?.p99)}, p99.9 ${fmtMs(run.latency?.p999)}` +
      `${cpu?.perMessageMicros != null ? `, ${fmt(cpu.perMessageMicros)} µs CPU/msg` : ''}${cpu?.otherMicros != null && cpu.otherMicros > 0.1 * measureMs * 1_000 ? ` (other work on the machine: ${Math.round(cpu.otherMicros / measureMs / 10)} % of a core)` : ''}${run.undelivered ? `, ${fmt(run.undelivered)} undelivered after drain` : ''}${errs ? `; errors ${errs}` : ''}${skipped ? `; ${fmt(skipped)} pacer ticks skipped` : ''}`,
  );
  return run;
}

/** The two runs of a system: at the fixed offered `rate`, then at saturation with `window` sends in flight per sender. */
export async function driveRateAndSaturation(
  spec: Omit<DriveSpec, 'label' | 'mode' | 'rate' | 'window'>, name: string, rate: number, window: number, ctx: DriveContext, saturationLabel = `${name} at saturation`,
): Promise<LoadRun[]> {
  const atRate = await drive({ ...spec, label: `${name} at ${fmt(rate)}/s`, mode: 'rate', rate }, ctx);
  const atSaturation = await drive({ ...spec, label: saturationLabel, mode: 'saturation', window }, ctx);
  return [atRate, atSaturation];
}

/** Logs in `n` users (alternating between `urls`), each acking what it holds every 20 ms. */
export async function loginAll(urls: string[], names: string[], sink: Sink, register: boolean, signal?: AbortSignal): Promise<LeanClient[]> {
  const clients: LeanClient[] = new Array(names.length);
  try {
    for (let i = 0; i < names.length; i += 10) {
      throwIfAborted(signal);
      await Promise.all(names.slice(i, i + 10).map(async (user, k) => {
        const c = await LeanClient.connect(urls[(i + k) % urls.length]!, { onDeliver: (body) => sink.meter?.onDeliver(body) });
        clients[i + k] = c;
        const password = `pw-${user}-bench`;
        if (!register) {
          await c.request({ t: 'login', user, password }); // a peer's own login (ws-relay)
        } else {
          // Cellular: OPAQUE, as the page does (the Argon2id runs here, in the client, and are not measured).
          try {
            await registerAccount(c, user, password, generateIdentity());
          } catch (e) {
            if (!(e instanceof ReplyError && e.code === 'ACCOUNT_ERR_EXISTS')) throw e;
            await logIn(c, user, password);
          }
        }
        c.autoAck(ACK_EVERY_MS);
      }));
    }
  } catch (e) {
    await Promise.all(clients.filter(Boolean).map((c) => c.shut()));
    throw e;
  }
  return clients;
}

/** Message ids unique to this run: `prefix` and a counter. */
export function msgIds(prefix: string) {
  let n = 0;
  return () => `${prefix}${(n++).toString(36).padStart(6, '0')}`;
}
