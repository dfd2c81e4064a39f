/**
 * Accounts: registration, login, the public-key directory, user search and account
 * deletion, over the messenger's KV buckets so any worker cell can serve any request.
 *
 * Records (msgpack maps, v: 1, validated when read back):
 *   accounts  `u.<user>` → {v, user, hash, created}   (hash: see password.ts)
 *   directory `u.<user>` → {v, user, x25519, ed25519, at}
 *
 * Login is where an attacker pushes, so its order matters: rate limits first (a refused
 * attempt costs no scrypt), then exactly one scrypt whether or not the user exists (an
 * unknown name verifies against a dummy hash, so timing does not tell names apart), then
 * one answer, AUTH_ERR_CREDENTIALS, for a wrong name and a wrong password alike.
 */
import type { KvEntry } from '@nats-io/kv';
import { codec } from '../../organism/wire/codec.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import type { MessengerGene } from '../../organism/kernel/genome/index.ts';
import { writeIfUnchanged } from '../../organism/kernel/compare-and-set.ts';
import type { MessengerStores } from '../messenger/stores.ts';
import { dummyHash, scryptHasher, type PasswordHasher, type ScryptParams } from './password.ts';
import { ipKey, userKey, type RateLimiter } from './rate-limit.ts';
import type { Sessions } from './sessions.ts';
import { nonNeg, unpackRecord } from '../messenger/record.ts';
import { cursorKey } from '../messenger/inbox.ts';
import { checkUsername, isUsername } from '../messenger/user-name.ts';

/** What a search may start with: the beginning of a user name (USER_NAME, organism/wire/frames.ts), at least one character. */
const USER_PREFIX = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const PASSWORD_MIN_BYTES = 8;
export const PASSWORD_MAX_BYTES = 1024;
export const PUBLIC_KEY_BYTES = 32;
/** Most names one search returns, whatever the caller asks. */
export const SEARCH_MAX = 100;

export interface AccountRecord {
  v: 1;
  user: string;
  hash: string;
  created: number;
}

export interface DirectoryRecord {
  v: 1;
  user: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
  at: number;
}

export interface PublicKeys {
  user: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
}

/** Where a user's password-sealed key backup is kept (directory bucket, beside the public keys). */
export const backupKey = (user: string) => `b.${user}`;
export const accountKey = (user: string): string => `u.${user}`;
export const directoryKey = (user: string): string => `u.${user}`;

const passwordFits = (password: unknown): password is string => {
  if (typeof password !== 'string') return false;
  const bytes = Buffer.byteLength(password, 'utf8');
  return bytes >= PASSWORD_MIN_BYTES && bytes <= PASSWORD_MAX_BYTES;
};

export function checkPassword(password: unknown): asserts password is string {
  if (!passwordFits(password)) throw new CellularError('ACCOUNT_ERR_PASSWORD', `a password must be ${PASSWORD_MIN_BYTES}-${PASSWORD_MAX_BYTES} bytes (UTF-8)`);
}

const isKey = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.length === PUBLIC_KEY_BYTES;


export function parseAccountRecord(bytes: Uint8Array, user: string): AccountRecord {
  const r = unpackRecord(bytes, `account record ${accountKey(user)}`);
  // The hash string itself is checked in full by verifyPassword.
  if (r.user !== user || typeof r.hash !== 'string' || !r.hash.startsWith('$scrypt$') || r.hash.length > 512 || !nonNeg(r.created)) {
    throw new CellularError('STORE_ERR_RECORD', `account record ${accountKey(user)} rejected: malformed`);
  }
  return r as unknown as AccountRecord;
}

export function parseDirectoryRecord(bytes: Uint8Array, user: string): DirectoryRecord {
  const r = unpackRecord(bytes, `directory record ${directoryKey(user)}`);
  if (r.user !== user || !isKey(r.x25519) || !isKey(r.ed25519) || !nonNeg(r.at)) {
    throw new CellularError('STORE_ERR_RECORD', `directory record ${directoryKey(user)} rejected: malformed`);
  }
  // Copies: msgpackr hands out views into its read buffer.
  return { v: 1, user, x25519: new Uint8Array(r.x25519), ed25519: new Uint8Array(r.ed25519), at: r.at };
}

const live = (e: KvEntry | null): e is KvEntry => e !== null && e.operation === 'PUT';

const credentials = () => new CellularError('AUTH_ERR_CREDENTIALS', 'the username or password is wrong');
const rateLimited = (what: string, retryAfterMs: number) =>
  new CellularError('AUTH_ERR_RATE_LIMITED', `too many login attempts ${what}; retryAfterMs=${Math.ceil(retryAfterMs)}`);

export interface AccountsOptions {
  /** scrypt by default; a test counts calls through its own. */
  hasher?: PasswordHasher;
  /** Clock for record times. */
  now?: () => number;
}

export class Accounts {
  readonly #stores: MessengerStores;
  readonly #gene: MessengerGene;
  readonly #limiter: RateLimiter;
  readonly #sessions: Sessions;
  readonly #hasher: PasswordHasher;
  readonly #now: () => number;
  readonly #params: ScryptParams;
  /** What unknown users are verified against: costs the same scrypt, never matches. */
  readonly #dummy: string;

  constructor(stores: MessengerStores, gene: MessengerGene, limiter: RateLimiter, sessions: Sessions, options: AccountsOptions = {}) {
    this.#stores = stores;
    this.#gene = gene;
    this.#limiter = limiter;
    this.#sessions = sessions;
    this.#hasher = options.hasher ?? scryptHasher;
    this.#now = options.now ?? Date.now;
    this.#params = { logN: gene.scryptLogN, r: gene.scryptR, p: gene.scryptP };
    this.#dummy = dummyHash(this.#params);
  }

  async #account(user: string): Promise<{ record: AccountRecord; revision: number } | null> {
    const e = await this.#stores.accounts.get(accountKey(user));
    return live(e) ? { record: parseAccountRecord(e.value, user), revision: e.revision } : null;
  }

  /**
   * Creates an account. The name is claimed with kv.create, so of two registrations of one
   * name racing on two workers exactly one lands; the other gets ACCOUNT_ERR_EXISTS. With
   * `ip`, every attempt counts against that address's budget (the same one logins spend),
   * before any scrypt: a registration flood costs no CPU.
   */
  async register(user: string, password: string, ip?: string): Promise<void> {
    if (ip !== undefined) {
      const byIp = await this.#limiter.hit(ipKey(ip), this.#gene.loginAttemptsPerIp);
      if (!byIp.allowed) throw rateLimited('from this address', byIp.retryAfterMs);
    }
    checkUsername(user);
    checkPassword(password);
    // A cheap read first, so a taken name costs no scrypt; create below is what decides.
    if (await this.exists(user)) throw new CellularError('ACCOUNT_ERR_EXISTS', `the username ${user} is taken`);
    const hash = await this.#hasher.hash(password, this.#params);
    const created = await writeIfUnchanged(this.#stores.accounts, accountKey(user), codec.pack({ v: 1, user, hash, created: this.#now() } satisfies AccountRecord), 0);
    if (created === undefined) throw new CellularError('ACCOUNT_ERR_EXISTS', `the username ${user} is taken`);
  }

  /**
   * Checks a password and opens a session. Per IP every attempt counts; per user only
   * failures do, but the user's slot is taken before the password is checked and given back
   * on success, so concurrent guesses on many workers cannot all slip under the limit.
   */
  async login(user: string, password: string, ip: string): Promise<{ token: string; expires: number; user: string }> {
    const byIp = await this.#limiter.hit(ipKey(ip), this.#gene.loginAttemptsPerIp);
    if (!byIp.allowed) throw rateLimited('from this address', byIp.retryAfterMs);
    // A name or password that register would refuse cannot belong to an account; saying so
    // without a scrypt tells nothing the rules do not (and such a flood costs nothing).
    if (!isUsername(user) || !passwordFits(password)) throw credentials();
    const slot = userKey(user);
    const byUser = await this.#limiter.hit(slot, this.#gene.loginAttemptsPerUser);
    if (!byUser.allowed) throw rateLimited('for this user', byUser.retryAfterMs);

    const account = await this.#account(user);
    // Exactly one scrypt either way (a stored hash of older cost takes its own time, which
    // reveals only that the account exists and is old).
    const ok = await this.#hasher.verify(password, account?.record.hash ?? this.#dummy);
    if (!account || !ok) throw credentials(); // the user's slot stays counted: a failure

    await this.#limiter.release(slot, byUser.window);
    if (this.#hasher.needsRehash(account.record.hash, this.#params)) await this.#rehash(user, password, account);
    const session = await this.#sessions.create(user);
    return { ...session, user };
  }

  /** Rewrites the hash at the genome's current cost; a concurrent change wins (it rehashes next time). */
  async #rehash(user: string, password: string, account: { record: AccountRecord; revision: number }): Promise<void> {
    const hash = await this.#hasher.hash(password, this.#params);
    await writeIfUnchanged(this.#stores.accounts, accountKey(user), codec.pack({ ...account.record, hash } satisfies AccountRecord), account.revision);
  }

  /** Publishes (or replaces) a user's public keys: X25519 for encryption, Ed25519 for signatures. */
  async publishKeys(user: string, x25519: Uint8Array, ed25519: Uint8Array): Promise<void> {
    checkUsername(user);
    if (!isKey(x25519) || !isKey(ed25519)) {
      throw new CellularError('ACCOUNT_ERR_KEYS', `public keys must be ${PUBLIC_KEY_BYTES} bytes each (X25519, Ed25519)`);
    }
    if (!(await this.exists(user))) throw new CellularError('ACCOUNT_ERR_NOT_FOUND', `no user ${user}`);
    const record: DirectoryRecord = { v: 1, user, x25519: new Uint8Array(x25519), ed25519: new Uint8Array(ed25519), at: this.#now() };
    await this.#stores.directory.put(directoryKey(user), codec.pack(record));
  }

  /** Stores the user's password-sealed key backup (opaque here: only the client can open it). */
  async putBackup(user: string, blob: Uint8Array): Promise<void> {
    checkUsername(user);
    if (!(blob instanceof Uint8Array) || blob.length === 0 || blob.length > 1024) throw new CellularError('ACCOUNT_ERR_KEYS', 'a key backup is 1..1024 bytes');
    if (!(await this.exists(user))) throw new CellularError('ACCOUNT_ERR_NOT_FOUND', `no user ${user}`);
    await this.#stores.directory.put(backupKey(user), codec.pack({ v: 1, user, blob: new Uint8Array(blob), at: this.#now() }));
  }

  /** The user's key backup, or null if none was stored. */
  async getBackup(user: string): Promise<Uint8Array | null> {
    checkUsername(user);
    const e = await this.#stores.directory.get(backupKey(user));
    if (!live(e)) return null;
    const r = unpackRecord(e.value, `key backup ${backupKey(user)}`);
    if (r.user !== user || !(r.blob instanceof Uint8Array)) throw new CellularError('STORE_ERR_RECORD', `key backup ${backupKey(user)} rejected: malformed`);
    return r.blob;
  }

  /** The published keys of `users`, in the order asked, once each; unknown users (and names that cannot be users) are absent. */
  async getKeys(users: string[]): Promise<PublicKeys[]> {
    const names = [...new Set(users)].filter(isUsername);
    const entries = await Promise.all(names.map((u) => this.#stores.directory.get(directoryKey(u))));
    const out: PublicKeys[] = [];
    entries.forEach((e, i) => {
      if (!live(e)) return;
      const r = parseDirectoryRecord(e.value, names[i]!);
      out.push({ user: r.user, x25519: r.x25519, ed25519: r.ed25519 });
    });
    return out;
  }

  /**
   * Usernames starting with `query`, sorted, at most `limit` (and SEARCH_MAX). Costs a
   * listing of every account key (a headers-only consumer over the bucket): fine for
   * thousands of users. Beyond that, keep a prefix index (`p.<first 2 chars>` → names)
   * written at register and delete.
   */
  async search(query: string, limit: number): Promise<string[]> {
    const n = Math.min(SEARCH_MAX, Math.floor(Number.isFinite(limit) ? limit : 0));
    if (n <= 0 || typeof query !== 'string' || !USER_PREFIX.test(query)) return [];
    const prefix = accountKey(query);
    const found: string[] = [];
    for await (const key of await this.#stores.accounts.keys('u.*')) {
      if (key.startsWith(prefix)) found.push(key.slice(2));
    }
    return found.sort().slice(0, n);
  }

  /**
   * Resolves a session token to its user, only while the account it was made for still
   * exists: a session from before a deletion (even one a racing login made afterwards)
   * never opens an account registered later under the same name.
   */
  async resume(token: string): Promise<{ user: string; expires: number }> {
    const s = await this.#sessions.resolve(token);
    const account = await this.#account(s.user).catch(() => null);
    if (!account || account.record.created > s.created) {
      await this.#sessions.revoke(token).catch(() => undefined);
      throw new CellularError('AUTH_ERR_SESSION', 'the session belongs to an account that no longer exists');
    }
    return { user: s.user, expires: s.expires };
  }

  async exists(user: string): Promise<boolean> {
    if (!isUsername(user)) return false;
    return live(await this.#stores.accounts.get(accountKey(user)));
  }

  /**
   * Deletes an account after checking its password (rate limited per user like a login:
   * it is a password oracle too). Sessions go first (nobody stays logged in), the account
   * record last, so a deletion cut short leaves an account that can be deleted again.
   * `purge` removes the user's stored messages (Inboxes.purge, messenger/inbox.ts); it runs
   * after the password check and before the account record goes, so a purge that fails
   * leaves the account (and a retry).
   */
  async deleteAccount(user: string, password: string, purge?: () => Promise<unknown>): Promise<void> {
    checkUsername(user);
    if (!passwordFits(password)) throw credentials();
    const slot = userKey(user);
    const byUser = await this.#limiter.hit(slot, this.#gene.loginAttemptsPerUser);
    if (!byUser.allowed) throw rateLimited('for this user', byUser.retryAfterMs);
    const account = await this.#account(user);
    const ok = await this.#hasher.verify(password, account?.record.hash ?? this.#dummy);
    if (!account || !ok) throw credentials();

    await this.#sessions.revokeAll(user);
    await this.#stores.directory.delete(directoryKey(user));
    await this.#stores.directory.delete(backupKey(user));
    await purge?.();
    await this.#stores.cursors.delete(cursorKey(user));
    await this.#limiter.release(slot, byUser.window);
    await this.#stores.contacts?.delete(`u.${user}`);
    await this.#stores.accounts.delete(accountKey(user));
    // A login that checked the password before the deletion may have made a session since.
    await this.#sessions.revokeAll(user);
  }
}
