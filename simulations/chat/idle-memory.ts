/**
 * The chat benchmark's idle-memory figure: `idle` WebSocket connections opened to one
 * receiver in batches of 500 and held open; the receiver's RSS and private memory before
 * and after (the median of 5 readings from /proc each), and per socket.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { CensusEntry } from '../../organism/kernel/census.ts';
import { CellularError, throwIfAborted } from '../../organism/wire/errors.ts';
import { median } from '../../organism/chaos/stats.ts';
import { ReplyError, wsUrl } from '../chat-client.ts';
import { readMemory } from '../procfs.ts';
import { codeOf, fmt } from './driver.ts';
import { now } from './meter.ts';
import type { ChatBenchOptions, IdleResult } from './result.ts';
import { within } from '../../organism/kernel/within.ts';

async function sampleMemory(pid: number, n = 5, everyMs = 250): Promise<{ rss: number; private: number }> {
  const rss: number[] = [];
  const priv: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = readMemory(pid);
    if (m) {
      rss.push(m.rss);
      priv.push(m.private);
    }
    if (i < n - 1) await sleep(everyMs);
  }
  if (rss.length === 0) throw new CellularError('CELL_ERR_REMOTE', `cannot read /proc/${pid} (the receiver is gone)`);
  return { rss: median(rss), private: median(priv) };
}

function openIdle(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      reject(new ReplyError(`HTTP_${res.statusCode}`, 'upgrade refused'));
    });
    ws.once('error', reject);
  });
}

export async function idlePhase(o: ChatBenchOptions, receiver: CensusEntry): Promise<IdleResult> {
  o.progress(`idle memory: ${fmt(o.idle)} idle sockets to ${receiver.id} (pid ${receiver.pid}) …`);
  await sleep(1_000);
  const before = await sampleMemory(receiver.pid);
  const url = wsUrl(receiver.url!);
  const open: WebSocket[] = [];
  const samples: { sockets: number; rss: number }[] = [{ sockets: 0, rss: before.rss }];
  const t0 = now();
  try {
    for (let i = 0; i < o.idle; i += 500) {
      throwIfAborted(o.signal);
      const batch = await Promise.allSettled(Array.from({ length: Math.min(500, o.idle - i) }, () => openIdle(url)));
      for (const r of batch) if (r.status === 'fulfilled') open.push(r.value);
      const failed = batch.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        const e = failed.reason as NodeJS.ErrnoException;
        if (e?.code === 'EMFILE' || /EMFILE/.test(String(e?.message))) {
          throw new CellularError('CELL_ERR_REMOTE', `too many open files (EMFILE) after ${open.length} idle sockets: raise the open-file limit (ulimit -n, now too low for ${o.idle} sockets on each side) or lower --idle`);
        }
        throw new CellularError('CELL_ERR_REMOTE', `idle socket ${open.length + 1} of ${o.idle} failed: ${codeOf(e)} ${e?.message ?? ''}`.trim());
      }
      samples.push({ sockets: open.length, rss: readMemory(receiver.pid)?.rss ?? Number.NaN });
    }
    const openMs = now() - t0;
    await sleep(2_000);
    const after = await sampleMemory(receiver.pid);
    samples.push({ sockets: open.length, rss: after.rss });
    const result: IdleResult = {
      sockets: open.length, receiver: { id: receiver.id, pid: receiver.pid },
      rssBefore: before.rss, rssAfter: after.rss, privateBefore: before.private, privateAfter: after.private,
      rssPerSocket: (after.rss - before.rss) / open.length, privatePerSocket: (after.private - before.private) / open.length,
      openMs, samples,
    };
    o.progress(
      `idle memory: ${fmt(open.length)} sockets opened in ${(openMs / 1_000).toFixed(1)} s; receiver RSS ${(before.rss / 1e6).toFixed(1)} → ${(after.rss / 1e6).toFixed(1)} MB = ${(result.rssPerSocket / 1024).toFixed(1)} KB per socket`,
    );
    return result;
  } finally {
    await closeAll(open);
  }
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  const closing = sockets.map((ws) => new Promise<void>((r) => {
    if (ws.readyState === WebSocket.CLOSED) return r();
    ws.once('close', () => r());
    ws.close();
  }));
  await within(Promise.all(closing), 5_000, undefined);
  for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}
