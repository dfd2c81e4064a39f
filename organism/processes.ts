/**
 * Process identity checks. We only ever signal a pid after checking that its command line
 * is the process we started (a pid can be reused by the kernel once its owner exits).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

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
