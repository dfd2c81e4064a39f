/**
 * The HTTP edges of every cell: client addresses (per /64 for IPv6, a trusted proxy's word
 * only from the proxy), slowloris cut off by the header timeout, a cap on connections per
 * address, and the dashboard refusing a Host that is not its own (DNS rebinding).
 */
import test from 'ava';
import fc from 'fast-check';
import { createServer, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { addressKey, capConnections, clientAddress, httpServerOptions, trustedProxySet, type HttpLimits } from '../../cells/http-guard.ts';
import { DashboardServer } from '../../cells/dashboard/server.ts';
import { defaultGenome } from '../../organism/kernel/genome/index.ts';
import { within } from '../../organism/kernel/within.ts';

const LIMITS: HttpLimits = { httpHeadersTimeoutMs: 800, httpRequestTimeoutMs: 2_000, httpKeepAliveMs: 500, httpConnectionsPerAddress: 4 };

test('address key - an IPv6 /64 is one client, another /64 another; IPv4 and IPv4-mapped are the same address', (t) => {
  const group = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
  fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.array(group, { minLength: 4, maxLength: 4 }), (g, tail) => {
    const a = g.join(':');
    const b = [...g.slice(0, 4), ...tail].join(':');
    return addressKey(a) === addressKey(b);
  }), { numRuns: 200 });
  t.is(addressKey('2001:db8:1:2::1'), addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
  t.not(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  t.is(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  t.is(addressKey('192.0.2.7'), '192.0.2.7');
  t.is(addressKey('fe80::1%eth0'), addressKey('fe80::2'));
  t.is(addressKey(undefined), 'unknown');
});

test('client address - a forwarded header counts only from a trusted proxy, and only when it holds an address', (t) => {
  const trusted = trustedProxySet('127.0.0.2, ::1');
  const req = (peer: string, headers: Record<string, string>) => ({ socket: { remoteAddress: peer }, headers }) as never;
  t.is(clientAddress(req('203.0.113.9', { 'x-forwarded-for': '198.51.100.1', 'x-real-ip': '198.51.100.1' }), trusted), '203.0.113.9', 'an untrusted peer cannot name itself');
  t.is(clientAddress(req('127.0.0.2', { 'x-real-ip': '198.51.100.1' }), trusted), '198.51.100.1');
  t.is(clientAddress(req('::ffff:127.0.0.2', { 'x-forwarded-for': '10.0.0.1, 198.51.100.2' }), trusted), '198.51.100.2', 'the entry the proxy appended');
  t.is(clientAddress(req('::1', { 'x-real-ip': 'not an address' }), trusted), '::1');
});

/** A raw TCP connection to `port` and a promise of when the server closed it. */
function raw(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      const start = Date.now();
      const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - start)));
      resolve({ socket, closed });
    });
    socket.once('error', reject);
    socket.on('error', () => {});
  });
}

test('http guard - slowloris is cut off by the header timeout; a fifth connection from one address is refused at once; others are served', async (t) => {
  const server = createServer(httpServerOptions(LIMITS), (_req, res) => res.end('ok'));
  const cap = capConnections(server, LIMITS);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  // Slowloris: headers begun, never finished, a byte now and then.
  const slow = await raw(port);
  slow.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => slow.socket.writable && slow.socket.write('X-a: b\r\n'), 200);
  t.teardown(() => clearInterval(drip));
  const lived = await within(slow.closed, 10_000, -1);
  clearInterval(drip);
  t.true(lived > 0 && lived < LIMITS.httpHeadersTimeoutMs + 2_500, `closed after ${lived} ms`);
  // The cap: four held open, the fifth is destroyed before it can ask anything.
  const held = await Promise.all([1, 2, 3, 4].map(() => raw(port)));
  await sleep(50);
  const fifth = await raw(port);
  const fifthLived = await within(fifth.closed, 3_000, -1);
  t.true(fifthLived >= 0 && fifthLived < 1_000, `the fifth closed after ${fifthLived} ms`);
  t.is(cap.refused(), 1);
  for (const h of held) h.socket.destroy();
  await sleep(100);
  // Freed: an honest request goes through.
  const body = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let s = '';
      res.on('data', (d: Buffer) => (s += d.toString()));
      res.on('end', () => resolve(s));
    }).on('error', reject).end();
  });
  t.is(body, 'ok');
});

test('dashboard - a Host that is not an address, localhost or a configured name is refused (DNS rebinding reads nothing)', async (t) => {
  const g = defaultGenome();
  const server = new DashboardServer({
    gene: { ...g.dashboard, host: '127.0.0.1', port: 0, hosts: 'dash.example.org' }, http: g.limits,
    log: { info() {}, warn() {}, error() {}, debug() {} } as never,
    welcome: () => [], metrics: async () => ({ contentType: 'text/plain', body: 'cellular_secret_metric 1\n' }), health: () => ({ cell: 'dashboard-1', ok: true }),
    authorized: () => false, control: async () => 'no', detail: async () => undefined, replay: async () => ({}),
  });
  await server.start();
  t.teardown(() => server.close());
  const port = new URL(server.url!).port;
  const get = (host: string, path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    // '' sends no Host header at all.
    request({ host: '127.0.0.1', port, path, ...(host === '' ? { setHost: false } : { headers: { host } }) }, (res) => {
      let s = '';
      res.on('data', (d: Buffer) => (s += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: s }));
    }).on('error', reject).end();
  });
  for (const host of [`evil.example:${port}`, `127.0.0.1.evil.example:${port}`, `localhost:${Number(port) + 1}`, '']) {
    const r = await get(host, '/metrics');
    // No Host at all is refused by Node itself (400); a foreign one by the dashboard (421).
    t.is(r.status, host === '' ? 400 : 421, host);
    t.false(r.body.includes('cellular_secret_metric'), host);
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `dash.example.org:${port}`]) t.is((await get(host, '/metrics')).status, 200, host);
  // The live feed: no upgrade for a foreign Host, even with a matching Origin.
  const upgrade = await new Promise<number>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/ws', headers: { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
      .on('response', (res) => resolve(res.statusCode ?? 0))
      .on('upgrade', () => resolve(101))
      .on('error', reject)
      .end();
  });
  t.is(upgrade, 403);
});
