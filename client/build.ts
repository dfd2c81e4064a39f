/**
 * Builds the browser client into client/dist (client/page-build.ts: one bundle, the
 * stylesheet, index.html with Subresource Integrity hashes; no source maps shipped).
 * Receivers serve client/dist with a CSP that allows only same-origin scripts and styles.
 * Run by `npm run build` after tsc (and so by `npm install`).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildPage } from './page-build.ts';

const root = fileURLToPath(new URL('../../client/', import.meta.url));

buildPage({ root, name: 'client/', css: () => readFileSync(`${root}app.css`, 'utf8') }).catch((e: unknown) => {
  process.stderr.write(`client build failed: ${(e as Error).message}\n`);
  process.exit(1);
});
