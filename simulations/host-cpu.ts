/**
 * Each test host its own share of the CPU: a CPU cgroup per host, equal weights. The test
 * hosts are network namespaces of one machine, so they share its two cores; separate machines
 * would not. A cancer's fork storm on one host then starved every other host and the run
 * itself (its loop stalled 8 s in one 150-cell run), and the census of every host saw the
 * others fall silent at once. With a cgroup each, a busy host gets its share and no more
 * while the others want theirs (weights are work-conserving: an idle machine is all one
 * host's), which is what a host of its own would see. Needs root and the `cpu` controller
 * (cgroup v1 `cpu.shares` or v2 `cpu.weight`); without them the hosts share the CPU as
 * before and `reason` says why.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The `cpu` controller's hierarchy: v1 (its own mount) or v2 (the unified one, if it has cpu). */
function cpuHierarchy(): { root: string; weight: (dir: string, hosts: number) => void } | undefined {
  const v1 = '/sys/fs/cgroup/cpu';
  if (existsSync(join(v1, 'cpu.shares'))) return { root: v1, weight: (d, n) => writeFileSync(join(d, 'cpu.shares'), String(1024 * n)) };
  for (const v2 of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    try {
      if (readFileSync(join(v2, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('cpu')) {
        // A v2 child gets the controller only if its parent hands it down.
        writeFileSync(join(v2, 'cgroup.subtree_control'), '+cpu');
        return { root: v2, weight: (d, n) => writeFileSync(join(d, 'cpu.weight'), String(100 * n)) };
      }
    } catch {
      // not this one
    }
  }
  return undefined;
}

export class HostCpu {
  readonly #dirs = new Map<string, string>();
  #root: string | undefined;
  readonly #tag: string;
  readonly #weight: ((dir: string, hosts: number) => void) | undefined;
  /** This process's own cgroup, once it joined one (`joinAs`). */
  #own: string | undefined;
  /** Why the hosts share the CPU (no controller, not root), or undefined once each has its own. */
  reason: string | undefined;

  /** One cgroup per host name, under `tag` (unique to the run). */
  constructor(tag: string, hosts: readonly string[]) {
    const h = cpuHierarchy();
    this.#tag = tag;
    this.#weight = h?.weight;
    if (!h) {
      this.reason = 'no cgroup cpu controller here';
      return;
    }
    this.#root = h.root;
    try {
      for (const name of hosts) {
        const dir = join(h.root, `cellular-${tag}-${name}`);
        mkdirSync(dir, { recursive: true });
        h.weight(dir, 1);
        this.#dirs.set(name, dir);
      }
    } catch (e) {
      this.reason = `cannot make a cpu cgroup: ${(e as Error).message}`;
      for (const dir of this.#dirs.values()) rmdirSync(dir);
      this.#dirs.clear();
    }
  }

  /** Whether each host has its own cgroup. */
  get separate(): boolean {
    return this.#dirs.size > 0;
  }

  /**
   * `argv` run inside `host`'s cgroup: a shell joins it, then execs the command, so the
   * command and everything it starts (brokers, cells, zygotes) are in it from their first
   * instruction. Unchanged when the hosts share the CPU.
   */
  wrap(host: string, argv: readonly string[]): string[] {
    const dir = this.#dirs.get(host);
    if (!dir) return [...argv];
    return ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', join(dir, 'cgroup.procs'), ...argv];
  }

  /**
   * This process into a cgroup of its own that weighs as `hosts` hosts: a run that simulates
   * made-up hosts in-process (simulations/synthetic-cells.ts) stands for their machines. Left
   * in the root cgroup it counted as one task against whole hosts, and 964 synthetic cells'
   * digests came late enough that every real cell judged them silent.
   */
  joinAs(name: string, hosts: number): void {
    if (!this.separate || !this.#weight || !this.#root) return;
    const dir = join(this.#root, `cellular-${this.#tag}-${name}`);
    mkdirSync(dir, { recursive: true });
    this.#weight(dir, hosts);
    writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
    this.#own = dir;
    this.#dirs.set(name, dir);
  }

  /**
   * Removes the cgroups, each once it is empty (up to `waitMs` for the last processes of a
   * host to finish exiting). Returns what could not be removed.
   */
  async close(waitMs = 5_000): Promise<string[]> {
    if (this.#own && this.#root) {
      try {
        writeFileSync(join(this.#root, 'cgroup.procs'), String(process.pid));
      } catch {
        // left where it is: its cgroup cannot be removed below, and says so
      }
      this.#own = undefined;
    }
    const until = Date.now() + waitMs;
    const left: string[] = [];
    for (const [name, dir] of this.#dirs) {
      for (;;) {
        try {
          rmdirSync(dir);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || Date.now() > until) {
            left.push(`${name}: ${(e as Error).message} (${readTasks(dir)})`);
            break;
          }
          await sleep(100);
        }
      }
    }
    this.#dirs.clear();
    return left;
  }
}

function readTasks(dir: string): string {
  try {
    const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().split(/\s+/).filter(Boolean);
    return pids.length === 0 ? 'empty' : `pids ${pids.slice(0, 8).join(', ')}`;
  } catch {
    return 'unreadable';
  }
}
