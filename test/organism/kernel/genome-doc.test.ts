/**
 * docs/genome.md's table against the code: every field of defaultGenome() is listed with its
 * default, and every listed field is one. A doc that falls behind the defaults fails here.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { defaultGenome, TISSUE_DEFAULTS, type Genome } from '../../../organism/kernel/genome/index.ts';

const DOC = readFileSync(new URL('../../../../docs/genome.md', import.meta.url), 'utf8');

interface Row {
  /** Full field paths (`limits.pulseIntervalMs`, `tissues.<name>.min`). */
  fields: string[];
  /** The default cell, as written. */
  defaults: string;
}

/** The `| field | meaning | default |` rows. A short name after ` / ` takes the section of the first (`messenger.scryptLogN` / `scryptR`). */
function rows(): Row[] {
  const lines = DOC.split('\n');
  const head = lines.findIndex((l) => /^\| field \| meaning \| default \|$/.test(l.trim()));
  if (head < 0) throw new Error('docs/genome.md has no "| field | meaning | default |" table');
  const out: Row[] = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.slice(1, -1).split(' | ').map((c) => c.trim());
    const names = [...cells[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const section = names[0]!.slice(0, names[0]!.lastIndexOf('.') + 1);
    out.push({ fields: names.map((n, i) => (i > 0 && !n.includes('.') ? section + n : n)), defaults: cells[cells.length - 1]! });
  }
  return out;
}

/** A value as the table writes it: `(empty)` for '', the number or word itself otherwise. */
const written = (v: unknown): string => (v === '' ? '(empty)' : String(v));

/** The leading value of a default cell entry: `604800000 (7 days)` is 604800000, `1 (stem: 2)` is 1. */
const lead = (s: string): string => (s.startsWith('(') ? s : s.replace(/\s*\(.*\)$/, ''));

/** Per-tissue exceptions: `4 (stem: 8, dashboard: 1)` gives {stem: '8', dashboard: '1'}. */
function exceptions(s: string): Record<string, string> {
  const inner = /\(([^)]*)\)$/.exec(s)?.[1] ?? '';
  return Object.fromEntries([...inner.matchAll(/([a-z][a-z0-9-]*): ([^,]+)/g)].map((m) => [m[1]!, m[2]!.trim()]));
}

function genomeFields(g: Genome): Map<string, unknown> {
  const out = new Map<string, unknown>([['version', g.version], ['tissues.<name>', Object.keys(g.tissues)]]);
  for (const key of Object.keys(TISSUE_DEFAULTS)) out.set(`tissues.<name>.${key}`, TISSUE_DEFAULTS[key as keyof typeof TISSUE_DEFAULTS]);
  for (const section of ['limits', 'broker', 'messenger', 'immune', 'dashboard'] as const) {
    for (const [key, value] of Object.entries(g[section])) out.set(`${section}.${key}`, value);
  }
  return out;
}

test('genome doc - docs/genome.md lists every field of the genome with its default, and no other', (t) => {
  const genome = defaultGenome();
  const known = genomeFields(genome);
  const listed = new Set<string>();
  for (const row of rows()) {
    const values = row.defaults.split(' / ');
    t.true(values.length === row.fields.length || values.length === 1, `${row.fields.join(', ')}: ${row.fields.length} fields, ${values.length} defaults`);
    row.fields.forEach((field, i) => {
      listed.add(field);
      t.true(known.has(field), `docs/genome.md lists ${field}, which is not a genome field`);
      if (!known.has(field)) return;
      const cell = values[values.length === 1 ? 0 : i]!;
      if (field === 'tissues.<name>') {
        t.deepEqual([...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]), Object.keys(genome.tissues), 'the default tissues');
      } else if (field === 'tissues.<name>.module') {
        t.is(cell, 'the name');
        for (const [name, tissue] of Object.entries(genome.tissues)) t.is(tissue.module, name, `tissues.${name}.module`);
      } else if (field.startsWith('tissues.<name>.')) {
        const key = field.slice('tissues.<name>.'.length) as keyof typeof TISSUE_DEFAULTS;
        t.is(lead(cell), written(TISSUE_DEFAULTS[key]), field);
        const except = exceptions(cell);
        for (const [name, tissue] of Object.entries(genome.tissues)) t.is(except[name] ?? lead(cell), written(tissue[key]), `tissues.${name}.${key}`);
        for (const name of Object.keys(except)) t.true(Object.hasOwn(genome.tissues, name), `${field} names a tissue ${name} that is not a default`);
      } else {
        t.is(lead(cell), written(known.get(field)), field);
      }
    });
  }
  for (const field of known.keys()) t.true(listed.has(field), `docs/genome.md does not list ${field}`);
});
