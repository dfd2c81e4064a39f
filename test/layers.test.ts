/**
 * The layers, read from the source: who may import whom (docs/architecture.md).
 *
 *   organism/wire    pure, isomorphic wire contracts: imports only itself and packages, no `node:`
 *   organism/kernel  what every process shares: imports wire and itself
 *   organism/chaos   live chaos and load: imports kernel, wire and cells' fault names
 *   cells            the cell runtime and tissues: imports kernel, wire, chaos's catalogue
 *   organism/grow    the host program: imports anything production
 *   client, dashboard  pages: import only themselves and wire
 *
 * Production (organism, cells, client, dashboard) never imports simulations/ or test/, and
 * no two files import each other in a circle.
 */
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TOPS = ['organism', 'cells', 'client', 'dashboard', 'simulations', 'test'];
const SPEC = /(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm;

interface Source {
  file: string;
  /** Relative imports, as repo paths. */
  local: string[];
  /** Package and builtin imports. */
  bare: string[];
}

function sources(): Source[] {
  const out: Source[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(join(ROOT, d))) {
      if (n === 'node_modules' || n === 'dist' || n.startsWith('.')) continue;
      const p = join(d, n);
      if (statSync(join(ROOT, p)).isDirectory()) walk(p);
      else if (/\.ts$/.test(n) && !n.endsWith('.d.ts')) out.push(read(p));
    }
  };
  const read = (file: string): Source => {
    const src = readFileSync(join(ROOT, file), 'utf8');
    const local: string[] = [];
    const bare: string[] = [];
    for (const m of src.matchAll(SPEC)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith('.')) local.push(relative(ROOT, resolve(dirname(join(ROOT, file)), spec)).replace(/\.js$/, '.ts'));
      else bare.push(spec);
    }
    return { file, local, bare };
  };
  for (const t of TOPS) walk(t);
  return out;
}

/** The layer a file belongs to: the folder that says it. */
function layer(file: string): string {
  const [top, sub] = file.split('/');
  if (top === 'organism') return `organism/${sub}`;
  return top!;
}

const ALLOWED: Record<string, readonly string[]> = {
  'organism/wire': ['organism/wire'],
  'organism/kernel': ['organism/kernel', 'organism/wire'],
  'organism/chaos': ['organism/chaos', 'organism/kernel', 'organism/wire'],
  cells: ['cells', 'organism/kernel', 'organism/wire', 'organism/chaos'],
  'organism/grow': ['organism/grow', 'organism/kernel', 'organism/wire', 'organism/chaos', 'cells'],
  client: ['client', 'organism/wire'],
  dashboard: ['dashboard', 'organism/wire', 'client'],
};

const all = sources();

test('layers - every production file imports only the layers beneath it', (t) => {
  const wrong: string[] = [];
  for (const s of all) {
    const allowed = ALLOWED[layer(s.file)];
    if (!allowed) continue; // simulations and tests may import anything production
    for (const target of s.local) if (!allowed.includes(layer(target))) wrong.push(`${s.file} -> ${target}`);
  }
  t.deepEqual(wrong, []);
  // Every production file sits in a known layer (a new folder must be placed on purpose).
  const unplaced = all.filter((s) => !['simulations', 'test'].includes(s.file.split('/')[0]!) && !ALLOWED[layer(s.file)]);
  t.deepEqual(unplaced.map((s) => s.file), []);
});

test('layers - production never imports simulations/ or test/', (t) => {
  const wrong = all
    .filter((s) => !['simulations', 'test'].includes(s.file.split('/')[0]!))
    .flatMap((s) => s.local.filter((x) => x.startsWith('simulations/') || x.startsWith('test/')).map((x) => `${s.file} -> ${x}`));
  t.deepEqual(wrong, []);
});

test('layers - the wire contracts are pure: no node: builtin, no server package', (t) => {
  const wire = all.filter((s) => layer(s.file) === 'organism/wire');
  t.true(wire.length >= 5, 'codec, errors, frames, dashboard frames and controls live in organism/wire');
  const impure = wire.flatMap((s) => s.bare.filter((b) => b.startsWith('node:') || b.startsWith('@nats-io/')).map((b) => `${s.file} imports ${b}`));
  t.deepEqual(impure, []);
});

test('layers - no import cycle between files', (t) => {
  const edges = new Map(all.map((s) => [s.file, s.local.filter((x) => x !== s.file)]));
  // Tarjan's strongly connected components: a component of more than one file is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const cycles: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w)) continue;
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) cycles.push(comp);
    }
  };
  for (const f of edges.keys()) if (!idx.has(f)) strong(f);
  t.deepEqual(cycles, []);
});

test('layers - a cell process forks nothing but its children: only cells/spawn.ts may start a process', (t) => {
  // A fork carries the cell's command line, organism markers included, until it execs: for
  // that moment every process count of the organism sees one cell too many (process-usage.ts).
  const forking = all.filter((s) => s.file.startsWith('cells/') || s.file.startsWith('organism/kernel/') || s.file.startsWith('organism/wire/'))
    .filter((s) => s.bare.some((b) => b === 'node:child_process' || b === 'child_process' || b === 'pidusage'))
    .map((s) => s.file);
  // processes.ts asks `ps` only where there is no /proc (macOS), never on Linux.
  t.deepEqual(forking.sort(), ['cells/spawn.ts', 'organism/kernel/processes.ts']);
});
