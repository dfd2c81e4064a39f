/**
 * The receiver's front: its own HTTP server on a port from the genome's range, the front
 * door (one shared port held by one receiver at a time), and the WebSocket endpoint `/ws`
 * on both. It admits sockets (origin, connections per IP, not while draining) and keeps
 * the live connections, so a drain can tell each client where to go.
 *
 * The front door needs no election: every receiver on the host keeps trying to bind the
 * port, the kernel lets exactly one succeed, and when the holder exits the port is free
 * for the next try (every `FRONT_RETRY_MS`).
 */
import { LatencyWindow } from './latency-window.ts';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { MessengerGene } from '../../organism/kernel/genome/index.ts';
import type { Logger } from '../logger.ts';
import { Connection, type ConnectionDeps } from './connection.ts';
import { httpHandler, type ReceiverOrigins } from './http.ts';
import { listenInRange, tryListen } from './listen.ts';
import type { Presence } from './presence.ts';
import { Slots } from './slots.ts';
import { addressKey, capConnections, clientAddress, httpServerOptions, trustedProxySet, type HttpLimits } from '../http-guard.ts';

/** Where this organism's receivers can be, for the page's CSP (http.ts cspFor). */
const originsOf = (gene: MessengerGene): ReceiverOrigins => ({ portMin: gene.portMin, portMax: gene.portMax, frontPort: gene.frontPort, publicUrl: gene.publicUrl });

export const FRONT_RETRY_MS = 250;

export interface GatewayDeps extends Omit<ConnectionDeps, 'stats'> {
  presence?: Presence;
  gene: MessengerGene;
  /** Timeouts and the per-address connection cap of every HTTP server (genome limits). */
  http: HttpLimits;
  log: Logger;
  clientDir?: string;
}

export class Gateway {
  readonly #d: GatewayDeps;
  readonly #server: Server;
  #front: Server | undefined;
  #frontTimer: NodeJS.Timeout | undefined;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  readonly #perIp = new Map<string, number>();
  readonly #trusted: ReadonlySet<string>;
  readonly #capped: { refused: () => number }[] = [];
  /** When each socket last sent anything (a frame or a pong): silent ones are closed (messenger.wsIdleMs). */
  readonly #heard = new WeakMap<WebSocket, number>();
  #idleTimer: NodeJS.Timeout | undefined;
  #draining = false;
  #port = 0;
  readonly stats = { frames: 0, bad: {} as Record<string, number>, rateLimited: 0, sent: 0, delivered: 0, slowClosed: 0, idleClosed: 0, refused: {} as Record<string, number>, accepted: 0 };

  readonly #storeSlots: Slots;
  /** Delivery latencies of the last 10 s (the dashboard's delivery p99). */
  readonly latency = new LatencyWindow();

  constructor(deps: GatewayDeps) {
    this.#d = deps;
    this.#storeSlots = new Slots(deps.gene.storeInflight);
    const handler = httpHandler({ cell: deps.cell, receivers: deps.receivers, draining: () => this.#draining, origins: originsOf(deps.gene), ...(deps.clientDir ? { clientDir: deps.clientDir } : {}) });
    this.#trusted = trustedProxySet(deps.gene.trustedProxies);
    this.#server = createServer(httpServerOptions(deps.http), handler);
    this.#capped.push(capConnections(this.#server, deps.http, this.#trusted));
    this.#server.on('upgrade', (req, socket, head) => this.#upgrade(req, socket, head));
    // The frame limit is checked by the codec (so an oversized frame gets an error frame);
    // ws itself cuts off only what is far beyond it (close 1009), so nothing unbounded is buffered.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: deps.gene.maxFrameBytes * 2, perMessageDeflate: false });
  }

  get url(): string {
    return `http://${this.#d.gene.host}:${this.#port}`;
  }

  get holdsFrontDoor(): boolean {
    return this.#front?.listening === true;
  }

  get connections(): number {
    return this.#connections.size;
  }

  /** Closes every socket of `user` on this receiver (their account is gone). */
  closeUser(user: string, code: number, reason: string): void {
    for (const c of [...this.#connections]) if (c.user === user && !c.deleting) c.close(code, reason);
  }

  /** Sends a frame to every socket of `user` on this receiver. */
  toUser(user: string, frame: Parameters<Connection['send']>[0]): void {
    for (const c of this.#connections) if (c.user === user) c.send(frame);
  }

  async start(): Promise<void> {
    this.#port = await listenInRange(this.#server, this.#d.gene.host, this.#d.gene.portMin, this.#d.gene.portMax);
    if (this.#d.gene.frontPort !== 0) void this.#tryFrontDoor();
    // Pings every half idle period; a socket silent for a whole one (no frame, no pong) is gone.
    const idle = this.#d.gene.wsIdleMs;
    this.#idleTimer = setInterval(() => {
      const now = Date.now();
      for (const ws of this.#wss.clients) {
        if (now - (this.#heard.get(ws) ?? now) >= idle) {
          this.stats.idleClosed++;
          ws.close(4008, 'IDLE');
          setTimeout(() => ws.terminate(), 1_000).unref();
        } else ws.ping();
      }
    }, Math.max(500, Math.floor(idle / 2)));
    this.#idleTimer.unref();
    // A broker that comes back (a restart) has lost every consumer: each socket's delivery
    // starts again where it was (found by `npm run chaos -- broker-loss`).
    void (async () => {
      for await (const st of this.#d.nc.status()) {
        if (st.type !== 'reconnect' || this.#draining) continue;
        this.#d.log.info({ sockets: this.#connections.size }, 'broker back: restarting delivery');
        for (const c of this.#connections) c.restartDelivery();
      }
    })().catch(() => undefined);
  }

  async #tryFrontDoor(): Promise<void> {
    if (this.#draining || this.#front) return;
    const front = createServer(httpServerOptions(this.#d.http), httpHandler({ cell: this.#d.cell, receivers: this.#d.receivers, draining: () => this.#draining, origins: originsOf(this.#d.gene), ...(this.#d.clientDir ? { clientDir: this.#d.clientDir } : {}) }));
    this.#capped.push(capConnections(front, this.#d.http, this.#trusted));
    front.on('upgrade', (req, socket, head) => this.#upgrade(req, socket, head));
    let held = false;
    try {
      held = await tryListen(front, this.#d.gene.frontPort, this.#d.gene.host);
    } catch (e) {
      this.#d.log.warn({ err: (e as Error).message }, 'front door: cannot listen');
    }
    if (held && !this.#draining) {
      this.#front = front;
      this.#d.log.info({ port: this.#d.gene.frontPort }, 'holding the front door');
      return;
    }
    if (held) front.close();
    if (!this.#draining) {
      this.#frontTimer = setTimeout(() => void this.#tryFrontDoor(), FRONT_RETRY_MS);
      this.#frontTimer.unref();
    }
  }

  #allowedOrigin(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined) return true; // not a browser: origins protect browsers' users
    const listed = this.#d.gene.origins.split(',').map((o) => o.trim()).filter((o) => o.length > 0);
    if (listed.length > 0) return listed.includes(origin);
    // Default: the receivers' own origins (a page from any receiver or the front door), and
    // the origin the request is addressed to when that is an address, not a name: a name
    // could be an attacker's, rebound to this loopback address (DNS rebinding).
    // Any receiver port counts, living or not: a page loaded from a receiver that has since
    // died must be able to fail over to another one.
    const gene = this.#d.gene;
    const own = new Set([...this.#d.receivers(), `http://${gene.host}:${gene.frontPort}`, this.url]);
    if (host !== undefined && /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|localhost)(:\d+)?$/.test(host)) own.add(`http://${host}`);
    if (own.has(origin)) return true;
    const m = /^http:\/\/([^/]+):(\d+)$/.exec(origin);
    return m !== null && m[1] === gene.host && Number(m[2]) >= gene.portMin && Number(m[2]) <= gene.portMax;
  }

  #refuse(socket: Duplex, status: number, why: string): void {
    this.stats.refused[why] = (this.stats.refused[why] ?? 0) + 1;
    socket.end(`HTTP/1.1 ${status} ${why}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ws') return this.#refuse(socket, 404, 'Not Found');
    if (this.#draining) return this.#refuse(socket, 503, 'Service Unavailable');
    if (!this.#allowedOrigin(req.headers.origin, req.headers.host)) return this.#refuse(socket, 403, 'Forbidden');
    // The client's address (a trusted proxy's word for it), counted per /64 for IPv6.
    const ip = clientAddress(req, this.#trusted);
    const key = addressKey(ip);
    const n = this.#perIp.get(key) ?? 0;
    if (n >= this.#d.gene.connectionsPerIp) return this.#refuse(socket, 429, 'Too Many Requests');
    this.#perIp.set(key, n + 1);
    // Released when the TCP connection ends, whether or not the WebSocket handshake succeeded
    // (ws never calls back for a bad handshake).
    socket.once('close', () => {
      const left = (this.#perIp.get(key) ?? 1) - 1;
      if (left <= 0) this.#perIp.delete(key);
      else this.#perIp.set(key, left);
    });
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.stats.accepted++;
      this.#heard.set(ws, Date.now());
      const heard = () => this.#heard.set(ws, Date.now());
      ws.on('message', heard);
      ws.on('pong', heard);
      const c = new Connection(ws, ip, { ...this.#d, stats: this.stats, storeSlots: this.#storeSlots, latency: this.latency });
      this.#connections.add(c);
      ws.on('close', () => this.#connections.delete(c));
    });
  }

  /**
   * Draining: give up the front door (another receiver takes it), stop admitting sockets,
   * send every client the other live receivers and close with "moved".
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    clearTimeout(this.#frontTimer);
    clearInterval(this.#idleTimer);
    // The port is released at once (close stops listening); its upgraded sockets are in
    // #connections and get "moved" below with everyone else.
    const front = this.#front;
    this.#front = undefined;
    front?.closeAllConnections();
    front?.close();
    const others = this.#d.receivers().filter((u) => u !== this.url);
    for (const c of [...this.#connections]) c.moved(others);
  }

  /**
   * The live receivers changed (one was born, drained or died): push the new list to every
   * client, so a page knows a receiver born a moment ago before its own dies.
   */
  announceReceivers(receivers: string[]): void {
    if (this.#draining) return;
    for (const c of this.#connections) c.receivers(receivers);
  }

  /** Drains, gives clients up to `graceMs` to finish the close handshake (so "moved" arrives), then ends the rest. */
  async close(graceMs = 1_000): Promise<void> {
    this.drain();
    const end = Date.now() + graceMs;
    while (this.#wss.clients.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
