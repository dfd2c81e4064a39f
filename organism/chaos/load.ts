/**
 * A real load source: an open-loop client that sends requests to a tissue's endpoint at the
 * rate a shape dictates (requests go out on schedule whether or not earlier ones returned,
 * as users do), with a cap on requests in flight (beyond it, requests are shed and counted).
 * It reports every second: offered rate, sent, answered, errors, shed, latency.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { isCellularError } from '../wire/errors.ts';
import type { Namespace } from '../kernel/namespace.ts';
import { openReply, pack } from '../kernel/reply.ts';
import { arrivals, rateAt, type Shape } from './load-shape.ts';
import { distribution, percentile, type Distribution } from './stats.ts';
import { within } from '../kernel/within.ts';

export interface LoadOptions {
  nc: NatsConnection;
  ns: Namespace;
  tissue: string;
  endpoint: string;
  /** The request each call sends (msgpack-encoded once). */
  request: unknown;
  shape: Shape;
  /** Requests in flight at most; the rest are shed. @default 256 */
  maxInflight?: number;
  /** Per-request timeout, ms. @default 5000 */
  timeoutMs?: number;
  /** Called once a second, and once at the end. */
  progress?: (second: LoadSecond) => void;
  /** Called with every reply value as it arrives (e.g. which cell served it). */
  onReply?: (value: unknown, at: number) => void;
  signal?: AbortSignal;
}

export interface LoadSecond {
  /** Seconds since the start (1 = the first second). */
  second: number;
  /** The shape's rate at the middle of this second. */
  offered: number;
  sent: number;
  ok: number;
  errors: number;
  shed: number;
  inflight: number;
  /** Latency of the requests answered in this second, ms (null when none). */
  p50: number | null;
  p99: number | null;
}

export interface LoadResult {
  shape: Shape;
  seconds: LoadSecond[];
  sent: number;
  ok: number;
  errors: number;
  shed: number;
  /** Errors by code (CellularError codes, `timeout`, `no-responders`, …). */
  errorsByCode: Record<string, number>;
  latency: Distribution | null;
  /** Wall time of the run, ms (the shape's duration, plus the wait for the last answers). */
  elapsedMs: number;
}

function errorCode(e: unknown): string {
  if (isCellularError(e)) return e.code;
  const msg = e instanceof Error ? `${e.name} ${e.message} ${(e as { code?: string }).code ?? ''}` : String(e);
  if (/no ?responders|503/i.test(msg)) return 'no-responders';
  if (/timeout/i.test(msg)) return 'timeout';
  if (/closed|disconnect/i.test(msg)) return 'connection';
  return 'other';
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const subject = o.ns.tissue(o.tissue, o.endpoint);
  const payload = pack(o.request);
  const maxInflight = o.maxInflight ?? 256;
  const timeoutMs = o.timeoutMs ?? 5_000;
  const errorsByCode: Record<string, number> = {};
  const all: number[] = [];
  const seconds: LoadSecond[] = [];
  let current = { sent: 0, ok: 0, errors: 0, shed: 0, latencies: [] as number[] };
  let inflight = 0;
  const totals = { sent: 0, ok: 0, errors: 0, shed: 0 };
  const pending = new Set<Promise<void>>();
  const start = performance.now();

  const closeSecond = (second: number) => {
    const s: LoadSecond = {
      second,
      offered: rateAt(o.shape, (second - 0.5) * 1000),
      sent: current.sent, ok: current.ok, errors: current.errors, shed: current.shed, inflight,
      p50: current.latencies.length ? percentile(current.latencies, 50) : null,
      p99: current.latencies.length ? percentile(current.latencies, 99) : null,
    };
    seconds.push(s);
    o.progress?.(s);
    current = { sent: 0, ok: 0, errors: 0, shed: 0, latencies: [] };
  };

  const fire = () => {
    if (inflight >= maxInflight) {
      current.shed++;
      totals.shed++;
      return;
    }
    inflight++;
    current.sent++;
    totals.sent++;
    const t0 = performance.now();
    const p = o.nc
      .request(subject, payload, { timeout: timeoutMs })
      .then((msg) => {
        const value = openReply(msg.data);
        o.onReply?.(value, Date.now());
        const ms = performance.now() - t0;
        current.ok++;
        totals.ok++;
        current.latencies.push(ms);
        all.push(ms);
      })
      .catch((e: unknown) => {
        current.errors++;
        totals.errors++;
        const code = errorCode(e);
        errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
      })
      .finally(() => {
        inflight--;
        pending.delete(p);
      });
    pending.add(p);
  };

  // Seconds are closed by their own clock, whatever the arrival loop is doing.
  let second = 1;
  const ticker = setInterval(() => closeSecond(second++), 1000);
  try {
    for (const at of arrivals(o.shape)) {
      if (o.signal?.aborted) break;
      const ahead = at - (performance.now() - start);
      if (ahead >= 1) await sleep(ahead); // arrivals due together go out together
      fire();
    }
    // The rest of the shape's time, then the answers still on their way (bounded by the timeout).
    const tail = o.shape.durationMs - (performance.now() - start);
    if (tail > 0 && !o.signal?.aborted) await sleep(tail, undefined, o.signal ? { signal: o.signal } : {}).catch(() => {});
    await within(Promise.allSettled([...pending]), timeoutMs + 100, undefined);
  } finally {
    clearInterval(ticker);
  }
  if (current.sent + current.ok + current.errors + current.shed > 0) closeSecond(second);
  return {
    shape: o.shape, seconds, ...totals, errorsByCode,
    latency: all.length ? distribution(all) : null,
    elapsedMs: performance.now() - start,
  };
}
