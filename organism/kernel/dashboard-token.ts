/**
 * The dashboard token: a random secret in the state dir (mode 0600) that turns the read-only
 * dashboard into a control panel. grow prints it (in the dashboard URL's fragment, which a
 * browser never sends to a server); the dashboard cell and the operator each compare what a
 * page presents with it, in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { loadOrCreateSecret, readSecret } from './secret-file.ts';

export const DASHBOARD_TOKEN_FILE = 'dashboard.token';

/** Reads the token, creating it (0600) the first time: a bookmarked dashboard URL keeps working across grows. */
export function loadOrCreateDashboardToken(stateDir: string): string {
  return loadOrCreateSecret(join(stateDir, DASHBOARD_TOKEN_FILE), 'DASHBOARD_ERR_TOKEN');
}

export function readDashboardToken(stateDir: string): string {
  return readSecret(join(stateDir, DASHBOARD_TOKEN_FILE), 'DASHBOARD_ERR_TOKEN');
}

/** A checker that holds only the token's hash and compares in constant time. */
export function tokenChecker(token: string): (presented: unknown) => boolean {
  const want = createHash('sha256').update(token).digest();
  return (presented) => typeof presented === 'string' && presented.length <= 256 && timingSafeEqual(createHash('sha256').update(presented).digest(), want);
}
