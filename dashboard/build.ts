/**
 * Builds the dashboard page into dashboard/dist (client/page-build.ts): one bundle with
 * force-graph and uPlot, one stylesheet, and index.html with Subresource Integrity hashes.
 * The page's CSP allows no inline styles, so the CSS that force-graph and its tooltip
 * would inject as <style> elements at run time is moved into the stylesheet here.
 * Run by `npm run build` after tsc.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';
import { buildPage } from '../client/page-build.ts';

const root = fileURLToPath(new URL('../../dashboard/', import.meta.url));
const require = createRequire(import.meta.url);

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
  const found: string[] = [];
  await buildPage({
    root, name: 'dashboard/', plugins: [injectedStyles(found)],
    css: () => {
      if (found.length !== 2) throw new Error(`expected the stylesheets of force-graph and float-tooltip, found ${found.length}`);
      return [readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'), ...found, readFileSync(`${root}app.css`, 'utf8')].join('\n');
    },
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`dashboard build failed: ${(e as Error).message}\n`);
  process.exit(1);
});
