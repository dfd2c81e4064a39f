/**
 * Recent delivery latencies (stored → pushed to the socket), kept for a short window so a
 * receiver can say its current p99 (the dashboard plots it). Bounded in count and in age.
 */
export class LatencyWindow {
  readonly #windowMs: number;
  readonly #max: number;
  readonly #at: number[] = [];
  readonly #ms: number[] = [];

  constructor(windowMs = 10_000, max = 4_096) {
    this.#windowMs = windowMs;
    this.#max = max;
  }

  record(ms: number, now = Date.now()): void {
    // History replayed to a client that was away is not delivery latency: leave it out.
    if (!Number.isFinite(ms) || ms < 0 || ms > this.#windowMs) return;
    this.#at.push(now);
    this.#ms.push(ms);
    if (this.#at.length > this.#max) {
      this.#at.shift();
      this.#ms.shift();
    }
  }

  /** The p-th percentile (nearest rank) of the window's samples, or null without any. */
  percentile(p: number, now = Date.now()): number | null {
    while (this.#at.length > 0 && this.#at[0]! < now - this.#windowMs) {
      this.#at.shift();
      this.#ms.shift();
    }
    if (this.#ms.length === 0) return null;
    const sorted = [...this.#ms].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
  }
}
