/**
 * Which host a process belongs to. Normally the machine's hostname; `grow --host NAME`
 * (or CELLULAR_HOST) names it otherwise, for machines whose hostnames collide and for test
 * hosts that share one kernel (network namespaces: one process table, several "hosts").
 * Cells inherit it through their environment and carry it in their certificate.
 */
import { hostname } from 'node:os';
import { CellularError } from '../wire/errors.ts';

export const HOST_ENV = 'CELLULAR_HOST';

/** A host name is one subject token and one command-line word. */
export const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** Throws HOST_ERR_NAME unless `name` can name a host. */
export function checkHostName(name: string): string {
  if (!HOST_NAME.test(name)) throw new CellularError('HOST_ERR_NAME', `host name ${JSON.stringify(name)} must be 1-63 letters, digits, '-' or '_' (it becomes a NATS subject token)`);
  return name;
}

/** This process's host: CELLULAR_HOST if set, else the machine's hostname (dots made dashes). */
export function hostName(env: NodeJS.ProcessEnv = process.env): string {
  const named = env[HOST_ENV];
  if (named !== undefined && named !== '') return checkHostName(named);
  return hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 63) || 'localhost';
}
