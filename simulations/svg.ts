/**
 * Small, dependency-free SVG charts for self-contained HTML reports: bars (grouped, each
 * bar optionally stacked from segments) and lines, with a y axis on round numbers,
 * horizontal reference lines (targets, peers) and a legend. Missing values are gaps.
 */

export interface Segment {
  name: string;
  color: string;
  values: readonly (number | null)[];
  /** Line width, for line charts. @default 1.5 */
  width?: number;
}

/** One bar per category; its segments stack bottom-up; markers are ticks across the bar. */
export interface BarSeries {
  segments: Segment[];
  markers?: Segment[];
}

export interface RefLine {
  value: number;
  label: string;
  color: string;
  dash?: boolean;
}

export interface ChartFrame {
  title: string;
  yLabel: string;
  categories: readonly string[];
  refLines?: RefLine[];
  width?: number;
  height?: number;
}

const M = { top: 34, right: 16, bottom: 58, left: 58 };

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A round step so that about `count` steps cover `max`. */
function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * pow;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 ? v.toFixed(0) : String(Math.round(v * 100) / 100);
}

interface Plot {
  w: number;
  h: number;
  pw: number;
  ph: number;
  y: (v: number) => number;
  parts: string[];
}

function frame(f: ChartFrame, dataMax: number): Plot {
  const w = f.width ?? 900;
  const h = f.height ?? 320;
  const pw = w - M.left - M.right;
  const ph = h - M.top - M.bottom;
  const top = Math.max(dataMax, ...(f.refLines ?? []).map((r) => r.value), 1e-9);
  const step = niceStep(top * 1.05);
  const yMax = Math.ceil((top * 1.05) / step) * step;
  const y = (v: number) => M.top + ph - (v / yMax) * ph;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" font-family="system-ui, sans-serif" font-size="11">`,
    `<text x="${M.left}" y="18" font-size="14" font-weight="600">${escapeXml(f.title)}</text>`,
    `<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#444">${escapeXml(f.yLabel)}</text>`,
  ];
  for (let v = 0; v <= yMax + step / 2; v += step) {
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#444">${fmt(v)}</text>`);
  }
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}" stroke="#888"/>`);
  parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${M.top + ph}" y2="${M.top + ph}" stroke="#888"/>`);
  return { w, h, pw, ph, y, parts };
}

function refLines(p: Plot, lines: RefLine[] = []): void {
  for (const r of lines) {
    const yy = p.y(r.value);
    p.parts.push(`<line x1="${M.left}" x2="${M.left + p.pw}" y1="${yy}" y2="${yy}" stroke="${r.color}" stroke-width="1.5"${r.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
    p.parts.push(`<text x="${M.left + p.pw - 4}" y="${yy - 4}" text-anchor="end" fill="${r.color}" stroke="#fff" stroke-width="3" paint-order="stroke">${escapeXml(r.label)}</text>`);
  }
}

/** Legend under the plot: one row, or two when one would overflow the chart's width. */
function legend(p: Plot, items: { name: string; color: string }[]): void {
  const widthOf = (name: string) => 24 + name.length * 6.2;
  const rows: { name: string; color: string }[][] = [[]];
  let used = 0;
  for (const it of items) {
    if (used + widthOf(it.name) > p.w - M.left - 4 && rows[rows.length - 1]!.length > 0) {
      rows.push([]);
      used = 0;
    }
    rows[rows.length - 1]!.push(it);
    used += widthOf(it.name);
  }
  rows.forEach((row, r) => {
    const y = p.h - 14 - (rows.length - 1 - r) * 15;
    let x = M.left;
    for (const it of row) {
      p.parts.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${it.color}"/>`);
      p.parts.push(`<text x="${x + 14}" y="${y}">${escapeXml(it.name)}</text>`);
      x += widthOf(it.name);
    }
  });
}

function categoryLabels(p: Plot, categories: readonly string[], center: (i: number) => number): void {
  const every = Math.max(1, Math.ceil(categories.length / 40));
  categories.forEach((c, i) => {
    if (i % every === 0) p.parts.push(`<text x="${center(i)}" y="${M.top + p.ph + 14}" text-anchor="middle" fill="#444">${escapeXml(c)}</text>`);
  });
}

export function barChart(f: ChartFrame & { series: BarSeries[] }): string {
  const stackTop = (s: BarSeries, i: number) => s.segments.reduce((a, seg) => a + (seg.values[i] ?? 0), 0);
  const dataMax = Math.max(0, ...f.series.flatMap((s) => f.categories.map((_, i) => stackTop(s, i))));
  const p = frame(f, dataMax);
  const slot = p.pw / Math.max(1, f.categories.length);
  const barW = (slot * 0.8) / Math.max(1, f.series.length);
  f.categories.forEach((cat, i) => {
    f.series.forEach((s, k) => {
      const x = M.left + i * slot + slot * 0.1 + k * barW;
      let base = 0;
      for (const seg of s.segments) {
        const v = seg.values[i];
        if (v === null || v === undefined || !Number.isFinite(v)) continue;
        const y0 = p.y(base);
        const y1 = p.y(base + v);
        p.parts.push(`<rect x="${x.toFixed(1)}" y="${y1.toFixed(1)}" width="${Math.max(1, barW - 1).toFixed(1)}" height="${Math.max(0, y0 - y1).toFixed(1)}" fill="${seg.color}"><title>${escapeXml(`${cat} · ${seg.name}: ${fmt(v)}`)}</title></rect>`);
        base += v;
      }
      for (const mk of s.markers ?? []) {
        const v = mk.values[i];
        if (v === null || v === undefined || !Number.isFinite(v)) continue;
        p.parts.push(`<line x1="${(x - 2).toFixed(1)}" x2="${(x + barW + 1).toFixed(1)}" y1="${p.y(v).toFixed(1)}" y2="${p.y(v).toFixed(1)}" stroke="${mk.color}" stroke-width="3"><title>${escapeXml(`${cat} · ${mk.name}: ${fmt(v)}`)}</title></line>`);
      }
    });
  });
  refLines(p, f.refLines);
  categoryLabels(p, f.categories, (i) => M.left + (i + 0.5) * slot);
  legend(p, [...f.series.flatMap((s) => [...s.segments, ...(s.markers ?? [])]), ...(f.refLines ?? []).map((r) => ({ name: r.label, color: r.color }))]);
  p.parts.push('</svg>');
  return p.parts.join('\n');
}

/** A vertical line at a category (a fault in a time series), labelled at the top. */
export interface Mark {
  at: number;
  label: string;
  color?: string;
}

export function lineChart(f: ChartFrame & { series: Segment[]; marks?: Mark[] }): string {
  const dataMax = Math.max(0, ...f.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v))));
  const p = frame(f, dataMax);
  const n = f.categories.length;
  const x = (i: number) => M.left + (n <= 1 ? p.pw / 2 : (i / (n - 1)) * p.pw);
  for (const s of f.series) {
    let d = '';
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      d += `${d === '' ? 'M' : 'L'}${x(i).toFixed(1)},${p.y(v).toFixed(1)} `;
      p.parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${p.y(v).toFixed(1)}" r="2.5" fill="${s.color}"><title>${escapeXml(`${f.categories[i]} · ${s.name}: ${fmt(v)}`)}</title></circle>`);
    });
    p.parts.push(`<path d="${d.trim()}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}"/>`);
  }
  for (const [i, m] of (f.marks ?? []).entries()) {
    const xx = x(Math.max(0, Math.min(n - 1, m.at))).toFixed(1);
    const color = m.color ?? '#d62728';
    p.parts.push(`<line x1="${xx}" x2="${xx}" y1="${M.top}" y2="${M.top + p.ph}" stroke="${color}" stroke-width="1.2" stroke-dasharray="4 3"/>`);
    p.parts.push(`<text x="${Number(xx) + 3}" y="${M.top + 10 + (i % 3) * 11}" fill="${color}" stroke="#fff" stroke-width="3" paint-order="stroke">${escapeXml(m.label)}</text>`);
  }
  refLines(p, f.refLines);
  categoryLabels(p, f.categories, x);
  legend(p, [...f.series, ...(f.refLines ?? []).map((r) => ({ name: r.label, color: r.color }))]);
  p.parts.push('</svg>');
  return p.parts.join('\n');
}
