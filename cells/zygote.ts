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
import { chmodSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
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
 * The zygote's side: listens at `zygoteSocket(dir, process.pid)` and resolves with the
 * first valid birth packet for `host` (that `check` does not refuse); `ack()` then tells
 * the maker its pid. Only one claim is ever answered: the socket is closed and unlinked as the
 * first connection arrives. A refused packet ends the zygote (the maker starts a process).
 */
export function awaitClaim(dir: string, host: string, signal?: AbortSignal, check?: (packet: BirthPacket) => void): Promise<{ packet: BirthPacket; ack: () => void }> {
  const path = zygoteSocket(dir, process.pid);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CellularError('CELL_ERR_ABORTED', 'zygote stopped before it was claimed'));
    let claimed = false;
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      if (claimed) return void socket.destroy();
      claimed = true;
      server.close();
      rmSync(path, { force: true });
      readAll(socket).then(
        (text) => {
          const packet = parseBirthPacket(text);
          if (packet.cell.host !== host) throw new CellularError('CELL_ERR_BIRTH_PACKET', `this zygote is on host ${host}, the packet is for ${packet.cell.host}`);
          check?.(packet);
          // The maker hears the pid once the process answers to the cell's markers (ack).
          resolve({ packet, ack: () => socket.end(JSON.stringify({ pid: process.pid })) });
        },
        (e: unknown) => {
          socket.end(JSON.stringify({ error: (e as Error).message }));
          reject(e);
        },
      );
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

function readAll(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => (socket.destroy(), reject(new CellularError('CELL_ERR_BIRTH_PACKET', 'the maker sent no birth packet within 5 s'))), 5_000);
    socket.on('data', (d: Buffer) => {
      size += d.length;
      if (size > PACKET_MAX) {
        clearTimeout(timer);
        socket.destroy();
        return reject(new CellularError('CELL_ERR_BIRTH_PACKET', `birth packet over ${PACKET_MAX} bytes`));
      }
      chunks.push(d);
    });
    socket.once('end', () => (clearTimeout(timer), resolve(Buffer.concat(chunks).toString('utf8'))));
    socket.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

/**
 * The maker's side: hands `packet` to a waiting zygote in `dir` and resolves with the pid
 * it now runs as, or undefined when none took it (none waiting, each already claimed, gone,
 * or it refused): the maker then starts a process itself.
 */
export async function claimZygote(dir: string, packet: BirthPacket, timeoutMs = 1_000): Promise<number | undefined> {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^\d+\.sock$/.test(n));
  } catch {
    return undefined; // no pool on this host
  }
  const text = JSON.stringify(packet);
  // Another maker may try the same one: start from a random zygote.
  const start = Math.floor(Math.random() * names.length);
  for (let i = 0; i < names.length; i++) {
    const pid = await handOver(join(dir, names[(start + i) % names.length]!), text, timeoutMs);
    if (pid !== undefined) return pid;
  }
  return undefined;
}

function handOver(path: string, text: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ path, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const done = (pid: number | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(pid);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('connect', () => socket.end(text));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => {
      try {
        const reply = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { pid?: unknown };
        done(typeof reply.pid === 'number' && Number.isSafeInteger(reply.pid) && reply.pid > 0 ? reply.pid : undefined);
      } catch {
        done(undefined);
      }
    });
    socket.once('error', () => done(undefined)); // refused (gone), or claimed by another maker
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
