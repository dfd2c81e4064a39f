/**
 * The genome: defaults, file, `--set`; validation messages; freezing; the hash.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { CellularError, type ErrorCode } from '../../../organism/wire/errors.ts';
import { defaultGenome, genomeHash, loadGenome, mergeGenome, TISSUE_DEFAULTS, validateGenome, type Genome } from '../../../organism/kernel/genome/index.ts';

function tempFile(t: ExecutionContext, name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cellular-genome-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function rejects(t: ExecutionContext, sets: string[], code: ErrorCode, ...fragments: string[]): void {
  const e = t.throws(() => loadGenome({ sets }), { instanceOf: CellularError }, sets.join(' '));
  t.is(e?.code, code, sets.join(' '));
  for (const f of fragments) t.true(e?.message.includes(f), `${JSON.stringify(e?.message)} should contain ${JSON.stringify(f)}`);
}

test('genome - the defaults validate and come back deep-frozen', (t) => {
  const g = loadGenome();
  t.deepEqual(g, defaultGenome());
  t.true(Object.isFrozen(g));
  t.true(Object.isFrozen(g.limits));
  t.true(Object.isFrozen(g.broker));
  t.true(Object.isFrozen(g.tissues));
  t.true(Object.isFrozen(g.tissues.stem));
  // ESM is strict mode: writing to a frozen object throws.
  t.throws(() => {
    (g.limits as { pulseIntervalMs: number }).pulseIntervalMs = 1;
  }, { instanceOf: TypeError });
  t.throws(() => {
    (g.tissues.stem as { max: number }).max = 100;
  }, { instanceOf: TypeError });
  t.throws(() => {
    (g.tissues as Record<string, unknown>).extra = {};
  }, { instanceOf: TypeError });
  t.is(g.limits.pulseIntervalMs, 500);
});

test('genome - validation copies: the input stays mutable and unshared', (t) => {
  const input = defaultGenome();
  const g = validateGenome(input);
  t.false(Object.isFrozen(input));
  input.limits.pulseIntervalMs = 1_000;
  t.is(g.limits.pulseIntervalMs, 500);
});

test('genome - a message names the field, the expectation and the value received', (t) => {
  rejects(t, ['limits.pulseIntervalMs=10'], 'GENOME_ERR_INVALID', 'genome.limits.pulseIntervalMs', '50', '60000', 'received number 10');
  rejects(t, ['tissues.stem.high=1.5'], 'GENOME_ERR_INVALID', 'genome.tissues.stem.high', 'a number from 0 to 1', 'received number 1.5');
  rejects(t, ['limits.replayWindowMs=2.5'], 'GENOME_ERR_INVALID', 'genome.limits.replayWindowMs', 'an integer', '2.5');
  rejects(t, ['limits.cellsPerHost="many"'], 'GENOME_ERR_INVALID', 'genome.limits.cellsPerHost', 'received "many"');
  rejects(t, ['broker.host=a b'], 'GENOME_ERR_INVALID', 'genome.broker.host', 'an IP address or host name', '"a b"');
  rejects(t, ['tissues.stem.module=""'], 'GENOME_ERR_INVALID', 'genome.tissues.stem.module', 'received ""');
  rejects(t, ['limits=null'], 'GENOME_ERR_INVALID', 'genome.limits', 'an object', 'received null');
  rejects(t, ['version=2'], 'GENOME_ERR_INVALID', 'genome.version', 'the number 1', '2');
  rejects(t, ['limits.pulseIntervalMs'], 'GENOME_ERR_INVALID', '--set expects path=value');
});

test('genome - an unknown field is GENOME_ERR_UNKNOWN_FIELD and lists the known ones', (t) => {
  rejects(t, ['limits.pulseMs=100'], 'GENOME_ERR_UNKNOWN_FIELD', 'genome.limits.pulseMs', 'pulseIntervalMs');
  rejects(t, ['tissues.stem.size=3'], 'GENOME_ERR_UNKNOWN_FIELD', 'genome.tissues.stem.size');
  rejects(t, ['broker.tls=true'], 'GENOME_ERR_UNKNOWN_FIELD', 'genome.broker.tls');
  rejects(t, ['colour=1'], 'GENOME_ERR_UNKNOWN_FIELD', 'genome.colour');
});

test('genome - names inherited from Object.prototype are unknown fields too', (t) => {
  for (const section of ['limits', 'broker', 'tissues.stem']) {
    for (const name of ['toString', 'constructor', 'hasOwnProperty', 'valueOf']) {
      rejects(t, [`${section}.${name}=5`], 'GENOME_ERR_UNKNOWN_FIELD', `genome.${section}.${name}`);
    }
  }
  rejects(t, ['constructor=5'], 'GENOME_ERR_UNKNOWN_FIELD', 'genome.constructor');
});

test('genome - cross-field rules are enforced', (t) => {
  rejects(t, ['tissues.stem.min=9'], 'GENOME_ERR_INVALID', 'genome.tissues.stem.min', 'at most tissues.stem.max (8)', '9');
  rejects(t, ['tissues.stem.low=0.75'], 'GENOME_ERR_INVALID', 'genome.tissues.stem.low', 'below tissues.stem.high (0.75)', '0.75');
  rejects(t, ['tissues.echo.low=0.9'], 'GENOME_ERR_INVALID', 'genome.tissues.echo.low');
  rejects(t, ['limits.deadAfterPulses=3'], 'GENOME_ERR_INVALID', 'genome.limits.deadAfterPulses', 'greater than limits.suspectAfterPulses (3)');
  rejects(t, ['limits.suspectAfterPulses=7'], 'GENOME_ERR_INVALID', 'genome.limits.deadAfterPulses');
  rejects(t, ['broker.port=4222'], 'GENOME_ERR_INVALID', 'genome.broker.port', '4222');
  rejects(t, ['limits.cellsPerHost=2'], 'GENOME_ERR_INVALID', 'genome.limits.cellsPerHost', "sum of every tissue's min (6)", '2');
  rejects(t, ['tissues.Bad={"module":"x"}'], 'GENOME_ERR_INVALID', 'genome.tissues["Bad"]', 'lowercase');
  rejects(t, ['tissues.9lives={"module":"x"}'], 'GENOME_ERR_INVALID', 'genome.tissues["9lives"]');
  rejects(t, [`tissues.${'a'.repeat(33)}={"module":"x"}`], 'GENOME_ERR_INVALID', 'genome.tissues[');
  rejects(t, ['tissues={"stem":null,"echo":null,"receiver":null,"worker":null,"dashboard":null}'], 'GENOME_ERR_INVALID', 'at least one tissue');
  t.is(Object.keys(loadGenome({ sets: ['tissues={}'] }).tissues).length, 5); // an empty patch removes nothing
  // The boundaries themselves are valid.
  t.is(loadGenome({ sets: ['tissues.stem.min=8'] }).tissues.stem?.min, 8);
  t.is(loadGenome({ sets: ['limits.deadAfterPulses=4'] }).limits.deadAfterPulses, 4);
  t.is(loadGenome({ sets: ['limits.cellsPerHost=6'] }).limits.cellsPerHost, 6);
  t.is(loadGenome({ sets: ['limits.pulseIntervalMs=50'] }).limits.pulseIntervalMs, 50);
});

test('genome - a --set under a tissues value that is not an object fails as GENOME_ERR_INVALID', (t) => {
  rejects(t, ['tissues=5', 'tissues.x.min=1'], 'GENOME_ERR_INVALID', 'genome.tissues', 'received number 5');
  rejects(t, ['tissues=null', 'tissues.x={"module":"x"}'], 'GENOME_ERR_INVALID', 'genome.tissues', 'received null');
});

test('genome - the file merges over the defaults, then --set overrides win', (t) => {
  const file = tempFile(
    t,
    'genome.json',
    JSON.stringify({
      tissues: { echo: null, receiver: null, dashboard: null, stem: { max: 5 }, worker: { module: 'worker', min: 2, high: 0.9 } },
      limits: { pulseIntervalMs: 250, cellsPerHost: 16 },
      broker: { monitorPort: 8222 },
    }),
  );
  const g = loadGenome({ file, sets: ['limits.pulseIntervalMs=300', 'tissues.worker.max=6'] });
  t.deepEqual(Object.keys(g.tissues).sort(), ['stem', 'worker']);
  t.deepEqual(g.tissues.stem, { ...TISSUE_DEFAULTS, module: 'stem', min: 2, max: 5 });
  t.deepEqual(g.tissues.worker, { ...TISSUE_DEFAULTS, module: 'worker', min: 2, max: 6, high: 0.9 });
  t.is(g.limits.pulseIntervalMs, 300);
  t.is(g.limits.cellsPerHost, 16);
  t.is(g.limits.deadAfterPulses, defaultGenome().limits.deadAfterPulses);
  t.deepEqual(g.broker, { ...defaultGenome().broker, monitorPort: 8222 });
  t.true(Object.isFrozen(g.tissues.worker));
});

test('genome - a new tissue without a module takes its own name as module', (t) => {
  const g = loadGenome({ sets: ['tissues.courier={"max":2}'] });
  t.deepEqual(g.tissues.courier, { ...TISSUE_DEFAULTS, module: 'courier', max: 2 });
});

test('genome - a --set value that is not JSON is taken as a string', (t) => {
  t.is(loadGenome({ sets: ['broker.host=0.0.0.0'] }).broker.host, '0.0.0.0');
  t.is(loadGenome({ sets: ['tissues.echo.module=./dist/x.js'] }).tissues.echo?.module, './dist/x.js');
  t.is(loadGenome({ sets: ['tissues.echo.module=a=b.js'] }).tissues.echo?.module, 'a=b.js'); // only the first = splits
});

test('genome - a file that is missing, not JSON or not an object is refused', (t) => {
  const missing = t.throws(() => loadGenome({ file: join(tmpdir(), 'cellular-no-such-genome.json') }), { instanceOf: CellularError });
  t.is(missing?.code, 'GENOME_ERR_FILE');
  t.true(missing?.message.includes('cellular-no-such-genome.json'));
  const broken = t.throws(() => loadGenome({ file: tempFile(t, 'broken.json', '{"limits": {') }), { instanceOf: CellularError });
  t.is(broken?.code, 'GENOME_ERR_FILE');
  t.regex(broken?.message ?? '', /not valid JSON/);
  t.truthy(broken?.cause);
  const array = t.throws(() => loadGenome({ file: tempFile(t, 'array.json', '[1, 2]') }), { instanceOf: CellularError });
  t.is(array?.code, 'GENOME_ERR_INVALID');
  t.regex(array?.message ?? '', /array\.json: the genome must be a JSON object, received an array/);
  const proto = t.throws(() => loadGenome({ file: tempFile(t, 'proto.json', '{"limits": {"__proto__": {"x": 1}}}') }), { instanceOf: CellularError });
  t.is(proto?.code, 'GENOME_ERR_UNKNOWN_FIELD');
});

test('genome - genomeHash ignores key order and changes with any value', (t) => {
  const a = defaultGenome();
  const reordered = {
    broker: Object.fromEntries(Object.entries(a.broker).reverse()),
    limits: Object.fromEntries(Object.entries(a.limits).reverse()),
    tissues: Object.fromEntries(Object.entries(a.tissues).reverse().map(([k, v]) => [k, Object.fromEntries(Object.entries(v).reverse())])),
    messenger: Object.fromEntries(Object.entries(a.messenger).reverse()),
    immune: Object.fromEntries(Object.entries(a.immune).reverse()),
    dashboard: Object.fromEntries(Object.entries(a.dashboard).reverse()),
    version: 1,
  } as unknown as Genome;
  t.notDeepEqual(Object.keys(reordered), Object.keys(a));
  const h = genomeHash(validateGenome(a));
  t.regex(h, /^[0-9a-f]{16}$/);
  t.is(genomeHash(validateGenome(reordered)), h);
  t.is(genomeHash(loadGenome()), h);
  t.not(genomeHash(loadGenome({ sets: ['limits.pulseIntervalMs=501'] })), h);
  t.not(genomeHash(loadGenome({ sets: ['tissues.echo.high=0.76'] })), h);
  t.not(genomeHash(loadGenome({ sets: ['broker.maxPayload=2097152'] })), h);
  t.not(genomeHash(loadGenome({ sets: ['messenger.scryptLogN=16'] })), h);
  t.not(genomeHash(loadGenome({ sets: ['immune.floodPerSecond=101'] })), h);
  t.not(genomeHash(loadGenome({ sets: ['dashboard.pushIntervalMs=501'] })), h);
  // Each host sets its own addresses: hosts of one organism still agree on the hash.
  for (const set of ['broker.host=10.0.0.2', 'broker.port=4250', 'broker.monitorPort=8250', 'messenger.host=10.0.0.2', 'dashboard.host=10.0.0.2', 'dashboard.port=8091']) {
    t.is(genomeHash(loadGenome({ sets: [set] })), h, `${set} is host-local`);
  }
});

test('genome - the dashboard section is validated, and the dashboard tissue is a singleton by default', (t) => {
  const g = loadGenome();
  t.is(g.tissues.dashboard?.module, 'dashboard');
  t.is(g.tissues.dashboard?.min, 1);
  t.is(g.tissues.dashboard?.max, 1);
  t.is(g.dashboard.host, '127.0.0.1');
  rejects(t, ['dashboard.port=4222'], 'GENOME_ERR_INVALID', 'genome.dashboard.port', '4222');
  rejects(t, ['dashboard.port=70000'], 'GENOME_ERR_INVALID', 'genome.dashboard.port', 'from 0 to 65535');
  rejects(t, ['dashboard.recorderMaxAgeMs=10'], 'GENOME_ERR_INVALID', 'genome.dashboard.recorderMaxAgeMs');
  rejects(t, ['dashboard.controlsPerMinute=0'], 'GENOME_ERR_INVALID', 'genome.dashboard.controlsPerMinute');
  rejects(t, ['dashboard.colour=1'], 'GENOME_ERR_UNKNOWN_FIELD', 'genome.dashboard.colour');
  t.is(loadGenome({ sets: ['dashboard.port=0'] }).dashboard.port, 0);
});

test('genome - the immune section is validated like every other, and an unknown field is refused by name', (t) => {
  t.is(loadGenome().immune.voteDeadlineMs, 3_000);
  t.is(loadGenome({ sets: ['immune.enabled=false'] }).immune.enabled, false);
  t.throws(() => loadGenome({ sets: ['immune.floodPerSecond=0'] }), { code: 'GENOME_ERR_INVALID', message: /immune\.floodPerSecond must be an integer from 1/ });
  t.throws(() => loadGenome({ sets: ['immune.liarRssFactor=1'] }), { code: 'GENOME_ERR_INVALID', message: /immune\.liarRssFactor must be a number from 1\.1/ });
  t.is(loadGenome({ sets: ['immune.jury=15'] }).immune.jury, 15);
  t.throws(() => loadGenome({ sets: ['immune.jury=0'] }), { code: 'GENOME_ERR_INVALID', message: /immune\.jury must be an integer from 1 to 64/ });
  t.throws(() => loadGenome({ sets: ['immune.quorum=5'] }), { code: 'GENOME_ERR_UNKNOWN_FIELD', message: /genome\.immune\.quorum is not a genome field/ });
});

test('genome - messenger limits are checked against each other', (t) => {
  const fails = (sets: string[], field: RegExp) => t.throws(() => loadGenome({ sets }), { code: 'GENOME_ERR_INVALID', message: field });
  fails(['messenger.portMin=9000', 'messenger.portMax=8999'], /messenger\.portMax must be at least messenger\.portMin \(9000\)/);
  fails(['messenger.frontPort=8150'], /messenger\.frontPort must be outside the receivers' range 8101-8199/);
  fails(['messenger.maxBodyBytes=65536'], /messenger\.maxBodyBytes must be below messenger\.maxFrameBytes/);
  fails(['messenger.origins=example.org'], /messenger\.origins must be a comma-separated list of origins/);
  fails(['messenger.scryptLogN=9'], /messenger\.scryptLogN must be an integer from 10 to 22/);
  t.is(loadGenome({ sets: ['messenger.origins=https://a.example,http://127.0.0.1:8080'] }).messenger.origins, 'https://a.example,http://127.0.0.1:8080');
  t.is(loadGenome().messenger.origins, '', 'empty: the receivers\' own origins');
  t.is(loadGenome({ sets: ['messenger.frontPort=0'] }).messenger.frontPort, 0, '0 turns the front door off');
});

test('genome - random --set assignments either load a frozen genome or throw a CellularError', (t) => {
  const segment = fc.oneof(
    fc.constantFrom('tissues', 'limits', 'broker', 'messenger', 'version', 'stem', 'echo', 'worker', 'min', 'max', 'low', 'high', 'module', 'port', 'host'),
    fc.constantFrom('pulseIntervalMs', 'cellsPerHost', 'deadAfterPulses', 'suspectAfterPulses', 'halfLifeMs', '__proto__', 'constructor', 'toString', ''),
    fc.string({ maxLength: 8 }),
  );
  const value = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
    fc.integer({ min: -10, max: 70_000 }).map(String),
    fc.double().map(String),
    fc.string({ maxLength: 12 }),
  );
  const assignment = fc.oneof(
    // Known-good assignments, so some runs load and the "loaded" branch is exercised.
    { weight: 3, arbitrary: fc.constantFrom('limits.pulseIntervalMs=250', 'tissues.echo.min=2', 'broker.port=0', 'tissues.stem.high=0.9') },
    fc
      .tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom('tissues', 'limits', 'broker') }, segment), fc.array(segment, { maxLength: 3 }), value)
      .map(([top, rest, v]) => `${[top, ...rest].join('.')}=${v}`),
    fc.string({ maxLength: 30 }),
  );
  const codes = new Set<string>();
  let loaded = 0;
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(assignment, { minLength: 1, maxLength: 3 }), (sets) => {
        let g;
        try {
          g = loadGenome({ sets });
        } catch (e) {
          if (!(e instanceof CellularError) || !['GENOME_ERR_INVALID', 'GENOME_ERR_UNKNOWN_FIELD'].includes(e.code)) throw e;
          codes.add(e.code);
          return;
        }
        loaded++;
        if (!Object.isFrozen(g) || !Object.isFrozen(g.limits)) throw new Error('not frozen');
        validateGenome(structuredClone(g)); // what validated once validates again
      }),
      { numRuns: 1_000 },
    ),
  );
  // The generator reaches every outcome, so the property says something.
  t.deepEqual([...codes].sort(), ['GENOME_ERR_INVALID', 'GENOME_ERR_UNKNOWN_FIELD']);
  t.true(loaded > 0);
});

test('genome - a file cannot reach a prototype: a __proto__ key is refused at any depth', (t) => {
  for (const text of ['{"__proto__": {"limits": {}}}', '{"tissues": {"__proto__": {"min": 5}}}', '{"limits": {"x": {"__proto__": 1}}}', '{"tissues": {"echo": {"__proto__": {"min": 1}}}}']) {
    const e = t.throws(() => mergeGenome(defaultGenome(), JSON.parse(text), 'file.json'), { instanceOf: CellularError }, text);
    t.is(e?.code, 'GENOME_ERR_UNKNOWN_FIELD', text);
  }
  t.is(({} as Record<string, unknown>).min, undefined, 'nothing polluted');
});
