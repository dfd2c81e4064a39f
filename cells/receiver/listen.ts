/**
 * Finds a receiver its own port: the first free one in the genome's range, starting at a
 * random offset so receivers born together do not all race for the same port.
 */
import type { Server } from 'node:http';
import { CellularError } from '../../organism/wire/errors.ts';

/** Listens on `port`; resolves false if it is taken (EADDRINUSE/EACCES), rejects on anything else. */
export function tryListen(server: Server, port: number, host: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (e.code === 'EADDRINUSE' || e.code === 'EACCES') resolve(false);
      else reject(e);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(true);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host, exclusive: true });
  });
}

export async function listenInRange(server: Server, host: string, min: number, max: number): Promise<number> {
  const span = max - min + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = min + ((start + i) % span);
    if (await tryListen(server, port, host)) return port;
  }
  throw new CellularError('RECEIVER_ERR_NO_PORT', `no free port for a receiver in ${min}-${max} on ${host} (messenger.portMin/portMax)`);
}
