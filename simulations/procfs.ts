/**
 * What the kernel says about a process, read from /proc (Linux only): resident memory
 * (`status` VmRSS), proportional and private memory (`smaps_rollup`), and CPU time
 * consumed by all of its threads (`stat` utime + stime). The benchmark reads these itself
 * rather than trusting what a cell reports about itself.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface MemorySample {
  /** Resident set size (VmRSS), bytes. */
  rss: number;
  /** Proportional set size: shared pages divided among their sharers, bytes. */
  pss: number;
  /** Private_Clean + Private_Dirty: what exiting this process would give back, bytes. */
  private: number;
  /** Anonymous memory (heaps, stacks), bytes. */
  anonymous: number;
}

let ticks: number | undefined;

/** Kernel clock ticks per second (USER_HZ), the unit of utime/stime; 100 when unknown. */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      ticks = Number.isInteger(n) && n > 0 ? n : 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** Fields of a `Key:   123 kB` file, in bytes. */
function kbFields(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]) * 1024);
  }
  return out;
}

/** Memory of `pid`, or undefined when it is gone or unreadable. */
export function readMemory(pid: number): MemorySample | undefined {
  try {
    const status = kbFields(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const rollup = kbFields(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    const rss = status.get('VmRSS');
    const pss = rollup.get('Pss');
    if (rss === undefined || pss === undefined) return undefined;
    return {
      rss,
      pss,
      private: (rollup.get('Private_Clean') ?? 0) + (rollup.get('Private_Dirty') ?? 0),
      anonymous: rollup.get('Anonymous') ?? 0,
    };
  } catch {
    return undefined;
  }
}

/**
 * CPU time used so far (user + system), µs; undefined when gone. Without `tid`: every
 * thread of `pid`; with `tid`: that one thread (the main thread's tid is the pid).
 */
export function readCpuMicros(pid: number, tid?: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1e6) / clockTicks();
}
