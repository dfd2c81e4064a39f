/**
 * Registration, login and the upgrade of an old account, as the protocol runs them
 * (docs/protocol.md "Accounts"), over any connection that can send a client frame and
 * await its answer: the page's, and the Node clients of the tests and benchmarks. The
 * password goes into OPAQUE here and nowhere else; the one exception, the legacy login of
 * an account made before OPAQUE, sends it only when the caller's `confirmLegacy` says yes
 * (the page asks its person first: a hostile server could claim any account is old).
 */
import type { ClientFrame, ServerFrame, ServerFrameOf } from '../../organism/wire/frames.ts';
import type { Identity } from '../crypto/envelope.ts';
import { backupMode, openBackup, restoreKeys, sealBackup, type BackupSecret } from '../crypto/key-backup.ts';
import { finishLogin, finishRegistration, passwordFits, startLogin, startRegistration } from '../crypto/opaque-client.ts';
import { ClientError, errorCode } from './errors.ts';

type Outgoing = ClientFrame extends infer F ? (F extends { id: number } ? Omit<F, 'id'> : never) : never;

/** A connection: sends a frame (it adds the id) and resolves with the answer, or rejects with its coded error. */
export interface Requester {
  request(frame: Outgoing): Promise<unknown>;
}

/** The answer to `frame`, as the protocol says it comes (the connection decoded and checked it). */
const ask = async <T extends ServerFrame>(conn: Requester, frame: Outgoing): Promise<T> => (await conn.request(frame)) as T;

export interface Session {
  user: string;
  token: string;
  expires: number;
  /** From a password login: proves it, once, for five minutes (deleting the account needs it). */
  grant?: string | undefined;
  /** A device ticket: shown at this browser's next login, it passes the per-user ceiling (docs/security.md). */
  device?: string | undefined;
}

export interface LoggedIn {
  session: Session;
  /** OPAQUE's export key: opens a backup in mode "password". */
  exportKey: Uint8Array;
  /** Set when the account was upgraded at this login (the person is told once). */
  upgraded?: true;
}

/** The secret the backup is sealed under at registration or upgrade: the password's export key unless a recovery key is given. */
const secretFor = (exportKey: Uint8Array, recoveryKey?: Uint8Array): BackupSecret =>
  recoveryKey ? { mode: 'recovery', recoveryKey } : { mode: 'password', exportKey };

function checkPassword(password: string): void {
  if (!passwordFits(password)) throw new ClientError('ACCOUNT_ERR_PASSWORD');
}

/** A new account: the OPAQUE record, the public keys and the sealed backup in one finish; it answers with a session. */
export async function registerAccount(conn: Requester, user: string, password: string, identity: Identity, recoveryKey?: Uint8Array): Promise<LoggedIn> {
  checkPassword(password);
  const started = await startRegistration(password);
  const { response } = await ask<ServerFrameOf<'register.response'>>(conn, { t: 'register.start', user, request: started.request });
  const { record, exportKey } = await finishRegistration(started, response, password);
  const backup = sealBackup(identity, user, secretFor(exportKey, recoveryKey));
  const s = await ask<ServerFrameOf<'session'>>(conn, { t: 'register.finish', user, record, x25519: identity.x25519.publicKey, ed25519: identity.ed25519.publicKey, backup });
  return { session: { user: s.user, token: s.token, expires: s.expires, device: s.device }, exportKey };
}

export interface LoginOptions {
  /**
   * Asked when the server says the account predates OPAQUE: true sends the password once
   * (legacy `login`) and upgrades the account. Absent or false: ClientError
   * CLIENT_ERR_LEGACY_DECLINED, and nothing was sent.
   */
  confirmLegacy?: () => Promise<boolean> | boolean;
  /** The keys a legacy account is upgraded with: its v1 backup opened with the password unless given. */
  legacyIdentity?: Identity;
  /** Seal the upgraded backup under this recovery key instead of the password. */
  recoveryKey?: Uint8Array;
  /** Ask for a grant (to delete the account or replace keys next): none is handed out otherwise. */
  grant?: boolean;
  /** This browser knows the account uses OPAQUE: an AUTH_ERR_LEGACY is a lie, refused without asking. */
  knownOpaque?: boolean;
  /** This browser's device ticket for the user (from its last login): passes the per-user ceiling attackers can fill. */
  device?: string;
}

/**
 * Logs in. A wrong password (or an unknown user) is found here, by OPAQUE, before the
 * second message: AUTH_ERR_CREDENTIALS, and nothing more is sent.
 */
export async function logIn(conn: Requester, user: string, password: string, options: LoginOptions = {}): Promise<LoggedIn> {
  if (!passwordFits(password)) throw new ClientError('AUTH_ERR_CREDENTIALS'); // no such password can be an account's
  const started = await startLogin(password);
  let challenge: ServerFrameOf<'login.response'>;
  try {
    challenge = await ask<ServerFrameOf<'login.response'>>(conn, { t: 'login.start', user, request: started.request, ...(options.device ? { device: options.device } : {}) });
  } catch (e) {
    if (errorCode(e) !== 'AUTH_ERR_LEGACY') throw e;
    if (options.knownOpaque) throw new ClientError('CLIENT_ERR_LEGACY_LIE');
    return upgradeLegacy(conn, user, password, options);
  }
  const done = await finishLogin(started, challenge.response, password);
  if (!done) throw new ClientError('AUTH_ERR_CREDENTIALS');
  const s = await ask<ServerFrameOf<'session'>>(conn, { t: 'login.finish', user, finish: done.finish, state: challenge.state, ...(options.grant ? { grant: true } : {}) });
  return { session: { user: s.user, token: s.token, expires: s.expires, grant: s.grant, device: s.device }, exportKey: done.exportKey };
}

/** An account from before OPAQUE: the password once (if the person agrees), then OPAQUE for good. */
async function upgradeLegacy(conn: Requester, user: string, password: string, options: LoginOptions): Promise<LoggedIn> {
  if (!(await options.confirmLegacy?.())) throw new ClientError('CLIENT_ERR_LEGACY_DECLINED');
  const s = await ask<ServerFrameOf<'session'>>(conn, { t: 'login', user, password });
  if (!s.grant) throw new ClientError('AUTH_ERR_PROOF', 'the server gave no grant for the upgrade');
  let identity = options.legacyIdentity;
  if (!identity) {
    const old = await ask<ServerFrameOf<'keys.backup'>>(conn, { t: 'keys.backup.get' });
    if (!old.blob) throw new ClientError('CLIENT_ERR_NO_BACKUP');
    if (backupMode(old.blob) !== 'legacy') throw new ClientError('CLIENT_ERR_BACKUP', 'the old account has a backup of the new kind: reload and log in again');
    identity = await restoreKeys(old.blob, user, password).catch(() => {
      throw new ClientError('CLIENT_ERR_BACKUP');
    });
  }
  const started = await startRegistration(password);
  const { response } = await ask<ServerFrameOf<'register.response'>>(conn, { t: 'upgrade.start', request: started.request });
  const { record, exportKey } = await finishRegistration(started, response, password);
  await conn.request({ t: 'upgrade.finish', record, backup: sealBackup(identity, user, secretFor(exportKey, options.recoveryKey)), grant: s.grant });
  return { session: { user: s.user, token: s.token, expires: s.expires }, exportKey, upgraded: true };
}

/**
 * Opens the stored backup: with the export key (mode "password") or, in mode "recovery",
 * with the key `askRecoveryKey` gives (CLIENT_ERR_RECOVERY_KEY when none is given).
 */
export async function openStoredBackup(conn: Requester, user: string, exportKey: Uint8Array, askRecoveryKey?: () => Promise<Uint8Array | null>): Promise<Identity> {
  const backup = await ask<ServerFrameOf<'keys.backup'>>(conn, { t: 'keys.backup.get' });
  if (!backup.blob) throw new ClientError('CLIENT_ERR_NO_BACKUP');
  const mode = backupMode(backup.blob);
  if (mode === 'password') {
    try {
      return openBackup(backup.blob, user, { mode, exportKey });
    } catch {
      throw new ClientError('CLIENT_ERR_BACKUP');
    }
  }
  if (mode === 'legacy') throw new ClientError('CLIENT_ERR_BACKUP', 'this account still has an old backup: log in again to upgrade it');
  const recoveryKey = await askRecoveryKey?.();
  if (!recoveryKey) throw new ClientError('CLIENT_ERR_RECOVERY_KEY');
  try {
    return openBackup(backup.blob, user, { mode, recoveryKey });
  } catch {
    throw new ClientError('CLIENT_ERR_RECOVERY_BAD');
  }
}
