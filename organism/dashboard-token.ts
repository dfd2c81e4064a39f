/**
 * The dashboard token: a random secret in the state dir (mode 0600) that turns the read-only
 * dashboard into a control panel. grow prints it (in the dashboard URL's fragment, which a
 * browser never sends to a server); the dashboard cell and the operator each compare what a
 * page presents with it, in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CellularError } from './errors.ts';

export const DASHBOARD_TOKEN_FILE = 'dashboard.token';
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** Reads the token, creating it (0600) the first time: a bookmarked dashboard URL keeps working across grows. */
export function loadOrCreateDashboardToken(stateDir: string): string {
  const path = join(stateDir, DASHBOARD_TOKEN_FILE);
  if (!existsSync(path)) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    chmodSync(path, 0o600);
  }
  return readDashboardToken(stateDir);
}

export function readDashboardToken(stateDir: string): string {
  const path = join(stateDir, DASHBOARD_TOKEN_FILE);
  try {
    if ((statSync(path).mode & 0o077) !== 0) throw new Error(`it is readable by group or others; run chmod 600 ${path}`);
    const token = readFileSync(path, 'utf8').trim();
    if (!TOKEN.test(token)) throw new Error('it does not hold a 32-byte base64url token');
    return token;
  } catch (cause) {
    throw new CellularError('DASHBOARD_ERR_TOKEN', `cannot use the dashboard token ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** A checker that holds only the token's hash and compares in constant time. */
export function tokenChecker(token: string): (presented: unknown) => boolean {
  const want = createHash('sha256').update(token).digest();
  return (presented) => typeof presented === 'string' && presented.length <= 256 && timingSafeEqual(createHash('sha256').update(presented).digest(), want);
}
