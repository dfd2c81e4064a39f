/** `cellular backup` and `cellular restore` (organism/grow/backup.ts does the work; these reach NATS and refuse a live organism). */
import { resolve } from 'node:path';
import { Namespace } from '../../kernel/namespace.ts';
import { CellularError } from '../../wire/errors.ts';
import { backupOrganism, progressPrinter, readManifest, restoreOrganism } from '../backup.ts';
import { ownerAlive } from '../record.ts';
import { commandUser, reach, withNats } from './target.ts';
import { HELP, say, type Flags } from './usage.ts';

export async function backup(flags: Flags): Promise<number> {
  if (!flags.out) throw new CellularError('CLI_ERR_USAGE', `backup needs --out DIR\n\n${HELP}`);
  const r = reach(flags);
  const out = resolve(flags.out);
  const user = r.record?.operator && !flags.nats ? await commandUser(r.stateDir, r.id, 'grow', 'backup') : undefined;
  const manifest = await withNats({ ...r, ...(user ? { user } : {}) }, 'cellular backup', (nc, signal) => backupOrganism(nc, r.id, out, { signal, progress: progressPrinter('backup', say) }));
  say(`backup of organism ${r.id}: ${manifest.streams.length} streams and buckets in ${out}`);
  return 0;
}

export async function restore(flags: Flags): Promise<number> {
  if (!flags.from) throw new CellularError('CLI_ERR_USAGE', `restore needs --from DIR\n\n${HELP}`);
  const from = resolve(flags.from);
  // Checked before anything is reached: a bad backup fails fast and touches nothing.
  const manifest = readManifest(from);
  const r = reach(flags, manifest.organism);
  const user = r.record?.operator && !flags.nats && r.record.id === r.id ? await commandUser(r.stateDir, r.id, 'grow', 'restore') : undefined;
  await withNats({ ...r, ...(user ? { user } : {}) }, 'cellular restore', async (nc, signal) => {
    // Restoring under living cells would rewrite what they are reading and writing. Only this
    // NATS counts: the same organism id may well live on another server (the one backed up).
    const alive: string[] = [];
    const sameServers = r.record?.id === r.id && r.servers.join() === r.record.servers.join();
    if (sameServers && ownerAlive(r.record!)) alive.push(`its grow runs (pid ${r.record!.grow.pid})`);
    const answered = await nc.request(new Namespace(r.id).census, new Uint8Array(0), { timeout: 750 }).then(() => true, () => false);
    if (answered) alive.push('a cell answered its census');
    if (alive.length > 0 && !flags.force) throw new CellularError('BACKUP_ERR_ALIVE', `organism ${r.id} is alive: ${alive.join('; ')}. Stop it first (cellular stop), or pass --force`);
    if (alive.length > 0) say(`warning: organism ${r.id} is alive (${alive.join('; ')}); restoring anyway (--force)`);
    await restoreOrganism(nc, r.id, from, { force: flags.force, signal, progress: progressPrinter('restore', say) });
  });
  say(`organism ${r.id} restored from ${from} (backup of ${manifest.created}): ${manifest.streams.length} streams and buckets`);
  return 0;
}

