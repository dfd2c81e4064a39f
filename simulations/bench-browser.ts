/**
 * The browser client's benchmark: `npm run bench -- browser`. Three measurements, in real
 * Chromium (Debian's, through playwright-core):
 *  1. failover as the page sees it: a logged-in page's receiver is killed (kill -9) again
 *     and again; each time, the time from its socket closing to its session resumed on
 *     another receiver (Connection.failovers, shown in #status data-failovers), and the
 *     time from the kill to a message sent by another person showing on the page;
 *  2. end-to-end encryption cost per message copy (seal, open) in Chromium, against the
 *     same code in Node in the same run (the ratio travels between machines);
 *  3. accounts, wall time from the click to the messenger: register, log in again in the
 *     same browser, log in from a new browser (keys from the backup) — all OPAQUE, Argon2id
 *     in the page — against, in the same run, an account made before OPAQUE logging in
 *     from a new browser at the production scrypt cost (server and page: the old login's
 *     work, plus its one-time upgrade).
 */
import { launchChromium } from './chromium.ts';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { codec } from '../organism/wire/codec.ts';
import { openMessengerStores } from '../cells/messenger/stores.ts';
import { scryptHasher } from '../cells/worker/password.ts';
import { generateIdentity } from '../client/crypto/envelope.ts';
import { backupKeys } from '../client/crypto/key-backup.ts';
import type { CensusEntry } from '../organism/kernel/census.ts';
import { CellularError, throwIfAborted } from '../organism/wire/errors.ts';
import { loadGenome } from '../organism/kernel/genome/index.ts';
import { Organism } from '../organism/grow/organism.ts';
import { waitFor } from './wait-for.ts';
import { cryptoCost, type CryptoCost } from './crypto-cost.ts';
import { distribution, type Distribution } from '../organism/chaos/stats.ts';
import type { BenchRunOptions } from './bench-options.ts';

export interface BrowserBenchOptions extends BenchRunOptions {
  kills: number;
  messages: number;
  /** How many of each account action are timed. */
  logins: number;
}

export interface BrowserBenchResult {
  options: { kills: number; messages: number };
  chromium: string;
  failovers: { kill: number; victim: string; to: string; resumedMs: number; messageShownMs: number }[];
  resumed: Distribution | null;
  messageShown: Distribution | null;
  crypto: { chromium: CryptoCost; node: CryptoCost; sealRatio: number; openRatio: number };
  /** Wall ms from the click to the messenger. */
  accounts: { register: Distribution; loginSameBrowser: Distribution; loginNewBrowser: Distribution; legacyNewBrowser: Distribution; newToLegacy: number } | null;
  notes: string[];
}

const RECEIVERS = 3;

/** The crypto-cost function bundled for the page (esbuild, from the TypeScript source). */
async function cryptoBundle(): Promise<string> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const out = await build({
    stdin: { contents: "import { cryptoCost } from './simulations/crypto-cost.ts'; (globalThis as any).cellularCryptoCost = cryptoCost;", resolveDir: root, loader: 'ts' },
    bundle: true, format: 'iife', platform: 'browser', target: 'es2022', write: false, logLevel: 'warning',
  });
  return out.outputFiles[0]!.text;
}

/** Opens the page in a context and fills the form; `press` clicks and resolves with ms until the messenger shows. */
async function timedEntry(context: BrowserContext, url: string, user: string, how: 'register' | 'login', confirmLegacy = false): Promise<{ page: Page; ms: number }> {
  const page = await context.newPage();
  await page.goto(`${url}/`);
  await page.waitForSelector('#status[data-state=connected]');
  await page.fill('#user', user);
  await page.fill('#password', `pw-${user}-bench`);
  const t0 = performance.now();
  await page.click(how === 'register' ? '#register' : '#login');
  if (confirmLegacy) await page.click('#legacy-confirm button[data-answer=yes]', { timeout: 30_000 });
  await page.waitForSelector(`#status[data-user=${user}]`, { timeout: 60_000 });
  return { page, ms: Math.round(performance.now() - t0) };
}

/** 3. Account actions, `n` of each, and as many first logins of accounts made before OPAQUE. */
async function accountTimes(browser: Browser, organism: Organism, url: string, run: string, n: number, o: BrowserBenchOptions): Promise<NonNullable<BrowserBenchResult['accounts']>> {
  const times = { register: [] as number[], same: [] as number[], fresh: [] as number[], legacy: [] as number[] };
  const stores = await openMessengerStores(organism.observer.nc, organism.observer.ns);
  for (let i = 0; i < n; i++) {
    throwIfAborted(o.signal);
    const user = `a${run}${i}`;
    const home = await browser.newContext();
    const reg = await timedEntry(home, url, user, 'register');
    const same = await timedEntry(home, url, user, 'login');
    const fresh = await timedEntry(await browser.newContext(), url, user, 'login');
    // An account as an organism before OPAQUE left it, at the production cost (scrypt 2^17 on the server and in the page).
    const old = `l${run}${i}`;
    const identity = generateIdentity();
    const password = `pw-${old}-bench`;
    await stores.accounts.put(`u.${old}`, codec.pack({ v: 1, user: old, hash: await scryptHasher.hash(password, { logN: 17, r: 8, p: 1 }), created: Date.now() }));
    await stores.directory.put(`u.${old}`, codec.pack({ v: 1, user: old, x25519: identity.x25519.publicKey, ed25519: identity.ed25519.publicKey, at: Date.now() }));
    await stores.directory.put(`b.${old}`, codec.pack({ v: 1, user: old, blob: await backupKeys(identity, old, password), at: Date.now() }));
    const legacy = await timedEntry(await browser.newContext(), url, old, 'login', true);
    times.register.push(reg.ms);
    times.same.push(same.ms);
    times.fresh.push(fresh.ms);
    times.legacy.push(legacy.ms);
    o.progress(`accounts ${i + 1}/${n}: register ${reg.ms} ms, log in (same browser) ${same.ms} ms, (new browser) ${fresh.ms} ms; an old account's first login (password once, scrypt 2^17, upgrade) ${legacy.ms} ms`);
    for (const p of [reg.page, same.page, fresh.page, legacy.page]) await p.context().close().catch(() => undefined);
  }
  const d = { register: distribution(times.register), loginSameBrowser: distribution(times.same), loginNewBrowser: distribution(times.fresh), legacyNewBrowser: distribution(times.legacy) };
  return { ...d, newToLegacy: d.loginNewBrowser.p50 / d.legacyNewBrowser.p50 };
}

async function register(browser: Browser, url: string, user: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${url}/`);
  await page.waitForSelector('#status[data-state=connected]');
  await page.fill('#user', user);
  await page.fill('#password', `pw-${user}-bench`);
  await page.click('#register');
  await page.waitForSelector(`#status[data-user=${user}]`, { timeout: 30_000 });
  return page;
}

export async function runBrowserBench(o: BrowserBenchOptions): Promise<BrowserBenchResult> {
  const browser = await launchChromium();
  const notes: string[] = [];
  try {
    // 2. Crypto first, on a quiet machine: Chromium, then Node.
    o.progress(`crypto: ${o.messages} seals and opens of a 200-byte message in Chromium, then in Node`);
    const page = await browser.newPage();
    await page.goto('about:blank');
    await page.addScriptTag({ content: await cryptoBundle() });
    const inChromium = await page.evaluate(([n, size]) => (globalThis as unknown as { cellularCryptoCost: typeof cryptoCost }).cellularCryptoCost(n, size), [o.messages, 200] as const);
    await page.close();
    const inNode = cryptoCost(o.messages, 200);
    o.progress(`crypto: Chromium seal ${inChromium.sealMicros.toFixed(0)} µs, open ${inChromium.openMicros.toFixed(0)} µs; Node seal ${inNode.sealMicros.toFixed(0)} µs, open ${inNode.openMicros.toFixed(0)} µs`);

    // 1. Failover under kill -9.
    const portMin = 20_000 + Math.floor(Math.random() * 40_000);
    const genome = loadGenome({
      sets: [
        'tissues.echo=null', 'tissues.dashboard=null', 'tissues.stem.min=0', `tissues.receiver.min=${RECEIVERS}`, `tissues.receiver.max=${RECEIVERS}`, 'tissues.worker.min=1',
        `messenger.portMin=${portMin}`, `messenger.portMax=${portMin + 40}`, 'messenger.scryptLogN=12', 'messenger.frontPort=0',
      ],
    });
    const organism = new Organism({ stateDir: o.stateDir, genome, autoInstall: false, say: o.say ?? (() => {}), ...(o.signal ? { signal: o.signal } : {}) });
    const onExit = () => organism.emergencyStop();
    process.once('exit', onExit);
    const failovers: BrowserBenchResult['failovers'] = [];
    let accounts: BrowserBenchResult['accounts'] = null;
    try {
      await organism.start();
      await organism.waitForPopulation();
      const census = organism.observer.census;
      const receivers = (): CensusEntry[] => census.living().filter((c) => c.tissue === 'receiver' && c.state === 'alive' && c.url !== null);
      await waitFor(() => receivers().length >= RECEIVERS, 30_000, `${RECEIVERS} receivers`, o.signal);
      const run = Math.random().toString(36).slice(2, 8);
      const [ra, rb] = receivers();
      const watcher = await register(browser, ra!.url!, `w${run}`);
      const consoleLines: string[] = [];
      watcher.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
      const talker = await register(browser, rb!.url!, `t${run}`);
      await talker.fill('#find', `w${run}`);
      await talker.press('#find', 'Enter');
      await talker.waitForSelector('#shell[data-view=conv]');
      for (let k = 0; k < o.kills; k++) {
        throwIfAborted(o.signal);
        await waitFor(() => receivers().length >= RECEIVERS, 30_000, `${RECEIVERS} receivers again`, o.signal);
        // The regrown receiver is pushed to the page ("receivers"): kill once it knows all of them.
        await watcher.waitForSelector(`#status[data-receivers="${RECEIVERS}"]`, { timeout: 10_000 });
        const cell = await watcher.getAttribute('#status', 'data-cell');
        const victim = receivers().find((c) => c.id === cell);
        if (!victim) throw new CellularError('CELL_ERR_SPAWN', `the page's receiver ${cell} is not in the census`);
        // The talker must not be on the same receiver, or its own failover would be measured too.
        const text = `after kill ${k + 1}`;
        const killedAt = performance.now();
        process.kill(victim.pid, 'SIGKILL');
        await talker.fill('#text', text);
        await talker.press('#text', 'Enter');
        await watcher.waitForSelector(`#status[data-state=connected]:not([data-cell="${victim.id}"])`, { timeout: 30_000 }).catch(async (e: unknown) => {
          const status = await watcher.evaluate(() => {
            const el = (globalThis as unknown as { document: { getElementById(id: string): { textContent: string; dataset: Record<string, string> } } }).document.getElementById('status');
            return `${el.textContent} ${JSON.stringify(el.dataset)}`;
          });
          throw new CellularError('CELL_ERR_SPAWN', `kill ${k + 1}: the page did not resume on another receiver: its status says ${status}; live receivers ${receivers().map((c) => `${c.id} ${c.url}`).join(', ')}; console: ${consoleLines.slice(-10).join(' | ')}`, { cause: e });
        });
        await watcher.waitForSelector(`#messages li .text:text-is("${text}"), #conversations button .last:text-is("${text}")`, { timeout: 30_000 });
        const shownMs = performance.now() - killedAt;
        const list = ((await watcher.getAttribute('#status', 'data-failovers')) ?? '').split(',').filter((x) => x.length > 0).map(Number);
        const resumedMs = list.at(-1) ?? Number.NaN;
        if (list.length !== k + 1) notes.push(`kill ${k + 1}: the page counted ${list.length} failovers so far`);
        const to = (await watcher.getAttribute('#status', 'data-cell')) ?? '?';
        failovers.push({ kill: k + 1, victim: victim.id, to, resumedMs, messageShownMs: Math.round(shownMs) });
        o.progress(`kill ${k + 1}/${o.kills}: ${victim.id} → ${to}: resumed ${resumedMs} ms after its socket closed; the talker's message shown ${Math.round(shownMs)} ms after the kill`);
        // The talker may have been on the victim too (after earlier moves): let it settle.
        await talker.waitForSelector('#status[data-state=connected]', { timeout: 30_000 });
      }
      if (o.logins > 0) {
        await waitFor(() => receivers().length >= RECEIVERS, 30_000, `${RECEIVERS} receivers again`, o.signal);
        o.progress(`accounts: ${o.logins} × register, log in in the same browser, in a new browser; and an old account's first login`);
        // The receiver the page is on now is alive (the census may still list the last victim).
        const on = await watcher.getAttribute('#status', 'data-cell');
        const url = receivers().find((c) => c.id === on)?.url;
        if (!url) throw new CellularError('CELL_ERR_SPAWN', `the page's receiver ${on} has no URL in the census`);
        accounts = await accountTimes(browser, organism, url, run, o.logins, o);
      }
    } finally {
      await organism.stop('benchmark done');
      process.off('exit', onExit);
    }
    const resumed = failovers.map((f) => f.resumedMs).filter((x) => Number.isFinite(x));
    return {
      options: { kills: o.kills, messages: o.messages }, chromium: browser.version(), failovers,
      resumed: resumed.length > 0 ? distribution(resumed) : null,
      messageShown: failovers.length > 0 ? distribution(failovers.map((f) => f.messageShownMs)) : null,
      crypto: { chromium: inChromium, node: inNode, sealRatio: inChromium.sealMicros / inNode.sealMicros, openRatio: inChromium.openMicros / inNode.openMicros },
      accounts,
      notes,
    };
  } finally {
    await browser.close();
  }
}
