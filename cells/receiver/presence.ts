/**
 * Presence across receivers. Each receiver writes how many sockets each user holds on it
 * (`presence` bucket, key `u.<user>.<receiver>`; it owns its keys, so no compare-and-set),
 * and every receiver watches the whole bucket and the contact lists. A user is online while
 * any living receiver (by the census) holds a socket of theirs; a receiver that dies takes
 * its users offline with it, even though its keys linger until someone sweeps them.
 *
 * A user's presence goes only to that user's contacts (the list the user set with
 * `contacts.set`): a change is pushed by each receiver to its own sockets of those contacts.
 * Memory: every receiver holds every online user and every contact list; fine for this
 * size of organism, and the first thing to shard when it grows.
 */
import { KvWatchInclude, type KV } from '@nats-io/kv';
import { codec } from '../../organism/wire/codec.ts';

export interface PresenceDeps {
  presence: KV;
  contacts: KV;
  /** This receiver's cell id. */
  self: string;
  /** Whether a receiver cell is alive (census). */
  alive(cell: string): boolean;
  /** Pushes a presence frame to this receiver's sockets of `to`. */
  push(to: string, user: string, online: boolean): void;
  onError(e: unknown): void;
  /**
   * How long "offline" must hold before it is told: a user moving between receivers, or a
   * receiver whose pulses were late for a moment, does not flap. @default 1000
   */
  offlineGraceMs?: number;
}

const presenceKey = (user: string, cell: string) => `u.${user}.${cell}`;

export class Presence {
  readonly #d: PresenceDeps;
  /** user → receivers holding a socket of theirs (from the bucket). */
  readonly #where = new Map<string, Set<string>>();
  /** user → their contacts; and the reverse: user → who lists them. */
  readonly #contacts = new Map<string, Set<string>>();
  readonly #listedBy = new Map<string, Set<string>>();
  /** Last online state pushed, per user, so only changes go out. */
  readonly #online = new Map<string, boolean>();
  /** Sockets per user on this receiver. */
  readonly #local = new Map<string, number>();
  readonly #stops: (() => void)[] = [];

  constructor(deps: PresenceDeps) {
    this.#d = deps;
  }

  async start(): Promise<void> {
    const contacts = await this.#d.contacts.watch({ key: 'u.*', include: KvWatchInclude.AllHistory });
    const presence = await this.#d.presence.watch({ key: 'u.*.*', include: KvWatchInclude.AllHistory });
    this.#stops.push(() => contacts.stop(), () => presence.stop());
    void (async () => {
      for await (const e of contacts) this.#setContacts(e.key.slice(2), e.operation === 'PUT' ? parseList(e.value) : []);
    })().catch(this.#d.onError);
    void (async () => {
      for await (const e of presence) {
        const [, user, cell] = e.key.split('.');
        if (!user || !cell) continue;
        const set = this.#where.get(user) ?? new Set<string>();
        if (e.operation === 'PUT') set.add(cell);
        else set.delete(cell);
        if (set.size === 0) this.#where.delete(user);
        else this.#where.set(user, set);
        this.#recompute(user);
      }
    })().catch(this.#d.onError);
  }

  close(): void {
    for (const stop of this.#stops) stop();
  }

  isOnline(user: string): boolean {
    for (const cell of this.#where.get(user) ?? []) if (cell === this.#d.self || this.#d.alive(cell)) return true;
    return false;
  }

  /** A socket of `user` opened here. Resolves with the presence of everyone who lists `user`. */
  async join(user: string): Promise<{ user: string; online: boolean }[]> {
    const n = (this.#local.get(user) ?? 0) + 1;
    this.#local.set(user, n);
    await this.#d.presence.put(presenceKey(user, this.#d.self), codec.pack(n));
    return [...(this.#listedBy.get(user) ?? [])].map((u) => ({ user: u, online: this.isOnline(u) }));
  }

  async leave(user: string): Promise<void> {
    const n = (this.#local.get(user) ?? 1) - 1;
    if (n > 0) {
      this.#local.set(user, n);
      await this.#d.presence.put(presenceKey(user, this.#d.self), codec.pack(n));
    } else {
      this.#local.delete(user);
      await this.#d.presence.delete(presenceKey(user, this.#d.self));
    }
  }

  async setContacts(user: string, contacts: string[]): Promise<void> {
    await this.#d.contacts.put(`u.${user}`, codec.pack(contacts));
  }

  /** A receiver died: its users may have gone offline; sweep its keys (any receiver may: idempotent). */
  async receiverGone(cell: string): Promise<void> {
    for (const [user, cells] of this.#where) if (cells.has(cell)) this.#recompute(user);
    for await (const key of await this.#d.presence.keys(`u.*.${cell}`)) await this.#d.presence.delete(key).catch(() => undefined);
  }

  #setContacts(user: string, list: string[]): void {
    const before = this.#contacts.get(user) ?? new Set<string>();
    const after = new Set(list);
    for (const c of before) {
      if (after.has(c)) continue;
      const by = this.#listedBy.get(c);
      by?.delete(user);
      if (by?.size === 0) this.#listedBy.delete(c);
    }
    for (const c of after) {
      const by = this.#listedBy.get(c) ?? new Set<string>();
      by.add(user);
      this.#listedBy.set(c, by);
    }
    if (after.size === 0) this.#contacts.delete(user);
    else this.#contacts.set(user, after);
    // Newly listed contacts learn this user's state now; removed ones hear nothing more.
    const online = this.isOnline(user);
    for (const c of after) if (!before.has(c) && this.#local.has(c)) this.#d.push(c, user, online);
  }

  #recompute(user: string, settled = false): void {
    const online = this.isOnline(user);
    if ((this.#online.get(user) ?? false) === online) return;
    if (!online && !settled) {
      // Told only if it still holds after the grace period.
      const t = setTimeout(() => this.#recompute(user, true), this.#d.offlineGraceMs ?? 1_000);
      t.unref();
      return;
    }
    if (online) this.#online.set(user, true);
    else this.#online.delete(user);
    for (const c of this.#contacts.get(user) ?? []) if (this.#local.has(c)) this.#d.push(c, user, online);
  }
}

function parseList(bytes: Uint8Array): string[] {
  try {
    const v = codec.unpack(bytes) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}
