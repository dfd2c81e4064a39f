/**
 * Reports of the browser benchmark: `<reports>/browser-<timestamp>.json` and a
 * self-contained `.html` with the failover time of every kill and the encryption cost in
 * Chromium beside Node's.
 */
import type { BrowserBenchResult } from './bench-browser.ts';
import type { MachineInfo, Row } from './report.ts';
import { listSection, pageHead, summaryTable, writeReport } from './report-page.ts';
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
  const a = r.accounts;
  if (a) {
    const d = (x: { p50: number; max: number; n: number }) => `p50 ${ms(x.p50)} / max ${ms(x.max)} ms (n ${x.n})`;
    rows.push({ metric: 'register (OPAQUE, Argon2id in the page), click → messenger', value: d(a.register), target: '', status: '' });
    rows.push({ metric: 'log in, same browser', value: d(a.loginSameBrowser), target: '', status: '' });
    rows.push({ metric: 'log in, new browser (keys from the backup)', value: d(a.loginNewBrowser), target: `≤ 1.5× the old login's`, status: a.newToLegacy <= 1.5 ? 'PASS' : 'FAIL' });
    rows.push({ metric: 'an account made before OPAQUE, first login from a new browser (scrypt 2^17 on the server and in the page, then the upgrade)', value: `${d(a.legacyNewBrowser)}; new login / this: ${a.newToLegacy.toFixed(2)}×`, target: '', status: '' });
  }
  return rows;
}

export function writeBrowserReport(r: BrowserBenchResult, dir: string, startedAt: Date, machine: MachineInfo): { json: string; html: string } {
  const doc = { benchmark: 'browser', v: 1, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, targets: BROWSER_TARGETS, result: r };
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
  const page = `${pageHead(`cellular browser benchmark ${startedAt.toISOString()}`)}<h1>Browser client: failover and encryption cost</h1>
<p class="meta">${escapeXml(startedAt.toISOString())} · ${m.cpus} × ${escapeXml(m.cpuModel)} · Node ${escapeXml(m.node)} · Chromium ${escapeXml(r.chromium)} · ${escapeXml(m.natsServer)}</p>
<p>A page logged in on one of three receivers; its receiver is killed with SIGKILL ${r.options.kills} times (the organism regrows it between kills). "Resumed" is measured by the page itself: from its socket's close event to the <code>welcome</code> that resumed its session on another receiver. "Message shown": from the kill to a message, sent by another person at the moment of the kill, appearing on the page.
Encryption: ${r.options.messages} seals, then ${r.options.messages} opens, of a ${r.crypto.chromium.textBytes}-byte text by the client's envelope code, in the page and in Node.</p>
${summaryTable(browserRows(r))}
${charts.map((svg) => `<figure>${svg}</figure>`).join('\n')}
${listSection('Notes', r.notes)}
</body></html>
`;
  return writeReport(dir, 'browser', startedAt, doc, page);
}
