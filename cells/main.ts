/**
 * A cell process's entry point. Its maker writes the birth packet to stdin and closes it;
 * the command line carries only non-secret markers (`--cell <id> --organism <id>`) so the
 * process can be recognised before it is signalled.
 *
 * The heart starts before the rest of the cell is even imported: the pacemaker thread
 * boots, loads its NATS client and connects while this thread loads the cell.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CellularError } from '../organism/wire/errors.ts';
import { parseBirthPacket } from './birth-packet.ts';
import { Heart } from './heart.ts';
import { faultFromArgv } from './immune/faults.ts';

async function main(): Promise<void> {
  let text: string;
  try {
    text = readFileSync(0, 'utf8');
  } catch (cause) {
    throw new CellularError('CELL_ERR_BIRTH_PACKET', 'cannot read the birth packet from stdin', { cause });
  }
  const packet = parseBirthPacket(text);
  // Tests and simulations only (see cells/immune/faults.ts): never set by a maker on its own.
  const fault = faultFromArgv(process.argv);
  const heart = new Heart(packet, undefined, fault);
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
  const err = e instanceof CellularError ? `${e.code}: ${e.message}` : e instanceof Error ? e.stack : String(e);
  process.stderr.write(`cell failed to start: ${err}\n`);
  process.exit(2);
});
