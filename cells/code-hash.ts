/**
 * The hash of the code a cell runs: every compiled module of the cell runtime and the
 * organism layer (this install's `cells/` and `organism/` .js files, by path and content).
 * Cells report it in their pulses and compare it with their own; a cell started from other
 * code (another build, an edited file) is evidence of tampering (docs/immune.md). tsc's output
 * is deterministic, so two installs of one version agree.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled tree's root (`dist/`): this file is `dist/cells/code-hash.js`. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

async function modules(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await modules(path)));
    else if (e.name.endsWith('.js')) out.push(path);
  }
  return out;
}

let cached: Promise<string> | undefined;

/** 16 hex digits; computed once per process (≈ 70 files, 0.5 MB: a few ms, off the pulse path). */
export function codeHash(root = ROOT): Promise<string> {
  const compute = async () => {
    const files = (await Promise.all(['cells', 'organism'].map((d) => modules(join(root, d))))).flat().sort();
    const h = createHash('sha256');
    for (const f of files) h.update(relative(root, f)).update('\0').update(await readFile(f)).update('\0');
    return h.digest('hex').slice(0, 16);
  };
  if (root !== ROOT) return compute();
  cached ??= compute();
  return cached;
}
