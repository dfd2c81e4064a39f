/**
 * A random secret kept in a file of the state dir (mode 0600, refused if group or others can
 * read it, as ssh does): the dashboard token, the cluster's broker token. Created once, so
 * what holds it keeps working across grows; copied to other hosts where they must share it.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CellularError, type ErrorCode } from '../wire/errors.ts';

/** 32 random bytes, base64url: the only shape a secret file may hold. */
const SECRET = /^[A-Za-z0-9_-]{43}$/;

/** Reads the secret at `path`, creating it (0600) the first time. */
export function loadOrCreateSecret(path: string, code: ErrorCode): string {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      // `wx`: never overwrite a secret another process just made.
      writeFileSync(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    chmodSync(path, 0o600);
  }
  return readSecret(path, code);
}

/** Reads the secret at `path`; CellularError(`code`) if it is missing, too readable or malformed. */
export function readSecret(path: string, code: ErrorCode): string {
  try {
    if ((statSync(path).mode & 0o077) !== 0) throw new Error(`it is readable by group or others; run chmod 600 ${path}`);
    const secret = readFileSync(path, 'utf8').trim();
    if (!SECRET.test(secret)) throw new Error('it does not hold a 32-byte base64url secret');
    return secret;
  } catch (cause) {
    throw new CellularError(code, `cannot use the secret ${path}: ${(cause as Error).message}`, { cause });
  }
}
