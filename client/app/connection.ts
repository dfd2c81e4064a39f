/**
 * The browser's link to the swarm: one WebSocket at a time to a receiver, speaking the
 * documented protocol (docs/protocol.md) with the same frame codec the receivers use.
 * It knows every live receiver (from `welcome`, the `receivers` pushes sent when one is born
 * or dies, `moved`, and a poll of `GET /receivers` in case a push was missed) and, when its socket drops or
 * it is told "moved", reconnects to another with jittered backoff and resumes the session
 * from its token; delivery resumes from the server-side cursor, and the chat layer drops
 * the duplicates that can come again. Requests get ids and resolve with their reply.
 * Frames are paced under the receivers' per-connection rate, so a burst waits here
 * instead of being refused there.
 */
import { decodeServerFrame, encodeClientFrame, type ClientFrame, type ServerFrame } from '../../organism/wire/frames.ts';
import { CLOSE_TEXT, ClientError } from './errors.ts';

type Request = ClientFrame extends infer F ? (F extends { id: number } ? Omit<F, 'id' | 'v'> : never) : never;
export type LinkState = 'connecting' | 'connected' | 'reconnecting' | 'offline';

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5_000;
/** Frames per second this client allows itself: under the receivers' default of 100. */
const FRAMES_PER_SECOND = 80;
/** A socket that answers nothing for this long is given up (half-open TCP, a hung receiver). */
const SILENT_MS = 10_000;
/** How often an idle link is checked with a ping. */
const KEEPALIVE_MS = 15_000;
/** How often the list of live receivers is asked for (the pushes usually tell first). */
const REFRESH_MS = 5_000;
/** Close codes after which reconnecting as this user is pointless. */
const FINAL = new Set([4004, 4005]);

export class Connection {
  #ws!: WebSocket;
  #id = 0;
  readonly #waiting = new Map<number, { resolve: (f: ServerFrame) => void; reject: (e: Error) => void }>();
  /** Every receiver we know of (ws URLs), the one that served the page first. */
  #receivers: string[];
  #next = 0;
  #attempt = 0;
  #session: string | null = null;
  #cell = '';
  #generation = 0;
  #connected = false;
  #droppedAt = 0;
  #stopped = false;
  // Token bucket for pacing.
  #tokens = FRAMES_PER_SECOND;
  #refilled = performance.now();
  readonly #queue: (() => void)[] = [];
  #pacer: ReturnType<typeof setTimeout> | undefined;
  /** How long each failover took: socket lost → session resumed on another socket, ms. */
  readonly failovers: number[] = [];
  readonly opened: Promise<void>;
  /** A pushed frame, with the generation of the socket that brought it. */
  onPush: (f: ServerFrame, generation: number) => void = () => undefined;
  onState: (state: LinkState, detail: string) => void = () => undefined;
  /** The list of live receivers changed (how many are known now). */
  onReceivers: (count: number) => void = () => undefined;
  /** The session cannot go on (account deleted, session ended or expired): log in again. */
  onSessionEnded: (reason: string) => void = () => undefined;

  /** The host the page came from: the only host whose receivers it will use (and its CSP allows). */
  readonly #host: string;

  constructor(url: string) {
    this.#receivers = [url];
    this.#host = new URL(url).hostname;
    this.opened = this.#open(url);
  }

  get cell(): string {
    return this.#cell;
  }

  /** Which socket this is: acks go only to the socket whose deliveries they acknowledge. */
  get generation(): number {
    return this.#generation;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Remembered so a new socket can resume the session. */
  set session(token: string | null) {
    this.#session = token;
  }

  /** Ends for good: no reconnecting (logout, account deleted, page leaving). */
  stop(): void {
    this.#stopped = true;
    this.#ws.close(1000);
  }

  #open(url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      this.#ws = ws;
      const generation = ++this.#generation;
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
      ws.addEventListener('message', (e) => this.#onFrame(decodeServerFrame(new Uint8Array(e.data as ArrayBuffer)), generation));
      ws.addEventListener('close', (e) => {
        for (const w of this.#waiting.values()) w.reject(new ClientError('CLIENT_ERR_OFFLINE'));
        this.#waiting.clear();
        if (this.#ws !== ws) return;
        if (this.#connected) this.#droppedAt = performance.now();
        this.#connected = false;
        if (this.#stopped) return this.onState('offline', 'logged out');
        if (FINAL.has(e.code)) {
          this.#stopped = true;
          this.onState('offline', CLOSE_TEXT[e.code] ?? `closed ${e.code}`);
          return this.onSessionEnded(CLOSE_TEXT[e.code] ?? `closed ${e.code}`);
        }
        this.#reconnect(e.code);
      }, { once: true });
    });
  }

  /**
   * The live receivers (welcome, receivers, moved, GET /receivers), as WebSocket URLs: they replace
   * what we knew, so receivers that died leave the list and new ones join it. Only receivers
   * on the page's own host are taken: a list naming another host (a hostile cell's push) is
   * dropped, and the page's CSP would refuse it anyway.
   */
  #learn(receivers: readonly string[]): void {
    const urls = receivers.filter((r) => /^https?:\/\/[^/\s]+$/.test(r) && this.#sameHost(r)).map((r) => `${r.replace(/^http/, 'ws')}/ws`);
    if (urls.length === 0) return;
    this.#receivers = [...new Set(urls)];
    this.onReceivers(this.#receivers.length);
  }

  #sameHost(url: string): boolean {
    try {
      return new URL(url).hostname === this.#host;
    } catch {
      return false;
    }
  }

  /** Asks the receiver we are on who is alive now (receivers are born on new ports). */
  async #refresh(ws: WebSocket): Promise<void> {
    if (this.#ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    try {
      const r = await fetch(`${ws.url.replace(/^ws/, 'http').replace(/\/ws$/, '')}/receivers`, { cache: 'no-store', signal: AbortSignal.timeout(SILENT_MS) });
      const body = (await r.json()) as { receivers?: unknown };
      if (this.#ws === ws && Array.isArray(body.receivers)) this.#learn(body.receivers.filter((x): x is string => typeof x === 'string'));
    } catch {
      // The next beat tries again; the list from the welcome still stands.
    }
  }

  #reconnect(code: number): void {
    const why = CLOSE_TEXT[code] ?? `lost ${this.#cell || 'the receiver'}`;
    // The one that just failed goes last: try the others first.
    const lost = this.#ws.url;
    if (this.#receivers.length > 1 && this.#receivers.includes(lost)) {
      this.#receivers = [...this.#receivers.filter((u) => u !== lost), lost];
      this.#next = 0;
    }
    this.onState('reconnecting', why);
    // "moved" asks for an immediate reconnect; anything else backs off, jittered.
    const wait = code === 4000 && this.#attempt === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt) * (0.5 + Math.random() / 2);
    this.#attempt++;
    setTimeout(() => {
      // Round-robin over what we know: the dead one comes last again, not first.
      const url = this.#receivers[this.#next++ % this.#receivers.length]!;
      this.#open(url).then(
        () =>
          this.hello().catch((e: unknown) => {
            if ((e as { code?: string }).code === 'AUTH_ERR_SESSION') {
              this.#stopped = true;
              this.onState('offline', 'session ended');
              this.onSessionEnded('your session ended');
            }
            this.#ws.close();
          }),
        () => undefined, // its close event schedules the next try
      );
    }, wait);
  }

  /**
   * A control frame (hello, ping): sent at once, ahead of the paced queue, and answered
   * within SILENT_MS or the socket is given up (the clock starts when it is sent, so our
   * own queue never counts as the server's silence).
   */
  #timed<T extends ServerFrame>(frame: Request, early: boolean): Promise<T> {
    const ws = this.#ws;
    const timer = setTimeout(() => ws.close(), SILENT_MS);
    return this.#send<T>(frame, early).finally(() => clearTimeout(timer));
  }

  #keepalive(): void {
    const ws = this.#ws;
    let beats = 0;
    const beat = setInterval(() => {
      if (this.#ws !== ws || ws.readyState !== WebSocket.OPEN) return clearInterval(beat);
      if (++beats % (KEEPALIVE_MS / REFRESH_MS) === 0) void this.#timed({ t: 'ping' }, true).catch(() => undefined);
      void this.#refresh(ws);
    }, REFRESH_MS);
  }

  /** Says hello (resuming the session if there is one) and learns the receivers. */
  async hello(): Promise<Extract<ServerFrame, { t: 'welcome' }>> {
    const w = await this.#timed<Extract<ServerFrame, { t: 'welcome' }>>(this.#session ? { t: 'hello', session: this.#session } : { t: 'hello' }, true);
    this.#keepalive();
    this.#cell = w.cell;
    this.#attempt = 0;
    this.#connected = true;
    this.#learn(w.receivers);
    if (this.#droppedAt > 0) {
      this.failovers.push(Math.round(performance.now() - this.#droppedAt));
      this.#droppedAt = 0;
    }
    this.onState('connected', w.cell);
    return w;
  }

  #onFrame(f: ServerFrame, generation: number): void {
    if (f.t === 'moved' || f.t === 'receivers') this.#learn(f.receivers);
    if (f.t === 'receivers') return; // the connection's business, not the app's
    const id = 'id' in f ? f.id : undefined;
    const w = id === undefined ? undefined : this.#waiting.get(id);
    if (!w) return this.onPush(f, generation);
    this.#waiting.delete(id!);
    if (f.t === 'error') w.reject(Object.assign(new Error(f.message), { code: f.code }));
    else w.resolve(f);
  }

  /** Waits for a token of the pacing bucket (FIFO). */
  #paced(): Promise<void> {
    return new Promise((resolve) => {
      this.#queue.push(resolve);
      this.#drain();
    });
  }

  #drain(): void {
    const now = performance.now();
    this.#tokens = Math.min(FRAMES_PER_SECOND, this.#tokens + ((now - this.#refilled) * FRAMES_PER_SECOND) / 1000);
    this.#refilled = now;
    while (this.#queue.length > 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#queue.shift()!();
    }
    if (this.#queue.length > 0 && this.#pacer === undefined) {
      this.#pacer = setTimeout(() => {
        this.#pacer = undefined;
        this.#drain();
      }, Math.ceil(1000 / FRAMES_PER_SECOND));
    }
  }

  /**
   * Sends a frame and resolves with its reply (rejects with the error's code). Before the
   * session is back on a new socket, only `hello` goes out (`early`); others fail with
   * CLIENT_ERR_OFFLINE, and the caller retries when the state is connected again.
   */
  async request<T extends ServerFrame = ServerFrame>(frame: Request, early = false): Promise<T> {
    // Offline: refused now, not after a wait in the queue (and without spending a token).
    if (!this.#usable(early)) throw new ClientError('CLIENT_ERR_OFFLINE');
    await this.#paced();
    return this.#send<T>(frame, early);
  }

  #usable(early: boolean): boolean {
    return this.#ws.readyState === WebSocket.OPEN && (early || this.#connected || this.#session === null);
  }

  #send<T extends ServerFrame>(frame: Request, early: boolean): Promise<T> {
    const id = (this.#id = (this.#id % 2_147_483_646) + 1);
    return new Promise<T>((resolve, reject) => {
      if (!this.#usable(early)) return reject(new ClientError('CLIENT_ERR_OFFLINE'));
      this.#waiting.set(id, { resolve: resolve as (f: ServerFrame) => void, reject });
      this.#ws.send(encodeClientFrame({ v: 1, id, ...frame } as ClientFrame) as Uint8Array<ArrayBuffer>);
    });
  }
}

/** The WebSocket URL of the receiver that served this page. */
export function sameOriginSocket(location: Location): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}
