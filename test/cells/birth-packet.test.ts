/**
 * The birth packet a cell reads from stdin: valid packets parse, anything else is
 * CELL_ERR_BIRTH_PACKET and nothing else.
 */
import test from 'ava';
import fc from 'fast-check';
import { parseBirthPacket, type BirthPacket } from '../../cells/birth-packet.ts';
import { CellularError } from '../../organism/wire/errors.ts';
import { defaultGenome } from '../../organism/kernel/genome/index.ts';
import { generateKeypair, privateKeyObject, toHex } from '../../organism/kernel/keys.ts';
import { issueCertificate, packCertificate, ROOT_ISSUER } from '../../organism/kernel/lineage.ts';

const root = generateKeypair();
const cell = generateKeypair();
const cert = issueCertificate(
  { cell: 'stem-1', pub: cell.pub, tissue: 'stem', host: 'host-1', born: 1_700_000_000_000, generation: 0, budget: 4, parent: null, issuer: ROOT_ISSUER },
  privateKeyObject(root.seed),
);

function validPacket(): BirthPacket {
  return {
    v: 1,
    organism: 'org-1',
    servers: ['nats://127.0.0.1:41222'],
    token: 'a-token',
    genome: defaultGenome(),
    rootPub: toHex(root.pub),
    cell: {
      id: 'stem-1',
      tissue: 'stem',
      module: '/opt/cellular/dist/cells/tissues/stem.js',
      parent: null,
      host: 'host-1',
      born: 1_700_000_000_000,
      seed: toHex(cell.seed),
      cert: Buffer.from(packCertificate(cert)).toString('base64'),
    },
    stateDir: '/tmp/cellular-state',
  };
}

const VALID = JSON.stringify(validPacket());

/** Parses, and returns 'ok' or the CellularError code; any other throw escapes. */
function outcome(text: string): string {
  try {
    const p = parseBirthPacket(text);
    if (!Object.isFrozen(p.genome)) throw new Error('a parsed packet must carry a frozen genome');
    return 'ok';
  } catch (e) {
    if (e instanceof CellularError) return e.code;
    throw e;
  }
}

test('birth-packet - a valid packet parses, with its genome validated and frozen', (t) => {
  const p = parseBirthPacket(VALID);
  t.deepEqual(JSON.parse(JSON.stringify(p)), validPacket());
  t.true(Object.isFrozen(p.genome));
  t.true(Object.isFrozen(p.genome.tissues.stem));
  // A child cell has a parent.
  const child = validPacket();
  child.cell.parent = 'stem-0';
  t.is(parseBirthPacket(JSON.stringify(child)).cell.parent, 'stem-0');
});

test('birth-packet - each broken field is CELL_ERR_BIRTH_PACKET with a reason', (t) => {
  const cases: Array<[string, (p: any) => void, RegExp]> = [
    ['v', (p) => (p.v = 2), /v is not 1/],
    ['organism', (p) => (p.organism = 'Org One'), /organism id/],
    ['servers empty', (p) => (p.servers = []), /servers/],
    ['servers not strings', (p) => (p.servers = [4222]), /servers/],
    ['token not a string', (p) => (p.token = 42), /token/],
    ['rootPub short', (p) => (p.rootPub = p.rootPub.slice(2)), /rootPub/],
    ['rootPub not lower-case hex', (p) => (p.rootPub = 'G'.repeat(64)), /rootPub/],
    ['stateDir', (p) => (p.stateDir = ''), /stateDir/],
    ['cell missing', (p) => delete p.cell, /cell missing/],
    ['cell.id', (p) => (p.cell.id = 'Stem 1'), /cell\.id/],
    ['cell.tissue', (p) => (p.cell.tissue = 5), /cell\.tissue/],
    ['cell.parent', (p) => (p.cell.parent = 'NOT OK'), /cell\.parent/],
    ['cell.born', (p) => (p.cell.born = '1700'), /cell\.born/],
    ['cell.seed', (p) => (p.cell.seed = 'xyz'), /cell\.seed/],
    ['cell.cert', (p) => (p.cell.cert = null), /cell\.cert/],
    ['genome', (p) => (p.genome.limits.pulseIntervalMs = 1), /genome invalid: genome\.limits\.pulseIntervalMs/],
    ['genome missing', (p) => delete p.genome, /genome invalid/],
  ];
  for (const [name, breakIt, reason] of cases) {
    const p = validPacket();
    breakIt(p);
    const e = t.throws(() => parseBirthPacket(JSON.stringify(p)), { instanceOf: CellularError }, name);
    t.is(e?.code, 'CELL_ERR_BIRTH_PACKET', name);
    t.regex(e?.message ?? '', reason, name);
  }
  for (const text of ['', 'null', '[]', '"packet"', '1', '{', VALID.slice(0, -1)]) {
    t.is(outcome(text), 'CELL_ERR_BIRTH_PACKET', JSON.stringify(text));
  }
});

test('birth-packet - random strings are refused with CELL_ERR_BIRTH_PACKET only', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.json()), (text) => {
        const code = outcome(text);
        if (code !== 'CELL_ERR_BIRTH_PACKET') throw new Error(`got ${code}`);
      }),
      { numRuns: 500 },
    ),
  );
});

/** Every path into a JSON value, e.g. ['cell', 'seed'] or ['genome', 'tissues', 'stem', 'min']. */
function paths(value: unknown, prefix: string[] = []): string[][] {
  const out = [prefix];
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

const ALL_PATHS = paths(validPacket()).filter((p) => p.length > 0);

type Mutation = { type: 'replace'; path: string[]; value: unknown } | { type: 'delete'; path: string[] } | { type: 'text'; at: number; cut: number; insert: string };

/** Applies one mutation to a packet's text; a structural one only while the text is still JSON with that path. */
function mutate(text: string, m: Mutation): string {
  if (m.type === 'text') {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + m.insert + text.slice(at + m.cut);
  }
  let packet: unknown;
  try {
    packet = JSON.parse(text);
  } catch {
    return text;
  }
  let cursor = packet;
  for (const k of m.path.slice(0, -1)) {
    if (typeof cursor !== 'object' || cursor === null) return text;
    cursor = (cursor as Record<string, unknown>)[k];
  }
  if (typeof cursor !== 'object' || cursor === null) return text;
  const last = m.path.at(-1)!;
  if (m.type === 'delete') delete (cursor as Record<string, unknown>)[last];
  else (cursor as Record<string, unknown>)[last] = m.value;
  return JSON.stringify(packet);
}

test('birth-packet - mutations of a valid packet parse or fail with CELL_ERR_BIRTH_PACKET, nothing else', (t) => {
  const path = fc.constantFrom(...ALL_PATHS);
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ type: fc.constant('replace' as const), path, value: fc.jsonValue({ maxDepth: 2 }) }),
    fc.record({ type: fc.constant('delete' as const), path }),
    fc.record({ type: fc.constant('text' as const), at: fc.nat(), cut: fc.nat({ max: 4 }), insert: fc.string({ maxLength: 4 }) }),
  );
  const seen = new Set<string>();
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (ms) => {
        const code = outcome(ms.reduce(mutate, VALID));
        if (code !== 'ok' && code !== 'CELL_ERR_BIRTH_PACKET') throw new Error(`got ${code}`);
        seen.add(code);
      }),
      { numRuns: 1_000 },
    ),
  );
  // Both outcomes happen, so the property is not vacuous.
  t.deepEqual([...seen].sort(), ['CELL_ERR_BIRTH_PACKET', 'ok']);
});
