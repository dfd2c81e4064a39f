/**
 * The zygote: a cell process started before it is needed. It has imported the cell and
 * its tissues' DNA, holds no identity, no NATS connection and no timer, and waits on a Unix
 * socket in `<state-dir>/zygotes/` for a birth packet. A maker that divides claims one
 * (`claimZygote`) instead of starting a process: a new cell then skips Node's start and
 * its imports, most of a cold birth's CPU. Grow keeps the pool (organism/grow/zygote-pool.ts).
 *
 * The directory is 0700: only the organism's own user, who could read every key anyway,
 * can hand a zygote a packet (a packet names the module the zygote will run).
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { CellularError } from '../organism/wire/errors.ts';
import { parseBirthPacket, type BirthPacket } from './birth-packet.ts';

/** Where a state dir's zygotes listen. */
export function zygoteDir(stateDir: string): string {
  return join(stateDir, 'zygotes');
}

/** A Unix socket path longer than this does not bind (sun_path is 108 bytes with its NUL). */
export const SOCKET_PATH_MAX = 107;

/** A birth packet is a few KiB (the genome is the bulk); anything near this is not one. */
const PACKET_MAX = 1 << 20;

/** The socket of zygote `pid` in `dir`. */
export function zygoteSocket(dir: string, pid: number): string {
  return join(dir, `${pid}.sock`);
}

/**
 * The hand-over, over one connection, each message a line of JSON:
 *
 *   maker  → zygote   the birth packet
 *   zygote → maker    {pid} (it takes it) or {error} (it refuses, and keeps waiting)
 *   maker  → zygote   "go"
 *   zygote → maker    {ok} once its command line names the cell
 *
 * Only "go" makes the zygote the cell. A maker that gives up before sending it (timeout, a
 * busy machine) closes the connection, and the zygote, which holds the packet but was not
 * told to go, exits: one identity is never run by two processes. A maker that sent "go"
 * takes the pid as the cell's, answer or not, and never hands the packet on.
 */

/**
 * The zygote's side: listens at `zygoteSocket(dir, process.pid)` until a valid birth packet
 * for `host` (that `refuse` does not refuse) arrives and its maker says go; resolves with it
 * and `ready()`, to call once the process answers to the cell's markers. One claim at a
 * time: while one is being made, other makers are turned away.
 */
export function awaitClaim(
  dir: string, host: string, signal?: AbortSignal, refuse?: (packet: BirthPacket) => string | undefined,
): Promise<{ packet: BirthPacket; ready: () => void }> {
  const path = zygoteSocket(dir, process.pid);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CellularError('CELL_ERR_ABORTED', 'zygote stopped before it was claimed'));
    let busy = false;
    let claimed = false;
    const server = createServer((socket) => {
      if (busy || claimed) return void socket.destroy();
      busy = true;
      const lines = lineReader(socket, PACKET_MAX);
      lines.next(5_000).then((text) => {
        let packet: BirthPacket;
        try {
          packet = parseBirthPacket(text);
          const why = packet.cell.host !== host ? `this zygote is on host ${host}, the packet is for ${packet.cell.host}` : refuse?.(packet);
          if (why) {
            socket.end(`${JSON.stringify({ error: why })}\n`);
            busy = false;
            return;
          }
        } catch (e) {
          socket.end(`${JSON.stringify({ error: (e as Error).message })}\n`);
          busy = false;
          return;
        }
        socket.write(`${JSON.stringify({ pid: process.pid })}\n`);
        return lines.next(5_000).then((go) => {
          if (go !== 'go') throw new Error('no go');
          claimed = true;
          server.close();
          rmSync(path, { force: true });
          resolve({ packet, ready: () => socket.end(`${JSON.stringify({ ok: true })}\n`) });
        });
      }).catch(() => {
        // The maker went away or gave up before "go": it will hand the packet on, not use
        // this process. Having read another cell's packet, this zygote does not wait again.
        if (!claimed) {
          server.close();
          rmSync(path, { force: true });
          reject(new CellularError('CELL_ERR_ABORTED', 'a maker gave up on this zygote mid-claim'));
        }
      });
    });
    server.once('error', (e) => reject(new CellularError('CELL_ERR_SPAWN', `zygote cannot listen at ${path}: ${e.message}`, { cause: e })));
    signal?.addEventListener('abort', () => {
      if (claimed) return; // a cell now, whatever happens to grow
      server.close();
      rmSync(path, { force: true });
      reject(new CellularError('CELL_ERR_ABORTED', 'zygote stopped before it was claimed'));
    }, { once: true });
    rmSync(path, { force: true });
    server.listen(path);
  });
}

/** Lines from `socket`, each within `timeoutMs`; a line past `max` bytes, an end or an error rejects. */
function lineReader(socket: Socket, max: number): { next: (timeoutMs: number) => Promise<string> } {
  let buffered = '';
  let failed: Error | undefined;
  let waiter: { resolve: (line: string) => void; reject: (e: Error) => void } | undefined;
  const pump = () => {
    if (!waiter) return;
    const nl = buffered.indexOf('\n');
    if (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiter;
      waiter = undefined;
      return w.resolve(line);
    }
    if (failed) {
      const w = waiter;
      waiter = undefined;
      w.reject(failed);
    }
  };
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffered += d;
    if (buffered.length > max) {
      failed = new CellularError('CELL_ERR_BIRTH_PACKET', `a hand-over line over ${max} bytes`);
      socket.destroy();
    }
    pump();
  });
  socket.once('end', () => ((failed ??= new Error('closed')), pump()));
  socket.once('close', () => ((failed ??= new Error('closed')), pump()));
  socket.on('error', (e) => ((failed ??= e), pump()));
  return {
    next: (timeoutMs) => new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiter = undefined;
        socket.destroy();
        reject(new Error('timed out'));
      }, timeoutMs);
      waiter = { resolve: (l) => (clearTimeout(timer), resolve(l)), reject: (e) => (clearTimeout(timer), reject(e)) };
      pump();
    }),
  };
}

/**
 * The maker's side: hands `packet` to a waiting zygote in `dir` and resolves with the pid
 * it now runs as, or undefined when none took it (none waiting, each busy or gone, or it
 * refused): the maker then starts a process itself. The directory and every socket must be
 * this user's and closed to others, or nothing is sent (a packet holds the cell's key).
 */
export async function claimZygote(dir: string, packet: BirthPacket, timeoutMs = 2_000): Promise<number | undefined> {
  if (!ownedPrivately(dir, 'dir')) return undefined;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^\d+\.sock$/.test(n));
  } catch {
    return undefined;
  }
  const line = `${JSON.stringify(packet)}\n`;
  // Another maker may try the same one: start from a random zygote.
  const start = Math.floor(Math.random() * names.length);
  for (let i = 0; i < names.length; i++) {
    const path = join(dir, names[(start + i) % names.length]!);
    if (!ownedPrivately(path, 'socket')) continue;
    const outcome = await handOver(path, line, timeoutMs);
    if (outcome.type === 'taken') return outcome.pid;
  }
  return undefined;
}

/** Whether `path` is a directory (or socket) of this user that no other user may use. */
function ownedPrivately(path: string, kind: 'dir' | 'socket'): boolean {
  try {
    const st = lstatSync(path);
    const mine = typeof process.getuid !== 'function' || st.uid === process.getuid();
    return mine && (kind === 'dir' ? st.isDirectory() && (st.mode & 0o077) === 0 : st.isSocket());
  } catch {
    return false;
  }
}

/** One hand-over; "taken" only once "go" was sent, so the packet is never handed on after it. */
function handOver(path: string, line: string, timeoutMs: number): Promise<{ type: 'taken'; pid: number } | { type: 'not taken' }> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    const lines = lineReader(socket, 4_096);
    let pid: number | undefined;
    const done = (r: { type: 'taken'; pid: number } | { type: 'not taken' }) => {
      socket.destroy();
      resolve(r);
    };
    socket.once('error', () => undefined); // refused (gone) or busy: the reader says so
    socket.once('connect', () => socket.write(line));
    lines.next(timeoutMs).then((first) => {
      const reply = JSON.parse(first) as { pid?: unknown };
      if (typeof reply.pid !== 'number' || !Number.isSafeInteger(reply.pid) || reply.pid <= 0) return done({ type: 'not taken' });
      pid = reply.pid;
      socket.write('go\n');
      // From here the zygote is the cell. Its {ok} says its command line names the cell;
      // without it (slow, or it died) the pid is still the cell's: the maker's watch on it
      // sees a death as a failed birth.
      return lines.next(timeoutMs).then(() => done({ type: 'taken', pid: pid! }), () => done({ type: 'taken', pid: pid! }));
    }).catch(() => done(pid === undefined ? { type: 'not taken' } : { type: 'taken', pid }));
  });
}

/** Makes the pool directory (0700) and removes sockets no zygote listens on any more. */
export function prepareZygoteDir(dir: string, alive: (pid: number) => boolean): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700); // one made earlier, or under another umask
  for (const n of readdirSync(dir)) {
    const m = /^(\d+)\.sock$/.exec(n);
    if (m && !alive(Number(m[1]))) rmSync(join(dir, n), { force: true });
  }
}
