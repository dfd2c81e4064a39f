/**
 * The password-wrapped backup of a user's private keys: it opens with the password, for
 * that user only, and any change to it is refused. A cheap scrypt cost (logN 10) keeps the
 * property runs fast; one test proves the default cost works.
 */
import test from 'ava';
import fc from 'fast-check';
import { generateIdentity, isCryptoError, open, seal, keyId, type Header } from '../../client/crypto/envelope.ts';
import { backupKeys, backupParams, DEFAULT_BACKUP_PARAMS, restoreKeys } from '../../client/crypto/key-backup.ts';

const CHEAP = { logN: 10, r: 8, p: 1 };

test('key backup - restores the same identity, which still opens messages sealed to it', async (t) => {
  const alice = generateIdentity();
  const bob = generateIdentity();
  const blob = await backupKeys(bob, 'bob', 'correct horse battery', CHEAP);
  const restored = await restoreKeys(blob, 'bob', 'correct horse battery');
  t.deepEqual(restored.x25519.publicKey, bob.x25519.publicKey);
  t.deepEqual(restored.ed25519.publicKey, bob.ed25519.publicKey);
  const header: Header = { v: 1, from: 'alice', to: 'bob', msg: 'msg-00000001', at: 1, senderKeyId: keyId(alice.ed25519.publicKey), recipientKeyId: keyId(bob.x25519.publicKey) };
  const sealed = seal({ plaintext: new TextEncoder().encode('hi'), header, sender: alice, recipientX25519: bob.x25519.publicKey });
  t.is(new TextDecoder().decode(open({ sealed, recipient: restored, senderEd25519: alice.ed25519.publicKey }).plaintext), 'hi');
  t.deepEqual(backupParams(blob), CHEAP, 'the parameters travel with the blob');
});

test('key backup - a wrong password or another user name does not open it', async (t) => {
  const id = generateIdentity();
  const blob = await backupKeys(id, 'carol', 'the right password', CHEAP);
  for (const [user, password] of [['carol', 'the wrong password'], ['dave', 'the right password']] as const) {
    const e = await t.throwsAsync(restoreKeys(blob, user, password));
    t.true(isCryptoError(e, 'CRYPTO_ERR_DECRYPT'), `${user}/${password}: ${String(e)}`);
  }
});

test('key backup - any single changed byte is refused, never a wrong identity (property)', async (t) => {
  const id = generateIdentity();
  const blob = await backupKeys(id, 'erin', 'pw-erin', CHEAP);
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: blob.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, flip) => {
      const bad = blob.slice();
      bad[at] = bad[at]! ^ flip;
      try {
        await restoreKeys(bad, 'erin', 'pw-erin');
        return false;
      } catch (e) {
        return isCryptoError(e, 'CRYPTO_ERR_DECRYPT') || isCryptoError(e, 'CRYPTO_ERR_FORMAT');
      }
    }),
    { numRuns: 40 },
  );
  t.pass();
});

test('key backup - garbage and truncations are CRYPTO_ERR_FORMAT', async (t) => {
  const blob = await backupKeys(generateIdentity(), 'fay', 'pw', CHEAP);
  for (const bad of [new Uint8Array(0), blob.subarray(0, 50), Uint8Array.of(9, ...blob.subarray(1)), new Uint8Array(blob.length)]) {
    const e = await t.throwsAsync(restoreKeys(bad, 'fay', 'pw'));
    t.true(isCryptoError(e, 'CRYPTO_ERR_FORMAT'), String(e));
  }
  await t.throwsAsync(backupKeys(generateIdentity(), 'fay', 'pw', { logN: 30, r: 8, p: 1 }), { message: /out of range/ });
});

test('key backup - the default cost (scrypt N=2^17, r=8, p=1) works', async (t) => {
  const id = generateIdentity();
  const t0 = performance.now();
  const blob = await backupKeys(id, 'gus', 'pw-gus');
  t.log(`backup at the default cost: ${Math.round(performance.now() - t0)} ms (@noble scrypt, pure JS)`);
  t.deepEqual(backupParams(blob), { ...DEFAULT_BACKUP_PARAMS });
  t.deepEqual((await restoreKeys(blob, 'gus', 'pw-gus')).ed25519.publicKey, id.ed25519.publicKey);
});
