/**
 * Test helper: a Node WebSocket client of the documented protocol (docs/protocol.md) — the
 * same frames the browser client sends. Requests get ids and resolve with their reply (or
 * reject with the error frame's code); `deliver` frames are collected, deduplicated by msg
 * id as a client must, and acked on demand.
 */
import { WebSocket } from 'ws';
import { decodeServerFrame, encodeClientFrame, type ServerFrame } from '../../organism/wire/frames.ts';

export class FrameError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

type Deliver = Extract<ServerFrame, { t: 'deliver' }>;

export class ChatClient {
  readonly ws: WebSocket;
  #id = 0;
  readonly #waiting = new Map<number, { resolve: (f: ServerFrame) => void; reject: (e: Error) => void }>();
  /** Every frame received, in order. */
  readonly frames: ServerFrame[] = [];
  /** Delivered messages, first copy of each msg id only. */
  readonly inbox: Deliver[] = [];
  /** How many deliver frames repeated a msg id already held (wire duplicates). */
  duplicates = 0;
  readonly #seen = new Set<string>();
  readonly closed: Promise<{ code: number; reason: string }>;
  #listeners: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      for (const w of this.#waiting.values()) w.reject(new FrameError('CLOSED', `socket closed ${code}`));
      this.#waiting.clear();
      resolve({ code, reason: reason.toString() });
    }));
    ws.on('message', (data) => this.#onFrame(decodeServerFrame(data as Buffer)));
  }

  static connect(url: string, options: { origin?: string } = {}): Promise<ChatClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, options.origin ? { origin: options.origin } : {});
      ws.binaryType = 'nodebuffer';
      const c = new ChatClient(ws);
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (_req, res) => reject(new FrameError(`HTTP_${res.statusCode}`, 'upgrade refused')));
      ws.once('error', reject);
    });
  }

  #onFrame(f: ServerFrame): void {
    this.frames.push(f);
    if (f.t === 'deliver') {
      if (this.#seen.has(f.msg)) this.duplicates++;
      else {
        this.#seen.add(f.msg);
        this.inbox.push(f);
      }
    }
    const id = (f as { id?: number }).id;
    if (id !== undefined && f.t !== 'deliver') {
      const w = this.#waiting.get(id);
      this.#waiting.delete(id);
      if (w) f.t === 'error' ? w.reject(new FrameError(f.code, f.message)) : w.resolve(f);
    }
    for (const l of this.#listeners) l();
  }

  /** Sends a frame (v and id filled in) and resolves with its reply. */
  request<T extends ServerFrame = ServerFrame>(frame: Record<string, unknown>): Promise<T> {
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (f: ServerFrame) => void, reject });
      this.ws.send(encodeClientFrame({ v: 1, id, ...frame } as never));
    });
  }

  /** Sends raw bytes (for malformed-frame tests); resolves with the next error frame. */
  raw(bytes: Uint8Array | string): Promise<Extract<ServerFrame, { t: 'error' }>> {
    const before = this.frames.length;
    this.ws.send(bytes);
    return this.until(() => this.frames.slice(before).some((f) => f.t === 'error'), 5_000).then(() => this.frames.slice(before).find((f) => f.t === 'error') as Extract<ServerFrame, { t: 'error' }>);
  }

  /** Resolves when `cond` holds (checked on every frame), or rejects after `ms`. */
  until(cond: () => boolean, ms: number): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners = this.#listeners.filter((l) => l !== check);
        reject(new Error(`condition not met within ${ms} ms (${this.inbox.length} delivered)`));
      }, ms);
      const check = () => {
        if (!cond()) return;
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((l) => l !== check);
        resolve();
      };
      this.#listeners.push(check);
    });
  }

  #acked = 0;
  #ackTimer: NodeJS.Timeout | undefined;

  /** Acks what has arrived every `everyMs`, as a client does once it has stored the messages. */
  autoAck(everyMs = 25): void {
    this.#ackTimer = setInterval(() => {
      const top = this.frames.filter((f): f is Deliver => f.t === 'deliver').reduce((m, f) => Math.max(m, f.seq), 0);
      if (top > this.#acked && this.ws.readyState === WebSocket.OPEN) {
        this.#acked = top;
        this.request({ t: 'deliver.ack', seq: top }).catch(() => undefined);
      }
    }, everyMs);
    this.#ackTimer.unref();
    void this.closed.then(() => clearInterval(this.#ackTimer));
  }

  /** Acks everything delivered so far (the highest seq held). */
  async ackAll(): Promise<void> {
    const top = this.frames.filter((f): f is Deliver => f.t === 'deliver').reduce((m, f) => Math.max(m, f.seq), 0);
    if (top > 0) await this.request({ t: 'deliver.ack', seq: top });
  }

  close(): void {
    clearInterval(this.#ackTimer);
    this.ws.close();
  }
}
