/**
 * The dashboard in real Chromium (Debian's, driven by playwright-core), served by the
 * dashboard cell of an organism grown by the real `cellular grow`: the page loads without
 * console errors and shows what `census --json` shows; controls are refused without the
 * token; a kill from the controls shows the death and the regrowth; the flight recorder
 * replays a past death; a killed dashboard cell is regrown and the page reconnects.
 * Screenshots go to test-artifacts/dashboard-*.png.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { natsOptions } from '../../organism/kernel/access.ts';
import { recordAccess } from '../../organism/grow/commands/target.ts';
import type { Page } from 'playwright-core';
import WebSocket from 'ws';
import { freePort } from '../../organism/grow/broker.ts';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { localCells, signalCell } from '../../organism/kernel/processes.ts';
import { openReply, pack } from '../../organism/kernel/reply.ts';
import { launch, shot } from '../helpers/browser.ts';
import { censusJson, grow, until, type Grown } from '../helpers/grow.ts';
import { signControl } from '../../organism/kernel/dashboard-token.ts';

const DASHBOARD = ['tissues.dashboard={"module":"dashboard","min":1,"max":1}', 'dashboard.port=0', 'dashboard.pushIntervalMs=250', 'tissues.stem.min=1', 'tissues.echo.min=1'];

interface Dash {
  g: Grown;
  url: string;
  token: string;
}

/** Grows an organism with a dashboard and reads the URL and token grow printed. */
async function growDashboard(t: ExecutionContext, sets: string[] = []): Promise<Dash> {
  const g = await grow(t, { sets: [...DASHBOARD, ...sets] });
  await until(() => /dashboard: http/.test(g.stderr()), 15_000, 'grow to print the dashboard URL');
  const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)#token=([A-Za-z0-9_-]+)/.exec(g.stderr());
  if (!m) throw new Error(`grow printed no dashboard URL with a token:\n${g.stderr()}`);
  return { g, url: m[1]!, token: m[2]! };
}

/** A page of the dashboard; console errors and page errors are collected in `problems`. */
async function open(t: ExecutionContext, url: string, problems: string[], name: string): Promise<Page> {
  const browser = await launch(t);
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  t.teardown(async () => {
    if (!t.passed) await shot(page, `dashboard-failed-${name}`);
  });
  await page.goto(url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 15_000 });
  return page;
}

const living = async (g: Grown) => (await censusJson(g)).filter((c) => c.state !== 'dead');
const rowState = (page: Page, id: string) => page.locator(`#cells tr[data-id="${id}"]`).getAttribute('data-state', { timeout: 1_000 }).catch(() => null);

/** A raw WebSocket to the feed, as a page of `origin` would open it. */
async function rawFeed(t: ExecutionContext, url: string, origin: string): Promise<{ ask(frame: object): Promise<Record<string, unknown>>; frames: Record<string, unknown>[] }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}ws`, { origin });
  t.teardown(() => ws.close());
  const frames: Record<string, unknown>[] = [];
  const waiting = new Map<number, (f: Record<string, unknown>) => void>();
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as Record<string, unknown>;
    frames.push(f);
    const w = typeof f.id === 'number' ? waiting.get(f.id) : undefined;
    if (w) w(f);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let id = 0;
  return {
    frames,
    ask: (frame) => new Promise((resolve, reject) => {
      const n = ++id;
      const timer = setTimeout(() => reject(new Error(`no answer to ${JSON.stringify(frame)}`)), 10_000);
      waiting.set(n, (f) => (clearTimeout(timer), resolve(f)));
      ws.send(JSON.stringify({ ...frame, id: n }));
    }),
  };
}

test.serial('dashboard - grow prints the URL with its token; the page loads without console errors and shows the census', async (t) => {
  const { g, url, token } = await growDashboard(t);
  t.is(token, readFileSync(join(g.stateDir, 'dashboard.token'), 'utf8').trim(), 'the printed token is the state dir one');
  t.is((await import('node:fs')).statSync(join(g.stateDir, 'dashboard.token')).mode & 0o777, 0o600);
  const problems: string[] = [];
  const page = await open(t, `${url}#token=${token}`, problems, 'census');
  await page.waitForSelector('#access[data-unlocked="true"]');
  t.false(page.url().includes('token='), 'the token leaves the address bar');
  // The cell count on the page and `census --json` agree (read until a quiet moment matches).
  let shown = -1;
  let census = -2;
  await until(async () => {
    census = (await living(g)).length;
    shown = Number(await page.locator('#cell-count').getAttribute('data-count'));
    return shown === census && census >= 3;
  }, 20_000, 'the page and census --json to show the same living cells').catch(() => undefined);
  t.is(shown, census, `the page shows ${shown} cells, census --json ${census}`);
  const ids = (await living(g)).map((c) => c.id).sort();
  await until(async () => (await page.locator('#cells tbody tr').evaluateAll((rs) => rs.map((r) => (r as unknown as { dataset: { id?: string } }).dataset.id))).sort().join() === ids.join(), 10_000, 'the table to list the census').catch(() => undefined);
  t.deepEqual((await page.locator('#cells tbody tr').evaluateAll((rs) => rs.map((r) => (r as unknown as { dataset: { id?: string } }).dataset.id))).sort(), ids);
  // The graph (a canvas), the charts (uPlot) and births in the log.
  t.true(await page.locator('#graph canvas').count() >= 1, 'the graph draws on a canvas');
  await page.waitForSelector('#chart-population .uplot', { timeout: 10_000 });
  t.true(await page.locator('#charts .uplot').count() >= 5, 'five charts');
  // A cell born a moment ago (a regrown stem) may reach the log a frame after the census: wait for each.
  for (const id of ids) t.true(await page.waitForSelector(`#log li[data-kind="birth"][data-cells~="${id}"]`, { timeout: 10_000 }).then(() => true, () => false), `the log shows ${id}'s birth`);
  // The detail of a cell: its certificate and metabolism.
  const echo = (await living(g)).find((c) => c.tissue === 'echo')!;
  await page.locator(`#cells tr[data-id="${echo.id}"]`).click();
  await page.waitForSelector(`#detail[data-cell="${echo.id}"]`);
  const detail = await page.locator('#detail').textContent();
  t.regex(detail ?? '', /Lineage certificate[\s\S]*issued by[\s\S]*root/);
  t.regex(detail ?? '', new RegExp(`${echo.host} · ${echo.pid}`));
  // Frames drawn: the graph animates.
  const f0 = Number(await page.evaluate('window.cellularDashboard.frames()'));
  await page.waitForTimeout(1_000);
  const f1 = Number(await page.evaluate('window.cellularDashboard.frames()'));
  t.true(f1 > f0, `the graph drew frames (${f1 - f0} in a second)`);
  // Prometheus: the cells gauge adds up to the census.
  const metrics = await (await fetch(new URL('/metrics', url))).text();
  const gauged = [...metrics.matchAll(/^cellular_cells\{tissue="[^"]+",state="(\w+)"\} (\d+)$/gm)].filter((m) => m[1] !== 'dead').reduce((n, m) => n + Number(m[2]), 0);
  t.is(gauged, (await living(g)).length, 'cellular_cells (not dead) adds up to the census');
  // (A cell hears no pulses: what they say reaches it in the host digests.)
  t.regex(metrics, /^cellular_hormones_total\{kind="digest"\} \d+$/m);
  t.regex(metrics, /^cellular_dashboard_process_cpu_seconds_total /m);
  await shot(page, 'dashboard-live');
  t.deepEqual(problems, [], 'no console errors');
});

test.serial('dashboard - without the token the controls are refused', async (t) => {
  const { g, url, token } = await growDashboard(t);
  const problems: string[] = [];
  const page = await open(t, url, problems, 'read-only');
  await until(async () => (await page.locator('#access').textContent()) === 'read-only', 5_000, 'the page to say read-only');
  t.true(await page.locator('#load-go').isDisabled(), 'the load button is disabled');
  t.true(await page.locator('#shutdown-go').isDisabled(), 'the shutdown button is disabled');
  // A wrong token typed in does not unlock.
  await page.locator('#token').fill('not-the-token');
  await page.locator('#unlock button').click();
  await page.waitForTimeout(300);
  t.is(await page.locator('#access').getAttribute('data-unlocked'), 'false');
  const victim = (await living(g)).find((c) => c.tissue === 'echo')!;
  // The feed itself refuses a control without the token, or with a wrong one.
  const feed = await rawFeed(t, url, new URL(url).origin);
  for (const bad of ['', 'x'.repeat(43), `${token}x`]) {
    const r = await feed.ask({ t: 'control', token: bad, control: { action: 'kill', cell: victim.id } });
    t.false(r.ok, `token ${JSON.stringify(bad.slice(0, 8))} refused`);
    t.is(r.code, 'DASHBOARD_ERR_TOKEN');
  }
  // Malformed frames get an error frame, and nothing happens.
  const ws = new WebSocket(`${url.replace('http', 'ws')}ws`, { origin: new URL(url).origin });
  t.teardown(() => ws.close());
  const errors: Record<string, unknown>[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as Record<string, unknown>;
    if (f.t === 'error') errors.push(f);
  });
  await new Promise((r) => ws.once('open', r));
  for (const text of ['{', '[]', '{"t":"nope","id":1}', '{"t":"control","id":1,"token":"x","control":{},"extra":1}', JSON.stringify({ t: 'detail', id: 1, cell: 'x'.repeat(5000) })]) ws.send(text);
  await until(() => errors.length === 5, 5_000, 'an error frame for each bad frame');
  t.true(errors.every((e) => e.code === 'DASHBOARD_ERR_FRAME'), JSON.stringify(errors));
  // Another site's page cannot open the feed at all.
  const foreign = new WebSocket(`${url.replace('http', 'ws')}ws`, { origin: 'http://evil.example' });
  const refused = await new Promise<string>((resolve) => {
    foreign.once('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
    foreign.once('open', () => resolve('open'));
    foreign.once('error', (e) => resolve(e.message));
  });
  foreign.terminate();
  t.is(refused, '403', 'a cross-origin feed is refused');
  // Nor does the operator take one over NATS without the token.
  const nc = await connect(natsOptions(await recordAccess(g.stateDir, g.record, 'grow', 'test'), 'test'));
  t.teardown(() => nc.close());
  const ns = new Namespace(g.record.id);
  const reply = await nc.request(ns.operator, pack(signControl('guess', ns.id, 'test', { action: 'kill', cell: victim.id })), { timeout: 5_000 });
  const e = t.throws(() => openReply(reply.data));
  t.is((e as { code?: string }).code, 'DASHBOARD_ERR_TOKEN');
  await page.waitForTimeout(1_000);
  t.true((await living(g)).some((c) => c.id === victim.id), `${victim.id} is still alive`);
  await shot(page, 'dashboard-read-only');
  t.deepEqual(problems, []);
});

test.serial('dashboard - a kill from the controls shows the death and the regrowth', async (t) => {
  const { g, url, token } = await growDashboard(t);
  const problems: string[] = [];
  const page = await open(t, `${url}#token=${token}`, problems, 'kill');
  await page.waitForSelector('#access[data-unlocked="true"]');
  const victim = (await living(g)).find((c) => c.tissue === 'echo')!;
  await page.waitForSelector(`#cells tr[data-id="${victim.id}"]`);
  await page.locator(`#cells tr[data-id="${victim.id}"]`).click();
  await page.waitForSelector(`#detail[data-cell="${victim.id}"]`);
  await page.locator('#detail-kill').click();
  await page.waitForSelector('#control-result[data-ok]');
  t.is(await page.locator('#control-result').getAttribute('data-ok'), 'true', (await page.locator('#control-result').textContent()) ?? '');
  // The death: in the log (the control, then the census's conclusion) and in the table.
  await page.waitForSelector(`#log li[data-kind="control"][data-cells~="${victim.id}"]`, { timeout: 10_000 });
  // (A cell that was a stem recruited into echo has an earlier state line: its differentiation.)
  await page.waitForSelector(`#log li[data-kind="state"][data-cells~="${victim.id}"]:has-text("→ dead")`, { timeout: 10_000 });
  t.regex((await page.locator(`#log li[data-kind="state"][data-cells~="${victim.id}"]:has-text("→ dead")`).first().textContent()) ?? '', /→ dead/);
  await until(async () => (await rowState(page, victim.id)) === 'dead' || (await rowState(page, victim.id)) === null, 10_000, `${victim.id} shown dead`);
  await shot(page, 'dashboard-kill');
  // The regrowth: a decision for echo, and a new echo cell alive on the page and in the census.
  await page.waitForSelector('#log li[data-kind="decision"]:has-text("echo:")', { timeout: 15_000 });
  await until(async () => (await page.locator('#cells tr[data-tissue="echo"][data-state="alive"]').count()) >= 1, 15_000, 'a new echo cell on the page');
  const regrown = await page.locator('#cells tr[data-tissue="echo"][data-state="alive"]').first().getAttribute('data-id');
  t.not(regrown, victim.id);
  t.true((await living(g)).some((c) => c.id === regrown), `${regrown} is in census --json`);
  await shot(page, 'dashboard-regrown');
  t.deepEqual(problems, []);
});

test.serial('dashboard - the flight recorder replays a past death', async (t) => {
  const { g, url, token } = await growDashboard(t);
  const problems: string[] = [];
  const page = await open(t, url, problems, 'replay');
  const victim = (await living(g)).find((c) => c.tissue === 'echo')!;
  // Killed by the operator, as the dashboard's control does (the page here is read-only).
  const nc = await connect(natsOptions(await recordAccess(g.stateDir, g.record, 'grow', 'test'), 'test'));
  t.teardown(() => nc.close());
  await page.waitForTimeout(2_000); // frames of it alive first
  const killedAt = Date.now();
  openReply(( await nc.request(new Namespace(g.record.id).operator, pack(signControl(token, g.record.id, 'test', { action: 'kill', cell: victim.id })), { timeout: 5_000 })).data);
  await until(async () => !(await living(g)).some((c) => c.id === victim.id), 10_000, `${victim.id} gone from the census`);
  await until(async () => (await page.locator('#cells tr[data-tissue="echo"][data-state="alive"]').count()) >= 1 && (await rowState(page, victim.id)) !== 'alive', 15_000, 'the regrowth on the live page');
  await page.waitForTimeout(1_500); // the frames after the death are recorded
  const seek = async (ts: number) => {
    // The range spans the last 10 minutes in 1000 steps (dashboard/app/timeline.ts).
    await page.evaluate(`(() => {
      const r = document.getElementById('timeline-range');
      const span = 10 * 60000;
      r.value = String(Math.round(((${ts} - (Date.now() - span)) / span) * 1000));
      r.dispatchEvent(new Event('change'));
    })()`);
    await page.waitForSelector('#mode[data-mode="replay"]');
    await until(async () => (await page.locator('#timeline-at').getAttribute('data-ts')) !== null, 10_000, 'a replayed frame');
  };
  // Before the kill it is alive in the replayed census; after it, dead; the log replays the kill.
  await seek(killedAt - 1_500);
  const before = Number(await page.locator('#timeline-at').getAttribute('data-ts'));
  t.true(before < killedAt, `the frame shown (${before}) is before the kill (${killedAt})`);
  t.is(await rowState(page, victim.id), 'alive', 'replayed before the kill: alive');
  await page.locator('#timeline-play').click();
  await until(async () => (await rowState(page, victim.id)) === 'dead', 15_000, 'play to reach the death');
  const at = Number(await page.locator('#timeline-at').getAttribute('data-ts'));
  t.true(at > killedAt, 'the dead frame is after the kill');
  await until(async () => (await page.locator(`#log li[data-kind="control"][data-cells~="${victim.id}"]`).count()) >= 1, 5_000, 'the replayed log to show the kill');
  await shot(page, 'dashboard-replay');
  await page.locator('#timeline-live').click();
  await page.waitForSelector('#mode[data-mode="live"]');
  t.deepEqual(problems, []);
});

test.serial('dashboard - a killed dashboard cell is regrown and the page reconnects to it', async (t) => {
  // A fixed port (as by default): the regrown cell takes it again, and the page finds it there.
  const { g, url } = await growDashboard(t, [`dashboard.port=${await freePort('127.0.0.1')}`]);
  const problems: string[] = [];
  const page = await open(t, url, problems, 'regrown');
  const old = (await living(g)).find((c) => c.tissue === 'dashboard')!;
  const cell = localCells(g.record.id).find((c) => c.cell === old.id)!;
  t.true(signalCell(cell.pid, cell.cell, g.record.id, 'SIGKILL'));
  await page.waitForSelector('#status:not([data-state="live"])', { timeout: 10_000 });
  await until(async () => (await living(g)).some((c) => c.tissue === 'dashboard' && c.id !== old.id), 20_000, 'a new dashboard cell');
  const now = (await living(g)).find((c) => c.tissue === 'dashboard' && c.id !== old.id)!;
  // It takes the same port (free again once the old process died), so the page comes back by itself.
  t.is(now.url, url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 15_000 });
  await until(async () => ((await page.locator('#organism').textContent()) ?? '').includes(now.id), 10_000, 'the page to name the new dashboard cell');
  // The regrown cell filled its log from the flight recorder: the births before it are there.
  t.true(await page.locator(`#log li[data-kind="birth"][data-cells~="${old.id}"]`).count() >= 1, 'the old dashboard cell\'s birth is still in the log');
  t.deepEqual(problems.filter((p) => !/WebSocket/.test(p)), [], 'no errors but the lost socket');
});
