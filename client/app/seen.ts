/**
 * Which messages this browser has shown, and under which stream sequence, kept in
 * IndexedDB so that a copy the server stores again after its dedupe window (a replay) is
 * recognised even after a reload: the same (sender, message id) under another sequence is
 * not shown twice. The same sequence is the same stored copy (history after a reload) and
 * is shown — unless the person deleted it: a deleted message never shows again, whatever
 * sequence the server gives it. At most SEEN_MAX entries per user are kept, the oldest
 * dropped first.
 */
import { run, SEEN } from './idb.ts';

export const SEEN_MAX = 50_000;

interface SeenEntry {
  k: string;
  owner: string;
  seq: number;
  at: number;
  deleted?: boolean;
}

const key = (owner: string, from: string, msg: string) => `${owner}\n${from}/${msg}`;

/** The sequence `from`'s message `msg` was shown under, and whether the person deleted it, if it was shown. */
export async function seenBefore(owner: string, from: string, msg: string): Promise<{ seq: number; deleted: boolean } | undefined> {
  const e = await run(SEEN, 'readonly', (s) => s.get(key(owner, from, msg)) as IDBRequest<SeenEntry | undefined>).catch(() => undefined);
  return e ? { seq: e.seq, deleted: e.deleted === true } : undefined;
}

export function rememberSeen(owner: string, from: string, msg: string, seq: number, deleted = false): Promise<unknown> {
  return run(SEEN, 'readwrite', (s) => s.put({ k: key(owner, from, msg), owner, seq, at: Date.now(), ...(deleted ? { deleted } : {}) } satisfies SeenEntry)).catch(() => undefined);
}

/** Drops the oldest entries of `owner` beyond SEEN_MAX (once per login is enough). */
export function trimSeen(owner: string, max = SEEN_MAX): Promise<unknown> {
  return run(SEEN, 'readwrite', (s) => {
    const index = s.index('owner-at');
    const range = IDBKeyRange.bound([owner, 0], [owner, Number.MAX_SAFE_INTEGER]);
    const counted = index.count(range);
    counted.onsuccess = () => {
      let extra = counted.result - max;
      if (extra <= 0) return;
      const cursor = index.openCursor(range);
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (!c || extra-- <= 0) return;
        c.delete();
        c.continue();
      };
    };
    return counted;
  }).catch(() => undefined);
}
