/**
 * The genome's hash, carried in every pulse: cells running another genome are visible.
 */
import { createHash } from 'node:crypto';
import { isMap } from '../../wire/schema.ts';
import type { Genome } from './types.ts';

/**
 * Fields each host sets for itself (its own addresses and ports): hosts of one organism
 * differ in them, so they are left out of the genome hash peers compare.
 */
export const HOST_LOCAL_FIELDS: ReadonlyArray<readonly [section: 'broker' | 'messenger' | 'dashboard', field: string]> = [
  ['broker', 'host'], ['broker', 'port'], ['broker', 'monitorPort'], ['messenger', 'host'], ['dashboard', 'host'], ['dashboard', 'port'],
];

/** A stable hash of the genome (keys sorted, host-local fields left out), carried in every pulse. */
export function genomeHash(genome: Readonly<Genome>): string {
  const shared: Record<string, unknown> = { ...genome };
  for (const [section, field] of HOST_LOCAL_FIELDS) {
    const s = genome[section] as unknown as Record<string, unknown> | undefined;
    if (s === undefined) continue;
    const { [field]: _local, ...rest } = (shared[section] ?? s) as Record<string, unknown>;
    shared[section] = rest;
  }
  return createHash('sha256').update(canonicalJson(shared)).digest('hex').slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isMap(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
