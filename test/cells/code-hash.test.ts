/**
 * The code hash cells report in their pulses: stable for one tree, changed by any edit to a
 * runtime module, its name, or a new module; blind to what is not runtime code.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { codeHash } from '../../cells/code-hash.ts';

test('code hash - one tree, one hash; any edit, rename or new module changes it; other files do not', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cellular-code-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'cells', 'immune'), { recursive: true });
  mkdirSync(join(root, 'organism'));
  writeFileSync(join(root, 'cells', 'cell.js'), 'export const a = 1;\n');
  writeFileSync(join(root, 'cells', 'immune', 'jury.js'), 'export const b = 2;\n');
  writeFileSync(join(root, 'organism', 'genome.js'), 'export const c = 3;\n');
  const first = await codeHash(root);
  t.regex(first, /^[0-9a-f]{16}$/);
  t.is(await codeHash(root), first, 'stable');
  writeFileSync(join(root, 'cells', 'notes.txt'), 'not code');
  writeFileSync(join(root, 'cells', 'cell.js.map'), '{}');
  t.is(await codeHash(root), first, 'only .js modules count');
  writeFileSync(join(root, 'cells', 'immune', 'jury.js'), 'export const b = 3;\n');
  const edited = await codeHash(root);
  t.not(edited, first, 'an edit');
  renameSync(join(root, 'organism', 'genome.js'), join(root, 'organism', 'genome2.js'));
  const renamed = await codeHash(root);
  t.not(renamed, edited, 'a rename');
  writeFileSync(join(root, 'organism', 'extra.js'), '');
  t.not(await codeHash(root), renamed, 'a new module');
});

test('code hash - this install hashes its own compiled runtime', async (t) => {
  const h = await codeHash();
  t.regex(h, /^[0-9a-f]{16}$/);
  t.is(await codeHash(), h, 'computed once per process');
});
