import test from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import {
  CRYPTO_ERR_DECRYPT,
  CRYPTO_ERR_FORMAT,
  CRYPTO_ERR_HEADER,
  CRYPTO_ERR_SIGNATURE,
  CryptoError,
  type CryptoErrorCode,
  type Header,
  type Identity,
  LABEL_MESSAGE_KEY,
  LABEL_SAFETY_NUMBER,
  PREFIX_BYTES,
  SIGNATURE_BYTES,
  canonicalHeader,
  generateIdentity,
  identityFromSecrets,
  keyId,
  open,
  safetyNumber,
  seal,
  sealWith,
  sealedLength,
  x25519Shared,
  xchachaSeal,
} from '../../client/crypto/envelope.ts';
import { pad, padme, paddedLength, unpad } from '../../client/crypto/padding.ts';

const h = (s: string): Uint8Array => hexToBytes(s.replace(/\s+/g, ''));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function codeOf(fn: () => unknown): CryptoErrorCode | 'no-throw' | 'not-a-crypto-error' {
  try {
    fn();
    return 'no-throw';
  } catch (e) {
    return e instanceof CryptoError && e instanceof Error ? e.code : 'not-a-crypto-error';
  }
}

const alice = generateIdentity();
const bob = generateIdentity();
const carol = generateIdentity();
const mallory = generateIdentity();

function headerFor(sender: Identity, recipient: Identity, extra: Partial<Header> = {}): Header {
  return {
    v: 1,
    from: 'alice',
    to: 'bob',
    msg: 'm-0001',
    at: 1_760_000_000_000,
    senderKeyId: keyId(sender.ed25519.publicKey),
    recipientKeyId: keyId(recipient.x25519.publicKey),
    ...extra,
  };
}

function sealAB(plaintext: Uint8Array, extra: Partial<Header> = {}): Uint8Array {
  return seal({ plaintext, header: headerFor(alice, bob, extra), sender: alice, recipientX25519: bob.x25519.publicKey });
}

function openAB(sealed: Uint8Array, expect?: Partial<Header>) {
  return open({ sealed, recipient: bob, senderEd25519: alice.ed25519.publicKey, ...(expect ? { expect } : {}) });
}

// ---------------------------------------------------------------------------------------------
// Published vectors through the module's own primitives

test('RFC 7748 section 5.2: X25519 scalar multiplication vectors', (t) => {
  t.is(
    bytesToHex(
      x25519Shared(
        h('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'),
        h('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c'),
      ),
    ),
    'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
  );
  t.is(
    bytesToHex(
      x25519Shared(
        h('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d'),
        h('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493'),
      ),
    ),
    '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
  );
});

test('RFC 7748 section 6.1: Alice/Bob key pairs and shared secret', (t) => {
  const aSecret = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bSecret = h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const aPublic = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
  const bPublic = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  const base = h('0900000000000000000000000000000000000000000000000000000000000000');
  t.is(bytesToHex(x25519Shared(aSecret, base)), aPublic);
  t.is(bytesToHex(x25519Shared(bSecret, base)), bPublic);
  t.is(bytesToHex(identityFromSecrets(aSecret, new Uint8Array(32)).x25519.publicKey), aPublic);
  t.is(bytesToHex(x25519Shared(aSecret, h(bPublic))), shared);
  t.is(bytesToHex(x25519Shared(bSecret, h(aPublic))), shared);
});

test('draft-irtf-cfrg-xchacha-03 A.3.1: XChaCha20-Poly1305 AEAD vector', (t) => {
  const key = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = h('404142434445464748494a4b4c4d4e4f5051525354555657');
  const aad = h('50515253c0c1c2c3c4c5c6c7');
  const plaintext = utf8(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  t.is(
    bytesToHex(plaintext),
    '4c616469657320616e642047656e746c656d656e206f662074686520636c6173' +
      '73206f66202739393a204966204920636f756c64206f6666657220796f75206f' +
      '6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73' +
      '637265656e20776f756c642062652069742e',
  );
  const ciphertext =
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb' +
    '731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
    '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9' +
    '21f9664c97637da9768812f615c68b13b52e';
  const tag = 'c0875924c1c7987947deafd8780acf49';
  t.is(bytesToHex(xchachaSeal(key, nonce, aad, plaintext)), ciphertext + tag);
});

// ---------------------------------------------------------------------------------------------
// Our own vectors (test/client/crypto-vectors.json): a change in the construction must show here.

interface OwnVector {
  name: string;
  senderX25519Secret: string;
  senderEd25519Secret: string;
  recipientX25519Secret: string;
  recipientEd25519Secret: string;
  ephemeralSecret: string;
  nonce: string;
  header: Header;
  plaintext: string;
  sealed: string;
}
interface VectorFile {
  labels: { messageKey: string; safetyNumber: string };
  envelopes: OwnVector[];
  safetyNumber: { a: string; b: string; expected: string };
}
const vectors = JSON.parse(
  readFileSync(new URL('../../../test/client/crypto-vectors.json', import.meta.url), 'utf8'),
) as VectorFile;

test('own vectors: labels are unchanged', (t) => {
  t.deepEqual(vectors.labels, { messageKey: LABEL_MESSAGE_KEY, safetyNumber: LABEL_SAFETY_NUMBER });
});

for (const v of vectors.envelopes) {
  test(`own vectors: deterministic seal "${v.name}" matches and opens`, (t) => {
    const sender = identityFromSecrets(h(v.senderX25519Secret), h(v.senderEd25519Secret));
    const recipient = identityFromSecrets(h(v.recipientX25519Secret), h(v.recipientEd25519Secret));
    const sealed = sealWith(
      { plaintext: h(v.plaintext), header: v.header, sender, recipientX25519: recipient.x25519.publicKey },
      { ephemeralSecret: h(v.ephemeralSecret), nonce: h(v.nonce) },
    );
    t.is(bytesToHex(sealed), v.sealed);
    const opened = open({ sealed: h(v.sealed), recipient, senderEd25519: sender.ed25519.publicKey });
    t.deepEqual(opened.header, v.header);
    t.is(bytesToHex(opened.plaintext), v.plaintext);
  });
}

test('own vectors: safety number', (t) => {
  const a = identityFromSecrets(h(vectors.envelopes[0]!.senderX25519Secret), h(vectors.envelopes[0]!.senderEd25519Secret));
  const b = identityFromSecrets(h(vectors.envelopes[0]!.recipientX25519Secret), h(vectors.envelopes[0]!.recipientEd25519Secret));
  const pa = { user: vectors.safetyNumber.a, ed25519: a.ed25519.publicKey, x25519: a.x25519.publicKey };
  const pb = { user: vectors.safetyNumber.b, ed25519: b.ed25519.publicKey, x25519: b.x25519.publicKey };
  t.is(safetyNumber(pa, pb), vectors.safetyNumber.expected);
});

// ---------------------------------------------------------------------------------------------
// Padding

test('padme: known values, and leaks O(log log n) bits', (t) => {
  t.is(padme(0), 0);
  t.is(padme(1), 1);
  t.is(padme(4), 4);
  t.is(padme(100), 104);
  t.is(padme(1000), 1024);
  t.is(padme(1025), 1088);
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 1 << 30 }), (n) => {
      const p = padme(n);
      const e = 31 - Math.clz32(n);
      const s = 31 - Math.clz32(e) + 1;
      const bitLength = p >= 2 ** 31 ? 32 : 32 - Math.clz32(p);
      let trailing = 0;
      while (trailing < 32 && Math.floor(p / 2 ** trailing) % 2 === 0) trailing++;
      return (
        p >= n &&
        p - n <= n / 8 + 1 && // Padmé overhead is bounded (max ~11.1%)
        bitLength - trailing <= s + 1 && // only the top S+1 bits can be non-zero: O(log log n) bits
        padme(p) === p && // idempotent
        padme(n - 1) <= p // monotone
      );
    }),
  );
});

test('pad/unpad: u32 length prefix + zeros to padme(len + 4); unpad is strict', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 5000 }), (pt) => {
      const padded = pad(pt);
      const back = unpad(padded);
      return padded.length === padme(pt.length + 4) && back !== null && bytesToHex(back) === bytesToHex(pt);
    }),
  );
  const padded = pad(utf8('hello, world!'));
  t.is(padded.length, paddedLength(13));
  t.is(padded.length, 18, 'padme(13 + 4) = 18: one zero byte of padding');
  const bad = padded.slice();
  bad[bad.length - 1] = 1;
  t.is(unpad(bad), null, 'non-zero padding');
  t.is(unpad(padded.subarray(0, padded.length - 1)), null, 'wrong total length');
  t.is(unpad(new Uint8Array([0, 0, 1, 0, 0, 0, 0, 0])), null, 'prefix larger than the content');
  t.is(unpad(new Uint8Array(3)), null, 'shorter than the prefix');
});

// ---------------------------------------------------------------------------------------------
// Round trip

const arbText = fc.string({ unit: 'grapheme', maxLength: 24 });
const arbHeaderExtra = fc.record(
  {
    from: arbText,
    to: arbText,
    msg: arbText,
    at: fc.maxSafeNat(),
    group: arbText,
  },
  { requiredKeys: ['from', 'to', 'msg', 'at'] },
);

test('round trip: random plaintexts (0..4096 bytes) and headers open back exactly; size depends only on padded length', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 4096 }), arbHeaderExtra, (pt, extra) => {
      const header = headerFor(alice, bob, extra);
      const sealed = sealAB(pt, extra);
      const opened = openAB(sealed, { from: header.from, to: header.to });
      const headerBytes = canonicalHeader(header).length;
      return (
        bytesToHex(opened.plaintext) === bytesToHex(pt) &&
        JSON.stringify(opened.header) === JSON.stringify(JSON.parse(new TextDecoder().decode(canonicalHeader(header)))) &&
        sealed.length === sealedLength(headerBytes, paddedLength(pt.length))
      );
    }),
    { numRuns: 150 },
  );
  // Two plaintexts in the same Padmé bucket give blobs of identical length.
  t.is(paddedLength(1000), paddedLength(1010));
  t.is(sealAB(new Uint8Array(1000)).length, sealAB(new Uint8Array(1010)).length);
  t.not(sealAB(new Uint8Array(1000)).length, sealAB(new Uint8Array(1100)).length);
});

test('seal is randomised: same input, different blobs (fresh ephemeral key and nonce)', (t) => {
  const a = sealAB(utf8('same'));
  const b = sealAB(utf8('same'));
  t.not(bytesToHex(a), bytesToHex(b));
  t.not(bytesToHex(a.subarray(1, 33)), bytesToHex(b.subarray(1, 33)), 'ephemeral public keys differ');
});

test('seal refuses a header whose key ids do not match the keys', (t) => {
  const header = headerFor(alice, bob, { recipientKeyId: keyId(carol.x25519.publicKey) });
  t.is(codeOf(() => seal({ plaintext: utf8('x'), header, sender: alice, recipientX25519: bob.x25519.publicKey })), CRYPTO_ERR_HEADER);
  const header2 = headerFor(mallory, bob);
  t.is(codeOf(() => seal({ plaintext: utf8('x'), header: header2, sender: alice, recipientX25519: bob.x25519.publicKey })), CRYPTO_ERR_HEADER);
});

// ---------------------------------------------------------------------------------------------
// Tampering and garbage

const sample = sealAB(utf8('meet at the usual place at 9'), { group: 'g-42' });

test('tampering: flipping any single byte fails with CRYPTO_ERR_SIGNATURE', (t) => {
  t.is(openAB(sample).header.group, 'g-42');
  fc.assert(
    fc.property(fc.nat({ max: sample.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, mask) => {
      const bad = sample.slice();
      bad[pos] = bad[pos]! ^ mask;
      return codeOf(() => openAB(bad)) === CRYPTO_ERR_SIGNATURE;
    }),
    { numRuns: 300 },
  );
  // Exhaustively, one bit per position, too.
  for (let pos = 0; pos < sample.length; pos++) {
    const bad = sample.slice();
    bad[pos] = bad[pos]! ^ 0x01;
    if (codeOf(() => openAB(bad)) !== CRYPTO_ERR_SIGNATURE) t.fail(`position ${pos}`);
  }
  t.pass();
});

test('re-signed by another key: fails against the real sender; passes the signature but not the header under the impostor', (t) => {
  const body = sample.subarray(0, sample.length - SIGNATURE_BYTES);
  const forged = new Uint8Array(sample.length);
  forged.set(body);
  forged.set(ed25519.sign(body, mallory.ed25519.secretKey), body.length);
  t.is(codeOf(() => openAB(forged)), CRYPTO_ERR_SIGNATURE);
  t.is(codeOf(() => open({ sealed: forged, recipient: bob, senderEd25519: mallory.ed25519.publicKey })), CRYPTO_ERR_HEADER);
});

test('correctly signed blob for another recipient fails with CRYPTO_ERR_DECRYPT', (t) => {
  const toCarol = seal({
    plaintext: utf8('for carol only'),
    header: headerFor(alice, carol, { to: 'carol' }),
    sender: alice,
    recipientX25519: carol.x25519.publicKey,
  });
  t.is(bytesToHex(open({ sealed: toCarol, recipient: carol, senderEd25519: alice.ed25519.publicKey }).plaintext), bytesToHex(utf8('for carol only')));
  t.is(codeOf(() => openAB(toCarol)), CRYPTO_ERR_DECRYPT);
});

test('expect mismatch (the server claims another sender) fails with CRYPTO_ERR_HEADER', (t) => {
  t.notThrows(() => openAB(sample, { from: 'alice', to: 'bob', group: 'g-42' }));
  t.is(codeOf(() => openAB(sample, { from: 'mallory' })), CRYPTO_ERR_HEADER);
  t.is(codeOf(() => openAB(sample, { to: 'carol' })), CRYPTO_ERR_HEADER);
  t.is(codeOf(() => openAB(sample, { group: 'g-43' })), CRYPTO_ERR_HEADER);
  t.is(codeOf(() => openAB(sample, { msg: 'other' })), CRYPTO_ERR_HEADER);
});

test('truncated input fails with FORMAT or SIGNATURE, never another exception', (t) => {
  for (let len = 0; len < sample.length; len++) {
    const c = codeOf(() => openAB(sample.subarray(0, len)));
    if (c !== CRYPTO_ERR_FORMAT && c !== CRYPTO_ERR_SIGNATURE) t.fail(`length ${len}: ${c}`);
  }
  t.is(codeOf(() => openAB(new Uint8Array(0))), CRYPTO_ERR_FORMAT);
  t.is(codeOf(() => openAB(sample.subarray(0, PREFIX_BYTES))), CRYPTO_ERR_FORMAT);
  t.is(codeOf(() => openAB(concat(sample, new Uint8Array([0])))), CRYPTO_ERR_SIGNATURE, 'trailing byte');
});

test('garbage input (fuzz) fails with FORMAT or SIGNATURE, never another exception', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (junk) => {
      const c = codeOf(() => openAB(junk));
      return c === CRYPTO_ERR_FORMAT || c === CRYPTO_ERR_SIGNATURE;
    }),
    { numRuns: 500 },
  );
  // Garbage that keeps a valid-looking prefix from a real blob.
  fc.assert(
    fc.property(fc.nat({ max: sample.length }), fc.uint8Array({ maxLength: 200 }), (cut, junk) => {
      const blob = concat(sample.subarray(0, cut), junk);
      if (bytesToHex(blob) === bytesToHex(sample)) return true; // reassembled the genuine blob
      const c = codeOf(() => openAB(blob));
      return c === CRYPTO_ERR_FORMAT || c === CRYPTO_ERR_SIGNATURE;
    }),
    { numRuns: 300 },
  );
  t.is(codeOf(() => open({ sealed: 'nope' as unknown as Uint8Array, recipient: bob, senderEd25519: alice.ed25519.publicKey })), CRYPTO_ERR_FORMAT);
  t.is(codeOf(() => open({ sealed: sample, recipient: bob, senderEd25519: new Uint8Array(31) })), CRYPTO_ERR_FORMAT);
});

/** Body built by hand and validly signed by alice: exercises the strict parser behind the signature. */
function signedByAlice(body: Uint8Array): Uint8Array {
  return concat(body, ed25519.sign(body, alice.ed25519.secretKey));
}

test('strict parsing behind a valid signature: version, lengths, canonical header', (t) => {
  const body = sample.subarray(0, sample.length - SIGNATURE_BYTES);
  const v2 = body.slice();
  v2[0] = 2;
  t.is(codeOf(() => openAB(signedByAlice(v2))), CRYPTO_ERR_FORMAT, 'unknown version');
  const longHeader = body.slice();
  longHeader[PREFIX_BYTES - 2] = 0xff;
  longHeader[PREFIX_BYTES - 1] = 0xff;
  t.is(codeOf(() => openAB(signedByAlice(longHeader))), CRYPTO_ERR_FORMAT, 'header length past the end');
  const zeroHeader = body.slice();
  zeroHeader[PREFIX_BYTES - 2] = 0;
  zeroHeader[PREFIX_BYTES - 1] = 0;
  t.is(codeOf(() => openAB(signedByAlice(zeroHeader))), CRYPTO_ERR_FORMAT, 'empty header');

  const hdr = canonicalHeader(headerFor(alice, bob));
  const frame = (headerBytes: Uint8Array): Uint8Array => {
    const prefix = body.slice(0, PREFIX_BYTES);
    prefix[PREFIX_BYTES - 2] = headerBytes.length >>> 8;
    prefix[PREFIX_BYTES - 1] = headerBytes.length & 0xff;
    return signedByAlice(concat(prefix, headerBytes, new Uint8Array(40)));
  };
  const reordered = utf8(JSON.stringify({ v: 1, ...JSON.parse(new TextDecoder().decode(hdr)) }));
  t.not(bytesToHex(reordered), bytesToHex(hdr));
  t.is(codeOf(() => openAB(frame(reordered))), CRYPTO_ERR_FORMAT, 'keys not sorted');
  t.is(codeOf(() => openAB(frame(utf8(' ' + new TextDecoder().decode(hdr))))), CRYPTO_ERR_FORMAT, 'whitespace');
  t.is(codeOf(() => openAB(frame(new Uint8Array([0xff, 0xfe])))), CRYPTO_ERR_FORMAT, 'not UTF-8');
  t.is(codeOf(() => openAB(frame(utf8('[1]')))), CRYPTO_ERR_FORMAT, 'not an object');
  const extraField = { ...headerFor(alice, bob), x: 1 };
  t.is(codeOf(() => openAB(frame(utf8(JSON.stringify(Object.fromEntries(Object.entries(extraField).sort())))))), CRYPTO_ERR_FORMAT, 'unknown field');
  // A canonical, valid header but ciphertext that is not ours to open.
  t.is(codeOf(() => openAB(frame(hdr))), CRYPTO_ERR_DECRYPT, 'well-formed frame, garbage ciphertext');
});

// ---------------------------------------------------------------------------------------------
// Safety numbers

test('safetyNumber: 12 groups of 5 digits, symmetric, changes when any key changes', (t) => {
  const pa = { user: 'alice', ed25519: alice.ed25519.publicKey, x25519: alice.x25519.publicKey };
  const pb = { user: 'bob', ed25519: bob.ed25519.publicKey, x25519: bob.x25519.publicKey };
  const n = safetyNumber(pa, pb);
  t.regex(n, /^\d{5}( \d{5}){11}$/);
  t.is(safetyNumber(pb, pa), n);
  t.not(safetyNumber({ ...pa, ed25519: mallory.ed25519.publicKey }, pb), n);
  t.not(safetyNumber({ ...pa, x25519: mallory.x25519.publicKey }, pb), n);
  t.not(safetyNumber(pa, { ...pb, ed25519: mallory.ed25519.publicKey }), n);
  t.not(safetyNumber(pa, { ...pb, x25519: mallory.x25519.publicKey }), n);
  t.not(safetyNumber({ ...pa, user: 'alicia' }, pb), n);
  fc.assert(
    fc.property(arbText, arbText, fc.uint8Array({ minLength: 32, maxLength: 32 }), (u1, u2, k) => {
      const x = { user: u1, ed25519: k, x25519: alice.x25519.publicKey };
      const y = { user: u2, ed25519: bob.ed25519.publicKey, x25519: k };
      return safetyNumber(x, y) === safetyNumber(y, x);
    }),
  );
});

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
