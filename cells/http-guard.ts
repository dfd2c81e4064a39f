/**
 * What every HTTP server of a cell (a receiver's ports, the front door, the dashboard) does
 * against clients that hold connections without using them: header, request and keep-alive
 * timeouts checked every second (Node checks every 30 s by default, so a slowloris client
 * would keep a socket for that long), a cap on open connections per client address, and the
 * client address itself — an IPv6 client counts per /64 (one host usually holds a whole
 * /64), and behind a trusted proxy the address the proxy names, never one an untrusted peer
 * claims.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { IncomingMessage, Server, ServerOptions } from 'node:http';

export interface HttpLimits {
  /** A client must have sent its request headers within this, ms (slowloris). */
  httpHeadersTimeoutMs: number;
  /** A whole request must have arrived within this, ms. */
  httpRequestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this, ms. */
  httpKeepAliveMs: number;
  /** Open TCP connections one client address (IPv6: one /64) may hold on one server. */
  httpConnectionsPerAddress: number;
}

/** Options for `http.createServer`: the timeouts, checked every second. */
export function httpServerOptions(limits: HttpLimits): ServerOptions {
  return {
    headersTimeout: limits.httpHeadersTimeoutMs,
    requestTimeout: limits.httpRequestTimeoutMs,
    keepAliveTimeout: limits.httpKeepAliveMs,
    connectionsCheckingInterval: 1_000,
  };
}

/**
 * The key a client address counts under: IPv4 as is (an IPv4-mapped IPv6 address too), IPv6
 * by its /64 prefix. Anything else (a unix socket, garbage) counts as itself.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  address = plainAddress(address);
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  return `${expandIPv6(address).slice(0, 4).join(':')}::/64`;
}

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a dual-stack socket names an IPv4 peer) as its IPv4 form; any other as it is. */
function plainAddress(address: string): string {
  return /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)?.[1] ?? address;
}

/** The eight 16-bit groups of an IPv6 address, lowercase, without zone or leading zeros. */
function expandIPv6(address: string): string[] {
  let bare = address.split('%')[0]!.toLowerCase();
  // A dotted IPv4 tail is two groups.
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(bare);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    bare = `${bare.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = bare.includes('::') ? (bare.split('::') as [string, string]) : [bare, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : Array.from({ length: Math.max(0, 8 - h.length - t.length) }, () => '0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16).toString(16));
}

/**
 * The address of the client behind `req`. From a peer listed in `trustedProxies` (exact
 * addresses), the proxy's word: X-Real-IP, else the last X-Forwarded-For entry it appended.
 * From anyone else, the peer's own address: a client cannot name itself.
 */
export function clientAddress(req: Pick<IncomingMessage, 'headers' | 'socket'>, trustedProxies: ReadonlySet<string>): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (!trustedProxies.has(peer) && !trustedProxies.has(plainAddress(peer))) return peer;
  const real = header(req.headers['x-real-ip']);
  if (real && (isIPv4(real) || isIPv6(real))) return real;
  const forwarded = header(req.headers['x-forwarded-for'])?.split(',').map((s) => s.trim()).filter(Boolean);
  const last = forwarded?.at(-1);
  return last && (isIPv4(last) || isIPv6(last)) ? last : peer;
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.at(-1) : v;
}

/** Parses `messenger.trustedProxies` (comma-separated addresses). */
export function trustedProxySet(list: string): ReadonlySet<string> {
  return new Set(list.split(',').map((s) => s.trim()).filter((s) => s.length > 0));
}

/**
 * Caps the open TCP connections per client address on `server` (a connection over the cap
 * is destroyed at once). A trusted proxy's connections are not capped: it speaks for many
 * clients, and the caps that count them are per request (clientAddress).
 */
export function capConnections(server: Server, limits: HttpLimits, trustedProxies: ReadonlySet<string> = new Set()): { refused: () => number } {
  const open = new Map<string, number>();
  let refused = 0;
  server.on('connection', (socket) => {
    const peer = socket.remoteAddress;
    if (peer !== undefined && trustedProxies.has(plainAddress(peer))) return;
    const key = addressKey(peer);
    const n = open.get(key) ?? 0;
    if (n >= limits.httpConnectionsPerAddress) {
      refused++;
      socket.destroy();
      return;
    }
    open.set(key, n + 1);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left <= 0) open.delete(key);
      else open.set(key, left);
    });
  });
  return { refused: () => refused };
}
