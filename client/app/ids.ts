/**
 * Ids the client makes: message and group ids (128 random bits, base64url), and the
 * server-side tag of a 1:1 chat. DOM-free, so the Node tests use it too.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { toBase64url as b64url } from '../crypto/base64url.ts';

/** 128 random bits: a message or group id (22 characters). */
export const newId = () => b64url(crypto.getRandomValues(new Uint8Array(16)));

export const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The server-side conversation tag of a 1:1 chat: the same for both people, opaque. */
export function directGroupId(a: string, b: string): string {
  const [x, y] = [a, b].sort(byName);
  return b64url(sha256(new TextEncoder().encode(`cellular/v1/direct\n${x}\n${y}`))).slice(0, 22);
}
