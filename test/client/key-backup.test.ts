/**
 * The password-wrapped backup of a user's private keys: it opens with the password, for
 * that user only, and any change to it is refused. A cheap scrypt cost (logN 10) keeps the
 * property runs fast; one test proves the default cost works.
 */
import test from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { generateIdentity, identityFromSecrets, isCryptoError, open, seal, keyId, type Header } from '../../client/crypto/envelope.ts';
import { rosterBytes, signRoster, verifyRoster, type Roster } from '../../client/crypto/group-roster.ts';
import { ownerStatement } from '../../cells/worker/accounts.ts';
import { BACKUP_V2_BYTES, backupKeys, backupMode, backupParams, DEFAULT_BACKUP_PARAMS, openBackup, restoreKeys, sealBackup } from '../../client/crypto/key-backup.ts';
import { formatRecoveryKey, newRecoveryKey, parseRecoveryKey } from '../../client/crypto/recovery-key.ts';

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

// ---- version 2 (the export key or a recovery key) ----------------------------------------

const exportKey = (fill: number) => new Uint8Array(64).fill(fill);

test('key backup v2 - opens with its secret, for its user and mode only; its size and mode are what the doc says', async (t) => {
  const id = generateIdentity();
  const byPassword = sealBackup(id, 'erin', { mode: 'password', exportKey: exportKey(1) });
  const recoveryKey = newRecoveryKey();
  const byRecovery = sealBackup(id, 'erin', { mode: 'recovery', recoveryKey });
  t.is(byPassword.length, BACKUP_V2_BYTES);
  t.is(BACKUP_V2_BYTES, 106);
  t.deepEqual([byPassword[0], byPassword[1], byRecovery[1]], [2, 1, 2]);
  t.is(backupMode(byPassword), 'password');
  t.is(backupMode(byRecovery), 'recovery');
  t.deepEqual(openBackup(byPassword, 'erin', { mode: 'password', exportKey: exportKey(1) }).ed25519.secretKey, id.ed25519.secretKey);
  t.deepEqual(openBackup(byRecovery, 'erin', { mode: 'recovery', recoveryKey }).x25519.secretKey, id.x25519.secretKey);
  const refused = (f: () => unknown, code: string) => {
    const e = t.throws(f);
    t.true(isCryptoError(e, code as never), `${e?.message}`);
  };
  refused(() => openBackup(byPassword, 'erin', { mode: 'password', exportKey: exportKey(2) }), 'CRYPTO_ERR_DECRYPT');
  refused(() => openBackup(byPassword, 'frank', { mode: 'password', exportKey: exportKey(1) }), 'CRYPTO_ERR_DECRYPT');
  refused(() => openBackup(byRecovery, 'erin', { mode: 'password', exportKey: recoveryKey }), 'CRYPTO_ERR_FORMAT');
  const relabelled = Uint8Array.from(byRecovery);
  relabelled[1] = 1; // a server flipping the mode byte to make the client try the export key
  refused(() => openBackup(relabelled, 'erin', { mode: 'password', exportKey: recoveryKey }), 'CRYPTO_ERR_DECRYPT');
  refused(() => openBackup(byPassword.subarray(1), 'erin', { mode: 'password', exportKey: exportKey(1) }), 'CRYPTO_ERR_FORMAT');
  refused(() => sealBackup(id, 'erin', { mode: 'password', exportKey: new Uint8Array(31) }), 'CRYPTO_ERR_FORMAT');
  t.is(backupMode(await backupKeys(id, 'erin', 'a password', CHEAP)), 'legacy');
});

test('key backup v2 - any single changed byte is refused, never a wrong identity (property)', (t) => {
  const id = generateIdentity();
  const blob = sealBackup(id, 'gail', { mode: 'password', exportKey: exportKey(7) });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: blob.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
      const bad = Uint8Array.from(blob);
      bad[at] = bad[at]! ^ xor;
      try {
        openBackup(bad, 'gail', { mode: 'password', exportKey: exportKey(7) });
        return false;
      } catch (e) {
        return isCryptoError(e);
      }
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('recovery key - the text round-trips whatever its case, spaces and dashes; any one mistyped character is caught by the check (property)', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(), fc.integer({ min: 1, max: 31 }), (key, where, shift) => {
      const text = formatRecoveryKey(key);
      if (!/^[a-z2-7]{4}(-[a-z2-7]{4}){13}$/.test(text)) return false;
      if (!Buffer.from(parseRecoveryKey(text.toUpperCase().replace(/-/g, ' '))).equals(Buffer.from(key))) return false;
      const chars = [...text.replace(/-/g, '')];
      const i = where % chars.length;
      const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
      chars[i] = alphabet[(alphabet.indexOf(chars[i]!) + shift) % 32]!;
      try {
        parseRecoveryKey(chars.join(''));
        return false; // a typo that passed the check
      } catch (e) {
        return isCryptoError(e, 'CRYPTO_ERR_FORMAT');
      }
    }),
    { numRuns: 500 },
  );
  t.throws(() => parseRecoveryKey('abcd'), { message: /56 letters/ });
  t.throws(() => parseRecoveryKey('8'.repeat(56)), { message: /no "8"/ });
  t.deepEqual(parseRecoveryKey(formatRecoveryKey(new Uint8Array(32)).replace(/o/g, '0')), new Uint8Array(32), 'a 0 typed for an o is read as o');
});

// ---- fixed vectors for the version 2 constructions (test/client/crypto-v2-vectors.json) -----

interface V2Vectors {
  identity: { x25519Secret: string; ed25519Seed: string };
  backups: { user: string; mode: 'password' | 'recovery'; secret: string; nonce: string; blob: string }[];
  recoveryKey: { key: string; text: string };
  ownerStatement: { op: 'keys.backup.put'; user: string; at: number; payload: string; bytes: string };
  roster: { roster: Roster; signedBytes: string; sig: string };
}
const V2 = JSON.parse(readFileSync(new URL('../../../test/client/crypto-v2-vectors.json', import.meta.url), 'utf8')) as V2Vectors;
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('v2 vectors - backups, recovery key text, owner statement and roster bytes are reproduced exactly', (t) => {
  const id = identityFromSecrets(hex(V2.identity.x25519Secret), hex(V2.identity.ed25519Seed));
  for (const v of V2.backups) {
    const secret = v.mode === 'password' ? { mode: v.mode, exportKey: hex(v.secret) } as const : { mode: v.mode, recoveryKey: hex(v.secret) } as const;
    t.is(toHex(sealBackup(id, v.user, secret, hex(v.nonce))), v.blob, `${v.mode} backup`);
    t.deepEqual(openBackup(hex(v.blob), v.user, secret).ed25519.publicKey, id.ed25519.publicKey);
  }
  t.is(formatRecoveryKey(hex(V2.recoveryKey.key)), V2.recoveryKey.text);
  const o = V2.ownerStatement;
  t.is(toHex(ownerStatement(o.op, o.user, o.at, hex(o.payload))), o.bytes);
  t.is(toHex(rosterBytes(V2.roster.roster)), V2.roster.signedBytes);
  const signed = signRoster(V2.roster.roster, hex(V2.identity.ed25519Seed));
  t.is(signed.sig, V2.roster.sig, 'Ed25519 is deterministic');
  t.true(verifyRoster(signed, id.ed25519.publicKey));
  t.false(verifyRoster({ ...signed, version: signed.version + 1 }, id.ed25519.publicKey), 'another version is not what was signed');
});
