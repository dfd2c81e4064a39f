/**
 * Builds the browser client into client/dist: one ES module bundle (esbuild, minified,
 * no source maps shipped), the stylesheet and index.html, with Subresource Integrity
 * hashes on the script and stylesheet so a tampered file is refused by the browser.
 * Receivers serve client/dist with a CSP that allows only same-origin scripts and styles.
 * Run by `npm run build` after tsc (and so by `npm install`).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../../client/', import.meta.url));
const out = `${root}dist/`;

const sri = (path: string) => `sha384-${createHash('sha384').update(readFileSync(path)).digest('base64')}`;

async function main(): Promise<void> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
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
  });
  copyFileSync(`${root}app.css`, `${out}app.css`);
  const html = readFileSync(`${root}index.html`, 'utf8')
    .replace('<link rel="stylesheet" href="app.css">', `<link rel="stylesheet" href="app.css" integrity="${sri(`${out}app.css`)}" crossorigin="anonymous">`)
    .replace('<script type="module" src="app.js"></script>', `<script type="module" src="app.js" integrity="${sri(`${out}app.js`)}" crossorigin="anonymous"></script>`);
  if (!html.includes('integrity=')) throw new Error('client/index.html: the script and stylesheet tags were not found to sign');
  writeFileSync(`${out}index.html`, html);
}

main().catch((e: unknown) => {
  process.stderr.write(`client build failed: ${(e as Error).message}\n`);
  process.exit(1);
});
