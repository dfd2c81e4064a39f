/**
 * Session tokens in the `sessions` KV bucket (bucket TTL = messenger.sessionTtlMs).
 *
 * A token is 32 random bytes (base64url) given to the client once; the bucket only holds
 * `s.<sha256(token) hex>`, so whoever can read the bucket (any cell, a backup) holds no
 * usable token. Record: {v: 1, user, created}. Expiry is checked against `created + ttl`
 * here as well as by the bucket TTL, which is a sweep, not a promise of the second.
 *
 * revokeAll needs the sessions of one user. Keys do not carry the user (they are hashes),
 * so a key scan would read every session of every user; instead each user has an index,
 * `u.<user>` → the hashes of their sessions (with creation times), kept by compare-and-set.
 * The index is written BEFORE the session itself, so no session can exist without being
 * listed. It holds at most MAX_SESSIONS_PER_USER: making one more revokes the oldest, so
 * the index is always complete and revokeAll never misses one. It is rewritten at every
 * login, so the bucket TTL never takes it before the sessions it lists.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { codec } from '../../organism/wire/codec.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import { updateWithRetries, writeIfUnchanged } from '../../organism/kernel/compare-and-set.ts';
import { nonNeg, unpackRecord } from '../messenger/record.ts';
import { isUsername } from '../messenger/user-name.ts';

/** How long a grant (the proof of a login just made) may be used, once. */
export const GRANT_TTL_MS = 5 * 60_000;
/** Live sessions one user may hold (devices, browsers); the 65th login ends the oldest. */
export const MAX_SESSIONS_PER_USER = 64;
const MAX_ATTEMPTS = 16;

export interface SessionRecord {
  v: 1;
  user: string;
  created: number;
}

export interface SessionIndex {
  v: 1;
  user: string;
  /** [sha256(token) hex, created], oldest first. */
  sessions: [string, number][];
}

const TOKEN = /^[A-Za-z0-9_-]{43}$/;
const HASH = /^[0-9a-f]{64}$/;

const sessionKey = (hash: string) => `s.${hash}`;
const grantKey = (hash: string) => `g.${hash}`;
const deviceKey = (hash: string) => `d.${hash}`;
const indexKey = (user: string) => `u.${user}`;
/** Pause after lost attempt `attempt`: another login of the user wrote; re-read a little apart. */
const backOff = (attempt: number) => Math.random() * 4 * (attempt + 1);

export function parseSessionRecord(bytes: Uint8Array): SessionRecord {
  const r = unpackRecord(bytes, 'session record');
  if (!isUsername(r.user) || !nonNeg(r.created)) throw new CellularError('STORE_ERR_RECORD', 'session record rejected: malformed');
  return r as unknown as SessionRecord;
}

export function parseSessionIndex(bytes: Uint8Array, user: string): SessionIndex {
  const r = unpackRecord(bytes, `session index of ${user}`);
  const ok =
    r.user === user &&
    Array.isArray(r.sessions) &&
    r.sessions.length <= MAX_SESSIONS_PER_USER &&
    r.sessions.every((s: unknown) => Array.isArray(s) && s.length === 2 && typeof s[0] === 'string' && HASH.test(s[0]) && nonNeg(s[1]));
  if (!ok) throw new CellularError('STORE_ERR_RECORD', `session index of ${user} rejected: malformed`);
  return r as unknown as SessionIndex;
}

/** The bucket key of a token, or null for something that cannot be one of ours. */
function keyOf(token: unknown): string | null {
  if (typeof token !== 'string' || !TOKEN.test(token)) return null;
  return sessionKey(createHash('sha256').update(token).digest('hex'));
}

const noSession = (why: string, cause?: unknown) => new CellularError('AUTH_ERR_SESSION', `session ${why}: log in again`, cause === undefined ? {} : { cause });

export class Sessions {
  readonly #kv: KV;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(kv: KV, ttlMs: number, now: () => number = Date.now) {
    this.#kv = kv;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** A new session for `user` (who has just proven their password). */
  async create(user: string): Promise<{ token: string; expires: number }> {
    if (!isUsername(user)) throw new CellularError('ACCOUNT_ERR_USERNAME', `no sessions for ${JSON.stringify(user)}`);
    const token = randomBytes(32).toString('base64url');
    const hash = createHash('sha256').update(token).digest('hex');
    const created = this.#now();
    const evicted = await this.#updateIndex(user, (list) => [...list.filter(([, at]) => at + this.#ttlMs > created), [hash, created]]);
    // Past the cap: the oldest sessions end, so the index still lists every live one.
    await Promise.all(evicted.map((h) => this.#kv.delete(sessionKey(h))));
    await this.#kv.create(sessionKey(hash), codec.pack({ v: 1, user, created } satisfies SessionRecord));
    return { token, expires: created + this.#ttlMs };
  }

  /**
   * A grant for `user`: the proof, for GRANT_TTL_MS and one use, that its holder has just
   * logged in with the password — what a session token alone (which a thief may hold for
   * weeks) is not. Replacing keys or the backup and deleting the account need one.
   */
  async grant(user: string): Promise<string> {
    const grant = randomBytes(32).toString('base64url');
    await this.#kv.create(grantKey(createHash('sha256').update(grant).digest('hex')), codec.pack({ v: 1, user, created: this.#now() } satisfies SessionRecord));
    return grant;
  }

  /**
   * A device ticket for `user`: handed to the browser at each login, shown back at the next
   * login.start, it lets that login past the per-user ceiling an attacker can fill from many
   * addresses (the owner is not locked out). It opens nothing: the password is still needed.
   * Lives as long as the bucket keeps entries (messenger.sessionTtlMs since the last login).
   */
  async device(user: string): Promise<string> {
    const ticket = randomBytes(32).toString('base64url');
    await this.#kv.create(deviceKey(createHash('sha256').update(ticket).digest('hex')), codec.pack({ v: 1, user, created: this.#now() } satisfies SessionRecord));
    return ticket;
  }

  /** Whether `ticket` is a live device ticket of `user` (never throws: a bad one is just unknown). */
  async knownDevice(user: string, ticket: string | undefined): Promise<boolean> {
    if (typeof ticket !== 'string' || !TOKEN.test(ticket)) return false;
    const e = await this.#kv.get(deviceKey(createHash('sha256').update(ticket).digest('hex'))).catch(() => null);
    if (!e || e.operation !== 'PUT') return false;
    try {
      return parseSessionRecord(e.value).user === user;
    } catch {
      return false;
    }
  }

  /**
   * True the first time it is called with these bytes, false after (kv.create of their
   * hash): a login's sealed state is finished once. The entries age out with the bucket.
   */
  async useOnce(bytes: Uint8Array): Promise<boolean> {
    const key = `n.${createHash('sha256').update(bytes).digest('hex')}`;
    return (await writeIfUnchanged(this.#kv, key, codec.pack({ v: 1, at: this.#now() }), 0)) !== undefined;
  }

  /**
   * Uses up a grant of `user`; AUTH_ERR_PROOF if it is malformed, unknown, used, another
   * user's or too old. Returns when it was made (the caller checks it is not older than the
   * account: a grant dies with the account it was made for, as sessions do).
   */
  async useGrant(user: string, grant: string): Promise<{ created: number }> {
    const refuse = (why: string) => new CellularError('AUTH_ERR_PROOF', `the grant ${why}: log in again to do this`);
    if (typeof grant !== 'string' || !TOKEN.test(grant)) throw refuse('is malformed');
    const key = grantKey(createHash('sha256').update(grant).digest('hex'));
    const e = await this.#kv.get(key);
    if (!e || e.operation !== 'PUT') throw refuse('is unknown or used');
    let record: SessionRecord;
    try {
      record = parseSessionRecord(e.value);
    } catch {
      throw refuse('record is unreadable');
    }
    if (record.user !== user) throw refuse('belongs to another user');
    if (record.created + GRANT_TTL_MS <= this.#now()) throw refuse('has expired');
    // Used once: of two uses racing, the delete at the read revision lets one through.
    try {
      await this.#kv.delete(key, { previousSeq: e.revision });
    } catch {
      throw refuse('was used meanwhile');
    }
    return { created: record.created };
  }

  /** Who a token belongs to; AUTH_ERR_SESSION if it is malformed, unknown, revoked or expired. */
  async resolve(token: string): Promise<{ user: string; expires: number; created: number }> {
    const key = keyOf(token);
    if (key === null) throw noSession('token malformed');
    const e = await this.#kv.get(key);
    if (!e || e.operation !== 'PUT') throw noSession('unknown or revoked');
    let record: SessionRecord;
    try {
      record = parseSessionRecord(e.value);
    } catch (cause) {
      throw noSession('record unreadable', cause); // the cause (STORE_ERR_RECORD) is for the logs
    }
    const expires = record.created + this.#ttlMs;
    if (expires <= this.#now()) {
      await this.#kv.delete(key).catch(() => {}); // the bucket TTL would too, later
      throw noSession('expired');
    }
    return { user: record.user, expires, created: record.created };
  }

  /** Ends one session (logout). Unknown tokens are already ended; malformed ones are refused. */
  async revoke(token: string): Promise<void> {
    const key = keyOf(token);
    if (key === null) throw noSession('token malformed');
    // The user's index keeps the hash until it ages out or is capped: a dead entry costs nothing.
    await this.#kv.delete(key);
  }

  /**
   * Ends every session of `user` (password change, account deletion); returns how many
   * were listed. The index is removed by compare-and-set at the revision that was read: a
   * login racing this either lands before (its session is listed on the next pass and
   * ended) or after (a new session, legitimately kept).
   */
  async revokeAll(user: string): Promise<number> {
    if (!isUsername(user)) return 0;
    const outcome = await updateWithRetries<number>(this.#kv, indexKey(user), async (e) => {
      if (!e || e.operation !== 'PUT') return { keep: 0 };
      const list = this.#readIndex(e.value, user);
      await Promise.all(list.map(([h]) => this.#kv.delete(sessionKey(h))));
      return { remove: list.length };
    }, { attempts: MAX_ATTEMPTS, pauseMs: backOff });
    if (outcome.type === 'contended') throw outcome.error;
    return outcome.value;
  }

  /** A malformed index is read as empty and rewritten (its sessions still expire by TTL). */
  #readIndex(bytes: Uint8Array, user: string): [string, number][] {
    try {
      return parseSessionIndex(bytes, user).sessions;
    } catch {
      return [];
    }
  }

  /** Rewrites the user's index by compare-and-set; returns the hashes pushed out by the cap. */
  async #updateIndex(user: string, change: (list: [string, number][]) => [string, number][]): Promise<string[]> {
    const outcome = await updateWithRetries<string[]>(this.#kv, indexKey(user), (e) => {
      const next = change(e?.operation === 'PUT' ? this.#readIndex(e.value, user) : []);
      const evicted = next.splice(0, Math.max(0, next.length - MAX_SESSIONS_PER_USER)).map(([h]) => h);
      return { write: codec.pack({ v: 1, user, sessions: next } satisfies SessionIndex), value: evicted };
    }, { attempts: MAX_ATTEMPTS, pauseMs: backOff });
    if (outcome.type === 'contended') throw outcome.error;
    return outcome.value;
  }
}
