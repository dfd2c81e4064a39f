/**
 * `cellular stop`: a root-signed shutdown; then it waits for grow to finish, or, with no
 * grow alive, finishes the shutdown itself by the process table and stops the broker.
 */
import { waitGone } from '../../kernel/processes.ts';
import { stopBrokerByPid } from '../broker.ts';
import { Observer } from '../observer.ts';
import { claimStateDir, ownerAlive, readRecord, removeRecord } from '../record.ts';
import { loadRootKey } from '../root-key.ts';
import { sweepCells } from '../sweep.ts';
import { commandUser, target } from './target.ts';
import { say, type Flags } from './usage.ts';

export async function stop(flags: Flags): Promise<number> {
  const t = target(flags);
  const record = readRecord(t.stateDir);
  const rootKey = loadRootKey(t.stateDir);
  const user = t.operator ? await commandUser(t.stateDir, t.id, 'grow', 'stop') : undefined;
  const observer = await Observer.open({ servers: t.servers, token: t.token, ...(user ? { user } : {}), ...(t.tls ? { tls: t.tls } : {}), organism: t.id, rootPub: t.rootPub, rootKey, limits: t.genome.limits, name: 'cellular stop' });
  const timeout = t.genome.limits.shutdownTimeoutMs;
  try {
    observer.bus.publish('shutdown', { reason: 'cellular stop' });
    await observer.nc.flush();
    say(`shutdown sent to organism ${t.id}`);
    if (record && ownerAlive(record)) {
      // grow drains the cells and stops its broker; we only wait for it.
      say(`waiting for grow (pid ${record.grow.pid}) to finish…`);
      if (await waitGone(record.grow.pid, timeout + 10_000)) return 0;
      say(`grow (pid ${record.grow.pid}) did not exit; sweeping cells here`);
    }
    // No live owner: this command finishes the shutdown itself, by the process table.
    const swept = await sweepCells({ organism: t.id, observer, timeoutMs: timeout, intervalMs: t.genome.limits.pulseIntervalMs, reason: 'cellular stop', say });
    if (swept.killed > 0) say(`${swept.killed} stragglers killed`);
  } finally {
    await observer.close();
  }
  if (record?.broker && (await stopBrokerByPid(record.broker.pid, record.broker.config))) say('nats-server stopped');
  if (record) {
    removeRecord(t.stateDir);
    // The dead owner's lock: take it over and let go, so the next grow starts clean.
    try {
      claimStateDir(t.stateDir).release();
    } catch {
      // a new owner took the state dir meanwhile: it is theirs
    }
  }
  return 0;
}

