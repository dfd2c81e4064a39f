/**
 * The receiver's HTTP side: `GET /healthz`, `GET /receivers` (live receivers from the
 * census), and the browser client's static files. Strict headers on every answer: the
 * client is served from here and must not load anything from anywhere else.
 */
import { createReadStream, statSync } from 'node:fs';
import { pipeline } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the client bundle is built (client/dist at the repository root). */
export const CLIENT_DIR = fileURLToPath(new URL('../../../client/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.woff2': 'font/woff2',
};

// 'wasm-unsafe-eval' lets the page compile WebAssembly (OPAQUE's curve and Argon2id code, in
// its own bundle), and nothing else: no eval, no inline script. connect-src is 'self' here;
// a page gets the organism's other receivers added (cspFor), and nothing else.
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
/** A Host header that is a plain name or address (with an optional port), nothing else. */
const PLAIN_HOST = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})(:\d{1,5})?$/;

/** Where the organism's receivers can be: the port range and the front door, and its public URL. */
export interface ReceiverOrigins {
  portMin: number;
  portMax: number;
  frontPort: number;
  publicUrl: string;
}

/**
 * The page may connect (WebSocket, and `GET /receivers`) to the organism's own receivers
 * and nowhere else: on its own host, each port of the receivers' range and the front door,
 * and the configured public URL. A receiver list pushed by a hostile cell naming another
 * address is refused by the browser itself (the client also drops it: connection.ts).
 */
export function cspFor(host: string | undefined, origins: ReceiverOrigins | undefined): string {
  const m = host === undefined || origins === undefined ? null : PLAIN_HOST.exec(host);
  if (!m || !origins) return CSP;
  // Behind a public URL the page uses only it (liveReceivers gives nothing else).
  if (origins.publicUrl !== '') return CSP.replace("connect-src 'self'", `connect-src 'self' ${origins.publicUrl} ${origins.publicUrl.replace(/^http/, 'ws')}`);
  const ports = new Set<number>([origins.frontPort]);
  for (let p = origins.portMin; p <= origins.portMax; p++) ports.add(p);
  const sources = [...ports].filter((p) => p > 0).flatMap((p) => [`http://${m[1]}:${p}`, `ws://${m[1]}:${p}`]);
  return CSP.replace("connect-src 'self'", `connect-src 'self' ${sources.join(' ')}`);
}

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

const PLACEHOLDER = `<!doctype html><meta charset="utf-8"><title>cellular</title><p>This is a cellular receiver. The browser client is not built (client/dist is missing).</p>`;

export interface HttpDeps {
  cell: string;
  receivers(): string[];
  draining(): boolean;
  clientDir?: string;
  /** Where a page may connect (its CSP); without it, only back to where it came from. */
  origins?: ReceiverOrigins;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store', 'access-control-allow-origin': '*' });
  res.end(JSON.stringify(value));
}

export function httpHandler(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = serve(deps);
  // Nothing a request carries may throw out of here: an uncaught error would end the cell.
  return (req, res) => {
    try {
      handle(req, res);
    } catch {
      if (!res.headersSent) json(res, 400, { error: 'bad request' });
      else res.destroy();
    }
  };
}

function serve(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const root = deps.clientDir ?? CLIENT_DIR;
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://receiver');
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    if (url.pathname === '/healthz') return json(res, deps.draining() ? 503 : 200, { cell: deps.cell, ok: !deps.draining() });
    if (url.pathname === '/receivers') return json(res, 200, { receivers: deps.receivers() });
    const path = url.pathname === '/' ? '/index.html' : url.pathname;
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return json(res, 400, { error: 'bad path' });
    }
    const file = normalize(join(root, decoded));
    if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) return json(res, 404, { error: 'not found' });
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) {
      if (path === '/index.html') {
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': TYPES['.html']! });
        res.end(PLACEHOLDER);
        return;
      }
      return json(res, 404, { error: 'not found' });
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-security-policy': cspFor(req.headers.host, deps.origins), 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    if (req.method === 'HEAD') return void res.end();
    // A file gone or unreadable after the stat ends this response, not the cell.
    pipeline(createReadStream(file), res, () => undefined);
  };
}
