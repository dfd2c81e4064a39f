/**
 * A counting semaphore, first come first served: at most `size` holders at once. The
 * receiver holds one per message being stored in JetStream, so a flood of sends cannot
 * take the broker away from delivering what is already stored.
 */
export class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    this.#free = size;
  }

  get inUse(): number {
    return this.size - this.#free;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  acquire(): Promise<void> {
    if (this.#free > 0 && this.#waiting.length === 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}
