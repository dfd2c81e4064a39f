/**
 * Loading the genome: the defaults, then a JSON file, then each CLI `--set`; validated
 * (rules.ts) and deep-frozen. Only this part of the genome touches the file system.
 */
import { readFileSync } from 'node:fs';
import { CellularError } from '../../wire/errors.ts';
import { describe, isMap } from '../../wire/schema.ts';
import { defaultGenome, TISSUE_DEFAULTS } from './defaults.ts';
import { GENOME, invalid, validateGenome } from './rules.ts';
import type { Genome } from './types.ts';

/**
 * `__proto__` would reach a prototype through the merge's assignments (JSON.parse makes it an
 * own key): refused at any depth. `constructor` and `prototype` are plain own keys here and
 * fall to validation as unknown fields.
 */
const UNSAFE_KEYS = ['__proto__'];

function refuseUnsafeKeys(value: unknown, at: string, source: string): void {
  if (!isMap(value)) return;
  for (const key of Object.keys(value)) {
    if (UNSAFE_KEYS.includes(key)) throw new CellularError('GENOME_ERR_UNKNOWN_FIELD', `${source}: genome.${at}${key} is not a genome field`);
    refuseUnsafeKeys(value[key], `${at}${key}.`, source);
  }
}

/** Merges a partial genome over a base; tissues merge per tissue over TISSUE_DEFAULTS. */
export function mergeGenome(base: Genome, patch: unknown, source: string): Genome {
  if (!isMap(patch)) throw new CellularError('GENOME_ERR_INVALID', `${source}: the genome must be a JSON object, received ${describe(patch, GENOME)}`);
  refuseUnsafeKeys(patch, '', source);
  const out = structuredClone(base) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(patch)) {
    if (key === 'tissues' && isMap(value)) {
      if (!isMap(out.tissues)) invalid('tissues', 'an object of tissue name to tissue', out.tissues);
      const tissues = out.tissues;
      for (const [name, t] of Object.entries(value)) {
        // `null` removes a default tissue, so a genome file can replace the default body plan.
        if (t === null) delete tissues[name];
        else tissues[name] = isMap(t) ? { ...TISSUE_DEFAULTS, ...(isMap(tissues[name]) ? tissues[name] : { module: name }), ...t } : t;
      }
    } else if ((key === 'limits' || key === 'broker' || key === 'messenger' || key === 'immune' || key === 'dashboard') && isMap(value)) {
      out[key] = { ...(out[key] as object), ...value };
    } else {
      out[key] = value;
    }
  }
  return out as unknown as Genome;
}

export function readGenomeFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new CellularError('GENOME_ERR_FILE', `cannot read genome file ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new CellularError('GENOME_ERR_FILE', `genome file ${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Applies one `path=value` override (from `--set`). The value is parsed as JSON when it
 * parses (numbers, booleans, objects), else taken as a string.
 */
export function setGenomePath(genome: Genome, assignment: string): Genome {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new CellularError('GENOME_ERR_INVALID', `--set expects path=value (for example limits.pulseIntervalMs=250), received ${describe(assignment, GENOME)}`);
  const path = assignment.slice(0, eq).split('.');
  // Prototype keys would be dropped by the merge without a word: refuse them by name.
  if (path.some((k) => k === '__proto__' || k === 'prototype' || k === '')) {
    throw new CellularError('GENOME_ERR_UNKNOWN_FIELD', `genome.${path.join('.')} is not a genome field (from --set ${assignment.slice(0, eq)})`);
  }
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  const patch: Record<string, unknown> = {};
  let cursor = patch;
  for (let i = 0; i < path.length - 1; i++) {
    const next: Record<string, unknown> = {};
    cursor[path[i]!] = next;
    cursor = next;
  }
  cursor[path[path.length - 1]!] = value;
  return mergeGenome(genome, patch, `--set ${assignment}`);
}

export interface GenomeSources {
  file?: string;
  sets?: readonly string[];
}

/** Defaults, then the file, then `--set` overrides; validated and frozen. */
export function loadGenome(sources: GenomeSources = {}): Readonly<Genome> {
  let genome = defaultGenome();
  if (sources.file !== undefined) genome = mergeGenome(genome, readGenomeFile(sources.file), sources.file);
  for (const s of sources.sets ?? []) genome = setGenomePath(genome, s);
  return validateGenome(genome);
}
