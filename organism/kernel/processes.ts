/**
 * Process identity checks. We only ever signal a pid after checking that its command line
 * is the process we started (a pid can be reused by the kernel once its owner exits).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostName } from './host.ts';

/** True if `path` is a file this process may execute (a binary found by name: nats-server, nginx). */
export function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The command line of `pid` as one space-joined string, or undefined if it is gone. */
export function commandLineOf(pid: number): string | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    // A zombie has an empty cmdline: it is gone for our purposes.
    return raw.length === 0 ? undefined : raw.split('\0').filter(Boolean).join(' ');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  }
  // No /proc (macOS): ask ps.
  try {
    const out = execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return out.length === 0 ? undefined : out;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  return commandLineOf(pid) !== undefined;
}

/** True when `pid` is alive and its command line contains every marker. */
export function isProcessOf(pid: number, markers: readonly string[]): boolean {
  const cmd = commandLineOf(pid);
  return cmd !== undefined && markers.every((m) => cmd.includes(m));
}

/** Signals `pid` only if it still carries the markers. Returns whether a signal was sent. */
export function signalIfOurs(pid: number, markers: readonly string[], signal: NodeJS.Signals): boolean {
  if (!isProcessOf(pid, markers)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `pid` is gone, polling; resolves false on timeout. */
export async function waitGone(pid: number, timeoutMs: number, pollMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!isAlive(pid)) return true;
    await sleep(pollMs);
  }
  return !isAlive(pid);
}

/** Every live process whose command line contains `marker` (this host only). */
export function processesWith(marker: string): { pid: number; cmdline: string }[] {
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  } catch {
    // No /proc (macOS): ask ps for every pid.
    const out = execFileSync('ps', ['-eo', 'pid='], { encoding: 'utf8' });
    pids = out.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
  }
  const found: { pid: number; cmdline: string }[] = [];
  for (const pid of pids) {
    if (pid === process.pid) continue;
    const cmdline = commandLineOf(pid);
    // A fork not yet exec'd (a cell starting its child) carries its parent's command line
    // for that moment: it is the parent, not a second process of that name.
    if (cmdline?.includes(marker) && !forkOfSame(pid, cmdline)) found.push({ pid, cmdline });
  }
  return found;
}

/** True if `pid`'s parent has the very same command line: `pid` is a fork on its way to exec. */
function forkOfSame(pid: number, cmdline: string): boolean {
  const ppid = parentOf(pid);
  return ppid !== undefined && ppid > 1 && commandLineOf(ppid) === cmdline;
}

/** The parent pid of `pid` (/proc only; undefined elsewhere or if it is gone). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces or ')'): state, then ppid.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isSafeInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** True if `pid` is stopped (SIGSTOP, a debugger) or a zombie: alive on paper, doing nothing. */
export function isStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'T' || state === 't' || state === 'Z';
  } catch {
    return false;
  }
}

/** Parses a cell's command-line markers (`[--host <h>] --cell <id> --organism <id>`), exactly. */
export function cellMarkersOf(cmdline: string): { cell: string; organism: string; host: string | null } | undefined {
  const m = /(?: --host (\S+))? --cell (\S+) --organism (\S+)$/.exec(cmdline);
  return m ? { cell: m[2]!, organism: m[3]!, host: m[1] ?? null } : undefined;
}

/**
 * The cell processes of `organism` on `host` (default this process's host), found by their
 * command-line markers. Test hosts share one process table, so the host is checked too.
 */
export function localCells(organism: string, host: string = hostName()): { pid: number; cell: string }[] {
  return processesWith(` --organism ${organism}`).flatMap(({ pid, cmdline }) => {
    const m = cellMarkersOf(cmdline);
    return m && m.organism === organism && (m.host ?? hostName()) === host ? [{ pid, cell: m.cell }] : [];
  });
}

/** True if `pid` is (still) cell `cell` of `organism`, by its command-line markers. */
function isCell(pid: number, cell: string, organism: string): boolean {
  const cmd = commandLineOf(pid);
  const m = cmd === undefined ? undefined : cellMarkersOf(cmd);
  return m !== undefined && m.cell === cell && m.organism === organism;
}

/** True if `pid` is still cell `cell` of `organism` and runs: not stopped, not a zombie. */
export function cellRuns(pid: number, cell: string, organism: string): boolean {
  return isCell(pid, cell, organism) && !isStopped(pid);
}

/** Signals `pid` only if it is still cell `cell` of `organism`. */
export function signalCell(pid: number, cell: string, organism: string, signal: NodeJS.Signals): boolean {
  if (!isCell(pid, cell, organism)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
