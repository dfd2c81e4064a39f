/**
 * A lean WebSocket client of the messenger protocol (docs/protocol.md) for load: one
 * msgpack map per binary message, requests matched to replies by `id`, `deliver` frames
 * handed to a callback without being kept, and the highest delivered `seq` acknowledged on
 * a timer as a client does once it has stored what arrived. It keeps no history, so 50 of
 * them can push tens of thousands of messages a second from one process.
 *
 * Frames are packed with the organism's one msgpack configuration (organism/wire/codec.ts), as
 * the protocol requires; replies are trusted, not checked field by field (the receiver
 * checks what it is sent, and this client only reads `t`, `id`, `seq` and `body`).
 *
 * The same client drives the in-memory ws relay peer (simulations/peers/ws-relay.ts), which
 * answers the same frames, so both are measured through the same client code.
 */
import { WebSocket } from 'ws';
import { codec } from '../organism/wire/codec.ts';

export class ReplyError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

interface Reply {
  t: string;
  id?: number;
  code?: string;
  message?: string;
  [field: string]: unknown;
}

/** `http://host:port` (a receiver's URL) or `ws://…` → the WebSocket endpoint `/ws`. */
export function wsUrl(base: string): string {
  return `${base.replace(/^http/, 'ws').replace(/\/+$/, '')}/ws`;
}

export interface LeanClientOptions {
  /** Called with each `deliver` frame's body and seq. */
  onDeliver?: (body: Uint8Array, seq: number) => void;
  /** Reply timeout, ms. @default 30000 */
  timeoutMs?: number;
}

export class LeanClient {
  readonly ws: WebSocket;
  #id = 0;
  readonly #waiting = new Map<number, { resolve: (f: Reply) => void; reject: (e: Error) => void; at: number }>();
  #onDeliver: ((body: Uint8Array, seq: number) => void) | undefined;
  #topSeq = 0;
  #ackedSeq = 0;
  #ackTimer: NodeJS.Timeout | undefined;
  #sweep: NodeJS.Timeout;
  /** Frames the client could not read, and error frames that answered nothing in flight. */
  stray = 0;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(ws: WebSocket, o: LeanClientOptions) {
    this.ws = ws;
    this.#onDeliver = o.onDeliver;
    const timeoutMs = o.timeoutMs ?? 30_000;
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        clearInterval(this.#ackTimer);
        clearInterval(this.#sweep);
        this.#failAll(new ReplyError('CLOSED', `socket closed ${code}`));
        resolve({ code, reason: reason.toString() });
      }),
    );
    ws.on('message', (data: Buffer) => this.#onFrame(data));
    // Requests are timed out in sweeps, not with a timer each (tens of thousands in flight).
    this.#sweep = setInterval(() => {
      const end = performance.now() - timeoutMs;
      for (const [id, w] of this.#waiting) {
        if (w.at > end) break; // insertion order is send order
        this.#waiting.delete(id);
        w.reject(new ReplyError('TIMEOUT', `no reply within ${timeoutMs} ms`));
      }
    }, 1_000);
    this.#sweep.unref();
  }

  /** Opens a socket to `url` (a base URL or a ws URL ending in /ws). */
  static connect(url: string, o: LeanClientOptions = {}): Promise<LeanClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url.startsWith('ws') ? url : wsUrl(url), { perMessageDeflate: false });
      ws.binaryType = 'nodebuffer';
      const c = new LeanClient(ws, o);
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (_req, res) => reject(new ReplyError(`HTTP_${res.statusCode}`, 'upgrade refused')));
      ws.once('error', reject);
    });
  }

  set onDeliver(f: ((body: Uint8Array, seq: number) => void) | undefined) {
    this.#onDeliver = f;
  }

  get inFlight(): number {
    return this.#waiting.size;
  }

  #failAll(e: Error): void {
    for (const w of this.#waiting.values()) w.reject(e);
    this.#waiting.clear();
  }

  #onFrame(data: Buffer): void {
    let f: Reply;
    try {
      f = codec.unpack(data) as Reply;
    } catch {
      this.stray++;
      return;
    }
    if (f.t === 'deliver') {
      const seq = f.seq as number;
      if (seq > this.#topSeq) this.#topSeq = seq;
      this.#onDeliver?.(f.body as Uint8Array, seq);
      return;
    }
    if (f.id === undefined) {
      if (f.t === 'error') this.stray++;
      return;
    }
    const w = this.#waiting.get(f.id);
    if (!w) return;
    this.#waiting.delete(f.id);
    if (f.t === 'error') w.reject(new ReplyError(String(f.code), String(f.message)));
    else w.resolve(f);
  }

  /** Sends a frame (`v` and `id` filled in) and resolves with its reply; an `error` rejects. */
  request(frame: { t: string; [field: string]: unknown }): Promise<Reply> {
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new ReplyError('CLOSED', 'socket not open'));
    this.#id = this.#id >= 2 ** 31 - 1 ? 1 : this.#id + 1;
    const id = this.#id;
    return new Promise<Reply>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject, at: performance.now() });
      // Key order as the server writes it: v, t, id, then the fields.
      const { t, ...fields } = frame;
      this.ws.send(codec.pack({ v: 1, t, id, ...fields }));
    });
  }

  /** Acks the highest delivered seq every `everyMs` when it moved (one `deliver.ack` per tick at most). */
  autoAck(everyMs = 20): void {
    clearInterval(this.#ackTimer);
    this.#ackTimer = setInterval(() => {
      const top = this.#topSeq;
      if (top > this.#ackedSeq && this.ws.readyState === WebSocket.OPEN) {
        this.#ackedSeq = top;
        this.request({ t: 'deliver.ack', seq: top }).catch(() => undefined);
      }
    }, everyMs);
    this.#ackTimer.unref();
  }

  close(): void {
    clearInterval(this.#ackTimer);
    clearInterval(this.#sweep);
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }

  /** Closes and waits for the close handshake (bounded). */
  async shut(ms = 2_000): Promise<void> {
    this.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise<void>((r) => (timer = setTimeout(() => { this.ws.terminate(); r(); }, ms)))]);
    clearTimeout(timer);
  }
}
