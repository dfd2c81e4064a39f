import test from 'ava';
import { defineTissue, type Tissue } from '../../cells/tissue.ts';

test('tissue - drain and stats on the tissue itself are refused: they belong on what start returns', (t) => {
  for (const hook of ['drain', 'stats']) {
    const e = t.throws(() => defineTissue({ name: 'old-style', [hook]: () => undefined } as unknown as Tissue), { instanceOf: TypeError });
    t.regex(e?.message ?? '', new RegExp(`${hook}\\(\\) belongs on the object start\\(\\) returns`));
  }
  t.notThrows(() => defineTissue({ name: 'new-style', start: () => ({ drain: () => undefined, stats: () => ({}) }) }));
});
