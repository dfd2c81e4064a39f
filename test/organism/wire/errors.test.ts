/**
 * The error catalogue: docs/errors.md lists every code, and errors survive the wire.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import fc from 'fast-check';
import { CellularError, ErrorCodes, isCellularError, throwIfAborted, type ErrorCode } from '../../../organism/wire/errors.ts';

// The compiled test runs from dist/test/organism/wire; the docs stay at the repo root.
const DOC = new URL('../../../../docs/errors.md', import.meta.url);
const CODES = Object.keys(ErrorCodes) as ErrorCode[];

/** The first cell of every table row that looks like a code (`FOO_ERR_BAR`, backticks optional). */
function documentedCodes(): string[] {
  const rows: string[] = [];
  for (const line of readFileSync(DOC, 'utf8').split('\n')) {
    const m = /^\|\s*`?([^|`]+?)`?\s*\|/.exec(line);
    if (!m || /^-+$/.test(m[1]!) || m[1] === 'code') continue;
    rows.push(m[1]!);
  }
  return rows;
}

test('errors - docs/errors.md has a row for every code in ErrorCodes', (t) => {
  const documented = new Set(documentedCodes());
  const missing = CODES.filter((c) => !documented.has(c));
  t.deepEqual(missing, [], `add these to docs/errors.md: ${missing.join(', ')}`);
});

test('errors - docs/errors.md names no unknown code and none twice', (t) => {
  const rows = documentedCodes();
  t.true(rows.length > 0);
  const unknown = rows.filter((c) => !Object.hasOwn(ErrorCodes, c));
  t.deepEqual(unknown, [], `not in organism/wire/errors.ts: ${unknown.join(', ')}`);
  t.is(new Set(rows).size, rows.length, 'a code is listed twice');
});

test('errors - every code follows AREA_ERR_NAME', (t) => {
  for (const code of CODES) t.regex(code, /^[A-Z]+_ERR_[A-Z0-9_]+$/);
});

test('errors - toWire and fromWire keep the code, the message and the cell', (t) => {
  for (const code of CODES) {
    const e = new CellularError(code, `something about ${code}`, { cell: 'c-1' });
    const wire = JSON.parse(JSON.stringify(e.toWire())) as unknown; // plain data only
    t.deepEqual(wire, { name: 'CellularError', code, message: `something about ${code}`, cell: 'c-1' });
    const back = CellularError.fromWire(wire);
    t.true(back instanceof CellularError);
    t.is(back.code, code);
    t.is(back.message, e.message);
    t.is(back.cell, 'c-1');
  }
  t.false('cell' in new CellularError('CELL_ERR_CLOSED', 'x').toWire());
});

test('errors - fromWire of garbage gives CELL_ERR_REMOTE', (t) => {
  const garbage: unknown[] = [
    undefined,
    null,
    42,
    'CELL_ERR_CLOSED',
    [],
    {},
    { code: 'NOT_A_CODE', message: 'x' },
    { code: 42, message: 'x' },
    { code: ['GENOME_ERR_FILE'] },
    // Names every object inherits are not codes.
    { code: 'toString', message: 'x' },
    { code: 'constructor', message: 'x' },
    { code: '__proto__', message: 'x' },
    { code: 'hasOwnProperty' },
  ];
  for (const value of garbage) {
    const e = CellularError.fromWire(value);
    t.true(e instanceof CellularError);
    t.is(e.code, 'CELL_ERR_REMOTE', JSON.stringify(value) ?? String(value));
  }
  t.is(CellularError.fromWire(null).message, 'remote error without detail');
  t.is(CellularError.fromWire({ code: 'GENOME_ERR_FILE', message: 7 }).message, 'remote error');
  t.is(CellularError.fromWire({ code: 'GENOME_ERR_FILE', cell: 7 }).cell, undefined);
});

test('errors - fromWire of any value gives a CellularError with a catalogued code', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.record({ code: fc.oneof(fc.constantFrom(...CODES), fc.string()), message: fc.anything(), cell: fc.anything() })), (value) => {
        const e = CellularError.fromWire(value);
        if (!(e instanceof CellularError) || !Object.hasOwn(ErrorCodes, e.code) || typeof e.message !== 'string') throw new Error(`bad rebuild: ${e.code}`);
      }),
      { numRuns: 500 },
    ),
  );
});

test('errors - a CellularError chains its cause and is recognised by isCellularError', (t) => {
  const cause = new Error('disk full');
  const e = new CellularError('GENOME_ERR_FILE', 'cannot read', { cause });
  t.is(e.cause, cause);
  t.is(e.name, 'CellularError');
  t.true(e instanceof Error);
  t.true(isCellularError(e));
  t.true(isCellularError(e, 'GENOME_ERR_FILE'));
  t.false(isCellularError(e, 'GENOME_ERR_INVALID'));
  t.false(isCellularError(cause));
  t.false('cause' in new CellularError('GENOME_ERR_FILE', 'no cause'));
});

test('errors - throwIfAborted throws CELL_ERR_ABORTED with the reason as cause', (t) => {
  t.notThrows(() => throwIfAborted(undefined));
  t.notThrows(() => throwIfAborted(new AbortController().signal));
  const reason = new Error('user pressed Ctrl-C');
  const e = t.throws(() => throwIfAborted(AbortSignal.abort(reason)), { instanceOf: CellularError });
  t.is(e?.code, 'CELL_ERR_ABORTED');
  t.is(e?.cause, reason);
});
