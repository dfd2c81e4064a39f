/**
 * One client socket on a receiver: frame limits (size, rate), the session, request/reply
 * by `id`, sends into JetStream (acked only once stored), and delivery of the user's inbox.
 * Frames are handled one at a time, in order, so a client's sends are stored in the order
 * it sent them. Bad frames get an `error` frame with a code and are counted; too many in a
 * row close the socket (4002). Nothing a client sends can throw out of here.
 */
import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { WebSocket } from 'ws';
import { CellularError } from '../../organism/wire/errors.ts';
import type { MessengerGene } from '../../organism/kernel/genome/index.ts';
import type { Logger } from '../logger.ts';
import type { Copy, Delivered, Inboxes } from '../messenger/inbox.ts';
import type { MessengerStores } from '../messenger/stores.ts';
import type { MessengerSubjects } from '../messenger/subjects.ts';
import type { WorkMeter } from '../work-meter.ts';
import type { WorkerClient } from '../worker/api.ts';
import { Delivery } from './delivery.ts';
import type { LatencyWindow } from './latency-window.ts';
import { CLOSE, decodeClientFrame, decodeServerFrame, encodeServerFrame, errorFrame, frameIdOf, type ClientFrame, type ServerFrame } from '../../organism/wire/frames.ts';
import type { Presence } from './presence.ts';
import { Slots } from './slots.ts';
import { TokenBucket } from './token-bucket.ts';

/** How a session is named between receivers (never the token itself). */
const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

/** Frames that read or acknowledge, and change no session state: answered without queueing. */
const ANSWERED_AT_ONCE: ReadonlySet<ClientFrame['t']> = new Set(['ping', 'deliver.ack', 'history', 'keys.get', 'keys.backup.get', 'users', 'read']);

/** Sends one socket may have waiting to be stored; more are refused (PROTO_ERR_RATE), so a flood cannot grow memory. */
const MAX_QUEUED_SENDS = 256;
/** Reads (history, keys, users, receipts) one socket may have in progress at once; more wait. */
const MAX_CONCURRENT_READS = 4;

/** A second failed check of the delivery against the stream leader within this moves the client (see onDiverged). */
const DIVERGED_AGAIN_MS = 30_000;

/** Bad frames in a row after which the socket is closed (a client that is not speaking the protocol). */
const MAX_BAD_IN_A_ROW = 32;

/** What other receivers tell a user's sockets through its events subject (read receipts, deletions). */
const RELAYED: ReadonlySet<string> = new Set(['receipt', 'deleted']);

export interface ConnectionStats {
  frames: number;
  bad: Record<string, number>;
  rateLimited: number;
  sent: number;
  delivered: number;
  slowClosed: number;
}

export interface ConnectionDeps {
  gene: MessengerGene;
  subjects: MessengerSubjects;
  /** Delivery's consumers. */
  js: JetStreamClient;
  /** Stores, reads and deletes copies in the messages stream. */
  inboxes: Inboxes;
  nc: NatsConnection;
  stores: MessengerStores;
  cell: string;
  log: Logger;
  stats: ConnectionStats;
  /** Live receivers' URLs (from the census). */
  receivers(): string[];
  /** The worker tissue (cells/worker/api.ts); each call rejects with the worker's CellularError. */
  worker: WorkerClient;
  /** Whether a user has an account (cached by the caller). */
  exists(user: string): Promise<boolean>;
  /** The cell's work meter: each frame in progress is work (the receiver's load). */
  work?: WorkMeter;
  presence?: Presence;
  /** Bounds the receiver's stores in flight (messenger.storeInflight). */
  storeSlots?: Slots;
  /** Where delivery latencies go (stored → pushed). */
  latency?: LatencyWindow;
}

export class Connection {
  readonly #ws: WebSocket;
  readonly #d: ConnectionDeps;
  readonly ip: string;
  readonly #bucket: TokenBucket;
  #user: string | null = null;
  /** Said `welcome`: from then on it is told when the live receivers change. */
  #welcomed = false;
  #token: string | null = null;
  #delivery: Delivery | undefined;
  /** Receipts and deletions for this user, from whichever receiver the other side is on. */
  #events: Subscription | undefined;
  /** Logouts of this user's sessions, anywhere; and this session's expiry. */
  #ended: Subscription | undefined;
  #expiry: NodeJS.Timeout | undefined;
  /** The user this socket counts as present, if any. */
  #present: string | null = null;
  #queue: Promise<void> = Promise.resolve();
  #badInARow = 0;
  #queuedSends = 0;
  #deleting = false;
  /** Reads in progress on this socket (history pages can be large). */
  readonly #reads = new Slots(MAX_CONCURRENT_READS);
  #closed = false;
  /** When the delivery last failed its check against the stream leader (0: never). */
  #divergedAt = 0;

  constructor(ws: WebSocket, ip: string, deps: ConnectionDeps) {
    this.#ws = ws;
    this.#d = deps;
    this.ip = ip;
    this.#bucket = new TokenBucket(deps.gene.framesPerSecond, deps.gene.framesPerSecond);
    ws.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.#onClose());
    ws.on('error', () => this.#onClose());
  }

  get user(): string | null {
    return this.#user;
  }

  /** This socket is deleting its own account (it answers, then closes itself). */
  get deleting(): boolean {
    return this.#deleting;
  }

  /** Sends a server frame; a client that leaves too much unread is cut off (4001). */
  send(frame: ServerFrame): void {
    if (this.#closed) return;
    if (this.#ws.bufferedAmount > this.#d.gene.maxPendingBytes) {
      this.#d.stats.slowClosed++;
      this.close(CLOSE.SLOW, 'slow consumer: too much unread');
      return;
    }
    this.#ws.send(encodeServerFrame(frame));
  }

  /**
   * Waits until the client has read its backlog down to half of maxPendingBytes. A client
   * that does not within messenger.slowClientMs is cut off (4001): it resumes from its
   * cursor on a new socket, so nothing is lost.
   */
  async writable(): Promise<boolean> {
    const high = this.#d.gene.maxPendingBytes / 2;
    const deadline = Date.now() + this.#d.gene.slowClientMs;
    while (!this.#closed && this.#ws.bufferedAmount > high) {
      if (Date.now() > deadline) {
        this.#d.stats.slowClosed++;
        this.close(CLOSE.SLOW, 'slow consumer: too much unread');
        return false;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return !this.#closed;
  }

  /**
   * The broker is back after an outage: delivery goes on on a new consumer (or the client
   * moves). `fromCursor`: from the read cursor, forgetting what was pushed (a failed check).
   */
  restartDelivery(fromCursor = false): void {
    const d = this.#delivery;
    if (!d) return;
    void (async () => {
      // JetStream may need a moment after the broker restarts: a few tries, then the client moves.
      for (let attempt = 0, pause = 250; attempt < 6; attempt++, pause *= 2) {
        try {
          await (fromCursor ? d.rewind() : d.restart());
          return;
        } catch (e) {
          if (attempt === 5 || this.#delivery !== d) {
            this.#d.log.warn({ err: (e as Error).message }, 'delivery could not restart');
            if (this.#delivery === d) this.close(CLOSE.MOVED, 'delivery lost: reconnect');
            return;
          }
          await new Promise((r) => setTimeout(r, pause));
        }
      }
    })();
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#ws.close(code, reason);
    this.#onClose();
  }

  /** The live receivers changed: tell a client that said hello (it fails over to them). */
  receivers(receivers: string[]): void {
    if (this.#welcomed && !this.#closed) this.send({ t: 'receivers', v: 1, receivers } as ServerFrame);
  }

  /** Draining: tell the client where to go, then close with "moved". */
  moved(receivers: string[]): void {
    this.send({ t: 'moved', v: 1, receivers } as ServerFrame);
    this.close(CLOSE.MOVED, 'moved');
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#end();
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.#d.stats.frames++;
    if (!this.#bucket.take()) {
      this.#d.stats.rateLimited++;
      this.send(errorFrame(new CellularError('PROTO_ERR_RATE', `more than ${this.#d.gene.framesPerSecond} frames per second`), frameIdOf(data)));
      return;
    }
    let frame: ClientFrame;
    try {
      if (!isBinary) throw new CellularError('PROTO_ERR_MALFORMED', 'frames are binary msgpack, not text');
      frame = decodeClientFrame(data, this.#d.gene);
    } catch (e) {
      const code = e instanceof CellularError ? e.code : 'PROTO_ERR_MALFORMED';
      this.#d.stats.bad[code] = (this.#d.stats.bad[code] ?? 0) + 1;
      this.send(errorFrame(e, frameIdOf(data)));
      if (++this.#badInARow >= MAX_BAD_IN_A_ROW) this.close(CLOSE.POLICY, 'too many bad frames');
      return;
    }
    this.#badInARow = 0;
    const done = this.#d.work?.begin();
    const answer = (reply: Promise<ServerFrame | undefined>) =>
      reply.then(
        (r) => r && this.send(r),
        (e: unknown) => {
          if (!(e instanceof CellularError)) this.#d.log.warn({ err: (e as Error).message, t: frame.t }, 'frame failed');
          this.send(errorFrame(e, frame.id));
        },
      ).finally(() => done?.());
    if (ANSWERED_AT_ONCE.has(frame.t)) {
      // Reads and acks change no session state: they do not wait behind sends (a few at a time).
      const f = frame;
      void answer(this.#reads.acquire().then(() => this.#handle(f)).finally(() => this.#reads.release()));
    } else if (frame.t === 'send' || frame.t === 'send.group') {
      // Sends are stored in the order they came: each publish starts after the previous
      // one started, and their acks are awaited side by side (a pipelining client is not
      // held to one round trip to JetStream per message).
      const f = frame;
      if (this.#queuedSends >= MAX_QUEUED_SENDS) {
        this.#d.stats.rateLimited++;
        void answer(Promise.reject(new CellularError('PROTO_ERR_RATE', `more than ${MAX_QUEUED_SENDS} sends waiting to be stored on this socket: wait for acks`)));
        return;
      }
      this.#queuedSends++;
      const started = this.#queue.then(() => (this.#closed ? undefined : this.#startSend(f))).finally(() => this.#queuedSends--);
      this.#queue = started.then(() => undefined, () => undefined);
      void answer(started.then((s) => s?.reply));
    } else {
      // Everything else (sessions, accounts, deletions) in order, one at a time.
      const handled = this.#queue.then(() => (this.#closed ? undefined : this.#handle(frame)));
      this.#queue = handled.then(() => undefined, () => undefined);
      void answer(handled);
    }
  }

  #session(): string {
    if (this.#user === null) throw new CellularError('AUTH_ERR_REQUIRED', 'log in or resume a session first');
    return this.#user;
  }

  async #handle(f: ClientFrame): Promise<ServerFrame | undefined> {
    const id = f.id;
    switch (f.t) {
      case 'ping':
        return { v: 1, t: 'pong', id };
      case 'hello':
        if (f.session !== undefined) await this.#resume(f.session);
        this.#welcomed = true;
        return { v: 1, t: 'welcome', id, cell: this.#d.cell, receivers: this.#d.receivers(), user: this.#user };
      // OPAQUE (cells/worker/opaque-server.ts): the password never reaches this cell.
      case 'register.start': {
        const r = await this.#d.worker.registerStart({ user: f.user, request: f.request, ip: this.ip });
        return { v: 1, t: 'register.response', id, response: r.response };
      }
      case 'register.finish': {
        const s = await this.#d.worker.registerFinish({ user: f.user, record: f.record, x25519: f.x25519, ed25519: f.ed25519, backup: f.backup, ip: this.ip });
        await this.#begin(s.user, s.token, s.expires);
        return { v: 1, t: 'session', id, user: s.user, token: s.token, expires: s.expires, device: s.device };
      }
      case 'login.start': {
        const r = await this.#d.worker.loginStart({ user: f.user, request: f.request, ip: this.ip, ...(f.device === undefined ? {} : { device: f.device }) });
        return { v: 1, t: 'login.response', id, response: r.response, state: r.state };
      }
      case 'login.finish':
      case 'login': {
        // `login` carries a password: only an account from before OPAQUE answers it (AUTH_ERR_LEGACY said so).
        const s = f.t === 'login'
          ? await this.#d.worker.login({ user: f.user, password: f.password, ip: this.ip })
          : await this.#d.worker.loginFinish({ user: f.user, finish: f.finish, state: f.state, grant: f.grant, ip: this.ip });
        await this.#begin(s.user, s.token, s.expires);
        const device = 'device' in s ? s.device : undefined;
        return { v: 1, t: 'session', id, user: s.user, token: s.token, expires: s.expires, ...(s.grant === undefined ? {} : { grant: s.grant }), ...(device === undefined ? {} : { device }) };
      }
      case 'upgrade.start': {
        const r = await this.#d.worker.upgradeStart({ user: this.#session(), request: f.request });
        return { v: 1, t: 'register.response', id, response: r.response };
      }
      case 'upgrade.finish':
        await this.#d.worker.upgradeFinish({ user: this.#session(), record: f.record, backup: f.backup, grant: f.grant });
        return { v: 1, t: 'ok', id };
      case 'resume': {
        const s = await this.#resume(f.token);
        return { v: 1, t: 'session', id, user: s.user, token: f.token, expires: s.expires };
      }
      case 'logout': {
        const user = this.#user;
        const token = this.#token;
        if (token) await this.#d.worker.logout({ token });
        this.#end();
        // Every other socket on this session, on any receiver, ends with it (4005).
        if (user && token) this.#d.nc.publish(this.#d.subjects.sessionEnded(user), new TextEncoder().encode(tokenHash(token)));
        return { v: 1, t: 'ok', id };
      }
      case 'keys.publish':
        await this.#d.worker.keysPublish({ user: this.#session(), x25519: f.x25519, ed25519: f.ed25519, grant: f.grant, sig: f.sig, at: f.at });
        return { v: 1, t: 'ok', id };
      case 'keys.backup.put':
        await this.#d.worker.backupPut({ user: this.#session(), blob: f.blob, grant: f.grant, sig: f.sig, at: f.at });
        return { v: 1, t: 'ok', id };
      case 'keys.backup.get': {
        const r = await this.#d.worker.backupGet({ user: this.#session() });
        return { v: 1, t: 'keys.backup', id, blob: r.blob };
      }
      case 'keys.get': {
        this.#session();
        const r = await this.#d.worker.keysGet({ users: f.users });
        return { v: 1, t: 'keys', id, keys: r.keys };
      }
      case 'users': {
        this.#session();
        const r = await this.#d.worker.users({ query: f.query, limit: f.limit ?? 20 });
        return { v: 1, t: 'users', id, users: r.users.map((user) => ({ user })) };
      }
      case 'send':
      case 'send.group':
        return (await this.#startSend(f)).reply;
      case 'deliver.ack':
        this.#session();
        if (!this.#delivery) throw new CellularError('AUTH_ERR_REQUIRED', 'no delivery on this socket');
        await this.#delivery.ack(f.seq);
        return { v: 1, t: 'ok', id };
      case 'contacts.set':
        await this.#d.presence?.setContacts(this.#session(), f.users);
        return { v: 1, t: 'ok', id };
      case 'history': {
        // At most half of maxPendingBytes of bodies: one reply cannot push a reading client past its unread limit.
        const page = await this.#d.inboxes.history(this.#session(), { after: f.after ?? 0, limit: f.limit ?? Math.min(50, this.#d.gene.pageMax), from: f.with, maxBytes: this.#d.gene.maxPendingBytes / 2 });
        return { v: 1, t: 'history', id, ...page };
      }
      case 'read': {
        // Only for a message the reader really received from that sender (its copy at
        // `seq`): no one can push receipts at users they have no messages from.
        const by = this.#session();
        const copy = await this.#d.inboxes.copyOf(f.msg, f.seq, f.from);
        if (copy.to !== by) throw new CellularError('MESSAGE_ERR_FORBIDDEN', `the copy at ${f.seq} is in another user's inbox`);
        this.#d.nc.publish(this.#d.subjects.userEvents(f.from), encodeServerFrame({ v: 1, t: 'receipt', msg: f.msg, by, at: Date.now() }));
        return { v: 1, t: 'ok', id };
      }
      case 'delete': {
        // With "everyone", each recipient's live sockets hear `deleted`.
        const by = this.#session();
        const tell = f.scope === 'everyone' ? (c: Delivered) => this.#d.nc.publish(this.#d.subjects.userEvents(c.to), encodeServerFrame({ v: 1, t: 'deleted', msg: f.msg, by })) : undefined;
        await this.#d.inboxes.delete(by, f.msg, f.scope, f.seqs, tell);
        return { v: 1, t: 'ok', id };
      }
      case 'account.delete': {
        const user = this.#session();
        this.#deleting = true; // this socket says ok, then closes itself
        try {
          await this.#d.worker.accountDelete({ user, grant: f.grant });
        } finally {
          this.#deleting = false;
        }
        this.send({ v: 1, t: 'ok', id });
        this.#end();
        this.close(CLOSE.ACCOUNT_DELETED, 'account deleted');
        return undefined;
      }
      default: {
        const unhandled: never = f; // every client frame type has a case above
        throw new CellularError('PROTO_ERR_UNKNOWN_TYPE', `frame type ${(unhandled as { t: string }).t} is not served`);
      }
    }
  }

  async #resume(token: string): Promise<{ user: string; expires: number }> {
    const s = await this.#d.worker.resume({ token });
    await this.#begin(s.user, token, s.expires);
    return s;
  }

  /** A session starts (or switches user): deliver that user's inbox from its cursor. */
  async #begin(user: string, token: string, expires: number): Promise<void> {
    this.#end();
    // The socket may have closed while the worker checked the password: start nothing.
    if (this.#closed) return;
    this.#user = user;
    this.#token = token;
    // The session ends here when it expires, or when it is logged out anywhere (4005).
    const mine = tokenHash(token);
    this.#ended = this.#d.nc.subscribe(this.#d.subjects.sessionEnded(user), {
      callback: (_e, m) => {
        if (new TextDecoder().decode(m.data) === mine) this.close(CLOSE.SESSION_ENDED, 'session ended');
      },
    });
    this.#expiry = setTimeout(() => this.close(CLOSE.SESSION_ENDED, 'session expired'), Math.min(Math.max(0, expires - Date.now()), 2 ** 31 - 1));
    this.#expiry.unref();
    const delivery = new Delivery({
      js: this.#d.js, stream: this.#d.stores.messages, subject: this.#d.subjects.inbox(user), cursors: this.#d.stores.cursors, user, window: this.#d.gene.pageMax, flushMs: this.#d.gene.cursorFlushMs,
      writable: () => this.writable(),
      push: (m: Delivered) => {
        this.#d.stats.delivered++;
        this.#d.latency?.record(Date.now() - m.at);
        this.send({ v: 1, t: 'deliver', ...m } as ServerFrame);
      },
      onError: (e) => {
        this.#d.log.warn({ err: (e as Error).message, user }, 'delivery failed');
        this.close(CLOSE.MOVED, 'delivery failed: reconnect');
      },
      onStall: (why) => {
        this.#d.log.info({ why, user }, 'delivery consumer stalled: restarting it');
        this.restartDelivery();
      },
      leaderNext: (from) => this.#d.inboxes.nextAt(user, from),
      onDiverged: (seq) => {
        // Once: start again from the cursor on a new consumer. Again soon after: the consumer is
        // placed on the same replica again, so the client moves (another receiver's consumer
        // lands on another server); it resumes from the cursor there.
        const now = Date.now();
        const again = now - this.#divergedAt < DIVERGED_AGAIN_MS;
        this.#divergedAt = now;
        this.#d.log.warn({ seq, user, again }, 'delivery consumer disagrees with the stream leader: starting again from the cursor');
        if (again) this.close(CLOSE.MOVED, 'delivery replica diverged: reconnect');
        else this.restartDelivery(true);
      },
    });
    this.#delivery = delivery;
    this.#events = this.#d.nc.subscribe(this.#d.subjects.userEvents(user), {
      callback: (_e, m) => {
        // Frames other receivers encoded for this user: passed on as they are, if they decode
        // and are of a kind receivers send this way. Anything else (a `moved` or `receivers`
        // naming a stranger's address, a forged `deliver`) is dropped: not a receiver's to relay.
        try {
          const f = decodeServerFrame(m.data);
          if (RELAYED.has(f.t)) this.send(f);
        } catch {
          // not a frame: ignored
        }
      },
    });
    try {
      // Counted as present before the await, so a close meanwhile undoes it (#end).
      if (this.#d.presence) this.#present = user;
      const [, others] = await Promise.all([delivery.start(), this.#d.presence?.join(user) ?? []]);
      if (this.#closed) return this.#end(); // closed while starting: release what started
      // Told the state of everyone who lets this user see it.
      for (const p of others) this.send({ v: 1, t: 'presence', user: p.user, online: p.online });
    } catch (e) {
      this.#end(); // never half logged in
      throw e;
    }
  }

  #end(): void {
    if (this.#present !== null) void this.#d.presence?.leave(this.#present).catch(() => undefined);
    this.#present = null;
    this.#delivery?.close();
    this.#delivery = undefined;
    this.#events?.unsubscribe();
    this.#events = undefined;
    this.#ended?.unsubscribe();
    this.#ended = undefined;
    clearTimeout(this.#expiry);
    this.#user = null;
    this.#token = null;
  }

  /**
   * Checks a send and starts storing its copies; resolves once every publish is on its
   * way, with the reply still to come (wrapped, so awaiting the start does not await it).
   * A group send stores one copy per member inbox, each idempotent by (member, msg): a
   * retry after a partial failure stores only what is missing; acked when all are stored.
   */
  async #startSend(f: Extract<ClientFrame, { t: 'send' | 'send.group' }>): Promise<{ reply: Promise<ServerFrame> }> {
    const from = this.#session();
    const copies = f.t === 'send' ? [{ to: f.to, body: f.body }] : f.copies;
    const group = f.t === 'send.group' ? f.group : undefined;
    for (const c of copies) if (!(await this.#d.exists(c.to))) throw new CellularError('ACCOUNT_ERR_NOT_FOUND', `no user ${c.to}`);
    // A slot per copy before it is published (in order): the receiver's stores in flight are bounded.
    const acks: Promise<number>[] = [];
    for (const c of copies) {
      await this.#d.storeSlots?.acquire();
      acks.push(this.#store({ from, to: c.to, msg: f.msg, body: c.body, group }).finally(() => this.#d.storeSlots?.release()));
    }
    return { reply: Promise.all(acks).then((seqs): ServerFrame => ({ v: 1, t: 'ack', id: f.id, msg: f.msg, seq: seqs[0]!, seqs })) };
  }

  /** Publishes one copy (at once); resolves with its stream sequence once JetStream has it. */
  async #store(copy: Copy): Promise<number> {
    const seq = await this.#d.inboxes.store(copy);
    this.#d.stats.sent++;
    return seq;
  }
}
