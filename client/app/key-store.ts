/**
 * Private identity keys at rest in this browser: IndexedDB holds them encrypted with
 * AES-256-GCM under a WebCrypto key made non-extractable, and that CryptoKey object is
 * stored beside them (IndexedDB keeps CryptoKeys by structured clone without exposing
 * their bytes). Reading the storage alone — a copied profile, a script that dumps
 * IndexedDB — yields ciphertext and an opaque handle; decrypting needs this origin's
 * WebCrypto. One record per user.
 */
import { identityFromSecrets, type Identity } from '../crypto/envelope.ts';
import { IDENTITIES, run } from './idb.ts';

interface Stored {
  user: string;
  key: CryptoKey;
  iv: Uint8Array<ArrayBuffer>;
  sealed: ArrayBuffer;
}

export async function saveIdentity(user: string, identity: Identity): Promise<void> {
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const secrets = new Uint8Array(64);
  secrets.set(identity.x25519.secretKey, 0);
  secrets.set(identity.ed25519.secretKey, 32);
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(`cellular/v1/local-keys/${user}`) }, key, secrets);
  secrets.fill(0);
  await run(IDENTITIES, 'readwrite', (s) => s.put({ user, key, iv, sealed } satisfies Stored));
}

/** The identity stored here for `user`, or null (none, or it does not open). */
export async function loadIdentity(user: string): Promise<Identity | null> {
  const stored = await run(IDENTITIES, 'readonly', (s) => s.get(user) as IDBRequest<Stored | undefined>);
  if (!stored) return null;
  try {
    const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: stored.iv, additionalData: new TextEncoder().encode(`cellular/v1/local-keys/${user}`) }, stored.key, stored.sealed));
    return identityFromSecrets(plain.slice(0, 32), plain.slice(32, 64));
  } catch {
    return null;
  }
}
