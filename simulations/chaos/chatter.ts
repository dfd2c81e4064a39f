/**
 * A chat participant for chaos runs: a real account on the messenger (docs/protocol.md),
 * its own X25519/Ed25519 keys published through the key directory, and end-to-end
 * encrypted messages (client/crypto/envelope.ts, the browser client's code) to the other
 * participants. It behaves as the browser client does under failure: when its socket
 * closes it moves to another live receiver, resumes its session, and sends again every
 * message not yet acknowledged, under the same message id (the server stores one copy per
 * id). What it sent, what was acknowledged and what arrived are kept for the invariants.
 */
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { decodeServerFrame, encodeClientFrame, type ServerFrame } from '../../organism/wire/frames.ts';
import { generateIdentity, keyId, open, seal, type Identity } from '../../client/crypto/envelope.ts';
import { logIn, registerAccount } from '../../client/app/account.ts';

type Deliver = Extract<ServerFrame, { t: 'deliver' }>;

export class ChatError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface Sent {
  msg: string;
  to: string;
  at: number;
  /** When the server acknowledged it (stored), and its stream sequence. */
  ackedAt: number | null;
  seq: number | null;
  /** The receiver whose socket carried the acknowledgement (its URL). */
  via: string | null;
}

export interface Received {
  msg: string;
  from: string;
  seq: number;
  at: number;
  /** Sent → opened here, ms (one process, one clock). */
  latencyMs: number;
}

export interface ChatterOptions {
  user: string;
  /** Live receivers' base URLs, asked at every (re)connection. */
  receivers(): string[];
  random: () => number;
  /** Stops reading its socket (a slow reader): delivery must wait for it, then cut it off; nothing may be lost. */
  slow?: boolean;
  /**
   * A request unanswered this long gives the socket up (as the browser client does after
   * SILENT_MS): a receiver cut off by a partition never closes its socket. @default 10000
   */
  requestTimeoutMs?: number;
  onEvent?(line: string): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REQUEST_TIMEOUT_MS = 10_000;
/** Registration attempts before a chatter gives up (each on a receiver alive then). */
const START_ATTEMPTS = 5;
/** Failures that say the receiver went away, not that the request was wrong: try another. */
const MOVE_ON = new Set(['CLOSED', 'CONNECT', 'TIMEOUT', 'NO_RECEIVER', 'TISSUE_ERR_UNAVAILABLE', 'CELL_ERR_REMOTE', 'CELL_ERR_CLOSED']);

export class Chatter {
  readonly user: string;
  readonly identity: Identity = generateIdentity();
  readonly password = randomBytes(12).toString('base64url');
  readonly sent = new Map<string, Sent>();
  readonly received = new Map<string, Received>();
  /** A message delivered again with the same seq (at-least-once after a failover: allowed). */
  redelivered = 0;
  /** A message delivered under a second seq: stored twice (a violation). */
  duplicates = 0;
  /** Bodies that did not open (wrong key, tampering): a violation. */
  unreadable = 0;
  reconnects = 0;
  /** Every `deliver` frame the socket got, in order, duplicates included (for the durability checker). */
  readonly deliveries: { msg: string; seq: number; from: string; via: string | null; at: number }[] = [];
  errors: Record<string, number> = {};
  readonly #o: ChatterOptions;
  readonly #peers = new Map<string, { x25519: Uint8Array; ed25519: Uint8Array }>();
  #ws: WebSocket | undefined;
  #url: string | null = null;
  #id = 0;
  readonly #waiting = new Map<number, { resolve: (f: ServerFrame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #token: string | null = null;
  #closed = false;
  #connecting: Promise<void> | undefined;
  #topSeq = 0;
  #ackedSeq = 0;
  #ackTimer: NodeJS.Timeout | undefined;

  constructor(o: ChatterOptions) {
    this.#o = o;
    this.user = o.user;
  }

  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN && this.#token !== null;
  }

  /** Registers (OPAQUE, as the page does: keys and backup with it) and so logs in (first connection). */
  async start(): Promise<void> {
    // A receiver may drain (an idle one's apoptosis) or die while a client registers: the
    // client moves to another, as a person reloading the page would; bounded.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#open();
        try {
          this.#token = (await registerAccount(this, this.user, this.password, this.identity)).session.token;
        } catch (e) {
          // An earlier attempt's registration landed (keys and backup with it) and its answer was lost.
          if ((e as ChatError).code !== 'ACCOUNT_ERR_EXISTS' || attempt === 1) throw e;
          await this.#login();
        }
        break;
      } catch (e) {
        const code = (e as ChatError).code;
        if (this.#closed || attempt >= START_ATTEMPTS || !MOVE_ON.has(code)) throw e;
        this.#count(code);
        this.#ws?.terminate();
        await sleep(250 * attempt);
      }
    }
    this.#ackTimer = setInterval(() => this.#ack(), 25);
  }

  /** A slow reader stops reading once its handshake is done (requests still go out). */
  #slowDown(): void {
    if (this.#o.slow) this.#ws?.pause();
  }

  /** Fetches the other participants' public keys from the directory. */
  async learn(users: string[]): Promise<void> {
    for (let i = 0; i < users.length; i += 64) {
      const r = (await this.request({ t: 'keys.get', users: users.slice(i, i + 64) })) as Extract<ServerFrame, { t: 'keys' }>;
      for (const k of r.keys) this.#peers.set(k.user, { x25519: k.x25519, ed25519: k.ed25519 });
    }
    this.#slowDown();
  }

  async #login(): Promise<void> {
    this.#token = (await logIn(this, this.user, this.password)).session.token;
  }

  #open(): Promise<void> {
    const urls = this.#o.receivers();
    if (urls.length === 0) return Promise.reject(new ChatError('NO_RECEIVER', 'no live receiver'));
    const url = urls[Math.floor(this.#o.random() * urls.length)]!;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws').replace(/\/+$/, '')}/ws`, { perMessageDeflate: false });
      ws.binaryType = 'nodebuffer';
      this.#ws = ws;
      this.#url = url;
      ws.on('message', (data: Buffer) => {
        let f: ServerFrame;
        try {
          f = decodeServerFrame(data);
        } catch {
          this.#count('BAD_FRAME');
          return;
        }
        this.#onFrame(f);
      });
      ws.once('open', () => resolve());
      ws.once('error', (e) => reject(new ChatError('CONNECT', e.message)));
      ws.once('close', () => {
        for (const [id, w] of this.#waiting) {
          clearTimeout(w.timer);
          w.reject(new ChatError('CLOSED', 'socket closed'));
          this.#waiting.delete(id);
        }
        if (!this.#closed && this.#token !== null) void this.#reconnect();
      });
    });
  }

  /** Moves to another live receiver, resumes the session and sends again what was not acknowledged. */
  #reconnect(): Promise<void> {
    this.#connecting ??= (async () => {
      for (let pause = 100; !this.#closed; pause = Math.min(pause * 2, 2_000)) {
        await sleep(pause / 2 + this.#o.random() * pause);
        try {
          await this.#open();
          let w: Extract<ServerFrame, { t: 'welcome' }>;
          try {
            w = (await this.request({ t: 'hello', session: this.#token! })) as Extract<ServerFrame, { t: 'welcome' }>;
          } catch (e) {
            // The session is gone (expired, or a store that lost it): log in again, as a user would.
            if ((e as ChatError).code !== 'AUTH_ERR_SESSION') throw e;
            this.#count('AUTH_ERR_SESSION');
            await this.#login();
            w = (await this.request({ t: 'hello', session: this.#token! })) as Extract<ServerFrame, { t: 'welcome' }>;
          }
          if (w.user !== this.user) await this.#login();
          this.reconnects++;
          this.#o.onEvent?.(`${this.user} moved to ${w.cell}`);
          this.#slowDown();
          for (const s of this.sent.values()) if (s.ackedAt === null) void this.#send(s);
          return;
        } catch (e) {
          this.#count((e as ChatError).code ?? 'RECONNECT');
          this.#ws?.terminate();
        }
      }
    })().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  #count(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  #onFrame(f: ServerFrame): void {
    if (f.t === 'deliver') return this.#deliver(f);
    const id = (f as { id?: number }).id;
    if (id === undefined) return;
    const w = this.#waiting.get(id);
    if (!w) return;
    this.#waiting.delete(id);
    clearTimeout(w.timer);
    if (f.t === 'error') w.reject(new ChatError(f.code, f.message));
    else w.resolve(f);
  }

  #deliver(d: Deliver): void {
    this.deliveries.push({ msg: d.msg, seq: d.seq, from: d.from, via: this.#url, at: Date.now() });
    if (d.seq > this.#topSeq) this.#topSeq = d.seq;
    const had = this.received.get(d.msg);
    if (had) {
      if (had.seq === d.seq) this.redelivered++;
      else this.duplicates++;
      return;
    }
    const peer = this.#peers.get(d.from);
    let at = d.at;
    try {
      if (!peer) throw new Error(`no key for ${d.from}`);
      const opened = open({ sealed: d.body, recipient: this.identity, senderEd25519: peer.ed25519, expect: { from: d.from, to: this.user, msg: d.msg } });
      at = opened.header.at;
    } catch {
      this.unreadable++;
    }
    const now = Date.now();
    this.received.set(d.msg, { msg: d.msg, from: d.from, seq: d.seq, at: now, latencyMs: now - at });
  }

  #ack(): void {
    if (this.#topSeq <= this.#ackedSeq || !this.connected || this.#o.slow) return;
    const top = this.#topSeq;
    this.request({ t: 'deliver.ack', seq: top }).then(() => (this.#ackedSeq = Math.max(this.#ackedSeq, top)), () => undefined);
  }

  request(frame: Record<string, unknown>): Promise<ServerFrame> {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new ChatError('CLOSED', 'not connected'));
    this.#id = this.#id >= 2 ** 31 - 1 ? 1 : this.#id + 1;
    const id = this.#id;
    return new Promise((resolve, reject) => {
      const ms = this.#o.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new ChatError('TIMEOUT', `no reply to ${String(frame.t)} within ${ms} ms`));
        // Silence: the receiver is gone or cut off (no FIN ever comes): move on, resend on
        // reconnect. A slow reader is silent by its own choice (it does not read its replies).
        if (this.#ws === ws && !this.#o.slow) ws.terminate();
      }, ms);
      this.#waiting.set(id, { resolve, reject, timer });
      ws.send(encodeClientFrame({ v: 1, id, ...frame } as never));
    });
  }

  /** Sends one end-to-end encrypted message to `to`; the promise never rejects (failures are retried on reconnect). */
  say(to: string, text: string): void {
    const peer = this.#peers.get(to);
    if (!peer) return this.#count('NO_KEY');
    const msg = randomBytes(16).toString('base64url');
    const s: Sent = { msg, to, at: Date.now(), ackedAt: null, seq: null, via: null };
    this.sent.set(msg, s);
    void this.#send(s, text, peer);
  }

  readonly #bodies = new Map<string, Uint8Array>();
  /** Failed sends per message (for the back-off), dropped once acknowledged. */
  readonly #tries = new Map<string, number>();

  async #send(s: Sent, text?: string, peer?: { x25519: Uint8Array }): Promise<void> {
    // A retry timer and a reconnection may both resend: once acknowledged, it is done.
    if (s.ackedAt !== null) return;
    let body = this.#bodies.get(s.msg);
    if (!body) {
      peer ??= this.#peers.get(s.to);
      if (!peer) return this.#count('NO_KEY');
      body = seal({
        plaintext: new TextEncoder().encode(text ?? ''),
        header: { v: 1, from: this.user, to: s.to, msg: s.msg, at: s.at, senderKeyId: keyId(this.identity.ed25519.publicKey), recipientKeyId: keyId(peer!.x25519) },
        sender: this.identity, recipientX25519: peer!.x25519,
      });
      this.#bodies.set(s.msg, body);
    }
    try {
      const via = this.#url;
      const ack = (await this.request({ t: 'send', msg: s.msg, to: s.to, body })) as Extract<ServerFrame, { t: 'ack' }>;
      if (s.ackedAt === null) {
        s.ackedAt = Date.now();
        s.seq = ack.seq;
        s.via = via;
        this.#bodies.delete(s.msg);
        this.#tries.delete(s.msg);
      }
    } catch (e) {
      // Not acknowledged: sent again after the next reconnection (a closed socket), or now (other errors, once).
      const code = (e as ChatError).code ?? 'SEND';
      this.#count(code);
      // Backing off per message, as a client should: a store without quorum for ten seconds
      // is not worth a hundred requests a second (the receiver's rate limit would say so).
      const tries = (this.#tries.get(s.msg) ?? 0) + 1;
      this.#tries.set(s.msg, tries);
      const pause = Math.min(200 * 2 ** Math.min(tries, 5), 5_000);
      if (code !== 'CLOSED' && code !== 'TIMEOUT' && !this.#closed && this.connected) setTimeout(() => void this.#send(s), pause / 2 + this.#o.random() * pause);
    }
  }

  /** Resends what is still unacknowledged (after the run, before the invariants are read). */
  retryUnacked(): void {
    if (!this.connected) return;
    for (const s of this.sent.values()) if (s.ackedAt === null) void this.#send(s);
  }

  /** A slow reader reads again (so the end of the run can check it lost nothing). */
  resume(): void {
    this.#o.slow = false;
    this.#ws?.resume();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#ackTimer);
    this.#ws?.close();
  }
}
