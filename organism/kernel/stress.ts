/**
 * Stress: how loaded a tissue is, as every cell computes it. Each member's load is smoothed
 * by exponential decay with the tissue's half-life, in the sender's own pulse time (not the
 * receiver's), so every cell that heard the same pulses holds the same numbers. A tissue's
 * stress is the mean smoothed load of its members that are alive.
 */

/** Smoothed load after a new reading `load` arrives `dtMs` after the previous one. */
export function decay(previous: number, load: number, dtMs: number, halfLifeMs: number): number {
  if (dtMs <= 0) return previous;
  const keep = 2 ** (-dtMs / halfLifeMs);
  return keep * previous + (1 - keep) * load;
}

interface Smoothed {
  value: number;
  /** Sender time of the last reading, ms. */
  ts: number;
}

export class StressMeter {
  readonly #members = new Map<string, Smoothed>();
  readonly #halfLifeOf: (tissue: string) => number;

  constructor(halfLifeOf: (tissue: string) => number) {
    this.#halfLifeOf = halfLifeOf;
  }

  /** Feeds one pulse; returns the member's smoothed load. The first reading is taken as is. */
  observe(id: string, tissue: string, load: number, ts: number): number {
    const prev = this.#members.get(id);
    const value = prev === undefined ? load : decay(prev.value, load, ts - prev.ts, this.#halfLifeOf(tissue));
    this.#members.set(id, { value, ts: Math.max(ts, prev?.ts ?? ts) });
    return value;
  }

  smoothed(id: string): number | undefined {
    return this.#members.get(id)?.value;
  }

  forget(id: string): void {
    this.#members.delete(id);
  }
}

/** Mean smoothed load of the alive members of each tissue (tissues with none are left out). */
export function tissueStress(entries: readonly { tissue: string; state: string; smoothed: number }[]): Record<string, number> {
  const sums = new Map<string, { sum: number; n: number }>();
  for (const e of entries) {
    if (e.state !== 'alive') continue;
    const s = sums.get(e.tissue) ?? { sum: 0, n: 0 };
    s.sum += e.smoothed;
    s.n++;
    sums.set(e.tissue, s);
  }
  return Object.fromEntries([...sums].map(([t, s]) => [t, Math.round((s.sum / s.n) * 1000) / 1000]));
}
