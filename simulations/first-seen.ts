/**
 * The first admitted hormone of each kind from each sender, with the time it was admitted,
 * and a wait for it that ends on arrival, timeout or abort.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CellularError } from '../organism/wire/errors.ts';
import type { Hormone } from '../organism/kernel/hormone.ts';

/** Records the first admitted hormone of each kind from each sender, and wakes waiters. */
export class FirstSeen {
  readonly #seen = new Map<string, { at: number; h: Hormone }>();
  readonly #waiters = new Map<string, () => void>();

  observe(h: Hormone): void {
    const key = `${h.kind}/${h.from}`;
    if (this.#seen.has(key)) return;
    this.#seen.set(key, { at: performance.now(), h });
    this.#waiters.get(key)?.();
  }

  get(kind: string, from: string): { at: number; h: Hormone } | undefined {
    return this.#seen.get(`${kind}/${from}`);
  }

  /** Resolves once `kind` from `from` was seen; rejects on timeout or abort. */
  async wait(kind: string, from: string, timeoutMs: number, signal?: AbortSignal): Promise<{ at: number; h: Hormone }> {
    const key = `${kind}/${from}`;
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const seen = this.#seen.get(key);
      if (seen) return seen;
      const arrived = new Promise<void>((resolve) => this.#waiters.set(key, resolve));
      const timedOut = sleep(timeoutMs, 'timeout' as const, { signal: ac.signal });
      const r = await Promise.race([arrived, timedOut]);
      signal?.throwIfAborted();
      if (r === 'timeout') throw new CellularError('CELL_ERR_SPAWN', `no ${kind} from ${from} within ${timeoutMs} ms`);
      return this.#seen.get(key)!;
    } catch (e) {
      signal?.throwIfAborted();
      throw e;
    } finally {
      this.#waiters.delete(key);
      signal?.removeEventListener('abort', onAbort);
      ac.abort();
    }
  }
}
