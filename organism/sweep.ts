/**
 * The end of a shutdown: wait until every cell of this host has exited, and make sure
 * of it. `shutdown` is re-announced every pulse interval (a cell that was still starting
 * when the first one went out subscribes later and would never hear it); local cells
 * still alive past 60% of the timeout get SIGTERM (they drain on it), and past the
 * timeout SIGKILL. Every signal goes to a pid only after checking it is still that cell.
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { cellMarkers, type SpawnedCell } from '../cells/spawn.ts';
import type { Observer } from './observer.ts';
import { isProcessOf, signalIfOurs, waitGone } from './processes.ts';

export interface SweepOptions {
  observer: Observer;
  timeoutMs: number;
  /** How often shutdown is re-announced (the pulse interval). */
  intervalMs: number;
  /** Cells this process spawned (known even before the census has them). */
  spawned: readonly SpawnedCell[];
  /** Re-announce `shutdown` with this reason; requires an observer holding the root key. */
  reason?: string;
  say?: (line: string) => void;
}

export interface SweepResult {
  /** Cells that needed SIGTERM. */
  terminated: number;
  /** Cells that needed SIGKILL. */
  killed: number;
}

interface Target {
  id: string;
  pid: number;
  markers: string[];
}

export async function sweepCells(o: SweepOptions): Promise<SweepResult> {
  const host = hostname();
  const say = o.say ?? (() => {});
  const targets = (): Target[] => {
    const byId = new Map<string, Target>();
    for (const c of o.spawned) byId.set(c.id, { id: c.id, pid: c.pid, markers: c.markers });
    for (const e of o.observer.census.list()) {
      if (e.host === host && !byId.has(e.id)) byId.set(e.id, { id: e.id, pid: e.pid, markers: cellMarkers(e.id) });
    }
    return [...byId.values()].filter((t) => isProcessOf(t.pid, t.markers));
  };
  const start = Date.now();
  const termAt = start + o.timeoutMs * 0.6;
  const end = start + o.timeoutMs;
  let nextAnnounce = start + o.intervalMs;
  const terminated = new Set<number>();
  let left = targets();
  while (left.length > 0 && Date.now() < end) {
    const now = Date.now();
    if (o.reason !== undefined && now >= nextAnnounce) {
      nextAnnounce = now + o.intervalMs;
      try {
        o.observer.bus.publish('shutdown', { reason: o.reason });
      } catch {
        // No broker any more: the signals below still end every local cell.
      }
    }
    if (now >= termAt) {
      for (const t of left) {
        if (!terminated.has(t.pid) && signalIfOurs(t.pid, t.markers, 'SIGTERM')) {
          terminated.add(t.pid);
          say(`cell ${t.id} (pid ${t.pid}) still running after ${now - start} ms: SIGTERM`);
        }
      }
    }
    await sleep(50);
    left = targets();
  }
  let killed = 0;
  for (const t of left) {
    if (signalIfOurs(t.pid, t.markers, 'SIGKILL')) {
      killed++;
      say(`killed straggler ${t.id} (pid ${t.pid}) after ${o.timeoutMs} ms`);
      await waitGone(t.pid, 2_000);
    }
  }
  return { terminated: terminated.size, killed };
}
