/**
 * Lineage certificates, the CertBook that walks them to the root, and the root key file.
 * The CertBook runs without a lineage bucket here: only certificates it was handed count.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { CertBook } from '../../../organism/kernel/cert-book.ts';
import { CellularError } from '../../../organism/wire/errors.ts';
import { generateKeypair, privateKeyObject, publicKeyObject, signBytes, toHex, verifyBytes, type Keypair } from '../../../organism/kernel/keys.ts';
import {
  certificateSignedBy,
  childBudget,
  issueCertificate,
  packCertificate,
  parseCertificate,
  ROOT_ISSUER,
  unpackCertificate,
  type Certificate,
  type UnsignedCertificate,
} from '../../../organism/kernel/lineage.ts';
import { loadOrCreateRootKey, loadRootKey, ROOT_KEY_FILE, ROOT_PUB_FILE } from '../../../organism/grow/root-key.ts';

const root = generateKeypair();
const rootKey = privateKeyObject(root.seed);
const rootPubKey = publicKeyObject(root.pub);
const zygote = generateKeypair();
const child = generateKeypair();

function fields(cell: string, pair: Keypair, over: Partial<UnsignedCertificate> = {}): UnsignedCertificate {
  return { cell, pub: pair.pub, tissue: 'stem', host: 'host-1', born: 1_700_000_000_000, generation: 0, budget: 4, parent: null, issuer: ROOT_ISSUER, ...over };
}

const zygoteCert = issueCertificate(fields('z1', zygote), rootKey);
const childCert = issueCertificate(fields('c1', child, { generation: 1, budget: 1, parent: 'z1', issuer: 'z1', tissue: 'echo' }), privateKeyObject(zygote.seed));

/** msgpackr decodes bin as Buffer; compare as plain Uint8Array. */
function plain(c: unknown): unknown {
  const o = c as Record<string, unknown>;
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v instanceof Uint8Array ? new Uint8Array(v) : v]));
}

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cellular-lineage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---- CertBook ----------------------------------------------------------------------------

test('lineage - a root-issued certificate is learnt', async (t) => {
  const book = new CertBook(root.pub);
  t.is(book.keyOf('z1'), undefined);
  const learnt = await book.learn(zygoteCert);
  t.is(learnt, zygoteCert);
  t.deepEqual(book.certOf('z1'), zygoteCert);
  const key = book.keyOf('z1');
  t.truthy(key);
  // The learnt key is the cell's own: it verifies what the cell signs.
  const data = new TextEncoder().encode('pulse');
  t.true(verifyBytes(key!, data, signBytes(privateKeyObject(zygote.seed), data)));
  t.is(book.refused, 0);
});

test('lineage - the root is known from the start', async (t) => {
  const book = new CertBook(root.pub);
  const data = new TextEncoder().encode('shutdown');
  t.true(verifyBytes(book.keyOf(ROOT_ISSUER)!, data, signBytes(rootKey, data)));
  t.is(await book.resolve(ROOT_ISSUER), book.keyOf(ROOT_ISSUER));
});

test('lineage - a child certificate issued by a learnt parent is learnt', async (t) => {
  const book = new CertBook(root.pub);
  await book.learn(zygoteCert);
  t.is(await book.learn(childCert), childCert);
  t.truthy(book.keyOf('c1'));
  t.is(book.certOf('c1')?.generation, 1);
  // A grandchild, issued by the child.
  const grand = issueCertificate(fields('g1', generateKeypair(), { generation: 2, budget: 0, parent: 'c1', issuer: 'c1' }), privateKeyObject(child.seed));
  t.is(await book.learn(grand), grand);
  t.is(book.refused, 0);
});

test('lineage - the Hayflick rule is enforced by trust: a child one generation down with at most childBudget of its parent, or it is foreign', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 10 }), async (parentBudget, parentGen, budget, generation) => {
      const book = new CertBook(root.pub);
      const p = generateKeypair();
      // The root issues generation 0 only.
      const parent = issueCertificate(fields('p1', p, { budget: parentBudget, generation: parentGen }), rootKey);
      const rootOk = (await book.learn(parent)) !== undefined;
      if (rootOk !== (parentGen === 0)) return false;
      if (!rootOk) return true;
      const kid = issueCertificate(fields('k1', generateKeypair(), { budget, generation, parent: 'p1', issuer: 'p1' }), privateKeyObject(p.seed));
      const ok = (await book.learn(kid)) !== undefined;
      return ok === (generation === parentGen + 1 && budget <= childBudget(parentBudget));
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('lineage - a child whose parent is unknown is refused (no lineage bucket to ask)', async (t) => {
  const book = new CertBook(root.pub);
  t.is(await book.learn(childCert), undefined);
  t.is(book.keyOf('c1'), undefined);
  t.is(book.refused, 1);
  t.is(await book.resolve('c1'), undefined);
});

test('lineage - a certificate claiming the root but signed by another key is refused and counted', async (t) => {
  const book = new CertBook(root.pub);
  const impostor = generateKeypair();
  const forged = issueCertificate(fields('z1', impostor), privateKeyObject(impostor.seed));
  t.is(forged.issuer, ROOT_ISSUER);
  t.is(await book.learn(forged), undefined);
  t.is(book.keyOf('z1'), undefined);
  t.is(book.refused, 1);
  // A self-signed child naming a learnt parent is refused the same way.
  await book.learn(zygoteCert);
  const selfMade = issueCertificate(fields('c9', impostor, { generation: 1, parent: 'z1', issuer: 'z1' }), privateKeyObject(impostor.seed));
  t.is(await book.learn(selfMade), undefined);
  t.is(book.refused, 2);
});

test('lineage - tampering with any signed field breaks the certificate', async (t) => {
  const tampered: Array<[string, Certificate]> = [
    ['cell', { ...zygoteCert, cell: 'z2' }],
    ['pub', { ...zygoteCert, pub: generateKeypair().pub }],
    ['tissue', { ...zygoteCert, tissue: 'worker' }],
    ['host', { ...zygoteCert, host: 'host-2' }],
    ['born', { ...zygoteCert, born: zygoteCert.born + 1 }],
    ['generation', { ...zygoteCert, generation: 1 }],
    ['budget', { ...zygoteCert, budget: 1_000 }],
    ['sig', { ...zygoteCert, sig: Uint8Array.from(zygoteCert.sig, (b, i) => (i === 0 ? b ^ 1 : b)) }],
  ];
  for (const [field, cert] of tampered) {
    t.false(certificateSignedBy(cert, rootPubKey), field);
    const book = new CertBook(root.pub);
    t.is(await book.learn(cert), undefined, field);
    t.is(book.refused, 1, field);
  }
  t.true(certificateSignedBy(zygoteCert, rootPubKey));
  // Tampered child fields too: its budget and its parent.
  const book = new CertBook(root.pub);
  await book.learn(zygoteCert);
  t.is(await book.learn({ ...childCert, budget: 100 }), undefined);
  t.is(book.refused, 1);
});

test('lineage - the issuer must be the parent, and only the root issues parentless cells', async (t) => {
  const book = new CertBook(root.pub);
  await book.learn(zygoteCert);
  const zKey = privateKeyObject(zygote.seed);
  // Signed correctly by z1, but naming another parent.
  const stepchild = issueCertificate(fields('c2', generateKeypair(), { generation: 1, parent: 'z7', issuer: 'z1' }), zKey);
  t.true(certificateSignedBy(stepchild, book.keyOf('z1')!));
  t.is(await book.learn(stepchild), undefined);
  // z1 issuing a cell without a parent, as if it were the root.
  const orphan = issueCertificate(fields('c3', generateKeypair(), { generation: 1, parent: null, issuer: 'z1' }), zKey);
  t.is(await book.learn(orphan), undefined);
  // The root issuing a cell that names a parent.
  const adopted = issueCertificate(fields('c4', generateKeypair(), { parent: 'z1', issuer: ROOT_ISSUER }), rootKey);
  t.is(await book.learn(adopted), undefined);
  t.is(book.refused, 3);
  t.is(book.keyOf('c2') ?? book.keyOf('c3') ?? book.keyOf('c4'), undefined);
});

test('lineage - a second, different certificate for a known cell does not replace the first', async (t) => {
  const book = new CertBook(root.pub);
  await book.learn(zygoteCert);
  const before = book.keyOf('z1');
  t.is(await book.learn(zygoteCert), zygoteCert); // the same one again is fine
  const other = issueCertificate(fields('z1', generateKeypair()), rootKey); // validly signed, other key
  t.is(await book.learn(other), undefined);
  t.is(book.keyOf('z1'), before);
  t.is(book.certOf('z1'), zygoteCert);
});

test('lineage - malformed shapes are refused by the book and counted', async (t) => {
  const book = new CertBook(root.pub);
  for (const junk of [null, 42, 'cert', [], {}, { ...zygoteCert, v: 2 }]) t.is(await book.learn(junk), undefined);
  t.is(book.refused, 6);
});

// ---- parseCertificate, pack/unpack -----------------------------------------------------------

test('lineage - parseCertificate rejects malformed shapes with TRUST_ERR_CERTIFICATE', (t) => {
  const bad: Array<[string, unknown]> = [
    ['null', null],
    ['a string', 'cert'],
    ['a number', 7],
    ['v 2', { ...zygoteCert, v: 2 }],
    ['no v', { ...zygoteCert, v: undefined }],
    ['cell upper case', { ...zygoteCert, cell: 'Z1' }],
    ['cell empty', { ...zygoteCert, cell: '' }],
    ['cell too long', { ...zygoteCert, cell: 'a'.repeat(65) }],
    ['pub 31 bytes', { ...zygoteCert, pub: new Uint8Array(31) }],
    ['pub an array', { ...zygoteCert, pub: [...zygoteCert.pub] }],
    ['pub hex', { ...zygoteCert, pub: toHex(zygoteCert.pub) }],
    ['sig 63 bytes', { ...zygoteCert, sig: new Uint8Array(63) }],
    ['no sig', { ...zygoteCert, sig: undefined }],
    ['tissue empty', { ...zygoteCert, tissue: '' }],
    ['tissue too long', { ...zygoteCert, tissue: 't'.repeat(33) }],
    ['host empty', { ...zygoteCert, host: '' }],
    ['host too long', { ...zygoteCert, host: 'h'.repeat(256) }],
    ['born negative', { ...zygoteCert, born: -1 }],
    ['generation fractional', { ...zygoteCert, generation: 1.5 }],
    ['budget a string', { ...zygoteCert, budget: '3' }],
    ['budget unsafe', { ...zygoteCert, budget: 2 ** 53 }],
    ['parent malformed', { ...zygoteCert, parent: 'Not A Cell' }],
    ['parent missing', { ...zygoteCert, parent: undefined }],
    ['issuer empty', { ...zygoteCert, issuer: '' }],
    ['issuer a number', { ...zygoteCert, issuer: 0 }],
  ];
  for (const [why, value] of bad) {
    const e = t.throws(() => parseCertificate(value), { instanceOf: CellularError }, why);
    t.is(e?.code, 'TRUST_ERR_CERTIFICATE', why);
    t.regex(e?.message ?? '', /^certificate rejected: /, why);
  }
  t.is(parseCertificate(zygoteCert), zygoteCert);
  t.is(parseCertificate(childCert), childCert);
});

test('lineage - parseCertificate throws nothing but TRUST_ERR_CERTIFICATE on arbitrary values', (t) => {
  // Each field mostly valid, sometimes not, so both outcomes are exercised.
  const mostly = <T, U>(valid: T, other: fc.Arbitrary<U>) => fc.oneof({ weight: 6, arbitrary: fc.constant(valid) }, { weight: 1, arbitrary: other });
  const nearCert = fc.record({
    v: mostly(1, fc.constantFrom(2, '1', 0)),
    cell: mostly('z1', fc.string()),
    pub: mostly(zygoteCert.pub, fc.uint8Array({ minLength: 30, maxLength: 34 })),
    sig: mostly(zygoteCert.sig, fc.uint8Array({ minLength: 62, maxLength: 66 })),
    tissue: mostly('stem', fc.string({ maxLength: 40 })),
    host: mostly('host-1', fc.string({ maxLength: 300 })),
    born: mostly(1, fc.oneof(fc.maxSafeNat(), fc.double())),
    generation: mostly(0, fc.integer()),
    budget: mostly(4, fc.oneof(fc.nat(), fc.double())),
    parent: mostly(null, fc.oneof(fc.constant('z1'), fc.string())),
    issuer: mostly(ROOT_ISSUER, fc.string()),
  });
  let parsed = 0;
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.oneof(fc.anything(), nearCert), (value) => {
        try {
          parseCertificate(value);
          parsed++;
        } catch (e) {
          if (!(e instanceof CellularError) || e.code !== 'TRUST_ERR_CERTIFICATE') throw e;
        }
      }),
      { numRuns: 1_000 },
    ),
  );
  t.true(parsed > 0, 'the generator should make some well-shaped certificates');
});

test('lineage - packCertificate and unpackCertificate round-trip, and the result still verifies', async (t) => {
  for (const cert of [zygoteCert, childCert]) {
    const bytes = packCertificate(cert);
    t.true(bytes instanceof Uint8Array);
    const back = parseCertificate(unpackCertificate(bytes));
    t.deepEqual(plain(back), plain(cert));
  }
  const book = new CertBook(root.pub);
  t.truthy(await book.learn(unpackCertificate(packCertificate(zygoteCert))));
  t.truthy(await book.learn(unpackCertificate(packCertificate(childCert))));
  t.is(book.refused, 0);
});

test('lineage - issueCertificate copies pub, so later changes to the caller buffer do not leak in', (t) => {
  const pub = Uint8Array.from(zygote.pub);
  const cert = issueCertificate(fields('z5', { seed: zygote.seed, pub }), rootKey);
  pub[0] = pub[0]! ^ 0xff;
  t.true(certificateSignedBy(cert, rootPubKey));
  t.deepEqual(cert.pub, zygote.pub);
});

// ---- root key ----------------------------------------------------------------------------

test('lineage - loadOrCreateRootKey creates a 0600 key and loads the same key again', (t) => {
  const dir = join(tempDir(t), 'state', 'nested');
  const made = loadOrCreateRootKey(dir);
  const path = join(dir, ROOT_KEY_FILE);
  t.is(statSync(path).mode & 0o777, 0o600);
  t.is(readFileSync(join(dir, ROOT_PUB_FILE), 'utf8').trim(), toHex(made.pub));
  const again = loadOrCreateRootKey(dir);
  t.deepEqual(again.seed, made.seed);
  t.deepEqual(again.pub, made.pub);
  t.deepEqual(loadRootKey(dir).pub, made.pub);
  // The key pair holds together: what one load signs, the other verifies.
  const data = new TextEncoder().encode('root');
  t.true(verifyBytes(again.publicKey, data, signBytes(made.privateKey, data)));
  // And the created key issues certificates a CertBook on its public half accepts.
  t.true(certificateSignedBy(issueCertificate(fields('z1', zygote), made.privateKey), again.publicKey));
});

test('lineage - a root key readable by group or others is refused with TRUST_ERR_ROOT_KEY', (t) => {
  const dir = tempDir(t);
  loadOrCreateRootKey(dir);
  for (const mode of [0o644, 0o640, 0o604]) {
    chmodSync(join(dir, ROOT_KEY_FILE), mode);
    const e = t.throws(() => loadOrCreateRootKey(dir), { instanceOf: CellularError });
    t.is(e?.code, 'TRUST_ERR_ROOT_KEY');
    t.true(e?.message.includes('chmod 600'));
    t.true(e?.message.includes(mode.toString(8)));
  }
  chmodSync(join(dir, ROOT_KEY_FILE), 0o600);
  t.notThrows(() => loadRootKey(dir));
});

test('lineage - a garbage or incomplete root key file is refused with TRUST_ERR_ROOT_KEY', (t) => {
  const contents = [
    'not json at all',
    '',
    'null',
    '{"v":2,"seed":"00","pub":"00"}',
    JSON.stringify({ v: 1, seed: 'zz'.repeat(32), pub: toHex(root.pub) }),
    JSON.stringify({ v: 1, seed: toHex(root.seed).slice(2), pub: toHex(root.pub) }),
    JSON.stringify({ v: 1, seed: toHex(root.seed) }),
  ];
  for (const text of contents) {
    const dir = tempDir(t);
    writeFileSync(join(dir, ROOT_KEY_FILE), text, { mode: 0o600 });
    const e = t.throws(() => loadOrCreateRootKey(dir), { instanceOf: CellularError }, text);
    t.is(e?.code, 'TRUST_ERR_ROOT_KEY', text);
    t.regex(e?.message ?? '', /malformed/, text);
  }
});

test('lineage - loadRootKey without a key file is TRUST_ERR_ROOT_KEY, not a raw fs error', (t) => {
  const e = t.throws(() => loadRootKey(tempDir(t)), { instanceOf: CellularError });
  t.is(e?.code, 'TRUST_ERR_ROOT_KEY');
  t.regex(e?.message ?? '', /cannot read root key/);
  t.truthy(e?.cause);
});

test('lineage - a forgotten cell is unknown again until its certificate is learnt anew', async (t) => {
  const root = generateKeypair();
  const book = new CertBook(root.pub);
  const cell = generateKeypair();
  const cert = issueCertificate(
    { cell: 'gone-1', pub: cell.pub, tissue: 'stem', host: 'h', born: 1, generation: 0, budget: 1, parent: null, issuer: ROOT_ISSUER },
    privateKeyObject(root.seed),
  );
  t.truthy(await book.learn(cert));
  t.truthy(book.keyOf('gone-1'));
  book.forget('gone-1');
  t.is(book.keyOf('gone-1'), undefined);
  t.is(book.certOf('gone-1'), undefined);
  t.truthy(await book.learn(cert), 'learnt again from the same certificate');
});
