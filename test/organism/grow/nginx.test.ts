/**
 * The nginx front door: the renderer as properties (every receiver once in the upstream,
 * hostile inputs refused, the output always well-formed, real `nginx -t` accepts it), and
 * end to end: a messenger grown by the real CLI, `cellular nginx --run --watch` in front of
 * its two receivers, two users chatting end-to-end encrypted through nginx, one receiver
 * killed by pid, chat going on through nginx and the config rewritten without it.
 * Needs Debian's nginx (`apt-get install -y nginx`; .ci/run installs it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { generateIdentity, keyId, open, seal, type Identity } from '../../../client/crypto/envelope.ts';
import { freePort } from '../../../organism/grow/broker.ts';
import { isCellularError } from '../../../organism/wire/errors.ts';
import { findNginx, isNginxMaster, liveReceiverUrls, NginxDoor } from '../../../organism/grow/nginx-door.ts';
import { renderNginxConfig, type NginxConfigOptions } from '../../../organism/grow/nginx.ts';
import { isAlive, signalCell, signalIfOurs, waitGone } from '../../../organism/kernel/processes.ts';
import type { CensusEntry } from '../../../organism/kernel/census.ts';
import { ChatClient } from '../../helpers/chat-client.ts';
import { CLI, cli, grow, observe, until } from '../../helpers/grow.ts';
import { tempDir } from '../../helpers/nats.ts';
import { reapOnExit } from '../../helpers/reaper.ts';
import { registerAccount } from '../../../client/app/account.ts';
import { within } from '../../../organism/kernel/within.ts';

function nginxBin(t: ExecutionContext): string {
  try {
    return findNginx();
  } catch (e) {
    t.fail(`${(e as Error).message} (these tests run Debian's nginx: apt-get install -y --no-install-recommends nginx)`);
    throw e;
  }
}

/** `nginx -t` on a rendered config, in a prefix of its own. */
function nginxTest(bin: string, prefix: string, text: string): { status: number | null; stderr: string } {
  mkdirSync(prefix, { recursive: true });
  const file = join(prefix, 'nginx.conf');
  writeFileSync(file, text);
  const r = spawnSync(bin, ['-t', '-q', '-p', prefix, '-c', file, '-e', 'stderr'], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stderr: r.stderr };
}

/** The `server` lines of the upstream block. */
function upstreamServers(conf: string): string[] {
  const block = /upstream cellular_receivers \{([\s\S]*?)\n {2}\}/.exec(conf)?.[1] ?? '';
  return [...block.matchAll(/^\s+server (\S+) max_fails=1 fail_timeout=10s;$/gm)].map((m) => m[1]!);
}

/** Structure every rendered file keeps: balanced braces, every line a comment, a block edge or a directive ending in `;`. */
function wellFormed(conf: string): boolean {
  let depth = 0;
  for (const raw of conf.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.endsWith('{')) depth++;
    else if (line === '}') depth--;
    else if (!line.endsWith(';')) return false;
    if (depth < 0) return false;
  }
  return depth === 0;
}

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const port = fc.integer({ min: 1, max: 65_535 });
const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
const dnsName = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
const host = fc.oneof(ipv4, dnsName, fc.constantFrom('[::1]', '[fe80::1]', '[2001:db8::8]'));
const receiverUrl = fc.tuple(host, port, fc.boolean()).map(([h, p, slash]) => `http://${h}:${p}${slash ? '/' : ''}`);
/** Characters that would end a directive, open or close a block, quote, name a variable or comment. */
const hostile = fc.constantFrom(' ', ';', '"', "'", '{', '}', '$', '#', '\n', '\r', '\t', '\\', '`', '\0', '/', '?', '@');

test('nginx renderer - every receiver appears once in the upstream, duplicates and trailing slashes folded; /receivers names the front door only', (t) => {
  fc.assert(
    fc.property(fc.array(receiverUrl, { maxLength: 12 }), fc.boolean(), (urls, twice) => {
      const input = twice ? [...urls, ...urls] : urls;
      const conf = renderNginxConfig({ receivers: input, listen: '127.0.0.1:9000' });
      const expected = [...new Set(urls.map((u) => u.replace(/^http:\/\//, '').replace(/\/$/, '').toLowerCase()))].sort();
      const servers = upstreamServers(conf);
      t.deepEqual([...servers].sort(), expected);
      t.is(new Set(servers).size, servers.length, 'no receiver twice');
      t.true(wellFormed(conf));
      const answer = /return 200 '([^']*)';/.exec(conf)?.[1];
      t.deepEqual(JSON.parse(answer!), { receivers: ['http://127.0.0.1:9000'] });
      t.is(/hash \$remote_addr consistent;/.test(conf), urls.length > 0);
      if (urls.length === 0) t.regex(conf, /return 503 "cellular: no receiver is alive/);
      return true;
    }),
    { numRuns: 200 },
  );
});

test('nginx renderer - hostile inputs are refused (NGINX_ERR_INPUT); whatever is accepted renders only plain tokens', (t) => {
  const refused = (o: NginxConfigOptions) => {
    try {
      renderNginxConfig(o);
      return false;
    } catch (e) {
      return isCellularError(e, 'NGINX_ERR_INPUT');
    }
  };
  // A character that could inject nginx syntax, anywhere in an otherwise good value.
  const injected = (good: fc.Arbitrary<string>) => fc.tuple(good, hostile, fc.nat()).map(([s, c, i]) => `${s.slice(0, i % (s.length + 1))}${c}${s.slice(i % (s.length + 1))}`);
  fc.assert(
    fc.property(injected(receiverUrl), (url) => {
      // A '/' or '@' may land where it still parses (a trailing slash): then it must be one of those.
      const harmless = /^http:\/\/[^/\s;"'{}$#\\`\0?@]+\/?$/.test(url) && !refused({ receivers: [url] });
      t.true(refused({ receivers: [url] }) || harmless, url);
    }),
    { numRuns: 300 },
  );
  const { listen, names, paths, publics } = {
    listen: injected(fc.tuple(ipv4, port).map(([h, p]) => `${h}:${p}`)).filter((s) => !/^[\d.]+:\d+$/.test(s) && !/^\/?\d/.test(s)),
    names: injected(dnsName).filter((s) => !/^[a-z0-9.\s,-]+$/.test(s)),
    // '/', '@' are path characters: only the others count as injected here.
    paths: injected(fc.constantFrom('/etc/ssl/chat.pem', '/srv/tls/key.pem')).filter((s) => !/^\/[A-Za-z0-9._+@=,:/-]+$/.test(s)),
    publics: injected(fc.tuple(dnsName, port).map(([h, p]) => `https://${h}:${p}`)).filter((s) => !/^https:\/\/[a-z0-9.-]+:\d+\/?$/.test(s)),
  };
  fc.assert(fc.property(listen, (l) => refused({ receivers: [], listen: l })), { numRuns: 200 });
  fc.assert(fc.property(names, (n) => refused({ receivers: [], serverName: n })), { numRuns: 200 });
  fc.assert(fc.property(paths, (p) => refused({ receivers: [], tls: { cert: p, key: '/k.pem' } }) && refused({ receivers: [], tls: { cert: '/c.pem', key: p } })), { numRuns: 200 });
  fc.assert(fc.property(publics, (u) => refused({ receivers: [], publicUrl: u })), { numRuns: 200 });
  // Fixed cases, each a real injection attempt.
  for (const url of ['http://127.0.0.1:8101; } server { listen 80', 'http://127.0.0.1:8101 backup', 'http://$host:1', 'http://a.b:1#', 'http://1.2.3.4:99999', 'http://1.2.3.4', 'https://1.2.3.4:1', 'http://user@1.2.3.4:1', 'http://1.2.3.4:1/x', 'http://[zz::1]:1', 'HTTP://1.2.3.4:1', ' http://1.2.3.4:1']) {
    t.true(refused({ receivers: ['http://127.0.0.1:1', url] }), url);
  }
  t.true(refused({ receivers: [], listen: '0.0.0.0:443' }), 'every address, no name: /receivers would not know the public URL');
  t.true(refused({ receivers: [], listen: '127.0.0.1:0' }));
  t.true(refused({ receivers: [], publicUrl: "https://x.org/'" }));
  t.true(refused({ receivers: [], tls: { cert: 'relative.pem', key: '/k' } }));
  t.true(refused({ receivers: [], tls: { cert: '/etc/../root/c.pem', key: '/k' } }));
  // Anything at all: refused, or rendered as plain `host:port` server lines in a well-formed file.
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      for (const candidate of [s, `http://${s}`, `http://${s}:80`, `http://127.0.0.1:${s}`]) {
        if (refused({ receivers: [candidate] })) continue;
        const conf = renderNginxConfig({ receivers: [candidate] });
        t.true(wellFormed(conf));
        t.true(upstreamServers(conf).every((x) => /^[a-z0-9.-]+:\d+$|^\[[0-9a-f:.]+\]:\d+$/.test(x)), candidate);
      }
    }),
    { numRuns: 300 },
  );
});

test('nginx renderer - real nginx -t accepts generated configs (plain, TLS with a server name, IPv6 listen, no receivers)', (t) => {
  const bin = nginxBin(t);
  const dir = tempDir(t, 'cellular-nginx-t-');
  // A self-signed certificate, for the TLS cases.
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=chat.example.org', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  const haveCert = ssl.status === 0;
  if (!haveCert) t.log(`openssl unavailable, TLS cases skipped: ${ssl.error?.message ?? ssl.stderr}`);
  const loopbackUrl = fc.tuple(fc.constantFrom('127.0.0.1', '127.0.0.2', '[::1]', 'localhost'), port).map(([h, p]) => `http://${h}:${p}`);
  let n = 0;
  fc.assert(
    fc.property(
      fc.array(loopbackUrl, { maxLength: 6 }),
      fc.constantFrom('127.0.0.1', '[::1]', '0.0.0.0'),
      fc.integer({ min: 1024, max: 65_535 }),
      fc.boolean(),
      fc.option(fc.constantFrom('chat.example.org', 'chat.example.org, *.chat.example.org'), { nil: undefined }),
      (receivers, listenHost, listenPort, tls, serverName) => {
        const o: NginxConfigOptions = {
          receivers, listen: `${listenHost}:${listenPort}`,
          ...(serverName ? { serverName } : listenHost === '0.0.0.0' ? { publicUrl: 'https://chat.example.org' } : {}),
          ...(tls && haveCert ? { tls: { cert, key } } : {}),
        };
        const r = nginxTest(bin, join(dir, `case-${n++}`), renderNginxConfig(o));
        t.is(r.status, 0, `${JSON.stringify(o)}\n${r.stderr}`);
      },
    ),
    { numRuns: 10 },
  );
  // The README/doc example: TLS, a name, no receivers yet.
  if (haveCert) t.is(nginxTest(bin, join(dir, 'tls'), renderNginxConfig({ receivers: [], listen: '127.0.0.1:8443', serverName: 'chat.example.org', tls: { cert, key } })).status, 0);
});

test('nginx door - live receivers are the receiver tissue, alive or suspect, with a well-formed URL', (t) => {
  const e = (id: string, tissue: string, state: CensusEntry['state'], url: string | null) => ({ id, tissue, state, url }) as CensusEntry;
  const bad: string[] = [];
  const urls = liveReceiverUrls([
    e('r1', 'receiver', 'alive', 'http://127.0.0.1:8102'),
    e('r2', 'receiver', 'suspect', 'http://127.0.0.1:8101/'),
    e('r3', 'receiver', 'draining', 'http://127.0.0.1:8103'),
    e('r4', 'receiver', 'dead', 'http://127.0.0.1:8104'),
    e('r5', 'receiver', 'alive', null),
    e('r6', 'receiver', 'alive', 'http://127.0.0.1:8105; evil'),
    e('w1', 'worker', 'alive', 'http://127.0.0.1:8106'),
  ], new Set(['receiver']), (x) => bad.push(x.id));
  t.deepEqual(urls, ['http://127.0.0.1:8101', 'http://127.0.0.1:8102']);
  t.deepEqual(bad, ['r6']);
});

test('nginx CLI - bad flags fail before the organism is reached', (t) => {
  const dir = tempDir(t);
  const usage = cli(['nginx', '--state-dir', dir, '--tls-cert', '/x.pem']);
  t.is(usage.status, 1);
  t.regex(usage.stderr, /error CLI_ERR_USAGE: --tls-cert and --tls-key go together/);
  const input = cli(['nginx', '--state-dir', dir, '--listen', '127.0.0.1:80;include /etc/passwd']);
  t.is(input.status, 1);
  t.regex(input.stderr, /error NGINX_ERR_INPUT: the listen address must be/);
});

test('nginx door - with fake receivers: runs nginx, debounces a burst of changes into one rewrite and reload, answers 503 with none, stops on abort; an nginx dying by itself ends the door; one started elsewhere is reloaded by its pid file and left running', async (t) => {
  const bin = nginxBin(t);
  const e = t.throws(() => findNginx({ NGINX_BIN: '/nonexistent/nginx' }));
  t.true(isCellularError(e, 'NGINX_ERR_NOT_FOUND'));
  t.regex(e!.message, /apt-get install -y nginx/);

  const dir = tempDir(t, 'cellular-nginx-door-');
  // Two tiny HTTP servers stand in for receivers: each answers its own name.
  const backends = await Promise.all(['one', 'two'].map(async (name) => {
    const srv = createServer((_req, res) => res.end(name));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
    return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  }));
  let urls: string[] = [backends[0]!];
  const listen = `127.0.0.1:${await freePort('127.0.0.1')}`;
  const lines: string[] = [];
  const abort = new AbortController();
  const door = new NginxDoor({ receivers: () => urls, prefix: join(dir, 'nginx'), render: { listen }, run: true, nginxBin: bin, debounceMs: 300, pollMs: 50, signal: abort.signal, say: (l) => lines.push(l) });
  const unreap = reapOnExit(() => door.emergencyStop());
  t.teardown(async () => {
    await door.close();
    unreap();
  });
  await door.start();
  const pid = door.pid!;
  t.true(isNginxMaster(pid, door.prefix));
  t.is(await (await fetch(`http://${listen}/`)).text(), 'one');
  t.deepEqual(await (await fetch(`http://${listen}/receivers`)).json(), { receivers: [`http://${listen}`] });

  // A burst: three sets within the debounce; only the last is written, once.
  urls = [];
  await sleep(60);
  urls = [backends[1]!, backends[0]!];
  await sleep(60);
  urls = [backends[1]!];
  await until(() => door.writes === 2, 3_000, 'one rewrite');
  await sleep(600);
  t.is(door.writes, 2, lines.join('\n'));
  t.is(door.reloads, 1);
  t.deepEqual(door.receivers, [backends[1]!]);
  // (A reload resets idle keep-alive connections of the retired workers: a failed fetch is tried again.)
  await until(async () => (await fetch(`http://${listen}/`).then((r) => r.text(), () => '')) === 'two', 5_000, 'nginx serving the new set');

  // None: a valid config whose / says so with a 503.
  urls = [];
  await until(() => door.writes === 3, 3_000, 'the empty rewrite');
  await until(async () => (await fetch(`http://${listen}/`).then((r) => r.status, () => 0)) === 503, 5_000, '503 with no receivers');
  t.regex(await (await fetch(`http://${listen}/`)).text(), /no receiver is alive/);

  // Aborting stops nginx by pid.
  abort.abort();
  t.is(await door.ended, undefined);
  t.true(await waitGone(pid, 5_000));

  // A second door on the same prefix: nginx killed behind its back ends it with an error.
  const again = new NginxDoor({ receivers: () => [backends[0]!], prefix: join(dir, 'nginx'), render: { listen }, run: true, nginxBin: bin, say: (l) => lines.push(l) });
  const unreap2 = reapOnExit(() => again.emergencyStop());
  t.teardown(async () => {
    await again.close();
    unreap2();
  });
  await again.start();
  const pid2 = again.pid!;
  t.true(signalIfOurs(pid2, ['nginx: master process', ` -p ${again.prefix} `], 'SIGKILL'));
  const ended = await within(again.ended, 5_000, 'timeout' as const);
  t.true(isCellularError(ended, 'NGINX_ERR_START'), String(ended));
  // SIGKILL leaves the master's workers behind: they are ours, in its process group.
  try {
    process.kill(-pid2, 'SIGKILL');
  } catch {
    // none left
  }

  // --watch with --nginx-pid: an nginx started here by hand, reloaded by the pid in its pid file.
  const prefix = join(dir, 'own');
  const watched = new NginxDoor({ receivers: () => urls, prefix, render: { listen }, nginxPidFile: join(prefix, 'nginx.pid'), nginxBin: bin, debounceMs: 100, pollMs: 50, say: (l) => lines.push(l) });
  urls = [backends[0]!];
  mkdirSync(prefix, { recursive: true });
  writeFileSync(join(prefix, 'nginx.conf'), renderNginxConfig({ receivers: urls, listen }));
  const own = spawn(bin, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', 'error.log', '-g', 'daemon off;'], { stdio: 'ignore', detached: true });
  const ownGone = new Promise((r) => own.once('exit', r));
  const unreap3 = reapOnExit(() => void signalIfOurs(own.pid!, ['nginx: master process', ` -p ${prefix} `], 'SIGTERM'));
  t.teardown(async () => {
    await watched.close();
    signalIfOurs(own.pid!, ['nginx: master process', ` -p ${prefix} `], 'SIGTERM');
    await within(ownGone, 5_000, undefined);
    unreap3();
  });
  await until(() => existsSync(join(prefix, 'nginx.pid')) && readFileSync(join(prefix, 'nginx.pid'), 'utf8').trim() === String(own.pid), 5_000, 'our own nginx up');
  await watched.start();
  t.is(watched.reloads, 1, 'the first write reloads it too');
  urls = [backends[1]!];
  await until(() => watched.reloads === 2, 3_000, 'a reload by pid file');
  await until(async () => (await fetch(`http://${listen}/`).then((r) => r.text(), () => '')) === 'two', 5_000, 'the hand-started nginx serving the new set');
  await watched.close();
  t.true(isAlive(own.pid!), 'an nginx the door did not start is left running');
});

/** A messenger organism of two receivers and a worker, grown by the real CLI. */
const MESSENGER = (portMin: number) => [
  'tissues.echo=null', 'tissues.stem.min=0',
  'tissues.receiver={"module":"receiver","min":2,"max":2}', 'tissues.worker={"module":"worker","min":1,"max":1}',
  `messenger.portMin=${portMin}`, `messenger.portMax=${portMin + 40}`, 'messenger.frontPort=0', 'messenger.scryptLogN=12',
];

interface User {
  name: string;
  id: Identity;
  c: ChatClient;
  token: string;
}

test.serial('nginx front door - two users chat end-to-end encrypted through nginx; a receiver killed by pid, chat goes on through nginx and the config is rewritten without it', async (t) => {
  nginxBin(t);
  t.timeout(90_000);
  const started = Date.now();
  const g = await grow(t, { sets: MESSENGER(20_000 + Math.floor(Math.random() * 40_000)) });
  const observer = await observe(t, g);
  const receivers = () => observer.census.living().filter((c) => c.tissue === 'receiver' && c.state === 'alive' && c.url !== null);
  await until(() => receivers().length === 2, 15_000, 'two receivers with a URL');

  // Once: the config on stdout names both receivers.
  const once = cli(['nginx', '--state-dir', g.stateDir, '--listen', '127.0.0.1:9']);
  t.is(once.status, 0, once.stderr);
  t.deepEqual(upstreamServers(once.stdout).sort(), receivers().map((r) => r.url!.replace('http://', '')).sort());

  // The door: nginx run and watched by the CLI, on a free loopback port.
  const listenPort = await freePort('127.0.0.1');
  const front = `http://127.0.0.1:${listenPort}`;
  const prefix = join(g.stateDir, 'nginx');
  const conf = join(prefix, 'nginx.conf');
  const child = spawn(process.execPath, [CLI, 'nginx', '--state-dir', g.stateDir, '--run', '--watch', '--listen', `127.0.0.1:${listenPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stdout!.on('data', () => undefined);
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const nginxPid = () => {
    const pid = Number(/nginx: running, pid (\d+)/.exec(err)?.[1]);
    return pid > 0 ? pid : undefined;
  };
  const killNginx = () => {
    const pid = nginxPid();
    if (pid !== undefined && isNginxMaster(pid, prefix)) signalIfOurs(pid, ['nginx: master process', ` -p ${prefix} `], 'SIGTERM');
  };
  const unreap = reapOnExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    killNginx();
  });
  const clients: ChatClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    if (!t.passed) t.log(`--- cellular nginx:\n${err}`, existsSync(join(prefix, 'error.log')) ? readFileSync(join(prefix, 'error.log'), 'utf8').slice(-2000) : '');
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      if (!(await within(exited.then(() => true), 10_000, false))) child.kill('SIGKILL');
    }
    killNginx();
    unreap();
  });
  await until(() => nginxPid() !== undefined || child.exitCode !== null, 20_000, 'nginx running');
  const master = nginxPid();
  t.truthy(master, err);
  t.true(isNginxMaster(master!, prefix));
  const live = () => receivers().map((r) => r.url!.replace('http://', '')).sort();
  t.deepEqual(upstreamServers(readFileSync(conf, 'utf8')).sort(), live());
  t.regex(readFileSync(conf, 'utf8'), new RegExp(`listen 127\\.0\\.0\\.1:${listenPort};`));

  // nginx answers /receivers itself, with its own URL; the page and /healthz come from a receiver.
  t.deepEqual(await (await fetch(`${front}/receivers`)).json(), { receivers: [front] });
  const health = (await (await fetch(`${front}/healthz`)).json()) as { cell: string };
  t.true(receivers().some((r) => r.id === health.cell), 'a receiver answers /healthz through nginx');
  t.is((await fetch(`${front}/`)).status, 200);

  // Two users, through nginx only, messages sealed with the client's envelope.
  const user = async (name: string): Promise<User> => {
    const c = await ChatClient.connect(front);
    clients.push(c);
    const id = generateIdentity();
    const s = (await registerAccount(c, name, `pw-${name}-secret`, id)).session;
    return { name, id, c, token: s.token };
  };
  const send = async (from: User, to: User, text: string) => {
    const msg = randomBytes(12).toString('base64url');
    const header = { v: 1 as const, from: from.name, to: to.name, msg, at: Date.now(), senderKeyId: keyId(from.id.ed25519.publicKey), recipientKeyId: keyId(to.id.x25519.publicKey) };
    const body = seal({ plaintext: new TextEncoder().encode(text), header, sender: from.id, recipientX25519: to.id.x25519.publicKey });
    await from.c.request({ t: 'send', msg, to: to.name, body });
    return msg;
  };
  const read = async (u: User, msg: string, from: User) => {
    await u.c.until(() => u.c.inbox.some((d) => d.msg === msg), 10_000);
    const d = u.c.inbox.find((x) => x.msg === msg)!;
    return new TextDecoder().decode(open({ sealed: d.body, recipient: u.id, senderEd25519: from.id.ed25519.publicKey, expect: { from: from.name, to: u.name } }).plaintext);
  };
  const alice = await user('alice');
  const bob = await user('bob');
  t.is(await read(bob, await send(alice, bob, 'hello bob, through nginx'), alice), 'hello bob, through nginx');
  t.is(await read(alice, await send(bob, alice, 'hello alice'), bob), 'hello alice');

  // The receiver holding alice's socket (sticky: bob, from the same address, is there too) is killed by pid.
  const welcome = (await alice.c.request({ t: 'hello' })) as unknown as { cell: string };
  const victim = receivers().find((r) => r.id === welcome.cell)!;
  t.truthy(victim, `alice's receiver ${welcome.cell} is in the census`);
  const survivor = receivers().find((r) => r.id !== victim.id)!;
  t.true(signalCell(victim.pid, victim.id, g.record.id, 'SIGKILL'), 'the victim was ours, and signalled');
  t.true(await waitGone(victim.pid, 5_000));
  await within(alice.c.closed, 5_000, undefined);

  // At once, before any rewrite: nginx skips the dead receiver (proxy_next_upstream), the sessions resume.
  const again = async (u: User) => {
    u.c = await ChatClient.connect(front);
    clients.push(u.c);
    const w = (await u.c.request({ t: 'hello', session: u.token })) as unknown as { user: string; cell: string };
    t.is(w.user, u.name);
    t.not(w.cell, victim.id);
    u.c.autoAck();
  };
  await again(alice);
  await again(bob);
  t.is(await read(bob, await send(alice, bob, 'still here after the failover'), alice), 'still here after the failover');

  // The door rewrites the config without the dead receiver and reloads nginx. Its regrown
  // successor may bind the very port it freed (the lowest free one of the range): the config
  // is then right to name that address again, for the new cell. So: the config names exactly
  // the live receivers, and the victim is not one of them.
  const victimAddr = victim.url!.replace('http://', '');
  const victimHeld = () => receivers().some((r) => r.id !== victim.id && r.url!.replace('http://', '') === victimAddr);
  await until(() => !receivers().some((r) => r.id === victim.id) && upstreamServers(readFileSync(conf, 'utf8')).sort().join() === live().join() && (!upstreamServers(readFileSync(conf, 'utf8')).includes(victimAddr) || victimHeld()), 15_000, 'the config without the dead receiver');
  t.true(upstreamServers(readFileSync(conf, 'utf8')).includes(survivor.url!.replace('http://', '')));
  // A reload, unless the successor came up on the victim's port before the door's debounce
  // ended: then the addresses never changed, and there was nothing to rewrite (seen in CI).
  const writes = () => err.match(/nginx\.conf written:/g)?.length ?? 0;
  if (writes() > 1 || !victimHeld()) await until(() => /nginx: reloaded \(SIGHUP to pid/.test(err), 5_000, 'a reload');
  // The tissue regrows to two; the door follows (a new receiver on a new port).
  await until(() => live().length === 2 && upstreamServers(readFileSync(conf, 'utf8')).sort().join() === live().join(), 25_000, 'the config following the regrown receiver');
  t.true(!upstreamServers(readFileSync(conf, 'utf8')).includes(victimAddr) || victimHeld(), 'the dead receiver\'s address is gone, or a live successor holds it');
  // After the reloads, a new socket through nginx still chats.
  const carol = await user('carol');
  t.is(await read(carol, await send(alice, carol, 'hi carol'), alice), 'hi carol');
  // A reload retires the old workers, closing their idle keep-alive connections: a client
  // reusing one sees it reset (a browser retries such a GET itself); a fresh connection is served.
  t.deepEqual(await (await fetch(`${front}/receivers`, { headers: { connection: 'close' } }).catch(() => fetch(`${front}/receivers`, { headers: { connection: 'close' } }))).json(), { receivers: [front] });

  // Ctrl-C: the CLI stops its nginx by pid and exits 0.
  for (const c of clients) c.close();
  child.kill('SIGINT');
  t.is(await within(exited, 10_000, 'timeout'), 0, err);
  t.true(await waitGone(master!, 5_000), 'nginx master gone');
  t.false(isAlive(master!));
  t.regex(err, /nginx: stopped/);
  t.log(`front door test took ${Date.now() - started} ms`, err);
});
