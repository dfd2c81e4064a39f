/**
 * Accounts: registration, login, the public-key directory, user search and account
 * deletion, over the messenger's KV buckets so any worker cell can serve any request.
 *
 * Records (msgpack maps, validated when read back):
 *   accounts  `u.<user>` → {v: 2, user, opaque, created}   (opaque: the OPAQUE registration record)
 *                        | {v: 1, user, hash, created}     (an account from before OPAQUE: see password.ts)
 *   directory `u.<user>` → {v, user, x25519, ed25519, at, signedAt?}
 *             `b.<user>` → {v, user, blob, at, signedAt?}   (the sealed key backup)
 *
 * The password never reaches a worker (OPAQUE, opaque-server.ts): registration and login are
 * two messages each. Login is where an attacker pushes, so its order matters: rate limits
 * first (a refused attempt costs nothing), then one OPAQUE response whether or not the user
 * exists (an unknown name gets a fake one), then one answer, AUTH_ERR_CREDENTIALS, for a
 * wrong name and a wrong password alike. An account made before OPAQUE (v1) answers
 * login.start with AUTH_ERR_LEGACY: its owner logs in once more with the password (the
 * server holds its scrypt hash anyway) and upgrades it at once (upgradeStart/Finish).
 *
 * Replacing published keys or a stored backup needs the owner, not just a session (a
 * stolen token must not let a thief lock the owner out): a grant from a login of the last
 * GRANT_TTL_MS, or a signature by the current identity key (ownerStatement).
 */
import type { KvEntry } from '@nats-io/kv';
import { codec } from '../../organism/wire/codec.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import type { MessengerGene } from '../../organism/kernel/genome/index.ts';
import { writeIfUnchanged } from '../../organism/kernel/compare-and-set.ts';
import type { MessengerStores } from '../messenger/stores.ts';
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import { dummyHash, scryptHasher, type PasswordHasher, type ScryptParams } from './password.ts';
import type { OpaqueServer } from './opaque-server.ts';
import { ipKey, userAddressKey, userKey, type RateLimiter } from './rate-limit.ts';
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

/** How far an owner statement's time may be from the worker's clock. */
export const OWNER_STATEMENT_SKEW_MS = 5 * 60_000;
/** The largest key backup a user may store. */
export const BACKUP_MAX_BYTES = 1024;

export type AccountRecord =
  | { v: 2; user: string; opaque: string; created: number }
  | { v: 1; user: string; hash: string; created: number };

export interface DirectoryRecord {
  v: 1;
  user: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
  at: number;
  /** The owner statement's time of the last replacement (a later one must be newer). */
  signedAt?: number;
}

/**
 * What proves the owner asks (for a replacement): a grant from a fresh login, or a
 * signature by the current Ed25519 identity key over ownerStatement(op, user, at, payload).
 */
export interface OwnerProof {
  grant?: string | undefined;
  sig?: Uint8Array | undefined;
  at?: number | undefined;
}

export type OwnerOperation = 'keys.publish' | 'keys.backup.put';

/**
 * The bytes an owner signs to replace keys or the backup (docs/crypto.md):
 * "cellular/v2/owner" 0x00 op 0x00 user 0x00 at (8 bytes, big-endian ms) SHA-256(payload),
 * where payload is x25519 ‖ ed25519 for keys.publish and the blob for keys.backup.put.
 */
export function ownerStatement(op: OwnerOperation, user: string, at: number, payload: Uint8Array): Uint8Array {
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(at));
  return new Uint8Array(Buffer.concat([Buffer.from(`cellular/v2/owner\0${op}\0${user}\0`), time, createHash('sha256').update(payload).digest()]));
}

/** Ed25519 raw public key → node:crypto KeyObject (SPKI prefix). */
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const ed25519Key = (raw: Uint8Array) => createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' });

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

const isKey = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.length === PUBLIC_KEY_BYTES;
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** How long after a registration the very same finish may be sent again (its answer was lost). */
export const REGISTER_RETRY_MS = 60_000;

function checkKeys(x25519: unknown, ed25519: unknown): void {
  if (!isKey(x25519) || !isKey(ed25519)) throw new CellularError('ACCOUNT_ERR_KEYS', `public keys must be ${PUBLIC_KEY_BYTES} bytes each (X25519, Ed25519)`);
}

function checkBackup(blob: unknown): void {
  if (!(blob instanceof Uint8Array) || blob.length === 0 || blob.length > BACKUP_MAX_BYTES) throw new CellularError('ACCOUNT_ERR_KEYS', `a key backup is 1..${BACKUP_MAX_BYTES} bytes`);
}


/** An OPAQUE message or record as the library writes it: base64url. */
const OPAQUE_TEXT = /^[A-Za-z0-9_-]{1,1024}$/;

export function parseAccountRecord(bytes: Uint8Array, user: string): AccountRecord {
  const r = unpackRecord(bytes, `account record ${accountKey(user)}`, [1, 2]);
  const malformed = () => new CellularError('STORE_ERR_RECORD', `account record ${accountKey(user)} rejected: malformed`);
  if (r.user !== user || !nonNeg(r.created)) throw malformed();
  if (r.v === 2) {
    if (typeof r.opaque !== 'string' || !OPAQUE_TEXT.test(r.opaque)) throw malformed();
    return { v: 2, user, opaque: r.opaque, created: r.created };
  }
  // The hash string itself is checked in full by verifyPassword.
  if (typeof r.hash !== 'string' || !r.hash.startsWith('$scrypt$') || r.hash.length > 512) throw malformed();
  return { v: 1, user, hash: r.hash, created: r.created };
}

export function parseDirectoryRecord(bytes: Uint8Array, user: string): DirectoryRecord {
  const r = unpackRecord(bytes, `directory record ${directoryKey(user)}`);
  if (r.user !== user || !isKey(r.x25519) || !isKey(r.ed25519) || !nonNeg(r.at)) {
    throw new CellularError('STORE_ERR_RECORD', `directory record ${directoryKey(user)} rejected: malformed`);
  }
  // Copies: msgpackr hands out views into its read buffer.
  return { v: 1, user, x25519: new Uint8Array(r.x25519), ed25519: new Uint8Array(r.ed25519), at: r.at, ...(nonNeg(r.signedAt) ? { signedAt: r.signedAt } : {}) };
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
  readonly #opaque: OpaqueServer;
  readonly #hasher: PasswordHasher;
  readonly #now: () => number;
  readonly #params: ScryptParams;
  /** What unknown users are verified against at a legacy login: costs the same scrypt, never matches. */
  readonly #dummy: string;

  constructor(stores: MessengerStores, gene: MessengerGene, limiter: RateLimiter, sessions: Sessions, opaque: OpaqueServer, options: AccountsOptions = {}) {
    this.#stores = stores;
    this.#opaque = opaque;
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
   * Registration, first message: the OPRF evaluation for the chosen name. A taken name is
   * refused here (ACCOUNT_ERR_EXISTS, as before OPAQUE: registration tells names apart) so
   * no one gets an evaluation under an existing account's key this way. With `ip`, it
   * counts against that address's budget: names cannot be probed, nor evaluations for a
   * name not yet taken gathered, faster than logins.
   */
  async registerStart(user: string, request: string, ip?: string): Promise<{ response: string }> {
    await this.#hitIp(ip);
    checkUsername(user);
    if (await this.exists(user)) throw new CellularError('ACCOUNT_ERR_EXISTS', `the username ${user} is taken`);
    return { response: this.#opaque.registrationResponse(user, request) };
  }

  /**
   * Registration, last message: claims the name with the OPAQUE record (kv.create: of two
   * registrations racing on two workers exactly one lands; the other gets
   * ACCOUNT_ERR_EXISTS), publishes the keys and stores the backup, and opens a session. A
   * retry of the very same finish within REGISTER_RETRY_MS (its answer was lost) completes
   * it; after that, or with other keys or another backup, the record is no credential:
   * ACCOUNT_ERR_EXISTS (whoever saw a registration record must not log in with it). With
   * `ip`, the attempt counts against that address's budget (the one logins spend).
   */
  async registerFinish(r: { user: string; record: string; x25519: Uint8Array; ed25519: Uint8Array; backup: Uint8Array; ip?: string }): Promise<{ token: string; expires: number; user: string; device: string }> {
    const { user } = r;
    await this.#hitIp(r.ip);
    checkUsername(user);
    if (typeof r.record !== 'string' || !OPAQUE_TEXT.test(r.record)) throw new CellularError('TISSUE_ERR_BAD_REQUEST', 'the registration record is not an OPAQUE record');
    checkKeys(r.x25519, r.ed25519);
    checkBackup(r.backup);
    const record = { v: 2, user, opaque: r.record, created: this.#now() } satisfies AccountRecord;
    if ((await writeIfUnchanged(this.#stores.accounts, accountKey(user), codec.pack(record), 0)) === undefined) {
      const taken = new CellularError('ACCOUNT_ERR_EXISTS', `the username ${user} is taken`);
      const existing = await this.#account(user);
      if (existing?.record.v !== 2 || existing.record.opaque !== r.record || this.#now() - existing.record.created > REGISTER_RETRY_MS) throw taken;
      // A retry: whatever the first finish stored must be exactly what this one carries.
      const keys = (await this.getKeys([user]))[0];
      if (keys && !(sameBytes(keys.x25519, r.x25519) && sameBytes(keys.ed25519, r.ed25519))) throw taken;
      const backup = await this.#backupRecord(user);
      if (backup && !sameBytes(backup.blob, r.backup)) throw taken;
    }
    await this.#putKeys(user, r.x25519, r.ed25519);
    await this.#putBackup(user, r.backup);
    return { ...(await this.#sessions.create(user)), user, device: await this.#sessions.device(user) };
  }

  async #hitIp(ip: string | undefined): Promise<void> {
    if (ip === undefined) return;
    const byIp = await this.#limiter.hit(ipKey(ip), this.#gene.loginAttemptsPerIp);
    if (!byIp.allowed) throw rateLimited('from this address', byIp.retryAfterMs);
  }

  /**
   * Takes one of the user's login attempts (given back by #releaseUserSlot on success); the
   * window it was counted in. Two counts: the user from this address (loginAttemptsPerUser:
   * an attacker at one address locks out only that address), and the user from everywhere
   * (loginCeilingPerUser, against guessing from many addresses), which a login showing one
   * of the user's device tickets passes: filling it does not lock the owner out.
   */
  async #takeUserSlot(user: string, ip: string | undefined, device?: string): Promise<number> {
    const here = ip === undefined ? undefined : await this.#limiter.hit(userAddressKey(user, ip), this.#gene.loginAttemptsPerUser);
    if (here && !here.allowed) throw rateLimited('for this user from this address', here.retryAfterMs);
    const everywhere = await this.#limiter.hit(userKey(user), this.#gene.loginCeilingPerUser);
    if (!everywhere.allowed && !(await this.#sessions.knownDevice(user, device))) {
      if (here && ip !== undefined) await this.#limiter.release(userAddressKey(user, ip), here.window); // refused: no guess made
      throw rateLimited('for this user', everywhere.retryAfterMs);
    }
    return here?.window ?? everywhere.window;
  }

  async #releaseUserSlot(user: string, ip: string | undefined, window: number): Promise<void> {
    if (ip !== undefined) await this.#limiter.release(userAddressKey(user, ip), window);
    await this.#limiter.release(userKey(user), window);
  }

  /**
   * Login, first message. Per IP every attempt counts; per user only failures do, but the
   * user's slot is taken here and given back at a successful finish, so concurrent guesses
   * on many workers cannot all slip under the limit. The slot's window travels in the
   * sealed state.
   */
  async loginStart(user: string, request: string, ip: string, device?: string): Promise<{ response: string; state: Uint8Array }> {
    await this.#hitIp(ip);
    // A name register would refuse cannot belong to an account: saying so tells nothing the rules do not.
    if (!isUsername(user)) throw credentials();
    const window = await this.#takeUserSlot(user, ip, device);
    const account = await this.#account(user);
    if (account?.record.v === 1) {
      await this.#releaseUserSlot(user, ip, window); // no guess was made
      throw new CellularError('AUTH_ERR_LEGACY', `${user} was made before end-to-end login: log in with the password once to upgrade it`);
    }
    return this.#opaque.startLogin(user, account?.record.opaque ?? null, request, window);
  }

  /**
   * Login, last message: the client's proof of the password, checked, once (a captured
   * state and proof replayed are AUTH_ERR_CREDENTIALS); a session, and a grant if asked for
   * (only what needs the owner asks: a grant is not handed out at every login).
   */
  async loginFinish(user: string, state: Uint8Array, finish: string, wantGrant = false, ip?: string): Promise<{ token: string; expires: number; user: string; grant?: string; device: string }> {
    const { window } = this.#opaque.finishLogin(user, state, finish); // the user's slot stays counted on failure
    if (!(await this.#sessions.useOnce(state))) throw credentials();
    const account = await this.#account(user);
    if (account?.record.v !== 2) throw credentials(); // deleted or changed since login.start
    await this.#releaseUserSlot(user, ip, window);
    return { ...(await this.#sessions.create(user)), user, ...(wantGrant ? { grant: await this.#sessions.grant(user) } : {}), device: await this.#sessions.device(user) };
  }

  /**
   * The login of an account made before OPAQUE (v1), whose password the server has always
   * checked: it answers only for such accounts (any other name is AUTH_ERR_CREDENTIALS, at
   * the same scrypt cost), and its grant lets the owner upgrade at once (upgradeFinish).
   */
  async legacyLogin(user: string, password: string, ip: string): Promise<{ token: string; expires: number; user: string; grant: string }> {
    await this.#hitIp(ip);
    if (!isUsername(user) || !passwordFits(password)) throw credentials();
    const window = await this.#takeUserSlot(user, ip);
    const account = await this.#account(user);
    const v1 = account?.record.v === 1 ? account.record : null;
    const ok = await this.#hasher.verify(password, v1?.hash ?? this.#dummy);
    if (!v1 || !ok) throw credentials(); // the user's slot stays counted: a failure
    await this.#releaseUserSlot(user, ip, window);
    return { ...(await this.#sessions.create(user)), user, grant: await this.#sessions.grant(user) };
  }

  /**
   * Upgrade of a v1 account, first message: as registerStart, for the session's own
   * account, and only while it is a v1 account (for an OPAQUE account it would be an
   * unlimited oracle for guessing the password against its record).
   */
  async upgradeStart(user: string, request: string): Promise<{ response: string }> {
    const account = await this.#account(user);
    if (!account) throw new CellularError('ACCOUNT_ERR_NOT_FOUND', `no user ${user}`);
    if (account.record.v !== 1) throw new CellularError('AUTH_ERR_PROOF', `${user} already logs in with OPAQUE: nothing to upgrade`);
    return { response: this.#opaque.registrationResponse(user, request) };
  }

  /**
   * Upgrade, last message: the OPAQUE record replaces the scrypt hash and the new backup the
   * old one; it needs the grant of the login just made (a session alone is not the owner).
   */
  async upgradeFinish(user: string, record: string, backup: Uint8Array, grant: string): Promise<void> {
    if (typeof record !== 'string' || !OPAQUE_TEXT.test(record)) throw new CellularError('TISSUE_ERR_BAD_REQUEST', 'the registration record is not an OPAQUE record');
    checkBackup(backup);
    const account = await this.#useGrant(user, grant);
    if (account.record.v !== 1) throw new CellularError('AUTH_ERR_PROOF', `${user} already logs in with OPAQUE: nothing to upgrade`);
    const next = { v: 2, user, opaque: record, created: account.record.created } satisfies AccountRecord;
    if ((await writeIfUnchanged(this.#stores.accounts, accountKey(user), codec.pack(next), account.revision)) === undefined) {
      throw new CellularError('AUTH_ERR_SESSION', `the account ${user} changed during its upgrade: log in again`);
    }
    await this.#putBackup(user, backup);
  }

  /**
   * Replaces (or first publishes) a user's public keys: X25519 for encryption, Ed25519 for
   * signatures. Keys already published are replaced only with the owner's proof.
   */
  async publishKeys(user: string, x25519: Uint8Array, ed25519: Uint8Array, proof: OwnerProof = {}): Promise<void> {
    checkUsername(user);
    checkKeys(x25519, ed25519);
    if (!(await this.exists(user))) throw new CellularError('ACCOUNT_ERR_NOT_FOUND', `no user ${user}`);
    const signedAt = await this.#checkOwner(user, 'keys.publish', new Uint8Array(Buffer.concat([x25519, ed25519])), proof);
    await this.#putKeys(user, x25519, ed25519, signedAt);
  }

  /** Replaces (or first stores) the user's sealed key backup; a stored one only with the owner's proof. */
  async putBackup(user: string, blob: Uint8Array, proof: OwnerProof = {}): Promise<void> {
    checkUsername(user);
    checkBackup(blob);
    if (!(await this.exists(user))) throw new CellularError('ACCOUNT_ERR_NOT_FOUND', `no user ${user}`);
    const signedAt = await this.#checkOwner(user, 'keys.backup.put', blob, proof, true);
    await this.#putBackup(user, blob, signedAt);
  }

  /**
   * Whether `proof` shows the owner asks: nothing is needed while nothing is stored; else a
   * grant (used up), or a signature by the published Ed25519 key over ownerStatement, at a
   * time within OWNER_STATEMENT_SKEW_MS of ours and after the last signed replacement (so a
   * captured statement cannot roll a later change back). Returns the statement's time.
   */
  async #checkOwner(user: string, op: OwnerOperation, payload: Uint8Array, proof: OwnerProof, backup = false): Promise<number | undefined> {
    const keysEntry = await this.#stores.directory.get(directoryKey(user));
    const keys = live(keysEntry) ? parseDirectoryRecord(keysEntry.value, user) : null;
    const stored = backup ? await this.#backupRecord(user) : keys;
    // Nothing to protect only when neither keys nor (for a backup) a backup are stored: an
    // account with keys but no backup must not get a thief's backup planted.
    if (!stored && !keys) return undefined;
    if (proof.grant !== undefined) {
      await this.#useGrant(user, proof.grant);
      return stored?.signedAt; // a later signed statement must still be newer than the last one
    }
    const refuse = (why: string) => new CellularError('AUTH_ERR_PROOF', `replacing ${backup ? 'the key backup' : 'the published keys'} of ${user} needs the owner: ${why}`);
    if (!(proof.sig instanceof Uint8Array) || !nonNeg(proof.at)) throw refuse('a signature by the current identity key and its time, or a grant from a fresh login');
    if (!keys) throw refuse('no identity key is published to check the signature with: log in again for a grant');
    if (Math.abs(proof.at - this.#now()) > OWNER_STATEMENT_SKEW_MS) throw refuse(`the statement's time is more than ${OWNER_STATEMENT_SKEW_MS / 60_000} min from the server's`);
    if (stored?.signedAt !== undefined && proof.at <= stored.signedAt) throw refuse('the statement is not newer than the last replacement');
    let ok = false;
    try {
      ok = proof.sig.length === 64 && verifySignature(null, ownerStatement(op, user, proof.at, payload), ed25519Key(keys.ed25519), proof.sig);
    } catch {
      ok = false;
    }
    if (!ok) throw refuse('the signature does not verify against the published identity key');
    return proof.at;
  }

  /** Uses a grant of `user` made for the account that exists now (a grant dies with its account, as sessions do). */
  async #useGrant(user: string, grant: string): Promise<{ record: AccountRecord; revision: number }> {
    const { created } = await this.#sessions.useGrant(user, grant);
    const account = await this.#account(user);
    if (!account || account.record.created > created) throw new CellularError('AUTH_ERR_PROOF', `the grant was made for an account ${user} that no longer exists: log in again`);
    return account;
  }

  async #putKeys(user: string, x25519: Uint8Array, ed25519: Uint8Array, signedAt?: number): Promise<void> {
    const record: DirectoryRecord = { v: 1, user, x25519: new Uint8Array(x25519), ed25519: new Uint8Array(ed25519), at: this.#now(), ...(signedAt === undefined ? {} : { signedAt }) };
    await this.#stores.directory.put(directoryKey(user), codec.pack(record));
  }

  async #putBackup(user: string, blob: Uint8Array, signedAt?: number): Promise<void> {
    await this.#stores.directory.put(backupKey(user), codec.pack({ v: 1, user, blob: new Uint8Array(blob), at: this.#now(), ...(signedAt === undefined ? {} : { signedAt }) }));
  }

  async #backupRecord(user: string): Promise<{ blob: Uint8Array; signedAt?: number } | null> {
    const e = await this.#stores.directory.get(backupKey(user));
    if (!live(e)) return null;
    const r = unpackRecord(e.value, `key backup ${backupKey(user)}`);
    if (r.user !== user || !(r.blob instanceof Uint8Array)) throw new CellularError('STORE_ERR_RECORD', `key backup ${backupKey(user)} rejected: malformed`);
    return { blob: r.blob, ...(nonNeg(r.signedAt) ? { signedAt: r.signedAt } : {}) };
  }

  /** The user's key backup, or null if none was stored. */
  async getBackup(user: string): Promise<Uint8Array | null> {
    checkUsername(user);
    return (await this.#backupRecord(user))?.blob ?? null;
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
   * Deletes an account with the grant of a login just made (a session alone is not the
   * owner). Sessions go first (nobody stays logged in), the account record last, so a
   * deletion cut short leaves an account that can be deleted again.
   * `purge` removes the user's stored messages (Inboxes.purge, messenger/inbox.ts); it runs
   * after the grant is used and before the account record goes, so a purge that fails
   * leaves the account (and a retry, after another login).
   */
  async deleteAccount(user: string, grant: string, purge?: () => Promise<unknown>): Promise<void> {
    checkUsername(user);
    await this.#useGrant(user, grant);
    await this.#sessions.revokeAll(user);
    await this.#stores.directory.delete(directoryKey(user));
    await this.#stores.directory.delete(backupKey(user));
    await purge?.();
    await this.#stores.cursors.delete(cursorKey(user));
    await this.#stores.contacts?.delete(`u.${user}`);
    await this.#stores.accounts.delete(accountKey(user));
    // A login that checked the password before the deletion may have made a session since.
    await this.#sessions.revokeAll(user);
  }
}
