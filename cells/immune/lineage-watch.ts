/**
 * The lineage bucket, watched: every certificate of a child written from now on, verified
 * (chain to the root and the Hayflick rule, organism/kernel/cert-book.ts) once, and handed to
 * each listener. Certificates are written before a child's process starts, so a runaway parent's
 * children are counted before they are even born (cells/immune/immune.ts).
 *
 * One watch serves every immune system of a process: a cell has one, and a simulation that
 * runs hundreds of synthetic cells' immune systems in one process (simulations/
 * synthetic-cells.ts) shares one among them, as each would otherwise hold its own consumer
 * on the broker.
 */
import type { KV } from '@nats-io/kv';
import type { CertBook } from '../../organism/kernel/cert-book.ts';
import { unpackCertificate, type Certificate } from '../../organism/kernel/lineage.ts';
import type { Logger } from '../logger.ts';

export type CertificateListener = (cert: Certificate) => void;

export interface LineageWatchOptions {
  /** The lineage bucket (undefined: there is none, nothing is watched). */
  lineage: Promise<KV | undefined>;
  certs: Pick<CertBook, 'learn'>;
  log: Pick<Logger, 'warn'>;
}

/** What an immune system needs of it: verified certificates as they are written. */
export interface LineageFeed {
  on(listener: CertificateListener): () => void;
}

export class LineageWatch implements LineageFeed {
  readonly #o: LineageWatchOptions;
  readonly #listeners = new Set<CertificateListener>();
  #watch: { stop(): void } | undefined;
  #started = false;
  #stopped = false;
  /** Listener exceptions: counted, never allowed to end the watch. */
  listenerErrors = 0;

  constructor(o: LineageWatchOptions) {
    this.#o = o;
  }

  on(listener: CertificateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.#keepWatching();
  }

  close(): void {
    this.#stopped = true;
    this.#watch?.stop();
    this.#listeners.clear();
  }

  /** The watch, made again whenever it fails or ends (a cluster member lost, no leader for a moment). */
  async #keepWatching(): Promise<void> {
    for (let pause = 500; !this.#stopped; pause = Math.min(pause * 2, 5_000)) {
      try {
        await this.#watchOnce();
        if ((await this.#o.lineage) === undefined) return;
      } catch (e) {
        if (!this.#stopped) this.#o.log.warn({ err: (e as Error).message }, 'lineage watch failed: watching again');
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  async #watchOnce(): Promise<void> {
    const kv = await this.#o.lineage;
    if (!kv || this.#stopped) return;
    const watch = await kv.watch({ include: 'updates' });
    this.#watch = watch;
    if (this.#stopped) return watch.stop();
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      let cert;
      try {
        const value = unpackCertificate(e.value);
        // A root-made cell is nobody's child: no listener counts it, and its signature is
        // checked when (if ever) this process hears from it. Verifying every such certificate
        // at once cost each of 100 cells 900 signature checks when 900 synthetic cells were made.
        if ((value as { parent?: unknown } | null)?.parent === null) continue;
        cert = await this.#o.certs.learn(value);
      } catch {
        continue; // not a certificate that chains to the root: no evidence against anyone
      }
      if (!cert) continue;
      for (const listener of this.#listeners) {
        try {
          listener(cert);
        } catch {
          this.listenerErrors++;
        }
      }
    }
  }
}
