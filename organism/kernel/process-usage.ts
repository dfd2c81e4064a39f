/**
 * CPU time and resident memory of processes, read without starting any process.
 *
 * A cell must never fork a helper (pidusage's first call runs `getconf` through a shell): until
 * the fork execs, the child carries the cell's own command line, markers included, and anything
 * counting the organism's processes at that moment sees one cell too many (seen in CI, right
 * after boot: 3 processes where the genome asked for 2).
 */
import { readFileSync } from 'node:fs';

/** What one reading of a process gives: CPU time used since it started, and its RSS. */
export interface Usage {
  /** User + system CPU time since the process started, ms. */
  cpuMs: number;
  /** Resident set size, bytes. */
  rss: number;
}

/**
 * /proc reports CPU times in USER_HZ ticks, a kernel ABI constant of 100 on every
 * architecture Node.js runs on (x86, arm, ppc, s390, riscv); sysconf(_SC_CLK_TCK) says the same.
 */
const USER_HZ = 100;

let page: number | undefined;

/**
 * The kernel's page size (4 KiB on x86, 16 or 64 KiB on some arm64 kernels), found once from
 * this process: its RSS in bytes against its RSS in pages, to the nearest power of two.
 */
export function pageSize(): number {
  if (page !== undefined) return page;
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const pages = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[21]);
    const bytes = process.memoryUsage.rss();
    page = pages > 0 ? 2 ** Math.round(Math.log2(bytes / pages)) : 4096;
  } catch {
    page = 4096;
  }
  return page;
}

/**
 * The usage of another process on this host, from /proc/<pid>/stat;
 * undefined if it is gone or /proc cannot be read (not Linux).
 */
export function usageOf(pid: number): Usage | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    // A zombie (killed, not yet reaped) has no memory and will never run again: it is gone,
    // not a liar claiming memory it lacks (at 108 cells, a cell just killed -9 was once
    // convicted as a liar: "claims 87 MiB RSS, its process has 0 MiB").
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    // Field 24: resident pages. One file, not two: cells read their watched peers every check.
    const pages = Number(rest[21]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(pages)) return undefined;
    return { cpuMs: ((utime + stime) * 1000) / USER_HZ, rss: pages * pageSize() };
  } catch {
    return undefined;
  }
}

/**
 * This process's own usage (any thread may ask: both figures are process-wide), and its CPU
 * percent of one core since the previous reading (the first: since the process started).
 */
export class OwnUsage {
  #cpuMs: number | undefined;
  #at = 0;

  /** CPU percent of one core since the last read, CPU time and RSS now. */
  read(): Usage & { cpu: number } {
    const used = process.cpuUsage();
    const cpuMs = (used.user + used.system) / 1000;
    const now = performance.timeOrigin + performance.now();
    const prevMs = this.#cpuMs ?? 0;
    const since = this.#cpuMs === undefined ? process.uptime() * 1000 : now - this.#at;
    this.#cpuMs = cpuMs;
    this.#at = now;
    const cpu = since > 0 ? Math.max(0, ((cpuMs - prevMs) / since) * 100) : 0;
    return { cpu, cpuMs, rss: process.memoryUsage.rss() };
  }
}
