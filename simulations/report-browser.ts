/**
 * Reports of the browser benchmark: `<reports>/browser-<timestamp>.json` and a
 * self-contained `.html` with the failover time of every kill and the encryption cost in
 * Chromium beside Node's.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserBenchResult } from './bench-browser.ts';
import { stamp, type MachineInfo, type Row } from './report.ts';
import { barChart, escapeXml } from './svg.ts';

export const BROWSER_TARGETS = {
  /** Socket lost → session resumed on another receiver, p95, ms. */
  resumedP95Ms: 2_000,
};

const ms = (v: number) => `${Math.round(v)}`;

export function browserRows(r: BrowserBenchResult): Row[] {
  const c = r.crypto;
  const rows: Row[] = [];
  if (r.resumed) {
    rows.push({ metric: `failover seen by the page: socket lost → session resumed (${r.resumed.n} kills)`, value: `p50 ${ms(r.resumed.p50)} / p95 ${ms(r.resumed.p95)} / max ${ms(r.resumed.max)} ms`, target: `p95 ≤ ${BROWSER_TARGETS.resumedP95Ms} ms`, status: r.resumed.p95 <= BROWSER_TARGETS.resumedP95Ms ? 'PASS' : 'FAIL' });
  }
  if (r.messageShown) rows.push({ metric: 'kill -9 → a message sent at that moment shown on the page', value: `p50 ${ms(r.messageShown.p50)} / p95 ${ms(r.messageShown.p95)} / max ${ms(r.messageShown.max)} ms`, target: '', status: '' });
  rows.push({ metric: `seal one copy (${c.chromium.textBytes} B text → ${c.chromium.sealedBytes} B sealed), Chromium`, value: `${c.chromium.sealMicros.toFixed(0)} µs (${c.sealRatio.toFixed(2)}× Node's ${c.node.sealMicros.toFixed(0)} µs)`, target: '', status: '' });
  rows.push({ metric: 'open one copy (verify, decrypt, unpad), Chromium', value: `${c.chromium.openMicros.toFixed(0)} µs (${c.openRatio.toFixed(2)}× Node's ${c.node.openMicros.toFixed(0)} µs)`, target: '', status: '' });
  return rows;
}

export function writeBrowserReport(r: BrowserBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `browser-${stamp(startedAt)}`);
  const json = `${base}.json`;
  const html = `${base}.html`;
  writeFileSync(json, `${JSON.stringify({ benchmark: 'browser', v: 1, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, targets: BROWSER_TARGETS, result: r }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  const rows = browserRows(r).map((x) => `<tr><td>${escapeXml(x.metric)}</td><td>${escapeXml(x.value)}</td><td>${escapeXml(x.target)}</td><td class="${x.status.toLowerCase()}">${x.status}</td></tr>`).join('');
  const kills = r.failovers.map((f) => `kill ${f.kill}`);
  const charts = [
    barChart({
      title: 'Each kill -9 of the page\'s receiver: socket lost → session resumed, and kill → the next message shown', yLabel: 'ms', categories: kills, width: 960, height: 320,
      series: [
        { segments: [{ name: 'socket lost → resumed', color: '#2563eb', values: r.failovers.map((f) => f.resumedMs) }] },
        { segments: [{ name: 'kill → message shown', color: '#f97316', values: r.failovers.map((f) => f.messageShownMs) }] },
      ],
      refLines: [{ value: BROWSER_TARGETS.resumedP95Ms, label: `target p95 ≤ ${BROWSER_TARGETS.resumedP95Ms} ms`, color: '#d62728', dash: true }],
    }),
    barChart({
      title: 'End-to-end encryption per message copy: Chromium against Node (the same code)', yLabel: 'µs', categories: ['seal', 'open'], width: 640, height: 300,
      series: [
        { segments: [{ name: `Chromium ${r.chromium}`, color: '#2563eb', values: [r.crypto.chromium.sealMicros, r.crypto.chromium.openMicros] }] },
        { segments: [{ name: `Node ${machine.node}`, color: '#9ca3af', values: [r.crypto.node.sealMicros, r.crypto.node.openMicros] }] },
      ],
    }),
  ];
  const m = machine;
  writeFileSync(html, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cellular browser benchmark ${escapeXml(startedAt.toISOString())}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px;color:#222}table{border-collapse:collapse;margin:12px 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}
td.pass{color:#fff;background:#2ca02c;font-weight:600}td.fail{color:#fff;background:#d62728;font-weight:600}.meta{color:#555;font-size:13px}</style></head><body>
<h1>Browser client: failover and encryption cost</h1>
<p class="meta">${escapeXml(startedAt.toISOString())} · ${m.cpus} × ${escapeXml(m.cpuModel)} · Node ${escapeXml(m.node)} · Chromium ${escapeXml(r.chromium)} · ${escapeXml(m.natsServer)}</p>
<p>A page logged in on one of three receivers; its receiver is killed with SIGKILL ${r.options.kills} times (the organism regrows it between kills). "Resumed" is measured by the page itself: from its socket's close event to the <code>welcome</code> that resumed its session on another receiver. "Message shown": from the kill to a message, sent by another person at the moment of the kill, appearing on the page.
Encryption: ${r.options.messages} seals, then ${r.options.messages} opens, of a ${r.crypto.chromium.textBytes}-byte text by the client's envelope code, in the page and in Node.</p>
<table><tr><th>metric</th><th>value</th><th>target</th><th></th></tr>${rows}</table>
${charts.map((svg) => `<figure>${svg}</figure>`).join('\n')}
${r.notes.length > 0 ? `<h2>Notes</h2><ul>${r.notes.map((n) => `<li>${escapeXml(n)}</li>`).join('')}</ul>` : ''}
</body></html>
`);
  return { json, html };
}
