/**
 * The client's one IndexedDB database: `identities` (private keys, sealed: key-store.ts),
 * `profiles` (public things worth keeping per user: pinned contact keys, contacts,
 * groups, the sequences of sent copies: profile.ts) and `seen` (every message shown, with
 * the sequence it came under, so a replay after a reload is recognised: seen.ts).
 */
const DB = 'cellular';
const VERSION = 3;
export const IDENTITIES = 'identities';
export const PROFILES = 'profiles';
export const SEEN = 'seen';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, VERSION);
    r.onupgradeneeded = () => {
      const names = r.result.objectStoreNames;
      if (!names.contains(IDENTITIES)) r.result.createObjectStore(IDENTITIES, { keyPath: 'user' });
      if (!names.contains(PROFILES)) r.result.createObjectStore(PROFILES, { keyPath: 'owner' });
      if (!names.contains(SEEN)) r.result.createObjectStore(SEEN, { keyPath: 'k' }).createIndex('owner-at', ['owner', 'at']);
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB unavailable'));
  });
}

/** One request in its own transaction; resolves once the transaction has committed. */
export function run<T>(store: string, mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return open().then(
    (d) =>
      new Promise<T>((resolve, reject) => {
        const tx = d.transaction(store, mode);
        const req = f(tx.objectStore(store));
        tx.oncomplete = () => {
          d.close();
          resolve(req.result);
        };
        tx.onerror = () => {
          d.close();
          reject(tx.error ?? new Error('IndexedDB transaction failed'));
        };
      }),
  );
}
