/**
 * Builds the dashboard page into dashboard/dist: one ES module bundle (esbuild, minified)
 * with force-graph and uPlot, one stylesheet, and index.html with Subresource Integrity
 * hashes. The page's CSP allows no inline styles, so the CSS that force-graph and its
 * tooltip would inject as <style> elements at run time is moved into the stylesheet here.
 * Run by `npm run build` after tsc.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = fileURLToPath(new URL('../../dashboard/', import.meta.url));
const out = `${root}dist/`;
const require = createRequire(import.meta.url);

const sri = (path: string) => `sha384-${createHash('sha384').update(readFileSync(path)).digest('base64')}`;

/** Takes `var css_248z = "…"; styleInject(css_248z);` out of a module and keeps the CSS. */
function injectedStyles(found: string[]): Plugin {
  return {
    name: 'injected-styles',
    setup(b) {
      b.onLoad({ filter: /(force-graph|float-tooltip)\.mjs$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        const m = /var css_248z = ("(?:[^"\\]|\\.)*");\nstyleInject\(css_248z\);/.exec(text);
        if (!m) throw new Error(`${args.path}: its injected stylesheet was not found (did the library change how it adds CSS?)`);
        found.push(JSON.parse(m[1]!) as string);
        return { contents: text.replace(m[0], ''), loader: 'js' };
      });
    },
  };
}

async function main(): Promise<void> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const css: string[] = [];
  await build({
    entryPoints: [`${root}app/main.ts`],
    outfile: `${out}app.js`,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    plugins: [injectedStyles(css)],
  });
  if (css.length !== 2) throw new Error(`expected the stylesheets of force-graph and float-tooltip, found ${css.length}`);
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  writeFileSync(`${out}app.css`, [uplotCss, ...css, readFileSync(`${root}app.css`, 'utf8')].join('\n'));
  const html = readFileSync(`${root}index.html`, 'utf8')
    .replace('<link rel="stylesheet" href="app.css">', `<link rel="stylesheet" href="app.css" integrity="${sri(`${out}app.css`)}" crossorigin="anonymous">`)
    .replace('<script type="module" src="app.js"></script>', `<script type="module" src="app.js" integrity="${sri(`${out}app.js`)}" crossorigin="anonymous"></script>`);
  if (!html.includes('integrity=')) throw new Error('dashboard/index.html: the script and stylesheet tags were not found to sign');
  writeFileSync(`${out}index.html`, html);
}

main().catch((e: unknown) => {
  process.stderr.write(`dashboard build failed: ${(e as Error).message}\n`);
  process.exit(1);
});
