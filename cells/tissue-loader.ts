/**
 * Finds and loads a tissue's DNA: a built-in name (`stem`, `echo`, `receiver`, `worker`, `dashboard`) or a path to a compiled
 * `.js` module whose default export is a `defineTissue(...)` value.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CellularError } from '../organism/wire/errors.ts';
import { defineTissue, isTissue, type Tissue } from './tissue.ts';

const BUILTIN = /^[a-z][a-z0-9-]*$/;

/** Absolute path of a tissue module; `baseDir` anchors relative paths (the genome file's dir). */
export function resolveTissueModule(module: string, baseDir: string = process.cwd()): string {
  const path = BUILTIN.test(module)
    ? fileURLToPath(new URL(`./tissues/${module}.js`, import.meta.url))
    : isAbsolute(module)
      ? module
      : resolve(baseDir, module);
  if (!existsSync(path)) {
    throw new CellularError('CELL_ERR_TISSUE_MODULE', `tissue module ${JSON.stringify(module)} not found (looked at ${path}); use a built-in name (stem, echo, receiver, worker, dashboard) or a path to a compiled .js file`);
  }
  return path;
}

export async function loadTissue(path: string): Promise<Tissue> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (cause) {
    throw new CellularError('CELL_ERR_TISSUE_MODULE', `cannot load tissue module ${path}: ${(cause as Error).message}`, { cause });
  }
  const tissue = mod.default ?? mod.tissue;
  if (!isTissue(tissue)) {
    throw new CellularError('CELL_ERR_TISSUE_MODULE', `${path} must export default defineTissue({...})`);
  }
  // A plain object export gets defineTissue's checks too (endpoint names, no hooks left on it).
  try {
    return defineTissue(tissue);
  } catch (cause) {
    throw new CellularError('CELL_ERR_TISSUE_MODULE', `${path}: ${(cause as Error).message}`, { cause });
  }
}
