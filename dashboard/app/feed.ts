/**
 * The live feed: one WebSocket to the dashboard cell, reconnecting with back-off when the
 * cell dies (it is regrown, on the same port when it is free). Requests carry an id; their
 * answers come back with it.
 */
export type Frame = { t: string; [k: string]: unknown };

export class Feed {
  readonly #url: string;
  readonly #onFrame: (f: Frame) => void;
  readonly #onState: (state: 'connecting' | 'live' | 'reconnecting') => void;
  readonly #waiting = new Map<number, (f: Frame) => void>();
  #ws: WebSocket | undefined;
  #id = 0;
  #backoff = 250;

  constructor(url: string, onFrame: (f: Frame) => void, onState: (state: 'connecting' | 'live' | 'reconnecting') => void) {
    this.#url = url;
    this.#onFrame = onFrame;
    this.#onState = onState;
  }

  start(): void {
    this.#onState(this.#ws ? 'reconnecting' : 'connecting');
    const ws = new WebSocket(this.#url);
    this.#ws = ws;
    ws.onopen = () => {
      this.#backoff = 250;
      this.#onState('live');
    };
    ws.onmessage = (e) => {
      let f: Frame;
      try {
        f = JSON.parse(String(e.data)) as Frame;
      } catch {
        return;
      }
      const id = typeof f.id === 'number' ? f.id : undefined;
      const waiter = id === undefined ? undefined : this.#waiting.get(id);
      if (waiter && id !== undefined) {
        this.#waiting.delete(id);
        waiter(f);
      } else this.#onFrame(f);
    };
    ws.onclose = () => {
      for (const [id, w] of this.#waiting) w({ t: 'result', id, ok: false, message: 'the dashboard cell went away; try again once it is back' });
      this.#waiting.clear();
      this.#onState('reconnecting');
      setTimeout(() => this.start(), this.#backoff);
      this.#backoff = Math.min(this.#backoff * 2, 4_000);
    };
  }

  /** Sends a request frame and resolves with its answer. */
  request(frame: Frame): Promise<Frame> {
    const id = ++this.#id;
    return new Promise((resolve) => {
      if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return resolve({ t: 'result', id, ok: false, message: 'not connected' });
      this.#waiting.set(id, resolve);
      this.#ws.send(JSON.stringify({ ...frame, id }));
    });
  }
}
