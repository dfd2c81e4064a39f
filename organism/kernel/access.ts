/**
 * How a process reaches the organism's NATS: the servers, and the token the private broker
 * demands (`null` when joining a server that needs none). Every connection of the organism
 * is made through `natsOptions`, so they all reconnect the same way.
 */
import type { ConnectionOptions } from '@nats-io/transport-node';

export interface NatsAccess {
  servers: string[];
  /** The private broker's token; it lives only in 0600 files and in birth packets (stdin). */
  token: string | null;
}

/** Connection options: reconnect forever, quickly (a cell decides itself when to give up). */
export function natsOptions(access: NatsAccess, name: string): ConnectionOptions {
  return {
    servers: access.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // The client would otherwise build two Error objects (with stack traces) for every
    // request it sends, just in case one times out: ~5% of a busy receiver's CPU.
    noAsyncTraces: true,
    ...(access.token ? { token: access.token } : {}),
  };
}
