/**
 * The mint: grow's authority over broker identities. The private broker runs in NATS
 * operator mode; the organism's operator, account and system-account keys are derived
 * from the root key (organism/kernel/broker-keys.ts), so only a holder of the root key can
 * make a credential. A cell's credential is a user JWT whose subject is the cell's own
 * lineage key and whose permissions are its tissue's (organism/kernel/permissions.ts). It
 * is useless without the cell's private key, so the JWT itself is no secret: it travels in
 * replies and birth packets like a certificate.
 *
 * Cells ask the mint (`org.<id>.mint`, queue group `mint`, served by every host's grow) for:
 * - a child's credential, with the child's certificate: issued if the chain verifies to the
 *   root and neither the child nor its parent is revoked;
 * - a new tissue's credential for a stem cell being recruited: issued if the tissue's
 *   homeostasis record holds that stem as a pending recruit.
 */
import type { KV } from '@nats-io/kv';
import { encodeAccount, encodeOperator, encodeUser, type Account, type KeyPair, type OperatorLimits } from '@nats-io/jwt';
import { createUser } from '@nats-io/nkeys';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { organismKey, userPublic, userPublicKey } from '../kernel/broker-keys.ts';
import type { CertBook } from '../kernel/cert-book.ts';
import { readTissueRecord } from '../kernel/homeostasis-record.ts';
import { unpackCertificate, type Certificate } from '../kernel/lineage.ts';
import type { Namespace } from '../kernel/namespace.ts';
import { permissionsFor, type BrokerPermissions, type BrokerRole } from '../kernel/permissions.ts';
import { packError, packReply, unpack } from '../kernel/reply.ts';
import { CellularError } from '../wire/errors.ts';
import { transientClusterError } from '../kernel/cluster.ts';
import { setTimeout as sleep } from 'node:timers/promises';

/** A broker credential: the JWT the server checks, and the key that answers its challenge. */
export interface Credential {
  jwt: string;
  /** The encoded nkey seed (`SU…`). */
  seed: Uint8Array;
}

/** How long the mint desk keeps trying to record a certificate: within the asking cell's wait (cells/mitosis.ts, 5 s). */
const RECORD_WITHIN_MS = 3_500;
/** Each attempt's bound (the lineage handle the desk is given: openLineage's timeout). */
export const RECORD_ATTEMPT_MS = 1_000;
/** Between attempts: a bucket without a leader may refuse at once (no responders). */
const RECORD_PAUSE_MS = 200;

/** What the organism's account may hold: JetStream on, no other limit (quotas are per stream and bucket). */
const ACCOUNT_LIMITS: OperatorLimits = {
  subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1,
  mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1,
};
const SYSTEM_LIMITS: OperatorLimits = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

export class Mint {
  readonly organism: string;
  readonly operator: KeyPair;
  readonly account: KeyPair;
  readonly system: KeyPair;
  /** Revoked user keys (`U…`) and when (seconds): pushed inside the account JWT. */
  readonly #revoked = new Map<string, number>();

  constructor(rootSeed: Uint8Array, organism: string) {
    this.organism = organism;
    this.operator = organismKey(rootSeed, organism, 'operator');
    this.account = organismKey(rootSeed, organism, 'account');
    this.system = organismKey(rootSeed, organism, 'system');
  }

  get accountPublicKey(): string {
    return this.account.getPublicKey();
  }

  /** The nats.conf lines that make a server trust this organism's operator (resolver state under `resolverDir`). */
  async serverConfig(resolverDir: string): Promise<string[]> {
    const operatorJwt = await encodeOperator(`cellular-${this.organism}`, this.operator, { system_account: this.system.getPublicKey() });
    const systemJwt = await encodeAccount('SYS', this.system, { limits: SYSTEM_LIMITS }, { signer: this.operator });
    return [
      `operator: ${operatorJwt}`,
      `system_account: ${this.system.getPublicKey()}`,
      // The full resolver keeps account JWTs on disk and takes updates (revocations) over
      // $SYS from the system account, and shares them with every server of a cluster.
      `resolver: { type: full, dir: ${JSON.stringify(resolverDir)}, allow_delete: false, interval: "2m" }`,
      `resolver_preload: {`,
      `  ${this.account.getPublicKey()}: ${await this.accountJwt()}`,
      `  ${this.system.getPublicKey()}: ${systemJwt}`,
      `}`,
    ];
  }

  /** The organism's account JWT, with every revocation known to this mint. */
  accountJwt(): Promise<string> {
    const account: Partial<Account> = { limits: ACCOUNT_LIMITS, ...(this.#revoked.size ? { revocations: Object.fromEntries(this.#revoked) } : {}) };
    return encodeAccount(this.organism, this.account, account, { signer: this.operator });
  }

  /** Marks a user key revoked; true if it was new. */
  revoke(userKey: string, atS: number): boolean {
    if (this.#revoked.has(userKey)) return false;
    this.#revoked.set(userKey, atS);
    return true;
  }

  isRevoked(userKey: string): boolean {
    return this.#revoked.has(userKey);
  }

  /** A user JWT for `pub` (a raw Ed25519 key) named `name` with `permissions`. */
  issue(name: string, pub: Uint8Array, permissions: BrokerPermissions, ttlS?: number): Promise<string> {
    return userJwt(name, userPublic(pub), this.account, permissions, ttlS);
  }

  /** A fresh key and its credential for `role` (grow itself, observers, `cellular creds`). */
  async credentialFor(ns: Namespace, role: BrokerRole, name: string, ttlS?: number): Promise<Credential> {
    const key = createUser();
    return { jwt: await userJwt(name, key, this.account, permissionsFor(ns, role), ttlS), seed: key.getSeed() };
  }

  /** A credential in the system account: it may push account updates (revocations). */
  async systemCredential(): Promise<Credential> {
    const key = createUser();
    const permissions = { pub: { allow: ['$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE', '$SYS.REQ.CLAIMS.UPDATE'] }, sub: { allow: ['_INBOX.>'] } };
    return { jwt: await userJwt('revoker', key, this.system, permissions), seed: key.getSeed() };
  }

  /** A cell's JWT for its certificate (its tissue's permissions). */
  cellJwt(ns: Namespace, cert: Certificate, tissue = cert.tissue): Promise<string> {
    return this.issue(cert.cell, cert.pub, permissionsFor(ns, { kind: 'cell', tissue, id: cert.cell }));
  }
}

/** A user JWT: `permissions`, no bearer use (the key must answer the server), expiring after `ttlS` if given. */
function userJwt(name: string, user: KeyPair, issuer: KeyPair, permissions: BrokerPermissions, ttlS?: number): Promise<string> {
  return encodeUser(name, user, issuer, { ...permissions, bearer_token: false, subs: -1, data: -1, payload: -1 }, ttlS ? { exp: Math.floor(Date.now() / 1000) + ttlS } : {});
}

/** A request to the mint, from the wire. */
export type MintRequest = { op: 'child'; cert: Uint8Array } | { op: 'differentiate'; cell: string; tissue: string };

export function parseMintRequest(value: unknown): MintRequest {
  const r = value as Record<string, unknown> | null;
  if (typeof r === 'object' && r !== null) {
    if (r.op === 'child' && r.cert instanceof Uint8Array && r.cert.length <= 1024) return { op: 'child', cert: r.cert };
    if (r.op === 'differentiate' && typeof r.cell === 'string' && r.cell.length <= 64 && typeof r.tissue === 'string' && r.tissue.length <= 32) return { op: 'differentiate', cell: r.cell, tissue: r.tissue };
  }
  throw new CellularError('MINT_ERR_REFUSED', 'a mint request is {op: "child", cert: bytes} or {op: "differentiate", cell, tissue}');
}

export interface MintDeskDeps {
  mint: Mint;
  nc: NatsConnection;
  ns: Namespace;
  certs: CertBook;
  homeostasis: KV;
  /** Where a child's verified certificate is recorded (cells may not write it); opened with a RECORD_ATTEMPT_MS timeout. */
  lineage: KV;
  /** Tissues of the genome (a credential is only made for one of them). */
  tissues: () => readonly string[];
}

/** Serves `org.<id>.mint`: credentials for children and for recruited stem cells. */
export class MintDesk {
  readonly #d: MintDeskDeps;
  #sub: Subscription | undefined;
  readonly stats = { issued: 0, refused: 0 };

  constructor(deps: MintDeskDeps) {
    this.#d = deps;
  }

  start(): void {
    if (this.#sub) return;
    this.#sub = this.#d.nc.subscribe(this.#d.ns.mint, {
      queue: 'mint',
      callback: (err, msg) => {
        if (err) return;
        void this.#handle(msg.data).then(
          (jwt) => {
            this.stats.issued++;
            msg.respond(packReply({ jwt }));
          },
          (e: unknown) => {
            this.stats.refused++;
            msg.respond(packError(e));
          },
        );
      },
    });
  }

  /**
   * Records a child's certificate. create(): a certificate once recorded is never replaced;
   * the same one again is a retry. While the bucket has no leader (a partition's majority
   * electing one, 4 to over 15 s here) a write is answered by nobody: short attempts, tried
   * again until RECORD_WITHIN_MS, land as soon as a leader does, where one attempt of the
   * client's default 5 s used up the whole of the asking cell's wait (its division failed,
   * and the tissue backed off before trying again).
   */
  async #record(cell: string, packed: Uint8Array): Promise<void> {
    const deadline = Date.now() + RECORD_WITHIN_MS;
    for (;;) {
      try {
        await this.#d.lineage.create(cell, packed);
        return;
      } catch (e) {
        // No leader to answer (a timeout, no responders): try again while there is time. Not a
        // read first: it would wait on the same missing leader.
        if (transientClusterError(e) && Date.now() + RECORD_PAUSE_MS + RECORD_ATTEMPT_MS <= deadline) {
          await sleep(RECORD_PAUSE_MS);
          continue;
        }
        // Recorded already (by an earlier attempt that landed late: the same bytes), or refused.
        const held = await this.#d.lineage.get(cell).catch(() => null);
        if (held?.value && Buffer.compare(Buffer.from(held.value), Buffer.from(packed)) === 0) return;
        throw e;
      }
    }
  }

  async #handle(data: Uint8Array): Promise<string> {
    const { mint, ns, certs } = this.#d;
    const r = parseMintRequest(unpack(data, 'TISSUE_ERR_BAD_REQUEST'));
    if (r.op === 'child') {
      const failures = certs.storeFailures;
      const cert = await certs.learn(unpackCertificate(r.cert));
      if (!cert && certs.storeFailures !== failures) {
        // Not a verdict on the certificate: its chain could not be read. The cell asking may retry.
        throw new CellularError('STORE_ERR_UNAVAILABLE', `the lineage bucket is temporarily unavailable (${certs.lastStoreError?.message ?? 'unknown error'}): the certificate's chain could not be checked`);
      }
      if (!cert) throw new CellularError('MINT_ERR_REFUSED', 'the certificate does not verify to the root key');
      if (!this.#d.tissues().includes(cert.tissue)) throw new CellularError('MINT_ERR_REFUSED', `no tissue ${JSON.stringify(cert.tissue)} in the genome`);
      const parent = cert.parent === null ? undefined : certs.certOf(cert.parent);
      if (mint.isRevoked(userPublicKey(cert.pub)) || (parent && mint.isRevoked(userPublicKey(parent.pub)))) {
        throw new CellularError('MINT_ERR_REFUSED', `${cert.cell} or its parent is revoked`);
      }
      await this.#record(cert.cell, r.cert);
      return mint.cellJwt(ns, cert);
    }
    await certs.resolve(r.cell);
    const cert = certs.certOf(r.cell);
    if (!cert) throw new CellularError('MINT_ERR_REFUSED', `${r.cell} has no certificate that verifies`);
    if (cert.tissue !== 'stem' || r.tissue === 'stem' || !this.#d.tissues().includes(r.tissue)) {
      throw new CellularError('MINT_ERR_REFUSED', `${r.cell} (${cert.tissue}) cannot become ${r.tissue}`);
    }
    if (mint.isRevoked(userPublicKey(cert.pub))) throw new CellularError('MINT_ERR_REFUSED', `${r.cell} is revoked`);
    const { record } = await readTissueRecord(this.#d.homeostasis, r.tissue);
    if (!record.pending.some((p) => p.id === r.cell && p.how === 'stem')) {
      throw new CellularError('MINT_ERR_REFUSED', `${r.cell} is not a pending recruit of ${r.tissue} (epoch ${record.epoch})`);
    }
    return mint.cellJwt(ns, cert, r.tissue);
  }

  async close(): Promise<void> {
    const sub = this.#sub;
    this.#sub = undefined;
    if (sub) await sub.drain().catch(() => {});
  }
}
