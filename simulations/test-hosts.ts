/**
 * Test hosts on one machine: network namespaces joined by veth pairs to a bridge of our
 * own (10.231.N.0/24), so each "host" has its own address, ports and loopback, and a host
 * can be cut off (its bridge port down) and reconnected. Everything is created here and
 * torn down by close(), by name. Where namespaces cannot be made (not root, no `ip`), it
 * falls back to distinct loopback addresses (127.0.0.2, .3, …) in one namespace, and says
 * so: partitions are then impossible (partition() throws HOSTS_ERR_NO_NETNS).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestHost {
  /** The host's name in the census (grow --host). */
  name: string;
  /** Its address: what its broker and receivers bind. */
  ip: string;
  /** Its network namespace, or null in the loopback fallback. */
  netns: string | null;
  /** Runs `argv` on this host (in its namespace): the command line to spawn. */
  command(argv: readonly string[]): string[];
}

export type HostsMode = 'netns' | 'loopback';

export class HostsError extends Error {
  constructor(
    readonly code: 'HOSTS_ERR_NO_NETNS' | 'HOSTS_ERR_SETUP',
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

function ip(args: readonly string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: `${r.stderr ?? ''}${r.error?.message ?? ''}`.trim() };
}

function must(args: readonly string[]): void {
  const r = ip(args);
  if (!r.ok) throw new HostsError('HOSTS_ERR_SETUP', `ip ${args.join(' ')}: ${r.err}`);
}

export interface TestHostsOptions {
  count: number;
  /** Force the loopback fallback (to test it, or where namespaces are unwanted). */
  loopback?: boolean;
  say?: (line: string) => void;
}

export class TestHosts {
  readonly hosts: TestHost[];
  readonly mode: HostsMode;
  /** Why the loopback fallback was used (null with namespaces). */
  readonly fallbackReason: string | null;
  readonly #tag: string;
  readonly #bridge: string | null;
  readonly #down = new Set<string>();
  #closed = false;

  private constructor(hosts: TestHost[], mode: HostsMode, tag: string, bridge: string | null, reason: string | null) {
    this.hosts = hosts;
    this.mode = mode;
    this.#tag = tag;
    this.#bridge = bridge;
    this.fallbackReason = reason;
  }

  /** Makes `count` hosts: namespaces if it can, else loopback addresses (and says which). */
  static create(o: TestHostsOptions): TestHosts {
    const say = o.say ?? (() => {});
    const tag = randomBytes(3).toString('hex');
    let reason = o.loopback ? 'asked for (--loopback)' : null;
    if (!reason) {
      const root = typeof process.getuid === 'function' && process.getuid() === 0;
      if (!root) reason = 'not root: ip netns needs CAP_SYS_ADMIN';
      else if (!ip(['-V']).ok) reason = 'the ip command (iproute2) is missing';
    }
    if (!reason) {
      try {
        const made = TestHosts.#netns(o.count, tag);
        say(`test hosts: ${o.count} network namespaces on bridge ${made.bridge} (${made.hosts.map((h) => `${h.name} ${h.ip}`).join(', ')})`);
        return made;
      } catch (e) {
        reason = `namespaces could not be made: ${(e as Error).message}`;
      }
    }
    const hosts = Array.from({ length: o.count }, (_v, i): TestHost => ({ name: `h${i + 1}`, ip: `127.0.0.${i + 2}`, netns: null, command: (argv) => [...argv] }));
    say(`test hosts: LOOPBACK FALLBACK (${reason}): ${hosts.map((h) => `${h.name} ${h.ip}`).join(', ')}; partitions cannot be made`);
    return new TestHosts(hosts, 'loopback', tag, null, reason);
  }

  static #netns(count: number, tag: string): TestHosts & { bridge: string } {
    // A /24 no interface here uses yet.
    const used = spawnSync('ip', ['-o', '-4', 'addr'], { encoding: 'utf8' }).stdout ?? '';
    let subnet = '';
    for (let k = 0; k < 64 && !subnet; k++) {
      const n = 1 + Math.floor(Math.random() * 250);
      if (!used.includes(`10.231.${n}.`)) subnet = `10.231.${n}`;
    }
    if (!subnet) throw new HostsError('HOSTS_ERR_SETUP', 'no free 10.231.N.0/24 subnet');
    const bridge = `cbr${tag}`;
    const hosts: TestHost[] = [];
    const made = new TestHosts(hosts, 'netns', tag, bridge, null) as TestHosts & { bridge: string };
    Object.defineProperty(made, 'bridge', { value: bridge });
    try {
      must(['link', 'add', bridge, 'type', 'bridge']);
      must(['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
      must(['link', 'set', bridge, 'up']);
      for (let i = 1; i <= count; i++) {
        const ns = `cell-${tag}-h${i}`;
        const veth = `cv${tag}h${i}`;
        const addr = `${subnet}.${10 + i}`;
        must(['netns', 'add', ns]);
        hosts.push({ name: `h${i}`, ip: addr, netns: ns, command: (argv) => ['ip', 'netns', 'exec', ns, ...argv] });
        must(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        must(['link', 'set', veth, 'master', bridge]);
        must(['link', 'set', veth, 'up']);
        must(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
        must(['-n', ns, 'link', 'set', 'eth0', 'up']);
        must(['-n', ns, 'link', 'set', 'lo', 'up']);
      }
    } catch (e) {
      made.close();
      throw e;
    }
    return made;
  }

  #veth(host: TestHost): string {
    return `cv${this.#tag}${host.name}`;
  }

  /** Cuts `host` off from every other host and from this process (its bridge port goes down). */
  partition(host: TestHost): void {
    if (this.mode !== 'netns') throw new HostsError('HOSTS_ERR_NO_NETNS', `cannot partition ${host.name}: the loopback fallback has no links to cut (${this.fallbackReason})`);
    must(['link', 'set', this.#veth(host), 'down']);
    this.#down.add(host.name);
  }

  /** Reconnects a partitioned host. */
  heal(host: TestHost): void {
    if (this.mode !== 'netns') throw new HostsError('HOSTS_ERR_NO_NETNS', `cannot heal ${host.name}: no namespaces`);
    must(['link', 'set', this.#veth(host), 'up']);
    this.#down.delete(host.name);
  }

  /** Deletes every namespace, veth and the bridge made here (safe to call twice; never throws). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.mode !== 'netns') return;
    // Deleting a namespace deletes its veth end, and with it the peer on the bridge.
    for (const h of this.hosts) if (h.netns) ip(['netns', 'del', h.netns]);
    for (const h of this.hosts) ip(['link', 'del', this.#veth(h)]);
    if (this.#bridge) ip(['link', 'del', this.#bridge]);
  }
}
