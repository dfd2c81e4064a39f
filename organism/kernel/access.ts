/**
 * How a process reaches the organism's NATS: the servers, and the token the private broker
 * demands (`null` when joining a server that needs none). Every connection of the organism
 * is made through `natsOptions`, so they all reconnect the same way.
 */
import { jwtAuthenticator, type Authenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { privateKeyObject, signBytes } from './keys.ts';

/** The connection's inbox prefix for a broker name: replies and JetStream deliveries land under it (organism/kernel/permissions.ts). */
export function inboxPrefix(name: string): string {
  return `_INBOX.${name}`;
}

/** A broker identity (organism/grow/mint.ts): a user JWT and the key that answers the server's challenge. */
export interface BrokerUser {
  jwt: string;
  /** Encoded nkey seed (`SU…`); a cell has none (its `signer` answers), so it never loads the nkeys code. */
  seed?: Uint8Array;
  /** The name the JWT's permissions scope the reply inbox to (`_INBOX.<inbox>.>`). */
  inbox: string;
  /**
   * Answers the server's challenge with node:crypto (a cell's own key): ~10× faster than the
   * client's pure-JS signature, and on a cell's path to its first pulse, twice.
   */
  signer?: { nkey: string; sign(nonce: Uint8Array): Uint8Array };
}

/** The client's JWT authentication, signing the server's nonce with `signer`. */
function signerAuthenticator(jwt: () => string, signer: NonNullable<BrokerUser['signer']>): Authenticator {
  return (nonce?: string) => ({
    jwt: jwt(),
    nkey: signer.nkey,
    sig: nonce ? Buffer.from(signer.sign(new TextEncoder().encode(nonce))).toString('base64') : '',
  });
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
          authenticator: access.user.signer ? signerAuthenticator(() => access.user!.jwt, access.user.signer) : jwtAuthenticator(() => access.user!.jwt, access.user.seed!),
          inboxPrefix: inboxPrefix(access.user.inbox),
        }
      : access.token
        ? { token: access.token }
        : {}),
  };
}

/** What a birth packet says of the broker itself (servers, token, CA), without the cell's own identity: what a child's packet is made from. */
export function packetAccess(packet: { servers: string[]; token: string | null; tlsCa?: string | null }): NatsAccess {
  return { servers: packet.servers, token: packet.token, ...(packet.tlsCa ? { tls: { ca: packet.tlsCa } } : {}) };
}

/** A cell's access from its birth packet: its own JWT and key in operator mode, else the shared token. */
export function cellAccess(packet: { servers: string[]; token: string | null; jwt?: string | null; tlsCa?: string | null; cell: { id: string; seed: string } }): NatsAccess {
  return {
    ...packetAccess(packet),
    ...(packet.jwt ? { user: cellUser(packet.jwt, new Uint8Array(Buffer.from(packet.cell.seed, 'hex')), packet.cell.id) } : {}),
  };
}

/** The environment variable that hands a child process its access (same-user readable only; never argv). */
export const ACCESS_ENV = 'CELLULAR_NATS_ACCESS';

/** `access` (token or credential) for a child process's environment. */
export function accessEnv(access: NatsAccess): Record<string, string> {
  const user = access.user?.seed ? { jwt: access.user.jwt, seed: new TextDecoder().decode(access.user.seed), inbox: access.user.inbox } : undefined;
  return { [ACCESS_ENV]: JSON.stringify({ token: access.token, ...(user ? { user } : {}), ...(access.tls ? { tls: access.tls } : {}) }) };
}

/** A cell's broker user: its JWT, and its lineage key answering the server's challenge. */
function cellUser(jwt: string, seed: Uint8Array, id: string): BrokerUser {
  const key = privateKeyObject(seed);
  // The JWT's subject is the cell's own key as NATS writes it (`U…`): read, not re-encoded, so
  // a cell's start loads no nkeys code (a wrong one would only fail the server's check).
  const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
  const nkey = typeof claims.sub === 'string' ? claims.sub : '';
  return { jwt, inbox: id, signer: { nkey, sign: (nonce) => signBytes(key, nonce) } };
}
