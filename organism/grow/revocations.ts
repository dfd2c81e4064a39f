/**
 * Revocation: a cell that died or was condemned loses its broker identity on every server
 * of the cluster. The list lives in the `revoked` bucket (only grow may write it), so every
 * host's grow pushes the same, whole list: each keeps the bucket's view, folds it into the
 * organism's account JWT and sends that to the servers over `$SYS` (the full resolver
 * shares it across a cluster). The server then closes the revoked identity's connections
 * and refuses it from then on.
 *
 * What counts as dead here is what cannot be a partition: a cell that said goodbye, a cell
 * a jury condemned (its toxin), and a cell whose process is gone (`vanished`). A cell only
 * missing its pulses may be behind a cut link and is not revoked for it.
 */
import { KvWatchInclude, type KV, type KvWatchEntry } from '@nats-io/kv';
import { connect, jwtAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { StorageType } from '@nats-io/jetstream';
import { natsOptions } from '../kernel/access.ts';
import { userPublicKey } from '../kernel/broker-keys.ts';
import type { CensusEvent } from '../kernel/census.ts';
import type { Namespace } from '../kernel/namespace.ts';
import { pack, unpack } from '../kernel/reply.ts';
import type { Mint } from './mint.ts';

export const REVOKED_BUCKET = 'revoked';

/** Creates (or binds to) the revocation list: only grow may write it (organism/kernel/permissions.ts). */
export function openRevoked(nc: NatsConnection, ns: Namespace, replicas: number): Promise<KV> {
  return new Kvm(nc).create(ns.bucket(REVOKED_BUCKET), { history: 1, replicas, max_bytes: 16 * 1024 * 1024, storage: StorageType.File });
}

/** Causes after which a cell's identity is revoked. */
export function revokes(cause: string | null): boolean {
  return cause !== null && cause !== 'missed-pulses';
}

interface RevokedEntry {
  user: string;
  at: number;
}

export interface RevocationsDeps {
  mint: Mint;
  ns: Namespace;
  servers: string[];
  /** The organism CA, when the servers speak TLS. */
  tls?: { ca: string };
  bucket: KV;
  /** The raw public key of a cell, from its verified certificate. */
  pubOf: (id: string) => Promise<Uint8Array | undefined>;
  log: (line: string) => void;
}

export class Revocations {
  readonly #d: RevocationsDeps;
  #sys: NatsConnection | undefined;
  #watch: AsyncIterable<KvWatchEntry> & { stop(): void } | undefined;
  #pushing: Promise<void> = Promise.resolve();
  #dirty = false;
  readonly stats = { revoked: 0, pushed: 0, pushErrors: 0 };

  constructor(deps: RevocationsDeps) {
    this.#d = deps;
  }

  async start(): Promise<void> {
    const cred = await this.#d.mint.systemCredential();
    this.#sys = await connect({ ...natsOptions({ servers: this.#d.servers, token: null, ...(this.#d.tls ? { tls: this.#d.tls } : {}) }, `revoker/${this.#d.ns.id}`), authenticator: jwtAuthenticator(cred.jwt, cred.seed) });
    // Every key's last value, then every change: the whole list, as every other grow holds it.
    const watch = await this.#d.bucket.watch({ include: KvWatchInclude.LastValue });
    this.#watch = watch;
    void (async () => {
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        let entry: RevokedEntry;
        try {
          entry = unpack(e.value) as RevokedEntry;
        } catch {
          continue;
        }
        if (typeof entry?.user !== 'string' || typeof entry.at !== 'number') continue;
        if (this.#d.mint.revoke(entry.user, entry.at)) this.#schedulePush();
      }
    })().catch((e: unknown) => this.#d.log(`revocations watch ended: ${(e as Error).message}`));
  }

  /** Feeds a census event: a death that is not a partition revokes the cell. */
  observe(e: CensusEvent): void {
    if (e.type !== 'state' || e.entry.state !== 'dead' || !revokes(e.entry.cause)) return;
    // Its certificate may have to be read from the lineage bucket, which times out on a
    // saturated cluster: a failed revocation is said, never an unhandled rejection (that
    // ended a joining grow in a 1,000-cell run, simulations/scale-hosts.ts).
    this.revoke(e.entry.id).catch((err: unknown) => this.#d.log(`revocation of ${e.entry.id} failed: ${(err as Error).message}`));
  }

  /** Revokes `id` everywhere (idempotent). */
  async revoke(id: string): Promise<void> {
    const pub = await this.#d.pubOf(id);
    if (!pub) return;
    const user = userPublicKey(pub);
    if (this.#d.mint.isRevoked(user)) return;
    const at = Math.floor(Date.now() / 1000);
    this.#d.mint.revoke(user, at);
    this.stats.revoked++;
    this.#schedulePush();
    // create: the first writer's time stands; a second host's grow finds it there.
    await this.#d.bucket.create(id, pack({ user, at } satisfies RevokedEntry)).catch(() => {});
  }

  #schedulePush(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    this.#pushing = this.#pushing.then(async () => {
      this.#dirty = false;
      const sys = this.#sys;
      if (!sys) return;
      try {
        const jwt = await this.#d.mint.accountJwt();
        await sys.request(`$SYS.REQ.ACCOUNT.${this.#d.mint.accountPublicKey}.CLAIMS.UPDATE`, jwt, { timeout: 5_000 });
        this.stats.pushed++;
      } catch (e) {
        this.stats.pushErrors++;
        this.#d.log(`revocation push failed (it is retried at the next revocation): ${(e as Error).message}`);
      }
    });
  }

  /** Resolves once every push asked for so far was sent. */
  settled(): Promise<void> {
    return this.#pushing;
  }

  async close(): Promise<void> {
    this.#watch?.stop();
    await this.#pushing;
    await this.#sys?.close().catch(() => {});
    this.#sys = undefined;
  }
}
