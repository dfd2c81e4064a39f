/**
 * Builds one browser page into `<root>dist/`: `app/main.ts` bundled by esbuild into one
 * minified ES module, the stylesheet, and `index.html` with Subresource Integrity hashes on
 * the script and the stylesheet, so a tampered file is refused by the browser. Used by the
 * client's and the dashboard's build.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { build, type Plugin } from 'esbuild';

const sri = (path: string) => `sha384-${createHash('sha384').update(readFileSync(path)).digest('base64')}`;

export interface PageBuild {
  /** The page's folder (with app/main.ts and index.html), ending in a slash. */
  root: string;
  /** For messages: `client/`, `dashboard/`. */
  name: string;
  /** The stylesheet, asked for once the bundle is built (plugins may have collected CSS). */
  css(): string;
  plugins?: Plugin[];
}

/**
 * What a page may bundle: its own folder, the wire contracts (pure and isomorphic) and
 * packages. A server module in a bundle would ship server code to every browser and tie the
 * page to the server's internals, so the build fails instead.
 */
const BROWSER_SOURCES = ['organism/wire/', 'node_modules/'] as const;

function assertBrowserOnly(p: PageBuild, inputs: readonly string[]): void {
  const own = relative(process.cwd(), p.root).replace(/\/?$/, '/');
  const foreign = inputs.filter((i) => !i.startsWith(own) && !BROWSER_SOURCES.some((b) => i.startsWith(b)));
  if (foreign.length > 0) {
    throw new Error(`${p.name}: the browser bundle would include server modules (${foreign.join(', ')}); a page may import only ${own}, ${BROWSER_SOURCES.join(', ')}`);
  }
}

export async function buildPage(p: PageBuild): Promise<void> {
  const out = `${p.root}dist/`;
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const result = await build({
    metafile: true,
    entryPoints: [`${p.root}app/main.ts`],
    outfile: `${out}app.js`,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    plugins: p.plugins ?? [],
  });
  assertBrowserOnly(p, Object.keys(result.metafile.inputs));
  writeFileSync(`${out}app.css`, p.css());
  const html = readFileSync(`${p.root}index.html`, 'utf8')
    .replace('<link rel="stylesheet" href="app.css">', `<link rel="stylesheet" href="app.css" integrity="${sri(`${out}app.css`)}" crossorigin="anonymous">`)
    .replace('<script type="module" src="app.js"></script>', `<script type="module" src="app.js" integrity="${sri(`${out}app.js`)}" crossorigin="anonymous"></script>`);
  if (!html.includes('integrity=')) throw new Error(`${p.name}index.html: the script and stylesheet tags were not found to sign`);
  writeFileSync(`${out}index.html`, html);
}
