/**
 * A cell process's entry point. Its maker writes the birth packet to stdin and closes it;
 * the command line carries only non-secret markers (`--cell <id> --organism <id>`) so the
 * process can be recognised before it is signalled.
 *
 * The heart is made before the rest of the cell is imported, so the first pulse's CPU is
 * the whole birth's; it pulses once the cell is born (cells/heart.ts).
 */
import { readFileSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CellularError } from '../organism/wire/errors.ts';
import { parseBirthPacket, type BirthPacket } from './birth-packet.ts';
import { Heart } from './heart.ts';
import { faultFromArgv } from './immune/faults.ts';
import { awaitClaim } from './zygote.ts';

/** Whether this process, started as a zygote, became a cell. */
let zygoteClaimed = false;

/** This process's command line once it is cell `packet.cell.id`, as a maker would have started it. */
function cellTitle(packet: BirthPacket): string {
  return [process.argv0, ...process.execArgv, process.argv[1]!, '--host', packet.cell.host, '--cell', packet.cell.id, '--organism', packet.organism].join(' ');
}

/**
 * Zygote mode (cells/zygote.ts): grow started this process before any cell needed it. It
 * imports the cell and the DNA grow names on stdin, then waits to be claimed. It dies with
 * grow (stdin closes) unless it was claimed: a cell outlives its grow.
 */
async function asZygote(): Promise<BirthPacket> {
  const arg = (name: string) => process.argv[process.argv.indexOf(name) + 1]!;
  const dir = arg('--zygote');
  const host = arg('--host');
  const stop = new AbortController();
  // Listened for before anything is awaited: a grow killed at once closes the pipe right
  // after its one line, and an end missed here would leave this process waiting for good.
  const parentGone = () => stop.abort();
  process.stdin.once('end', parentGone);
  process.stdin.once('close', parentGone);
  process.stdin.once('error', parentGone);
  const config = await new Promise<{ modules: string[]; log?: string }>((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      process.stdin.off('data', onData);
      try {
        resolve(JSON.parse(text.slice(0, nl)) as { modules: string[]; log?: string });
      } catch (cause) {
        reject(new CellularError('CELL_ERR_BIRTH_PACKET', 'the zygote got no configuration from grow', { cause }));
      }
    };
    process.stdin.on('data', onData);
    stop.signal.addEventListener('abort', () => reject(new CellularError('CELL_ERR_ABORTED', 'grow went away before this zygote was configured')), { once: true });
  });
  process.stdin.resume(); // keep reading, so the pipe's end is seen
  await Promise.all([import('./cell.ts'), import('./logger.ts'), import('./tissue-loader.ts')]);
  const { loadTissue } = await import('./tissue-loader.ts');
  // DNA that failed to load is refused below: an import that threw stays thrown in this
  // process, so a claim for it gets a fresh process, which reads the file as it is then.
  const failed = new Set<string>();
  for (const m of Array.isArray(config.modules) ? config.modules.map(String) : []) await loadTissue(m).catch(() => failed.add(m));
  // libuv lets a title take the bytes of the whole original command line.
  const room = Buffer.byteLength([process.argv0, ...process.execArgv, ...process.argv.slice(1)].join(' '));
  const { packet, ready } = await awaitClaim(dir, host, stop.signal, (p) => {
    if (Buffer.byteLength(cellTitle(p)) > room) return `cell id ${p.cell.id} does not fit this zygote's command line`;
    // The maker starts a process instead; this zygote waits for the next claim.
    if (failed.has(p.cell.module)) return `${p.cell.module} failed to load in this zygote`;
    return undefined;
  });
  zygoteClaimed = true;
  process.stdin.off('end', parentGone);
  process.stdin.off('close', parentGone);
  process.stdin.off('error', parentGone);
  process.stdin.destroy();
  // What the pid checks read (organism/kernel/processes.ts): this process is that cell now.
  process.title = cellTitle(packet);
  ready();
  // Its stderr went to the zygote's log: found where a maker looks, under the cell's name.
  if (typeof config.log === 'string') {
    try {
      symlinkSync(basename(config.log), join(packet.stateDir, 'logs', `${packet.cell.id}.stderr.log`));
    } catch {
      // a log link is no reason not to live
    }
    process.stderr.write(`zygote ${process.pid} is cell ${packet.cell.id}\n`);
  }
  return packet;
}

async function main(): Promise<void> {
  let packet: BirthPacket;
  if (process.argv.includes('--zygote')) {
    packet = await asZygote();
  } else {
    let text: string;
    try {
      text = readFileSync(0, 'utf8');
    } catch (cause) {
      throw new CellularError('CELL_ERR_BIRTH_PACKET', 'cannot read the birth packet from stdin', { cause });
    }
    packet = parseBirthPacket(text);
  }
  // Tests and simulations only (see cells/immune/faults.ts): never set by a maker on its own.
  const fault = faultFromArgv(process.argv);
  const heart = new Heart(packet, fault);
  const [{ Cell }, { fileLogger }, { loadTissue }] = await Promise.all([import('./cell.ts'), import('./logger.ts'), import('./tissue-loader.ts')]);
  const log = fileLogger(join(packet.stateDir, 'logs', `${packet.cell.id}.log`), { cell: packet.cell.id, tissue: packet.cell.tissue });
  const tissue = await loadTissue(packet.cell.module);
  const cell = new Cell(packet, { tissue, log, heart, ...(fault ? { fault } : {}) });

  const onSignal = (sig: string) => void cell.drain('signal', sig);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A bug in a handler must not leave a zombie cell pulsing: announce the death and go.
  process.on('uncaughtException', (e) => {
    // The NATS transport can write to a socket the server just closed (a race inside the
    // client when the broker goes away); the client reconnects on its own, so live on.
    if ((e as NodeJS.ErrnoException).code === 'ERR_STREAM_WRITE_AFTER_END' && e.stack?.includes('@nats-io/')) {
      log.warn({ err: e.message }, 'NATS socket closed under a write; reconnecting');
      return;
    }
    log.error({ err: e.message, stack: e.stack }, 'uncaught exception');
    void cell.drain('error', e.message);
  });
  process.on('unhandledRejection', (e) => {
    log.error({ err: e instanceof Error ? e.message : String(e) }, 'unhandled rejection');
  });

  await cell.start();
  const death = await cell.closed;
  await log.ready;
  log.flush();
  process.exit(death.cause === 'error' ? 1 : 0);
}

main().catch((e: unknown) => {
  // A zygote whose grow went away before it was claimed just ends.
  if (process.argv.includes('--zygote') && !zygoteClaimed && e instanceof CellularError && e.code === 'CELL_ERR_ABORTED') process.exit(0);
  const err = e instanceof CellularError ? `${e.code}: ${e.message}` : e instanceof Error ? e.stack : String(e);
  process.stderr.write(`cell failed to start: ${err}\n`);
  process.exit(2);
});
