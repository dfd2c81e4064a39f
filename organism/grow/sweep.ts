/**
 * The end of a shutdown: wait until every cell of this organism on this host has exited,
 * and make sure of it (cells of other hosts are waited for in the census, within the same
 * timeout; their own hosts' processes end them). Cells are found in the process table by their command-line markers,
 * so a cell is found even if it never pulsed, or if the process sweeping is not the one
 * that spawned it. `shutdown` is re-announced every pulse interval (a cell that was still
 * starting when the first one went out subscribes later and would never hear it); cells
 * still alive past 60% of the timeout get SIGTERM (they drain on it), and past the timeout
 * SIGKILL. Every signal goes to a pid only after checking it is still that cell.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Observer } from './observer.ts';
import { hostName } from '../kernel/host.ts';
import { localCells, signalCell, waitGone } from '../kernel/processes.ts';

export interface SweepOptions {
  organism: string;
  timeoutMs: number;
  /** How often shutdown is re-announced (the pulse interval). */
  intervalMs: number;
  /** Re-announces `shutdown` through this observer (it must hold the root key). */
  observer?: Observer;
  reason?: string;
  /** The shutdown is this host's alone (its grow leaves the organism): other hosts' cells are not waited for. */
  hostOnly?: boolean;
  say?: (line: string) => void;
}

export interface SweepResult {
  /** Cells that needed SIGTERM. */
  terminated: number;
  /** Cells that needed SIGKILL. */
  killed: number;
}

export async function sweepCells(o: SweepOptions): Promise<SweepResult> {
  const say = o.say ?? (() => {});
  const start = Date.now();
  const termAt = start + o.timeoutMs * 0.6;
  const end = start + o.timeoutMs;
  let nextAnnounce = start + o.intervalMs;
  const terminated = new Set<number>();
  // Cells on other hosts cannot be signalled from here: wait for their deaths in the census.
  const host = hostName();
  const remote = () => (o.hostOnly ? 0 : (o.observer?.census.living().filter((e) => e.host !== host).length ?? 0));
  let left = localCells(o.organism);
  while ((left.length > 0 || remote() > 0) && Date.now() < end) {
    const now = Date.now();
    if (o.observer && o.reason !== undefined && now >= nextAnnounce) {
      nextAnnounce = now + o.intervalMs;
      try {
        o.observer.bus.publish('shutdown', { reason: o.reason, ...(o.hostOnly ? { host } : {}) });
      } catch {
        // No broker any more: the signals below still end every local cell.
      }
    }
    if (now >= termAt) {
      for (const c of left) {
        if (!terminated.has(c.pid) && signalCell(c.pid, c.cell, o.organism, 'SIGTERM')) {
          terminated.add(c.pid);
          say(`cell ${c.cell} (pid ${c.pid}) still running after ${now - start} ms: SIGTERM`);
        }
      }
    }
    await sleep(50);
    left = localCells(o.organism);
  }
  let killed = 0;
  for (const c of left) {
    if (signalCell(c.pid, c.cell, o.organism, 'SIGKILL')) {
      killed++;
      say(`killed straggler ${c.cell} (pid ${c.pid}) after ${o.timeoutMs} ms`);
      await waitGone(c.pid, 2_000);
    }
  }
  return { terminated: terminated.size, killed };
}
