/**
 * What every benchmark and simulation report shares: its two files side by side
 * (`<dir>/<name>-<timestamp>.json`, NaN and infinities written as null, and a
 * self-contained `.html`: inline CSS and SVG, no scripts, no network), the page's head and
 * look, the summary table of metric rows with PASS/FAIL cells, and the notes list.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeXml } from './svg.ts';

/** One line of a summary: on the page, in the terminal table (report.ts textTable). */
export interface Row {
  metric: string;
  value: string;
  target: string;
  status: '' | 'PASS' | 'FAIL';
}

/** `2025-01-31T12-00-00Z`: sortable and safe in file names. */
export function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/** The look of a benchmark page: a compact table with coloured PASS/FAIL cells, a muted meta line. */
export const PAGE_STYLE = 'body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px;color:#222}table{border-collapse:collapse;margin:12px 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}\n'
  + 'td.pass{color:#fff;background:#2ca02c;font-weight:600}td.fail{color:#fff;background:#d62728;font-weight:600}.meta{color:#555;font-size:13px}';

/** Writes `<dir>/<name>-<stamp(at)>.json` (the document) and `.html` (the page); returns their paths. */
export function writeReport(dir: string, name: string, at: Date, doc: unknown, page: string): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${name}-${stamp(at)}`);
  const json = `${base}.json`;
  const html = `${base}.html`;
  // NaN is not JSON: null instead.
  writeFileSync(json, `${JSON.stringify(doc, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  writeFileSync(html, page);
  return { json, html };
}

/** The page up to its body: the title, the style (PAGE_STYLE unless given). */
export function pageHead(title: string, style = PAGE_STYLE): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>\n<style>${style}</style></head><body>\n`;
}

/** The summary rows as a table, each status cell classed `pass` or `fail` for its colour. */
export function summaryTable(rows: Row[]): string {
  const tr = (x: Row) => `<tr><td>${escapeXml(x.metric)}</td><td>${escapeXml(x.value)}</td><td>${escapeXml(x.target)}</td><td class="${x.status.toLowerCase()}">${x.status}</td></tr>`;
  return `<table><tr><th>metric</th><th>value</th><th>target</th><th></th></tr>${rows.map(tr).join('')}</table>`;
}

/** A titled list of lines (notes, accusations), or nothing when there are none. */
export function listSection(heading: string, lines: readonly string[]): string {
  return lines.length > 0 ? `<h2>${escapeXml(heading)}</h2><ul>${lines.map((n) => `<li>${escapeXml(n)}</li>`).join('')}</ul>` : '';
}
