/**
 * How a process reaches the organism's NATS: the servers, and the token the private broker
 * demands (`null` when joining a server that needs none). Every connection of the organism
 * is made through `natsOptions`, so they all reconnect the same way.
 */
import { jwtAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { inboxPrefix } from './permissions.ts';
import { userSeedText } from './broker-keys.ts';

/** A broker identity (organism/grow/mint.ts): a user JWT and the key that answers the server's challenge. */
export interface BrokerUser {
  jwt: string;
  /** Encoded nkey seed (`SU…`). */
  seed: Uint8Array;
  /** The name the JWT's permissions scope the reply inbox to (`_INBOX.<inbox>.>`). */
  inbox: string;
}

export interface NatsAccess {
  servers: string[];
  /** A shared token (a server that is not the organism's own, or a cluster's routes); null when none is asked. */
  token: string | null;
  /** This process's own broker identity, when the broker runs in operator mode. */
  user?: BrokerUser;
  /** The organism CA (PEM) the servers' certificates are checked against, when they speak TLS (cluster mode). */
  tls?: { ca: string };
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
    ...(access.tls ? { tls: { ca: access.tls.ca } } : {}),
    ...(access.user
      ? {
          // A function: a stem cell that differentiates swaps its JWT and reconnects with the new one.
          authenticator: jwtAuthenticator(() => access.user!.jwt, access.user.seed),
          inboxPrefix: inboxPrefix(access.user.inbox),
        }
      : access.token
        ? { token: access.token }
        : {}),
  };
}

/** A cell's access from its birth packet: its own JWT and key in operator mode, else the shared token. */
export function cellAccess(packet: { servers: string[]; token: string | null; jwt?: string | null; tlsCa?: string | null; cell: { id: string; seed: string } }): NatsAccess {
  return {
    servers: packet.servers,
    token: packet.token,
    ...(packet.tlsCa ? { tls: { ca: packet.tlsCa } } : {}),
    ...(packet.jwt ? { user: { jwt: packet.jwt, seed: userSeedText(new Uint8Array(Buffer.from(packet.cell.seed, 'hex'))), inbox: packet.cell.id } } : {}),
  };
}

/** The environment variable that hands a child process its access (same-user readable only; never argv). */
export const ACCESS_ENV = 'CELLULAR_NATS_ACCESS';

/** `access` (token or credential) for a child process's environment. */
export function accessEnv(access: NatsAccess): Record<string, string> {
  const user = access.user ? { jwt: access.user.jwt, seed: new TextDecoder().decode(access.user.seed), inbox: access.user.inbox } : undefined;
  return { [ACCESS_ENV]: JSON.stringify({ token: access.token, ...(user ? { user } : {}), ...(access.tls ? { tls: access.tls } : {}) }) };
}

