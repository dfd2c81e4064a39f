/**
 * Waiting on a condition in a benchmark: polled every 50 ms, bounded, abortable. A bench
 * waits for the state it needs (two receivers with a URL, a verdict counted), never a
 * fixed sleep; the error names what it was waiting for.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CellularError, throwIfAborted } from '../organism/wire/errors.ts';

/** Polls `cond` until it holds; CELL_ERR_SPAWN after `ms`, CELL_ERR_ABORTED on `signal`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string, signal?: AbortSignal): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    throwIfAborted(signal);
    if (Date.now() > end) throw new CellularError('CELL_ERR_SPAWN', `timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}
