/**
 * What end-to-end encryption costs per message copy: seal (fresh X25519 ephemeral, HKDF,
 * XChaCha20-Poly1305, Ed25519 signature, Padmé padding) and open (verify, decrypt, unpad)
 * of the client's own envelope code. The same function runs in Chromium (bundled by the
 * browser benchmark) and in Node (the peer in the same run).
 */
import { generateIdentity, keyId, open, seal, type Header } from '../client/crypto/envelope.ts';

export interface CryptoCost {
  messages: number;
  textBytes: number;
  sealedBytes: number;
  sealMicros: number;
  openMicros: number;
}

export function cryptoCost(messages: number, textBytes: number): CryptoCost {
  const alice = generateIdentity();
  const bob = generateIdentity();
  const plaintext = new TextEncoder().encode('x'.repeat(textBytes));
  const base = { v: 1 as const, from: 'alice', to: 'bob', at: Date.now(), members: ['alice', 'bob'], senderKeyId: keyId(alice.ed25519.publicKey), recipientKeyId: keyId(bob.x25519.publicKey) };
  // Warm the code paths (JIT) before timing.
  for (let i = 0; i < 20; i++) open({ sealed: seal({ plaintext, header: { ...base, msg: `warm-${i}-000000` } as Header, sender: alice, recipientX25519: bob.x25519.publicKey }), recipient: bob, senderEd25519: alice.ed25519.publicKey });
  const sealed: Uint8Array[] = [];
  const t0 = performance.now();
  for (let i = 0; i < messages; i++) sealed.push(seal({ plaintext, header: { ...base, msg: `bench-${i}-000000` } as Header, sender: alice, recipientX25519: bob.x25519.publicKey }));
  const t1 = performance.now();
  for (const s of sealed) open({ sealed: s, recipient: bob, senderEd25519: alice.ed25519.publicKey });
  const t2 = performance.now();
  return { messages, textBytes, sealedBytes: sealed[0]!.length, sealMicros: ((t1 - t0) * 1000) / messages, openMicros: ((t2 - t1) * 1000) / messages };
}
