/**
 * The client's message content codec and header member list (pure code, in Node): what a
 * decoder accepts, what it refuses, and that nothing but a ContentError / CryptoError escapes.
 * Also: every error code the protocol documents has words in the client.
 */
import test from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { CONTENT_ERR_FORMAT, ContentError, decodeContent, encodeContent, MAX_TEXT } from '../../client/app/content.ts';
import { CLOSE_TEXT, describeError, ERROR_TEXT } from '../../client/app/errors.ts';
import { directGroupId } from '../../client/app/ids.ts';
import { CryptoError, generateIdentity, keyId, open, peekSenderKeyId, seal, type Header } from '../../client/crypto/envelope.ts';

const text = fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' });

test('content: every valid content round-trips exactly', (t) => {
  fc.assert(
    fc.property(text, fc.option(fc.string({ minLength: 1, maxLength: 64 }).filter((s) => s.isWellFormed()), { nil: undefined }), (body, name) => {
      const c = name === undefined ? { v: 1 as const, text: body } : { v: 1 as const, text: body, name };
      t.deepEqual(decodeContent(encodeContent(c)), c);
    }),
  );
});

test('content: refusals carry CONTENT_ERR_FORMAT and say why', (t) => {
  const bad: [unknown, RegExp][] = [
    [null, /not an object/], [[], /not an object/], [{ v: 2, text: 'x' }, /v must be 1/], [{ v: 1 }, /text/], [{ v: 1, text: '' }, /text/],
    [{ v: 1, text: 'x'.repeat(MAX_TEXT + 1) }, /text/], [{ v: 1, text: 'a\ud800' }, /text/], [{ v: 1, text: 'x', name: '' }, /name/],
    [{ v: 1, text: 'x', html: '<b>' }, /unknown content field "html"/],
  ];
  for (const [value, why] of bad) {
    const e = t.throws(() => decodeContent(new TextEncoder().encode(JSON.stringify(value))), { instanceOf: ContentError });
    t.is(e?.code, CONTENT_ERR_FORMAT);
    t.regex(e?.message ?? '', why);
  }
  t.throws(() => encodeContent({ v: 1, text: '' }), { instanceOf: ContentError });
});

test('content: random bytes never decode to anything but a ContentError or a valid content', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        const c = decodeContent(bytes);
        t.true(typeof c.text === 'string' && c.text.length > 0);
      } catch (e) {
        t.true(e instanceof ContentError, String(e));
      }
    }),
    { numRuns: 2000 },
  );
  // JSON-shaped fuzz: objects with random keys and values.
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('v', 'text', 'name', 'x', '__proto__'), fc.jsonValue()), (o) => {
      try {
        decodeContent(new TextEncoder().encode(JSON.stringify(o)));
      } catch (e) {
        t.true(e instanceof ContentError, String(e));
      }
    }),
  );
});

test('header members: sealed with the message, sorted and distinct, naming sender and recipient; changing the list breaks the signature', (t) => {
  const alice = generateIdentity();
  const bob = generateIdentity();
  const header = (members: string[]): Header => ({ v: 1, from: 'alice', to: 'bob', msg: 'msg-0000000001', at: 1, group: 'group-000000001', members, senderKeyId: keyId(alice.ed25519.publicKey), recipientKeyId: keyId(bob.x25519.publicKey) });
  const sealed = seal({ plaintext: encodeContent({ v: 1, text: 'hi all' }), header: header(['alice', 'bob', 'cyd']), sender: alice, recipientX25519: bob.x25519.publicKey });
  t.deepEqual(open({ sealed, recipient: bob, senderEd25519: alice.ed25519.publicKey }).header.members, ['alice', 'bob', 'cyd']);
  t.is(peekSenderKeyId(sealed), keyId(alice.ed25519.publicKey), 'the key id can be read to choose the key');
  for (const members of [['bob', 'alice'], ['alice', 'alice', 'bob'], ['alice', 'cyd'], [], ['alice', 'bob', 7]]) {
    t.throws(() => seal({ plaintext: new Uint8Array(1), header: header(members as string[]), sender: alice, recipientX25519: bob.x25519.publicKey }), { instanceOf: CryptoError }, JSON.stringify(members));
  }
  // Cutting cyd out of the list on the way: the signature no longer holds.
  const text = new TextDecoder().decode(sealed);
  const cut = new TextEncoder().encode(text.replace('"alice","bob","cyd"', '"alice","bob","cyx"'));
  t.throws(() => open({ sealed: cut, recipient: bob, senderEd25519: alice.ed25519.publicKey }), { instanceOf: CryptoError });
  t.is(peekSenderKeyId(new Uint8Array(10)), null);
  t.is(peekSenderKeyId(sealed.slice(0, 80)), null);
});

test('directGroupId: the same for both people, different for every pair, and a valid group id', (t) => {
  t.is(directGroupId('ann', 'ben'), directGroupId('ben', 'ann'));
  t.not(directGroupId('ann', 'ben'), directGroupId('ann', 'bea'));
  t.regex(directGroupId('ann', 'ben'), /^[A-Za-z0-9_-]{8,64}$/);
});

test('errors: every error code and close code in docs/protocol.md has words in the client', (t) => {
  const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  const errors = doc.slice(doc.indexOf('## Errors'));
  const codes = [...errors.matchAll(/^\| `([A-Z]+_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!);
  t.true(codes.length >= 15, `found the table (${codes.length} codes)`);
  for (const code of codes) t.truthy(ERROR_TEXT[code], code);
  const closes = [...doc.slice(doc.indexOf('## Close codes')).matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1]));
  t.true(closes.length >= 5);
  for (const c of closes) t.truthy(CLOSE_TEXT[c], String(c));
  t.is(describeError({ code: 'NO_SUCH_CODE', message: '' }), ERROR_TEXT['CELL_ERR_REMOTE']!, 'an unknown code reads like CELL_ERR_REMOTE');
});
