/**
 * The nginx front door's configuration, rendered from the live receivers' URLs. A pure
 * function: the same inputs give the same bytes (receivers are sorted, nothing is dated),
 * so a watcher can compare what it would write with what it wrote.
 *
 * The file is a complete nginx.conf that runs without root:
 *
 *   nginx -p <prefix> -c <file> -e error.log -g 'daemon off;'
 *
 * Every path in it (pid, lock, error log, temp dirs) is relative, so nginx puts it under
 * `-p <prefix>`. `daemon off` is not in the file: the caller chooses (`cellular nginx --run`
 * passes `-g 'daemon off;'` and keeps nginx in the foreground under its own pid; a service
 * manager may do the same, and a bare `nginx -p … -c …` daemonizes as usual). `-e` moves the
 * log nginx opens before it reads the file (Debian's default is stderr, harmless).
 *
 * Nothing here is taken on trust: every input is checked against a strict grammar (plain
 * names, addresses, ports, absolute paths of safe characters) before it is written into a
 * directive, so no input can end a directive, open a block or name a variable. A refused
 * input is a CellularError NGINX_ERR_INPUT naming the field.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { CellularError } from '../wire/errors.ts';

export interface NginxConfigOptions {
  /** The live receivers' own URLs (`http://host:port`, from the census). Duplicates count once. */
  receivers: readonly string[];
  /** Where the front door listens, `HOST:PORT` (or `PORT` for 127.0.0.1). @default 127.0.0.1:8088 */
  listen?: string;
  /** `server_name`: one or more names (comma or space separated, `*.example.org` allowed). */
  serverName?: string;
  /** TLS certificate chain and key (absolute paths): the front door then speaks https/wss only. */
  tls?: { cert: string; key: string };
  /**
   * The front door's URL as browsers reach it, answered on `/receivers`. Default: from the
   * scheme (TLS or not), the first non-wildcard server name (else the listen host) and the
   * listen port (left out when it is the scheme's default).
   */
  publicUrl?: string;
}

/** The front door's default address: loopback only; 8080 is the receivers' own front door. */
export const NGINX_DEFAULT_LISTEN = '127.0.0.1:8088';
/** The upstream's name in the rendered file. */
export const NGINX_UPSTREAM = 'cellular_receivers';

const MAX_INPUT = 512;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*\\.?$`);
/** Absolute paths of plain characters: no whitespace, quotes, `;`, braces, `$`, `#`, backslash. */
const SAFE_PATH = /^\/[A-Za-z0-9._+@=,:/-]*$/;

function refuse(field: string, value: unknown, expected: string): never {
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 120 ? `${value.slice(0, 120)}…` : value) : String(value);
  throw new CellularError('NGINX_ERR_INPUT', `${field} must be ${expected}, received ${shown}`);
}

/** A host as nginx may be given it: IPv4, [IPv6] or a DNS name. Returns it normalised, or undefined. */
function hostOf(raw: string, wildcard: boolean): string | undefined {
  if (raw.startsWith('[') && raw.endsWith(']')) return isIPv6(raw.slice(1, -1)) ? raw.toLowerCase() : undefined;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(raw)) return isIPv4(raw) ? raw : undefined;
  if (wildcard && raw === '*') return raw;
  if (raw.length <= 253 && DNS_NAME.test(raw) && !/^\d+$/.test(raw.replace(/\./g, ''))) return raw.toLowerCase().replace(/\.$/, '');
  return undefined;
}

function portOf(raw: string): number | undefined {
  if (!/^\d{1,5}$/.test(raw)) return undefined;
  const port = Number(raw);
  return port >= 1 && port <= 65_535 ? port : undefined;
}

/** Splits `host:port` (host may be `[v6]`). */
function splitHostPort(raw: string): [string, string] | undefined {
  const m = /^(\[[^\]]*\]|[^:[\]]*):([^:]*)$/.exec(raw);
  return m ? [m[1]!, m[2]!] : undefined;
}

/** A receiver's URL, `http://host:port` (a trailing `/` is dropped), as `host:port`; else throws NGINX_ERR_INPUT. */
export function receiverAddress(url: unknown): string {
  const expected = 'http://HOST:PORT (an IPv4 address, [IPv6] or a DNS name, a port 1-65535, nothing else)';
  if (typeof url !== 'string' || url.length > MAX_INPUT) refuse('a receiver URL', url, expected);
  const m = /^http:\/\/([^/]+)\/?$/.exec(url);
  const hp = m ? splitHostPort(m[1]!) : undefined;
  const host = hp ? hostOf(hp[0], false) : undefined;
  const port = hp ? portOf(hp[1]) : undefined;
  if (host === undefined || port === undefined) refuse('a receiver URL', url, expected);
  return `${host}:${port}`;
}

/** True when `url` would be accepted as a receiver URL. */
export function isReceiverUrl(url: unknown): boolean {
  try {
    receiverAddress(url);
    return true;
  } catch {
    return false;
  }
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** `HOST:PORT` or `PORT` (then on 127.0.0.1); `*`, `0.0.0.0` and `[::]` listen beyond loopback. */
export function parseListen(raw: unknown): ListenAddress {
  const expected = 'HOST:PORT or PORT (HOST an IPv4 address, [IPv6], a DNS name or *; PORT 1-65535)';
  if (typeof raw !== 'string' || raw.length > MAX_INPUT) refuse('the listen address', raw, expected);
  const hp = /^\d+$/.test(raw) ? (['127.0.0.1', raw] as [string, string]) : splitHostPort(raw);
  const host = hp ? hostOf(hp[0], true) : undefined;
  const port = hp ? portOf(hp[1]) : undefined;
  if (host === undefined || port === undefined) refuse('the listen address', raw, expected);
  return { host, port };
}

/** server_name: names separated by commas or spaces, each a DNS name, optionally `*.` first. */
export function parseServerNames(raw: unknown): string[] {
  const expected = 'one or more DNS names (letters, digits, dashes, dots; *.name allowed), separated by commas';
  if (typeof raw !== 'string' || raw.length > MAX_INPUT) refuse('the server name', raw, expected);
  const names = raw.split(/[\s,]+/).filter((n) => n.length > 0);
  if (names.length === 0) refuse('the server name', raw, expected);
  return [...new Set(names.map((n) => {
    const bare = n.startsWith('*.') ? n.slice(2) : n;
    const host = hostOf(bare, false);
    if (host === undefined || host.startsWith('[')) refuse('the server name', n, expected);
    return n.startsWith('*.') ? `*.${host}` : host;
  }))];
}

function safePath(field: string, raw: unknown): string {
  if (typeof raw !== 'string' || raw.length > MAX_INPUT || !SAFE_PATH.test(raw) || raw.split('/').includes('..')) {
    refuse(field, raw, 'an absolute path of letters, digits and . _ - + @ = , : / (no spaces, quotes, ;, {}, $, # or ..)');
  }
  return raw;
}

/** The front door's public URL (`http(s)://host[:port]`, no path), normalised without a trailing `/`. */
export function parsePublicUrl(raw: unknown): string {
  const expected = 'http(s)://HOST[:PORT] with no path (the URL browsers use to reach the front door)';
  if (typeof raw !== 'string' || raw.length > MAX_INPUT) refuse('the public URL', raw, expected);
  const m = /^(https?):\/\/([^/]+)\/?$/.exec(raw);
  if (!m) refuse('the public URL', raw, expected);
  const hp = m[2]!.includes(':') && !m[2]!.endsWith(']') ? splitHostPort(m[2]!) : ([m[2]!, ''] as [string, string]);
  const host = hp ? hostOf(hp[0], false) : undefined;
  const port = hp && hp[1] !== '' ? portOf(hp[1]) : 0;
  if (host === undefined || port === undefined) refuse('the public URL', raw, expected);
  return `${m[1]}://${host}${port ? `:${port}` : ''}`;
}

function defaultPublicUrl(listen: ListenAddress, names: readonly string[], tls: boolean): string {
  const scheme = tls ? 'https' : 'http';
  const name = names.find((n) => !n.startsWith('*.'));
  const wide = listen.host === '*' || listen.host === '0.0.0.0' || listen.host === '[::]';
  if (name === undefined && wide) {
    throw new CellularError('NGINX_ERR_INPUT', `listening on ${listen.host}:${listen.port} (every address) leaves the front door's public URL unknown: give a server name or a public URL, so /receivers can tell browsers where to come back`);
  }
  const port = listen.port === (tls ? 443 : 80) ? '' : `:${listen.port}`;
  return `${scheme}://${name ?? listen.host}${port}`;
}

/** Lines, and nested blocks indented one step further. */
type Block = (string | Block)[];

function indent(block: Block, depth = 0): string[] {
  return block.flatMap((x) => (typeof x === 'string' ? [x === '' ? '' : `${'  '.repeat(depth)}${x}`] : indent(x, depth + 1)));
}

const NO_RECEIVERS = 'cellular: no receiver is alive behind this front door right now. It comes back by itself as soon as one is (see: cellular census).\\n';

/**
 * Renders a complete nginx.conf for the front door. Throws NGINX_ERR_INPUT on any input
 * outside its grammar. With no receivers the file is still valid: `/` and `/ws` answer 503.
 */
export function renderNginxConfig(o: NginxConfigOptions): string {
  if (!Array.isArray(o.receivers)) refuse('the receivers', o.receivers, 'a list of URLs');
  const upstream = [...new Set(o.receivers.map((u) => receiverAddress(u)))].sort();
  const listen = parseListen(o.listen ?? NGINX_DEFAULT_LISTEN);
  const names = o.serverName === undefined ? [] : parseServerNames(o.serverName);
  if (o.tls !== undefined && (typeof o.tls !== 'object' || o.tls === null)) refuse('tls', o.tls, 'a certificate and a key');
  const tls = o.tls ? { cert: safePath('the TLS certificate', o.tls.cert), key: safePath('the TLS key', o.tls.key) } : undefined;
  const publicUrl = o.publicUrl === undefined ? defaultPublicUrl(listen, names, tls !== undefined) : parsePublicUrl(o.publicUrl);
  // The front door's own URL is the only receiver a browser behind it can reach.
  const receiversJson = JSON.stringify({ receivers: [publicUrl] });
  const listenAt = `${listen.host}:${listen.port}${tls ? ' ssl' : ''}`;

  const proxied = (extra: string[]) => [
    `proxy_pass http://${NGINX_UPSTREAM};`,
    'proxy_http_version 1.1;',
    // Host as the browser sent it: the receivers' origin check accepts the page's own
    // origin when it is an address (set messenger.origins for a name; see docs/deployment.md).
    'proxy_set_header Host $http_host;',
    // nginx is the edge: the client's address, never a forwarded claim from the client.
    'proxy_set_header X-Real-IP $remote_addr;',
    'proxy_set_header X-Forwarded-For $remote_addr;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    // A page's CSP names every receiver port (cells/receiver/http.ts): up to ≈ 5 KB of headers.
    'proxy_buffer_size 16k;',
    'proxy_buffers 8 16k;',
    'proxy_busy_buffers_size 32k;',
    ...extra,
  ];

  const lines: Block = [
    '# cellular front door: nginx in front of the organism\'s live receivers.',
    '# Written by `cellular nginx` from the census; `cellular nginx --watch` rewrites it (and',
    '# reloads nginx) whenever the set of live receivers changes. Edits here are overwritten.',
    '#',
    "# Run without root: nginx -p <prefix> -c <this file> -e error.log -g 'daemon off;'",
    '# (every path below is relative to <prefix>; `daemon off` is left to the caller).',
    `# Receivers: ${upstream.length}. Public URL: ${publicUrl}`,
    '',
    'worker_processes auto;',
    'pid nginx.pid;',
    'lock_file nginx.lock;',
    'error_log error.log warn;',
    // A reload starts new workers; the old ones keep their open WebSockets (still on live
    // receivers: a dead receiver's sockets are closed anyway) until those close, at most this
    // long, so a receiver being born does not drop every chat, and old workers do not pile up.
    'worker_shutdown_timeout 120s;',
    '',
    'events {',
    ['worker_connections 4096;'],
    '}',
    '',
    'http {',
    [
      'server_tokens off;',
      // A private messenger's front door keeps no per-request log; errors go to error.log.
      'access_log off;',
      'default_type application/octet-stream;',
      'client_body_temp_path client_body_temp;',
      'proxy_temp_path proxy_temp;',
      'fastcgi_temp_path fastcgi_temp;',
      'uwsgi_temp_path uwsgi_temp;',
      'scgi_temp_path scgi_temp;',
      // The receivers take GETs and WebSockets only; nothing is buffered to disk (so workers
      // need no write access to the prefix).
      'client_max_body_size 16k;',
      'client_body_buffer_size 16k;',
      'proxy_max_temp_file_size 0;',
      '',
      // Connection: upgrade only for a request that asks for one.
      'map $http_upgrade $cellular_connection {',
      ['default upgrade;', "'' close;"],
      '}',
      '',
      ...(upstream.length === 0
        ? ['# No live receiver: every request but /receivers is answered 503 below.']
        : [
            `upstream ${NGINX_UPSTREAM} {`,
            [
              // Failure marks are shared by every worker.
              `zone ${NGINX_UPSTREAM} 64k;`,
              '# Sticky by client: a consistent (ketama) hash of the client address. A user\'s',
              '# reconnects land on the receiver that already holds their session and delivery',
              '# cursor for as long as that receiver lives; when receivers are added or removed',
              '# only the clients of the changed one move (ip_hash would reshuffle everyone and',
              '# hashes IPv4 by /24 only; round robin would scatter each reconnect). Clients',
              '# behind one NAT (or one proxy) share a receiver. If a receiver fails,',
              '# proxy_next_upstream below tries the next one on the ring.',
              'hash $remote_addr consistent;',
              ...upstream.map((a) => `server ${a} max_fails=1 fail_timeout=10s;`),
            ],
            '}',
          ]),
      '',
      ...(names.length > 0
        ? [
            // Requests for any other name (or a bare address: DNS rebinding) get no answer.
            'server {',
            [`listen ${listen.host}:${listen.port} default_server${tls ? ' ssl' : ''};`, 'server_name _;', ...(tls ? ['ssl_reject_handshake on;'] : []), 'return 444;'],
            '}',
            '',
          ]
        : []),
      'server {',
      [
        `listen ${listenAt};`,
        `server_name ${names.length > 0 ? names.join(' ') : '_'};`,
        ...(tls
          ? [
              `ssl_certificate ${tls.cert};`,
              `ssl_certificate_key ${tls.key};`,
              'ssl_protocols TLSv1.2 TLSv1.3;',
              'ssl_prefer_server_ciphers off;',
              'ssl_session_cache shared:cellular_tls:1m;',
              'ssl_session_timeout 1h;',
              'ssl_session_tickets off;',
            ]
          : []),
        '',
        // Behind nginx the receivers' own (loopback) URLs mean nothing to a browser: the
        // front door names itself, so a client fails over through it.
        'location = /receivers {',
        [
          'default_type application/json;',
          'add_header cache-control no-store always;',
          'add_header access-control-allow-origin * always;',
          'add_header x-content-type-options nosniff always;',
          `return 200 '${receiversJson}';`,
        ],
        '}',
        '',
        ...(upstream.length === 0
          ? ['location / {', ['default_type text/plain;', 'add_header cache-control no-store always;', 'add_header retry-after 2 always;', `return 503 "${NO_RECEIVERS}";`], '}']
          : [
              // A receiver that refuses the connection, times out or is draining (503) is
              // skipped for the next one (a WebSocket upgrade is a GET: safe to retry).
              'proxy_connect_timeout 2s;',
              'proxy_next_upstream error timeout http_502 http_503 http_504;',
              'proxy_next_upstream_tries 0;',
              'proxy_next_upstream_timeout 10s;',
              '',
              'location = /ws {',
              proxied([
                'proxy_set_header Upgrade $http_upgrade;',
                'proxy_set_header Connection $cellular_connection;',
                // Clients ping every 15 s; a quiet chat must not be cut.
                'proxy_read_timeout 3600s;',
                'proxy_send_timeout 3600s;',
                'proxy_buffering off;',
              ]),
              '}',
              '',
              'location / {',
              proxied(['proxy_set_header Connection "";']),
              '}',
            ]),
      ],
      '}',
    ],
    '}',
    '',
  ];
  return indent(lines).join('\n');
}
