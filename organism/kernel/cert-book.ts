/**
 * Who is who: the verified certificates of the cells this process has heard of, and the
 * public key of each. A certificate is learnt from a birth hormone or fetched from the
 * lineage bucket, and accepted only with an unbroken chain of signatures to the root.
 */
import type { KeyObject } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { publicKeyObject } from './keys.ts';
import { certificateSignedBy, childBudget, parseCertificate, ROOT_ISSUER, unpackCertificate, type Certificate } from './lineage.ts';

/** Deepest lineage followed; deeper chains are refused (runaway lineages are suspect anyway). */
const MAX_CHAIN = 64;
/** How long a failed lookup is remembered (a cell born since is found after this). */
const UNKNOWN_TTL_MS = 5_000;
const UNKNOWN_MAX = 10_000;

interface Known {
  cert: Certificate;
  key: KeyObject;
}

export class CertBook {
  readonly #root: KeyObject;
  readonly #known = new Map<string, Known>();
  readonly #lookups = new Map<string, Promise<KeyObject | undefined>>();
  /** Ids whose lookup failed, until when: a flood of forged senders costs one KV get each per window. */
  readonly #unknown = new Map<string, number>();
  readonly #lineage: Promise<KV | undefined>;
  /** Certificates refused (bad signature or broken chain). */
  refused = 0;
  /**
   * Lookups the lineage bucket failed (unreachable, no JetStream leader), and the last
   * error. Not remembered as unknown: a certificate that could not be read is not one
   * that does not exist (after a partition a parent's certificate read as missing for 5 s
   * made the mint refuse every child of it as foreign, and homeostasis back off as if the
   * children had failed).
   */
  storeFailures = 0;
  lastStoreError: Error | undefined;

  /** `lineage` may still be opening: lookups wait for it rather than call a sender foreign. */
  constructor(rootPub: Uint8Array, lineage?: KV | Promise<KV | undefined>) {
    this.#root = publicKeyObject(rootPub);
    this.#lineage = Promise.resolve(lineage).catch(() => undefined);
  }

  /** The sender's key if already verified (root included), without I/O. */
  keyOf(id: string): KeyObject | undefined {
    if (id === ROOT_ISSUER) return this.#root;
    return this.#known.get(id)?.key;
  }

  /**
   * Forgets a cell that left the census, so a long-lived process does not keep every
   * certificate it ever saw. Its children still verify: the lineage bucket keeps the chain.
   */
  forget(id: string): void {
    this.#known.delete(id);
  }

  certOf(id: string): Certificate | undefined {
    return this.#known.get(id)?.cert;
  }

  /** Accepts an untrusted certificate if its chain verifies; resolves the issuer when needed. */
  async learn(value: unknown, depth = 0): Promise<Certificate | undefined> {
    let cert: Certificate;
    try {
      cert = parseCertificate(value);
    } catch {
      this.refused++;
      return undefined;
    }
    const existing = this.#known.get(cert.cell);
    if (existing) return Buffer.compare(existing.cert.sig, cert.sig) === 0 ? existing.cert : undefined;
    if (depth > MAX_CHAIN) {
      this.refused++;
      return undefined;
    }
    const issuerKey = cert.issuer === ROOT_ISSUER ? this.#root : await this.resolve(cert.issuer, depth + 1);
    if (issuerKey === undefined || !certificateSignedBy(cert, issuerKey)) {
      this.refused++;
      return undefined;
    }
    // The issuer of a child must be its parent; the root issues only generation 0.
    if ((cert.issuer === ROOT_ISSUER) !== (cert.parent === null) || (cert.parent !== null && cert.parent !== cert.issuer)) {
      this.refused++;
      return undefined;
    }
    // The Hayflick rule, enforced by trust: a child is one generation below its parent and
    // gets at most childBudget of the most its parent ever had. A parent that signs more
    // budget than it has makes foreign children.
    const parent = cert.issuer === ROOT_ISSUER ? undefined : this.certOf(cert.issuer);
    if (cert.issuer === ROOT_ISSUER ? cert.generation !== 0 : parent !== undefined && (cert.generation !== parent.generation + 1 || cert.budget > childBudget(parent.budget))) {
      this.refused++;
      return undefined;
    }
    this.#known.set(cert.cell, { cert, key: publicKeyObject(cert.pub) });
    return cert;
  }

  /** The key of `id`, fetching and verifying its certificate from the lineage bucket if needed. */
  resolve(id: string, depth = 0): Promise<KeyObject | undefined> {
    const known = this.keyOf(id);
    if (known) return Promise.resolve(known);
    const until = this.#unknown.get(id);
    if (until !== undefined && until > Date.now()) return Promise.resolve(undefined);
    let pending = this.#lookups.get(id);
    if (!pending) {
      pending = this.#fetch(id, depth)
        .then(({ key, failed }) => {
          if (key === undefined && !failed) this.#rememberUnknown(id);
          return key;
        })
        .finally(() => this.#lookups.delete(id));
      this.#lookups.set(id, pending);
    }
    return pending;
  }

  #rememberUnknown(id: string): void {
    if (this.#unknown.size >= UNKNOWN_MAX) this.#unknown.delete(this.#unknown.keys().next().value!);
    this.#unknown.set(id, Date.now() + UNKNOWN_TTL_MS);
  }

  /** `failed`: the bucket (here or further up the chain) could not be read, so absence proves nothing. */
  async #fetch(id: string, depth: number): Promise<{ key: KeyObject | undefined; failed: boolean }> {
    const before = this.storeFailures;
    const lineage = await this.#lineage;
    if (!lineage) return { key: undefined, failed: this.#storeFailed(new Error('the lineage bucket is not open')) };
    let entry;
    try {
      entry = await lineage.get(id);
    } catch (e) {
      return { key: undefined, failed: this.#storeFailed(e) };
    }
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return { key: undefined, failed: false };
    let cert: Certificate | undefined;
    try {
      cert = await this.learn(unpackCertificate(entry.value), depth);
    } catch {
      cert = undefined; // a malformed entry: refused, like any bad certificate
    }
    return { key: cert ? this.keyOf(cert.cell) : undefined, failed: this.storeFailures !== before };
  }

  #storeFailed(e: unknown): true {
    this.storeFailures++;
    this.lastStoreError = e instanceof Error ? e : new Error(String(e));
    return true;
  }
}
