/**
 * The dashboard's HTTP side: the page (dashboard/dist), `GET /metrics` (Prometheus text),
 * `GET /healthz`, and the live feed at `/ws` (docs/dashboard.md). Only same-origin pages may
 * open the feed; controls carry the dashboard token and are rate limited per page.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { capConnections, httpServerOptions, type HttpLimits } from '../http-guard.ts';
import { extname, join, normalize, sep } from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { CellularError, isCellularError } from '../../organism/wire/errors.ts';
import type { DashboardGene } from '../../organism/kernel/genome/index.ts';
import type { Logger } from '../logger.ts';
import { tryListen } from '../receiver/listen.ts';
import { TokenBucket } from '../receiver/token-bucket.ts';
import { parsePageFrame, type PageFrame } from '../../organism/wire/dashboard-frames.ts';

/** Where the page is built (dashboard/dist at the repository root). */
export const PAGE_DIR = fileURLToPath(new URL('../../../dashboard/dist/', import.meta.url));

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.ico': 'image/x-icon' };
const HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};
const PLACEHOLDER = '<!doctype html><meta charset="utf-8"><title>cellular dashboard</title><p>The dashboard page is not built (dashboard/dist is missing): run npm run build.';

export interface ServerDeps {
  gene: DashboardGene;
  /** Timeouts and the per-address connection cap (genome limits). */
  http: HttpLimits;
  log: Logger;
  pageDir?: string;
  /** Frames a page gets when it connects. */
  welcome(): unknown[];
  metrics(): Promise<{ contentType: string; body: string }>;
  health(): { cell: string; ok: boolean };
  authorized(token: string): boolean;
  /** Forwards a control to the operator; resolves with what it did. */
  control(token: string, control: Record<string, unknown>, by: string): Promise<string>;
  detail(cell: string): Promise<unknown>;
  replay(from: number, to: number): Promise<unknown>;
}

export class DashboardServer {
  readonly #d: ServerDeps;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #pages = new Set<WebSocket>();
  #url: string | null = null;
  #seq = 0;
  readonly stats = { pages: 0, refused: 0, frames: 0, bad: 0, controls: 0, controlsRefused: 0, sentBytes: 0 };

  constructor(deps: ServerDeps) {
    this.#d = deps;
    this.#server = createServer(httpServerOptions(deps.http), (req, res) => {
      // DNS rebinding: a name the attacker controls that resolves here must not read the feed
      // or /metrics through a visitor's browser; only addresses, localhost and configured names.
      if (!this.#hostAllowed(req.headers.host)) {
        this.stats.refused++;
        this.#json(res, 421, { error: 'misdirected request: this Host is not the dashboard' });
        return;
      }
      try {
        this.#http(req, res);
      } catch {
        if (!res.headersSent) this.#json(res, 400, { error: 'bad request' });
        else res.destroy();
      }
    });
    capConnections(this.#server, deps.http);
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: deps.gene.frameMaxBytes * 2, perMessageDeflate: false });
    this.#server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://dashboard');
      const origin = req.headers.origin;
      // A page of another site must not read the swarm through the visitor's browser.
      const sameOrigin = this.#hostAllowed(req.headers.host) && (origin === undefined || (URL.canParse(origin) && new URL(origin).host === req.headers.host));
      if (url.pathname !== '/ws' || !sameOrigin || this.#pages.size >= deps.gene.clientsMax) {
        this.stats.refused++;
        socket.end(`HTTP/1.1 ${url.pathname !== '/ws' ? '404 Not Found' : sameOrigin ? '503 Service Unavailable' : '403 Forbidden'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#page(ws));
    });
  }

  get url(): string | null {
    return this.#url;
  }

  /** An IP literal, localhost, or a name in dashboard.hosts — with the port we listen on. */
  #hostAllowed(host: string | undefined): boolean {
    const address = this.#server.address();
    const port = typeof address === 'object' && address ? String(address.port) : '';
    const m = host === undefined ? null : /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(host);
    if (!m || (m[2] ?? '80') !== port) return false;
    const name = m[1]!.toLowerCase();
    if (name.startsWith('[') || isIP(name) !== 0 || name === 'localhost') return true;
    return this.#d.gene.hosts.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean).includes(name);
  }

  get pages(): number {
    return this.#pages.size;
  }

  /** Listens on the genome's port, or on a free one when another program holds it. */
  async start(): Promise<string> {
    const { host, port } = this.#d.gene;
    if (port === 0 || !(await tryListen(this.#server, port, host))) {
      if (port !== 0) this.#d.log.warn({ port }, 'dashboard port taken: listening on a free one');
      if (!(await tryListen(this.#server, 0, host))) throw new CellularError('DASHBOARD_ERR_CONTROL', `cannot listen on ${host}`);
    }
    const address = this.#server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    this.#url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/`;
    return this.#url;
  }

  /** Sends one frame to every page whose socket keeps up (a page that cannot is skipped this time). */
  broadcast(frame: unknown): void {
    if (this.#pages.size === 0) return;
    const text = JSON.stringify(frame);
    for (const ws of this.#pages) {
      if (ws.bufferedAmount > 4 * 1024 * 1024) continue;
      ws.send(text);
      this.stats.sentBytes += text.length;
    }
  }

  async close(): Promise<void> {
    for (const ws of this.#pages) ws.close(1001, 'dashboard cell draining');
    this.#wss.close();
    await new Promise<void>((r) => this.#server.close(() => r()));
    this.#server.closeAllConnections();
  }

  #page(ws: WebSocket): void {
    const id = `page-${++this.#seq}`;
    this.#pages.add(ws);
    this.stats.pages++;
    const controls = new TokenBucket(this.#d.gene.controlsPerMinute / 60, this.#d.gene.controlsPerMinute);
    const send = (frame: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(frame));
    ws.on('close', () => this.#pages.delete(ws));
    ws.on('error', () => this.#pages.delete(ws));
    for (const f of this.#d.welcome()) send(f);
    ws.on('message', (data, binary) => {
      this.stats.frames++;
      let frame: PageFrame;
      try {
        if (binary) throw new CellularError('DASHBOARD_ERR_FRAME', 'frames are JSON text, not binary');
        frame = parsePageFrame(data.toString(), this.#d.gene.frameMaxBytes);
      } catch (e) {
        this.stats.bad++;
        return send({ t: 'error', code: isCellularError(e) ? e.code : 'DASHBOARD_ERR_FRAME', message: (e as Error).message });
      }
      void this.#answer(frame, id, controls).then(send, (e: unknown) =>
        send({ t: 'result', id: frame.id, ok: false, code: isCellularError(e) ? e.code : 'DASHBOARD_ERR_CONTROL', message: (e as Error).message }),
      );
    });
  }

  async #answer(f: PageFrame, page: string, controls: TokenBucket): Promise<unknown> {
    switch (f.t) {
      case 'auth':
        return { t: 'result', id: f.id, ok: this.#d.authorized(f.token), message: this.#d.authorized(f.token) ? 'controls unlocked' : 'wrong token: read-only' };
      case 'control': {
        if (!this.#d.authorized(f.token)) {
          this.stats.controlsRefused++;
          throw new CellularError('DASHBOARD_ERR_TOKEN', 'controls need the dashboard token that grow printed; this page is read-only');
        }
        if (!controls.take()) {
          this.stats.controlsRefused++;
          throw new CellularError('DASHBOARD_ERR_RATE', `more than dashboard.controlsPerMinute (${this.#d.gene.controlsPerMinute}) controls`);
        }
        this.stats.controls++;
        return { t: 'result', id: f.id, ok: true, message: await this.#d.control(f.token, f.control, page) };
      }
      case 'detail':
        return { t: 'detail', id: f.id, detail: (await this.#d.detail(f.cell)) ?? null };
      case 'replay':
        return { t: 'replay', id: f.id, ...(await this.#d.replay(f.from, f.to) as object) };
    }
  }

  #json(res: ServerResponse, status: number, value: unknown): void {
    res.writeHead(status, { ...HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(value));
  }

  #http(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.#json(res, 405, { error: 'method not allowed' });
    if (url.pathname === '/healthz') {
      const h = this.#d.health();
      return this.#json(res, h.ok ? 200 : 503, h);
    }
    if (url.pathname === '/metrics') {
      void this.#d.metrics().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' });
          res.end(m.body);
        },
        () => this.#json(res, 500, { error: 'metrics failed' }),
      );
      return;
    }
    const root = this.#d.pageDir ?? PAGE_DIR;
    const path = url.pathname === '/' ? '/index.html' : url.pathname;
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return this.#json(res, 400, { error: 'bad path' });
    }
    const file = normalize(join(root, decoded));
    if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) return this.#json(res, 404, { error: 'not found' });
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) {
      if (path !== '/index.html') return this.#json(res, 404, { error: 'not found' });
      res.writeHead(200, { ...HEADERS, 'content-type': TYPES['.html']! });
      return void res.end(PLACEHOLDER);
    }
    res.writeHead(200, { ...HEADERS, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    if (req.method === 'HEAD') return void res.end();
    pipeline(createReadStream(file), res, () => undefined);
  }
}
